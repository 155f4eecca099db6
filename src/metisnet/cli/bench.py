"""``metis bench``: run the benchmark suite and write a Markdown report with PNG plots."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import click

from metisnet.cli._group import main
from metisnet.errors import ConfigError

__all__ = ["bench"]


def _find_bench_dir(given: Path | None) -> Path:
    """``benchmarks/`` of the source tree: the given one, the working directory's, or the
    one beside this package's ``src/``."""
    candidates = [given] if given else [
        Path.cwd() / "benchmarks", Path(__file__).resolve().parents[3] / "benchmarks"]
    for c in candidates:
        if c is not None and (c / "report.py").is_file():
            return c
    raise ConfigError("cannot find benchmarks/report.py; run from the source tree or "
                      "give --bench-dir")


def _load_report(bench_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("metisnet_bench_report",
                                                  bench_dir / "report.py")
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {bench_dir / 'report.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@main.command()
@click.option("--full", is_flag=True, help="the default (issue) sizes instead of --quick")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench-results"), show_default=True,
              help="REPORT.md, plots/, json/ and logs/ go here")
@click.option("--only", default="", help="comma-separated script names (e.g. mpc,he)")
@click.option("--timeout", type=float, default=None,
              help="seconds allowed per script (none by default)")
@click.option("--bench-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="the benchmarks directory (found from the source tree by default)")
def bench(full: bool, out: Path, only: str, timeout: float | None,
          bench_dir: Path | None) -> None:
    """Run every benchmark script (peers in the same run) and write a report with plots.

    A script that fails is reported as failed in REPORT.md and the others still run; the
    exit code is 1 if any failed.
    """
    report = _load_report(_find_bench_dir(bench_dir))
    names = [s.strip() for s in only.split(",") if s.strip()]
    try:
        path, runs = report.run_suite(out, quick=not full, only=names, timeout=timeout,
                                      bench_dir=_find_bench_dir(bench_dir),
                                      progress=click.echo)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    failed = [r.name for r in runs if not r.ok]
    click.echo(f"report: {path}" + (f" ({len(failed)} failed: {', '.join(failed)})"
                                    if failed else ""))
    if failed:
        sys.exit(1)
