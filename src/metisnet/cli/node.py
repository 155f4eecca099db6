"""``metis node``: run a data node as a service, show its identity."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from metisnet.cli._group import main

__all__ = ["node"]


@main.group()
def node() -> None:
    """Run and inspect a data node."""


@node.command("start")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="the node's TOML file")
def start(config_path: Path) -> None:
    """Serve a data node until SIGTERM or Ctrl-C (graceful shutdown)."""
    from metisnet.api.server import serve_data_node
    from metisnet.node.config import load_data_node_config

    cfg = load_data_node_config(config_path)

    def announce(url: str, dn: object) -> None:
        node_id = getattr(dn, "node_id", "?")
        click.echo(f"metis data node {node_id} listening on {url}")
        sys.stdout.flush()

    serve_data_node(cfg, announce=announce)


@node.command("info")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="the node's TOML file")
def info(config_path: Path) -> None:
    """Print the node's id, public key and URL (creates its key if there is none yet)."""
    from metisnet.node.config import load_data_node_config
    from metisnet.node.identity import load_or_create_node_key

    cfg = load_data_node_config(config_path)
    key = load_or_create_node_key(cfg.node_key_path)
    click.echo(f"node_id     {key.address}")
    click.echo(f"public_key  {key.public_key.hex()}")
    click.echo(f"url         http://{cfg.host}:{cfg.port}")
