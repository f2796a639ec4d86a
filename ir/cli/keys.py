"""`ir keys`: signing keys for manifests and custody records."""

from __future__ import annotations

from pathlib import Path

import click

from ir.bundle.signing import generate_keypair, key_id_of, load_signer


@click.group("keys")
def keys() -> None:
    """Manage Ed25519 signing keys (manifests and custody records are signed with them)."""


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
    investigators the .pub file for `ir bundle verify --public-key`."""
    key, pub = generate_keypair(out, name)
    signer = load_signer(str(key))
    assert signer is not None
    click.echo(
        f"private key: {key}\npublic key:  {pub}\nkey id:      {key_id_of(signer.private_key.public_key())}"
    )


COMMANDS = [keys]
