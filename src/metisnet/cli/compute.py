"""``metis compute``: run a compute node on the network."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from metisnet.cli._group import main

__all__ = ["compute"]


@main.group()
def compute() -> None:
    """Run a compute node (stakes on chain, joins the committees it is drawn into)."""


@compute.command("start")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="the node's TOML file")
def start(config_path: Path) -> None:
    """Serve a compute node until SIGTERM or Ctrl-C (graceful shutdown).

    The keystore password comes from METIS_KEY_PASSWORD.
    """
    from metisnet.node.compute import load_compute_config, run_compute_node

    cfg = load_compute_config(config_path)
    logging.basicConfig(level=cfg.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def announce(node_id: str, address: tuple[str, int]) -> None:
        click.echo(f"metis compute node {node_id} listening on {address[0]}:{address[1]}")
        sys.stdout.flush()

    run_compute_node(cfg, announce=announce)
