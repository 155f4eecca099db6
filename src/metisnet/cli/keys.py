"""``metis keys``: create and inspect node identities (keystore + TLS credentials)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from metisnet.cli._group import main
from metisnet.net.identity import PASSWORD_ENV, TlsIdentity, create_node_files, resolve_password

__all__ = ["keys"]


@main.group()
def keys() -> None:
    """Node identities: a secp256k1 key (its address is the node id) and a TLS certificate."""


def _password(password: str | None, confirm: bool) -> str:
    try:
        return resolve_password(password)
    except Exception:
        return str(click.prompt("keystore password", hide_input=True,
                                confirmation_prompt=confirm))


@keys.command("new")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="keystore file to create; TLS credentials go to FILE.tls")
@click.option("--password", default=None,
              help=f"keystore password (default: ${PASSWORD_ENV}, else a prompt)")
@click.option("--force", is_flag=True, help="overwrite an existing keystore")
@click.option("--scrypt-n", type=int, default=None, hidden=True,
              help="scrypt cost (tests only; the default is the keystore standard's)")
def new(out: Path, password: str | None, force: bool, scrypt_n: int | None) -> None:
    """Create a node key and TLS certificate; print the node id and certificate pin."""
    ident = create_node_files(out, _password(password, confirm=True), overwrite=force,
                              scrypt_n=scrypt_n)
    click.echo(f"node id:     {ident.node_id}")
    click.echo(f"cert sha256: {ident.cert_hash.hex()}")
    click.echo(f"keystore:    {out}")
    click.echo(f"tls:         {out}.tls")


@keys.command("show")
@click.argument("keystore", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--password", default=None,
              help=f"keystore password (default: ${PASSWORD_ENV}, else a prompt)")
def show(keystore: Path, password: str | None) -> None:
    """Print the node id and certificate pin of a keystore (to register or pin it)."""
    tls = TlsIdentity.load(Path(f"{keystore}.tls"), _password(password, confirm=False))
    address = json.loads(keystore.read_text(encoding="utf-8")).get("address", "")
    if address and address.lower() != tls.node_id.lower().removeprefix("0x"):
        raise click.ClickException("keystore and TLS credentials belong to different nodes")
    click.echo(f"node id:     {tls.node_id}")
    click.echo(f"cert sha256: {tls.cert_hash.hex()}")
