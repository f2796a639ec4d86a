"""`ir keys`: signing keys for manifests and custody records."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from ir.bundle.signing import generate_keypair, load_signer, public_key_of


@click.group("keys")
def keys() -> None:
    """Signing keys: Ed25519 files, or AWS KMS keys (manifests and custody records are signed)."""


@keys.command("generate")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for NAME.key (private, mode 0600) and NAME.pub.",
)
@click.option("--name", default="ir-signing", show_default=True)
def generate(out: Path, name: str) -> None:
    """Generate a key pair. Use the private key with --signing-key or $IR_SIGNING_KEY, and give
    investigators the .pub file for `ir bundle verify --trust`."""
    key, pub = generate_keypair(out, name)
    signer = load_signer(str(key))
    assert signer is not None
    click.echo(f"private key: {key}\npublic key:  {pub}\nkey id:      {signer.key_id}")


@keys.command("public")
@click.argument("source", metavar="KEY")
def public(source: str) -> None:
    """Print the public key (PEM) of a signing key: a private key file, or awskms:KEY-ID-OR-ARN
    (an AWS KMS ECC_NIST_P256 key; the private key never leaves KMS). Investigators trust it with
    `ir bundle verify --trust FILE`; its key id goes to stderr."""
    signer = load_signer(source)
    assert signer is not None
    pem = public_key_of(signer).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    click.echo(pem.decode(), nl=False)
    click.echo(f"key id: {signer.key_id}", err=True)


COMMANDS = [keys]
