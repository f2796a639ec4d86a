"""Container images for the test bed's node, made on this machine (no registry is reachable).

`docker_archive()` writes a one-layer image in the `docker save` layout, which `ctr images import`
reads: a root filesystem tar, its config (command, environment, layer digest) and a manifest
naming the image. Two images are made this way:

* the pod sandbox (``pause``): the static program built from testbed/k8s/pause by build.sh;
* ``busybox``: Debian's static busybox with one link per applet, the same tree that
  scripts/testbed-docker imports into the Docker test bed (passwd, group, motd, hostname).

Every member has uid/gid 0 and mtime 0, so the same inputs give the same image id.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

PAUSE_IMAGE = "localhost/ir-testbed/pause:1"
BUSYBOX_IMAGE = "localhost/ir-testbed/busybox:1"

_PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
_GROUP = """root:x:0:
daemon:x:1:
www-data:x:33:
nogroup:x:65534:
"""
_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


class _Layer:
    """A root filesystem tar built member by member, in memory."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 -- closed by close()

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def dir(self, name: str, mode: int = 0o755) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def link(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def close(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def docker_archive(out: Path, ref: str, layer: bytes, cmd: list[str]) -> str:
    """Write image `ref` (one layer) to `out` in `docker save` layout; returns the config digest."""
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": cmd, "Env": _ENV},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        },
        sort_keys=True,
    ).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        [{"Config": f"{config_id}.json", "RepoTags": [ref], "Layers": [f"{diff_id}/layer.tar"]}]
    ).encode()
    tmp = out.with_suffix(".part")
    with tarfile.open(tmp, "w") as archive:
        for name, data in (
            (f"{config_id}.json", config),
            (f"{diff_id}/layer.tar", layer),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tmp.rename(out)
    return f"sha256:{config_id}"


def pause_layer(pause_binary: Path) -> bytes:
    layer = _Layer()
    layer.file("pause", pause_binary.read_bytes(), 0o755)
    return layer.close()


def busybox_binary() -> Path:
    found = shutil.which("busybox") or "/bin/busybox"
    path = Path(found)
    if not path.is_file():
        raise FileNotFoundError("busybox is not installed (Debian package busybox-static)")
    return path


def busybox_layer(busybox: Path) -> bytes:
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    layer = _Layer()
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "usr", "usr/bin", "usr/sbin", "home"):
        layer.dir(d)
    layer.dir("root", 0o700)
    layer.dir("tmp", 0o1777)
    layer.dir("var")
    layer.dir("var/tmp", 0o1777)
    layer.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in sorted(set(applets) - {"busybox"}):
        layer.link(f"bin/{applet}", "busybox")
    layer.file("etc/passwd", _PASSWD.encode())
    layer.file("etc/group", _GROUP.encode())
    layer.file("etc/motd", b"ir test bed image (busybox)\n")
    layer.file("etc/hostname", b"ir-testbed\n")
    return layer.close()


def build_node_images(out_dir: Path, pause_binary: Path) -> dict[str, Path]:
    """The node's images as docker archives under `out_dir` (rebuilt each call: a second)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    archives = {
        PAUSE_IMAGE: (pause_layer(pause_binary), ["/pause"]),
        BUSYBOX_IMAGE: (busybox_layer(busybox_binary()), ["/bin/sh"]),
    }
    paths = {}
    for ref, (layer, cmd) in archives.items():
        path = out_dir / (ref.rsplit("/", 1)[-1].replace(":", "-") + ".tar")
        docker_archive(path, ref, layer, cmd)
        paths[ref] = path
    return paths
