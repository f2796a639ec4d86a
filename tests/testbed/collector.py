"""ir's node collector on the test bed's node: its image (scripts/build-collector-image: Debian
packages and the ir wheel, no registry) imported into the node's containerd, the collector
namespace (Pod Security privileged) with the shipped service account and read-only RBAC, and the
Secret a direct-upload collector takes its S3 credentials from. Used by the tests and benches."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.testbed.deploy import apply, shipped_documents
from tests.testbed.node import RealNode
from tests.testbed.s3 import SeaweedFS

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "ir-collectors"


def install_collector(node: RealNode) -> str:
    """Build (cached by content) and import the collector image, create the collector namespace,
    service account and RBAC; returns the image reference."""
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-collector-image")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if built.returncode != 0:
        raise RuntimeError(f"collector image: {built.stderr[-3000:]}")
    archive, ref = built.stdout.strip().splitlines()[-2:]
    node.ctr("images", "import", archive)
    for doc in shipped_documents(REPO / "deploy/kustomize/node-collector"):
        apply(node.cp, doc)
    return ref


def store_secret(node: RealNode, s3: SeaweedFS, name: str = "ir-store") -> None:
    """The Secret whose keys become a direct-upload collector's environment: S3 credentials and,
    when this process has one ($IR_SIGNING_KEY), the signing key as PEM text."""
    import os

    env = s3.env()
    signing = os.environ.get("IR_SIGNING_KEY")
    key = {"IR_SIGNING_KEY": Path(signing).read_text()} if signing else {}
    node.cp.api(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {
                "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
                "AWS_REGION": env["AWS_REGION"],
                "AWS_ENDPOINT_URL_S3": s3.endpoint,
                "AWS_EC2_METADATA_DISABLED": "true",
                **key,
            },
        },
    )
