"""``metis task``: submit a task to a running devnet and wait for its verified result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from metisnet.cli._group import main

__all__ = ["task"]


@main.group()
def task() -> None:
    """Submit tasks to a running network (see ``metis devnet up``)."""


@task.command("submit")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".devnet"), show_default=True, help="the devnet's directory")
@click.option("--program", default="mean", show_default=True,
              help="count, sum, mean or variance")
@click.option("--dataset", "datasets", multiple=True,
              help="dataset id (repeat); default: every dataset of the devnet")
@click.option("--column", default="age", show_default=True)
@click.option("--fee-wei", default=10**16, show_default=True, type=int)
@click.option("--security", type=click.Choice(["malicious", "semi-honest"]),
              default="malicious", show_default=True)
@click.option("--account", default=1, show_default=True,
              help="which funded devnet account pays and receives (1 or more)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def submit(data_dir: Path, program: str, datasets: tuple[str, ...], column: str, fee_wei: int,
           security: str, account: int, as_json: bool) -> None:
    """Escrow the fee, let the network vote, draw, compute and verify; print the result."""
    from rich.console import Console

    from metisnet.node.devnet import DevnetRequester, load_state

    state = load_state(data_dir)
    if state is None:
        raise click.UsageError(f"no devnet running in {data_dir}; start one with "
                               "'metis devnet up'")
    console = Console(stderr=True)
    ids = list(datasets) or list(state.datasets)
    with DevnetRequester(state, account_index=account) as client:
        spec = client.spec(program, [(d, [column]) for d in ids], fee_wei,
                           security=security)
        with console.status("submitting") as status:
            res = client.requester(
                progress=lambda tid, stage: status.update(f"task {tid}: {stage}")).run(spec)
    doc = {
        "task_id": res.task_id, "program": program, "state": res.state.name.lower(),
        "verdict": res.verdict,
        "values": None if res.values is None else [float(v) for v in res.values],
        "committee": list(res.committee), "refusals": res.refusals,
        "timings_s": {k: round(v, 4) for k, v in res.timings.items()},
        "payouts_wei": {k: str(v) for k, v in res.payouts.items()},
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        console.print(f"task {res.task_id}: {res.verdict}")
        if res.values is not None:
            click.echo(f"{program} = {', '.join(f'{v:.6f}' for v in res.values)}")
        for owner, why in res.refusals.items():
            console.print(f"refused by {owner}: {why}")
    if not res.verified:
        sys.exit(1)
