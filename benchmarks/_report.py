"""Shared reporting for the benchmarks: rows as in ../shared/BENCHMARKS.md.

Each script measures metisnet and its peer alternately on the same inputs, collects
per-repetition values, and hands them to :func:`row`; :func:`emit` prints the Markdown
table and writes ``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KEYS = ("op", "size", "unit", "metisnet", "metisnet_min", "metisnet_max", "peer",
        "peer_value", "ratio", "bytes_per_party", "rounds", "peak_rss_mib", "note")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the two flags every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes, under 60 seconds")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write rows as JSON")
    p.add_argument("--reps", type=int, default=3, help="repetitions (median is reported)")
    return p


def peak_rss_mib(include_children: bool = True) -> float:
    """Peak resident memory of this process (or its largest waited-for child), MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if include_children else 0
    return max(own, kids) / 1024.0


def row(
    op: str,
    size: int,
    unit: str,
    values: Sequence[float],
    *,
    peer: str | None = None,
    peer_values: Sequence[float] | None = None,
    bytes_per_party: float | None = None,
    rounds: int | None = None,
    peak_rss: float | None = None,
    note: str = "",
) -> dict[str, Any]:
    """Build one row; ``unit == "s"`` means lower is better (ratio = peer / metisnet)."""
    if not values:
        raise ValueError("a row needs at least one measured value")
    med = statistics.median(values)
    peer_med = statistics.median(peer_values) if peer_values else None
    ratio = None
    if peer_med is not None and med > 0 and peer_med > 0:
        ratio = peer_med / med if unit == "s" else med / peer_med
    return {
        "op": op, "size": size, "unit": unit, "metisnet": med,
        "metisnet_min": min(values), "metisnet_max": max(values),
        "peer": peer if peer_med is not None else None, "peer_value": peer_med,
        "ratio": ratio, "bytes_per_party": bytes_per_party, "rounds": rounds,
        "peak_rss_mib": peak_rss, "note": note,
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e4 or abs(v) < 1e-2:
            return f"{v:.3g}"
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    cols = ["op", "size", "unit", "metisnet", "metisnet_min", "metisnet_max", "peer",
            "peer_value", "ratio", "bytes_per_party", "rounds", "peak_rss_mib", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def emit(rows: Sequence[dict[str, Any]], json_path: Path | None) -> None:
    """Print the Markdown table to stdout and, if asked, write the JSON list."""
    for r in rows:
        missing = [k for k in KEYS if k not in r]
        if missing:
            raise ValueError(f"row {r.get('op')!r} lacks keys {missing}")
    sys.stdout.write(markdown(rows) + "\n")
    if json_path is not None:
        json_path.write_text(json.dumps(list(rows), indent=2) + "\n", encoding="utf-8")
