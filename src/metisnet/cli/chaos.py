"""``metis chaos``: randomised fault scenarios on an in-process network, with invariants."""

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
@click.option("--timeout", default=2.0, show_default=True, type=click.FloatRange(0.2, 60),
              help="seconds a session waits for a peer before failing")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the nodes keep their data (default: a temporary folder)")
@click.option("--devnet", is_flag=True, default=False,
              help="instead: kill a committee member's process mid-task on a fresh "
                   "multi-process devnet, once per run (about a minute each; needs anvil)")
def chaos(runs: int, seed: int, json_file: Path | None, kinds: tuple[str, ...],
          timeout: float, data_dir: Path | None, devnet: bool) -> None:
    """Inject faults into tasks and check nothing is lost and nobody honest is slashed.

    Exits 1 when an honest node was slashed, data was lost, or a scenario did not end as
    its kind requires.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from metisnet.node.chaos import KINDS, TOTAL_KEYS, ScenarioResult, run_chaos

    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise click.BadParameter(f"unknown kind(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(KINDS)}", param_hint="--kind")
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
            from metisnet.node.chaos import ChaosTotals
            from metisnet.node.chaos_devnet import devnet_kill_scenario

            totals = ChaosTotals()
            for i in range(runs):
                r = devnet_kill_scenario((data_dir or Path(tmp)) / f"devnet-{i}",
                                         seed=seed + i, session_timeout=max(timeout, 10.0))
                r.index = i
                totals.add(r)
                show(r)
        else:
            totals = run_chaos(data_dir or Path(tmp), runs, seed=seed, kinds=kinds or None,
                               progress=show, timeout=timeout)
    elapsed = time.perf_counter() - t0

    table = Table(title=f"metis chaos: {runs} scenarios, seed {seed}, {elapsed:.0f} s")
    table.add_column("scenario")
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
