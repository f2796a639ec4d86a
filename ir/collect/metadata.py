"""Metadata: the runtime's description of the container (inspect), its image (inspect + history,
hence the image digest) and the engine/node facts. Every request lands in the manifest's actions."""

from __future__ import annotations

from collections.abc import Iterator

from ir.collect.base import Artifact, ContainerContext, Scope, json_bytes


class MetadataCollector:
    name = "metadata"
    scope: Scope = "container"

    def check(self, ctx: ContainerContext) -> None:
        return None

    def collect(self, ctx: ContainerContext) -> Iterator[Artifact]:
        target = ctx.target
        handle = target.handle
        inspect = handle.inspect()
        if inspect is None:
            ctx.note("no runtime API: no container inspect (node backend given only a pid)")
        else:
            yield Artifact(
                "inspect.json",
                kind="container-inspect",
                media_type="application/json",
                chunks=[json_bytes(inspect)],
                meta={"id": handle.id, "name": handle.name},
            )
        image = handle.image_details()
        if image is None:
            ctx.note("no image details from the runtime")
        else:
            img = image.get("inspect") or {}
            meta = {
                "image": handle.image,
                "image_id": img.get("Id"),
                "repo_digests": img.get("RepoDigests") or [],
            }
            yield Artifact(
                "image.json",
                kind="image-inspect",
                media_type="application/json",
                chunks=[json_bytes(image)],
                meta=meta,
            )
        engine = handle.engine_details()
        if engine is not None:
            yield Artifact(
                "engine.json",
                kind="engine-info",
                media_type="application/json",
                chunks=[json_bytes(engine)],
            )
        target.sources[self.name] = {"backend": handle.backend, "runtime_api": inspect is not None}


COLLECTOR = MetadataCollector()
