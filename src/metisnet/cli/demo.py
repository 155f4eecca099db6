"""``metis demo``: the local demo network runs example tasks end to end."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from metisnet.cli._group import main

__all__ = ["demo"]

PROGRAMS = ("count", "sum", "mean", "variance")


@main.command()
@click.option("--rows", default=20_000, show_default=True, help="rows per synthetic dataset")
@click.option("--embedded/--devnet", default=False, show_default=True,
              help="one process on the embedded chain, or (default) the multi-process "
                   "devnet: anvil and one OS process per node, TLS between them")
@click.option("--security", type=click.Choice(["malicious", "semi-honest"]),
              default="malicious", show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="where the nodes keep their data (default: a temporary folder; "
                   "with --devnet, .devnet)")
def demo(rows: int, embedded: bool, security: str, data_dir: Path | None) -> None:
    """Run joint statistics over three private datasets and check them against plaintext."""
    from rich.console import Console
    from rich.progress import (
        Progress,
        SpinnerColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    from metisnet.node.devnet import DevnetNetwork
    from metisnet.node.localnet import LocalNetwork
    from metisnet.node.programs import get_program
    from metisnet.node.taskspec import TaskSpec

    console = Console()
    with tempfile.TemporaryDirectory(prefix="metis-demo-") as tmp:
        root = data_dir or Path(tmp)
        where = "embedded chain" if embedded else "devnet processes (anvil, TLS)"
        with console.status(f"starting the network: {where}, data and compute nodes"):
            t0 = time.perf_counter()
            net: LocalNetwork | DevnetNetwork = (
                LocalNetwork(root, rows=rows) if embedded
                else DevnetNetwork(data_dir or Path(".devnet"), rows=rows))
            if isinstance(net, DevnetNetwork) and not net.started:
                console.print(f"using the running devnet in {net.root} "
                              f"({', '.join(map(str, sorted(net.rows)))} rows per dataset)")
            console.print(f"network up in {time.perf_counter() - t0:.1f} s "
                          f"(chain, contracts, {len(net.data)} data nodes with "
                          f"{rows} rows each, {len(net.compute)} staked compute nodes)")
        union = np.concatenate(list(net.columns.values()))
        results = []
        try:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                          TimeElapsedColumn(), console=console) as progress:
                for name in PROGRAMS:
                    bar = progress.add_task(f"{name}: submitting", total=None)

                    def show(task_id: int, stage: str, bar: TaskID = bar, name: str = name) -> None:
                        progress.update(bar, description=f"{name} (task {task_id}): {stage}")

                    inputs = [(d, ["age"]) for d in net.dataset_ids]
                    spec = (net.spec(name, inputs, 10**16, security=security)
                            if isinstance(net, DevnetNetwork) else
                            TaskSpec.new(name, inputs, [net.requester_account.address], 10**16,
                                         security=security))
                    res = net.requester(progress=show).run(spec)
                    progress.update(bar, total=1, completed=1)
                    results.append(res)
        finally:
            net.close()
    table = Table(title=f"metisnet demo: joint statistics of 3 private datasets ({security})")
    for col in ("program", "secure result", "plaintext", "abs error", "bound", "verdict",
                "seconds"):
        table.add_column(col)
    failed = False
    for res in results:
        prog = get_program(res.spec.program)
        want = float(prog.plain(union)[0])
        bound = prog.error_bound(union, 16)
        if res.values is None:
            failed = True
            table.add_row(res.spec.program, "-", f"{want:.4f}", "-", f"{bound:.1e}",
                          res.verdict, f"{res.timings.get('total', 0):.2f}")
            continue
        got = float(res.values[0])
        err = abs(got - want)
        ok = res.verified and err <= bound
        failed |= not ok
        table.add_row(res.spec.program, f"{got:.4f}", f"{want:.4f}", f"{err:.1e}",
                      f"{bound:.1e}", res.verdict if ok else f"MISMATCH ({res.verdict})",
                      f"{res.timings.get('total', 0):.2f}")
    console.print(table)
    pay = Table(title="payouts credited on chain (wei), after all tasks")
    pay.add_column("account")
    pay.add_column("role")
    pay.add_column("credited")
    last = results[-1].payouts if results else {}
    owners = {d.address.lower() for d in net.data}
    for addr, amount in last.items():
        role = ("data owner" if addr.lower() in owners else
                "requester" if addr == net.requester_account.address else "compute node")
        pay.add_row(addr, role, str(amount))
    console.print(pay)
    if failed:
        console.print("[red]a result failed verification or differs from the plaintext[/red]")
        sys.exit(1)
