"""``metis chaos``: randomised fault scenarios with invariants, on an in-process network or
(``--devnet``) on a multi-process devnet behind fault proxies."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import click

from metisnet.cli._group import main

__all__ = ["chaos"]


@main.command()
@click.option("--runs", default=20, show_default=True, type=click.IntRange(1, 100_000),
              help="how many scenarios to run")
@click.option("--seed", default=0, show_default=True, type=int,
              help="seed of the scenario draw (the same seed replays the same faults)")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="write the totals to this file as a JSON object")
@click.option("--kind", "kinds", multiple=True,
              help="only these scenario kinds, cycled (default: drawn at random from all)")
@click.option("--timeout", default=None, type=click.FloatRange(0.2, 60),
              help="seconds a session waits for a peer before failing "
                   "[default: 2, or 10 with --devnet]")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the nodes keep their data (default: a temporary folder)")
@click.option("--devnet", is_flag=True, default=False,
              help="instead: one multi-process devnet (anvil, 3 data and 6 compute nodes, "
                   "fault proxies in front of every node); each run is one task with a "
                   "devnet fault: delays, cuts, corrupted bytes, a stopped chain, killed and "
                   "restarted nodes, compute nodes that flip bits or equivocate, data "
                   "nodes that vote twice or deal inconsistent shares (2-26 s a run, "
                   "plus about 10 s to start; needs anvil)")
def chaos(runs: int, seed: int, json_file: Path | None, kinds: tuple[str, ...],
          timeout: float | None, data_dir: Path | None, devnet: bool) -> None:
    """Inject faults into tasks and check nothing is lost and nobody honest is slashed.

    Exits 1 when an honest node was slashed, data was lost, or a scenario did not end as
    its kind requires.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from metisnet.node.chaos import KINDS, TOTAL_KEYS, ScenarioResult, run_chaos
    from metisnet.node.chaos_devnet import DEVNET_KINDS, run_devnet_chaos

    known = DEVNET_KINDS if devnet else KINDS
    unknown = sorted(set(kinds) - set(known))
    if unknown:
        raise click.BadParameter(f"unknown kind(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(known)}", param_hint="--kind")
    if data_dir is not None and devnet and (data_dir / "state.json").exists():
        raise click.BadParameter(f"{data_dir} holds a running devnet; chaos starts its own",
                                 param_hint="--data-dir")
    # the faults make nodes log warnings by design; the table tells the story (the level
    # is restored when the command ends, so callers in the same process keep theirs)
    quiet = logging.getLogger("metisnet")
    previous = quiet.level
    quiet.setLevel(logging.ERROR)
    click.get_current_context().call_on_close(lambda: quiet.setLevel(previous))
    console = Console()
    wide = Console(width=max(console.width, 150))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metis-chaos-") as tmp, \
            Progress(*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task("chaos", total=runs)

        def show(r: ScenarioResult) -> None:
            mark = "" if r.as_expected else " [red](unexpected)[/red]"
            progress.update(bar, advance=1,
                            description=f"#{r.index} {r.kind}: {r.outcome}{mark}")

        if devnet:
            totals = run_devnet_chaos((data_dir or Path(tmp)) / "devnet", runs, seed=seed,
                                      kinds=kinds or None, progress=show,
                                      session_timeout=timeout or 10.0)
        else:
            totals = run_chaos(data_dir or Path(tmp), runs, seed=seed, kinds=kinds or None,
                               progress=show, timeout=timeout or 2.0)
    elapsed = time.perf_counter() - t0

    where = "devnet" if devnet else "in-process"
    table = Table(title=f"metis chaos ({where}): {runs} scenarios, seed {seed}, "
                        f"{elapsed:.0f} s")
    table.add_column("scenario", no_wrap=True)
    table.add_column("expected")
    table.add_column("runs", justify="right")
    table.add_column("as expected", justify="right")
    for key in TOTAL_KEYS:
        table.add_column(key.replace("_", " "), justify="right")
    table.add_column("s/run", justify="right")
    for kind, row in sorted(totals.by_kind().items()):
        ok = row["as_expected"] == row["runs"]
        table.add_row(kind, row["expected"].replace("_", " "), str(row["runs"]),
                      str(row["as_expected"]) if ok else f"[red]{row['as_expected']}[/red]",
                      *(str(row[k]) for k in TOTAL_KEYS),
                      f"{row['seconds'] / row['runs']:.1f}")
    t = totals.totals()
    ok_total = len(totals.scenarios) - len(totals.unexpected)
    table.add_section()
    table.add_row("[b]total[/b]", "", str(len(totals.scenarios)), str(ok_total),
                  *(f"[b]{t[k]}[/b]" for k in TOTAL_KEYS), "")
    wide.print(table)
    for r in totals.unexpected:
        console.print(f"[red]scenario #{r.index} ({r.kind}): {r.outcome}, state {r.state}: "
                      f"{'; '.join(r.problems) or r.verdict}[/red]")
    if json_file is not None:
        json_file.write_text(json.dumps(t, indent=2) + "\n")
        console.print(f"totals written to {json_file}")
    if t["honest_slashed"] or t["data_lost"] or totals.unexpected:
        sys.exit(1)
