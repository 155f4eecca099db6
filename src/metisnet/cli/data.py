"""``metis data``: run a data node on the network (REST API, chain agent, TLS endpoint)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from metisnet.cli._group import main

__all__ = ["data"]


@main.group()
def data() -> None:
    """Run a data node that takes part in on-chain tasks."""


@data.command("start")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="TOML with a [node] and an [agent] table")
def start(config_path: Path) -> None:
    """Serve until SIGTERM or Ctrl-C (graceful shutdown).

    The keystore password comes from METIS_KEY_PASSWORD.
    """
    from metisnet.api.netnode import load_network_config, serve_network_data_node

    node_cfg, agent_cfg = load_network_config(config_path)

    def announce(url: str, dn: object) -> None:
        click.echo(f"metis data node {getattr(dn, 'node_id', '?')} listening on {url}")
        sys.stdout.flush()

    serve_network_data_node(node_cfg, agent_cfg, announce=announce)
