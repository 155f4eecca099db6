"""``metis devnet``: a local network of separate processes (anvil, data and compute nodes)."""

from __future__ import annotations

from pathlib import Path

import click

from metisnet.cli._group import main

__all__ = ["devnet"]

_DIR = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                    default=Path(".devnet"), show_default=True,
                    help="keys, configs, node data, logs and state.json")


@main.group()
def devnet() -> None:
    """Start, stop and inspect the local multi-process devnet."""


@devnet.command("up")
@_DIR
@click.option("--rows", default=10_000, show_default=True, help="rows per synthetic dataset")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--compute-nodes", default=6, show_default=True, type=click.IntRange(3, 64),
              help="compute nodes (a committee of 3 needs 6 for a restart with a fresh one)")
@click.option("--no-shows", default=0, show_default=True,
              help="fault injection: this many compute nodes never acknowledge a draw")
def up(data_dir: Path, rows: int, log_level: str, compute_nodes: int, no_shows: int) -> None:
    """Start anvil, deploy the contracts, start 3 data nodes and 6 compute nodes."""
    from rich.console import Console

    from metisnet.node.devnet import devnet_up

    console = Console()
    with console.status(f"starting the devnet: anvil, contracts, 3 data nodes, "
                        f"{compute_nodes} compute nodes"):
        state, started = devnet_up(data_dir, rows=rows, log_level=log_level,
                                   compute_nodes=compute_nodes, no_shows=no_shows)
    console.print(("devnet started" if started else "devnet already running")
                  + f": chain {state.chain_url}, {len(state.procs)} processes, "
                  f"state in {Path(state.root) / 'state.json'}")
    _table(data_dir)


@devnet.command("down")
@_DIR
@click.option("--timeout", default=10.0, show_default=True,
              help="seconds to wait after SIGTERM before SIGKILL")
def down(data_dir: Path, timeout: float) -> None:
    """Stop every devnet process (SIGTERM, then SIGKILL after the timeout)."""
    from metisnet.node.devnet import devnet_down

    stopped = devnet_down(data_dir, timeout=timeout)
    click.echo(f"stopped {len(stopped)} process(es)" if stopped else "no devnet running")


@devnet.command("kill")
@_DIR
@click.argument("name")
def kill(data_dir: Path, name: str) -> None:
    """Kill one node process (SIGKILL, as a crash), e.g. ``compute-2`` or ``data-0``."""
    from metisnet.node.devnet import stop_node

    p = stop_node(data_dir, name)
    click.echo(f"killed {p.name} (pid {p.pid}); `metis devnet restart {p.name}` brings it back")


@devnet.command("restart")
@_DIR
@click.argument("name")
def restart(data_dir: Path, name: str) -> None:
    """Start a stopped node again from its config, keys and stored state."""
    from metisnet.node.devnet import restart_node

    p = restart_node(data_dir, name)
    click.echo(f"restarted {p.name} (pid {p.pid})")


@devnet.command("status")
@_DIR
def status(data_dir: Path) -> None:
    """Show the devnet's processes."""
    _table(data_dir)


def _table(data_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from metisnet.node.devnet import devnet_status

    rows = devnet_status(data_dir)
    console = Console()
    if not rows:
        console.print(f"no devnet in {data_dir}")
        return
    table = Table(title=f"metisnet devnet ({data_dir}), all on 127.0.0.1",
                  caption=f"logs: {Path(rows[0]['log']).parent}")
    for col in ("name", "pid", "state", "node id", "REST/RPC port", "TLS port"):
        table.add_column(col, no_wrap=True)

    def port(url: str) -> str:
        return url.rpartition(":")[2] if url else ""

    def short(addr: str) -> str:
        return f"{addr[:8]}…{addr[-4:]}" if addr else ""

    for r in rows:
        table.add_row(r["name"], str(r["pid"]),
                      "[green]up[/green]" if r["alive"] else "[red]down[/red]",
                      short(r["address"]), port(r["rest"]), port(r["tls"]))
    console.print(table)
