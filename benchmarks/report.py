"""Run the benchmark scripts and write one Markdown report with PNG plots.

``python benchmarks/report.py`` (or ``metis bench``) runs every script of this directory
(``--quick`` unless ``--full``), each in its own process with ``--json``, keeps each
script's output in ``logs/``, and writes ``REPORT.md`` in the output directory
(``bench-results/`` by default): which scripts ran and how long they took, one table of
every row (the keys of ../shared/BENCHMARKS.md), and per script a PNG of the measured
value against input size for metisnet and each peer (log scales). A script that fails,
times out or writes no valid JSON is listed as failed in the report; the others still run.

Self-contained (standard library plus matplotlib for the plots, imported only when
plotting), so ``metis bench`` can load it from the source tree by path.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NOT_SCRIPTS = {"report"}  # and every module whose name starts with "_" (shared helpers)
COLUMNS = ("script", "op", "size", "unit", "metisnet", "metisnet_min", "metisnet_max",
           "peer", "peer_value", "ratio", "bytes_per_party", "rounds", "peak_rss_mib", "note")
REQUIRED = ("op", "size", "unit", "metisnet")
MAX_PANELS = 16  # per script's plot; one panel per (op, unit)


@dataclass
class ScriptRun:
    """One benchmark script's run: its rows, or why it has none."""

    name: str
    ok: bool
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    log: str = ""


def scripts(bench_dir: Path = HERE, only: Iterable[str] = ()) -> list[Path]:
    """The benchmark scripts of ``bench_dir`` (all, or those named in ``only``)."""
    found = sorted(p for p in bench_dir.glob("*.py")
                   if p.stem not in NOT_SCRIPTS and not p.stem.startswith("_"))
    wanted = [o.removesuffix(".py") for o in only]
    if wanted:
        unknown = set(wanted) - {p.stem for p in found}
        if unknown:
            raise ValueError(f"no benchmark script named {sorted(unknown)} in {bench_dir}")
        found = [p for p in found if p.stem in wanted]
    return found


def load_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``--json`` file; raises ``ValueError`` if it is not a list of rows."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, list):
        raise ValueError(f"{path.name}: expected a JSON list of rows")
    for i, row in enumerate(doc):
        if not isinstance(row, dict):
            raise ValueError(f"{path.name}: row {i} is not an object")
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise ValueError(f"{path.name}: row {i} lacks {missing}")
    return doc


def run_script(script: Path, out_dir: Path, *, quick: bool, timeout: float | None,
               python: str = sys.executable) -> ScriptRun:
    """Run one script with ``--json``; never raises for the script's own failure."""
    json_path = out_dir / "json" / f"{script.stem}.json"
    log_path = out_dir / "logs" / f"{script.stem}.log"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.unlink(missing_ok=True)
    cmd = [python, str(script), "--json", str(json_path)] + (["--quick"] if quick else [])
    t0 = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                                  cwd=script.parent.parent, check=False)
            rc: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    run = ScriptRun(script.stem, False, time.monotonic() - t0, log=str(log_path))
    if rc is None:
        run.error = f"timed out after {timeout:.0f} s"
    elif rc != 0:
        run.error = f"exit code {rc}: {_last_line(log_path)}"
    else:
        try:
            run.rows, run.ok = load_rows(json_path), True
        except (OSError, ValueError) as exc:
            run.error = f"no valid JSON rows: {exc}"
    return run


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace")
             .splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"


def runs_from_json(paths: Sequence[Path]) -> list[ScriptRun]:
    """Runs made of existing ``--json`` files (named after the file's stem)."""
    out = []
    for p in paths:
        try:
            out.append(ScriptRun(p.stem, True, rows=load_rows(p)))
        except (OSError, ValueError) as exc:
            out.append(ScriptRun(p.stem, False, error=f"no valid JSON rows: {exc}"))
    return out


def _fmt(v: Any) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if not math.isfinite(v):
            return str(v)
        if abs(v) >= 1e4 or abs(v) < 1e-2:
            return f"{v:.3g}"
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v).replace("|", "\\|").replace("\n", " ")


def table(runs: Sequence[ScriptRun]) -> str:
    """One Markdown table of every row of every run that produced rows."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for run in runs:
        for row in run.rows:
            cells = [run.name] + [_fmt(row.get(c)) for c in COLUMNS[1:]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _series(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, list[Any]]]:
    """(op, unit) -> {label: [(size, value), ...]} for metisnet and each peer."""
    out: dict[tuple[str, str], dict[str, list[Any]]] = {}
    for r in rows:
        if str(r.get("note") or "").startswith("EXTRAPOLATED"):
            continue  # not measured: in the table, not in the plots
        try:
            size, value = float(r["size"]), float(r["metisnet"])
        except (TypeError, ValueError):
            continue
        if size <= 0 or value <= 0:
            continue
        group = out.setdefault((str(r["op"]), str(r["unit"])), {})
        group.setdefault("metisnet", []).append((size, value))
        peer_value = r.get("peer_value")
        if r.get("peer") and isinstance(peer_value, int | float) and peer_value > 0:
            group.setdefault(str(r["peer"]), []).append((size, float(peer_value)))
    return out


def plot(run: ScriptRun, out_dir: Path, max_panels: int = MAX_PANELS) -> Path | None:
    """A PNG of value against size per (op, unit) of ``run``; None if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(_series(run.rows).items())[:max_panels]
    if not groups:
        return None
    cols = min(3, len(groups))
    nrows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax, ((op, unit), series) in zip(axes.flat, groups, strict=False):
        for label, pts in series.items():
            pts = sorted(pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=label, linewidth=2 if label == "metisnet" else 1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(op, fontsize=9)
        ax.set_xlabel("input size")
        ax.set_ylabel(unit + (" (lower is better)" if unit == "s" else ""), fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.suptitle(f"benchmarks/{run.name}.py", fontsize=11)
    fig.tight_layout()
    path = out_dir / "plots" / f"{run.name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(runs: Sequence[ScriptRun], out_dir: Path, *, mode: str = "quick") -> Path:
    """Write ``REPORT.md`` (and the plots) into ``out_dir``; its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# metisnet benchmark report ({mode})", "",
             f"{when}; Python {sys.version.split()[0]}. Medians of the repetitions; the "
             "ratio is metisnet over the peer, oriented so that higher is better.", "",
             "## Scripts", "", "| script | status | seconds | rows |", "|---|---|---|---|"]
    for run in runs:
        status = "ok" if run.ok else f"FAILED: {_fmt(run.error)}"
        lines.append(f"| {run.name} | {status} | {run.seconds:.1f} | {len(run.rows)} |")
    lines += ["", "## Results", "", table(runs), "", "## Plots", ""]
    plotted = False
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        lines.append("Plots skipped: matplotlib is not installed.")
    else:
        for run in runs:
            try:
                png = plot(run, out_dir)
            except Exception as exc:  # a bad row must not lose the whole report
                lines.append(f"- {run.name}: plot failed ({type(exc).__name__}: {exc})")
                continue
            if png is not None:
                plotted = True
                rel = png.relative_to(out_dir).as_posix()
                lines += [f"### {run.name}", "", f"![{run.name}]({rel})", ""]
                groups = len(_series(run.rows))
                if groups > MAX_PANELS:
                    lines += [f"(the first {MAX_PANELS} of {groups} operations)", ""]
        if not plotted:
            lines.append("No rows to plot.")
        else:
            lines.append("Rows whose note says EXTRAPOLATED are in the table only.")
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_suite(out_dir: Path, *, quick: bool = True, only: Iterable[str] = (),
              timeout: float | None = None, bench_dir: Path = HERE,
              progress: Any = None) -> tuple[Path, list[ScriptRun]]:
    """Run the scripts one after another, then write the report; (report path, runs)."""
    runs = []
    for script in scripts(bench_dir, only):
        if progress is not None:
            progress(f"running benchmarks/{script.name}" + (" --quick" if quick else ""))
        run = run_script(script, out_dir, quick=quick, timeout=timeout)
        if progress is not None:
            progress(f"  {script.stem}: " + (f"{len(run.rows)} rows in {run.seconds:.1f} s"
                                             if run.ok else f"FAILED ({run.error})"))
        runs.append(run)
    return write_report(runs, out_dir, mode="quick" if quick else "full"), runs


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="the default sizes, not --quick")
    p.add_argument("--out", type=Path, default=Path("bench-results"))
    p.add_argument("--only", default="", help="comma-separated script names")
    p.add_argument("--timeout", type=float, default=None, help="seconds per script")
    p.add_argument("--from-json", type=Path, nargs="*", default=None,
                   help="write the report from existing --json files, running nothing")
    args = p.parse_args(argv)
    if args.from_json is not None:
        runs = runs_from_json(args.from_json)
        path = write_report(runs, args.out, mode="from files")
    else:
        only = [s for s in args.only.split(",") if s]
        path, runs = run_suite(args.out, quick=not args.full, only=only,
                               timeout=args.timeout, progress=print)
    print(f"report: {path}")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
