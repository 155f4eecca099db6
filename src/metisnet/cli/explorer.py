"""``metis explorer``: the read-only web explorer of a chain (a devnet's, by default)."""

from __future__ import annotations

from pathlib import Path

import click

from metisnet.cli._group import main
from metisnet.errors import ConfigError

__all__ = ["explorer"]


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".devnet"), show_default=True,
              help="a devnet's directory (its state.json names the chain and deployment)")
@click.option("--chain-url", default=None, help="JSON-RPC URL (instead of the devnet's)")
@click.option("--deployment", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="deployment JSON file (with --chain-url)")
@click.option("--host", default="127.0.0.1", show_default=True, help="loopback address")
@click.option("--port", default=8800, show_default=True, help="HTTP port")
@click.option("--interval", default=0.25, show_default=True,
              help="seconds between chain polls")
def explorer(data_dir: Path, chain_url: str | None, deployment: Path | None, host: str,
             port: int, interval: float) -> None:
    """Serve the explorer: nodes, stakes, datasets, tasks, stages, verdicts (read only).

    One page at / with a live view of the running task (stage, committee, votes, verdict,
    payouts) and charts of throughput and latency; JSON under /api (OpenAPI at
    /openapi.json). Datasets' rows never reach it: only what the chain holds.
    """
    from metisnet.api.explorer import ChainView, serve_explorer
    from metisnet.chain.backend import connect
    from metisnet.chain.deploy import Contracts
    from metisnet.node.compute import load_deployment
    from metisnet.node.devnet import load_state

    datasets: list[str] = []
    if chain_url is None or deployment is None:
        if chain_url is not None or deployment is not None:
            raise ConfigError("give both --chain-url and --deployment, or neither")
        state = load_state(data_dir)
        if state is None:
            raise ConfigError(f"no running devnet in {data_dir} "
                              "(start one with `metis devnet up`)")
        chain_url, deployment = state.chain_url, Path(state.deployment)
        datasets = list(state.datasets)
    chain = connect(chain_url)
    view = ChainView(Contracts.attach(chain, load_deployment(deployment)),
                     dataset_ids=datasets)

    def announce(url: str) -> None:
        click.echo(f"explorer at {url}/ (chain {chain_url}); Ctrl-C stops it", err=False)

    try:
        serve_explorer(view, host=host, port=port, interval=interval, announce=announce)
    finally:
        chain.close()
