"""``metis demo``: the local demo."""

from __future__ import annotations

import secrets
import sys

import click
import numpy as np

from metisnet.cli._group import main

__all__ = ["demo"]


def _additive_shares(values: np.ndarray, parties: int) -> list[np.ndarray]:
    """Split uint64 ``values`` into ``parties`` additive shares over Z_2^64 (CSPRNG masks)."""
    masks = [
        np.frombuffer(secrets.token_bytes(8 * values.size), dtype=np.uint64).reshape(values.shape)
        for _ in range(parties - 1)
    ]
    last = values.copy()
    for m in masks:
        last -= m
    return [*masks, last]


@main.command()
@click.option("--rows", default=100_000, show_default=True, help="rows per synthetic dataset")
def demo(rows: int) -> None:
    """Run the local demo: a joint mean over three private synthetic datasets."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    gen = np.random.default_rng(secrets.randbits(128))  # synthetic demo data, not key material
    datasets = [gen.integers(18, 90, size=rows, dtype=np.int64) for _ in range(3)]
    scale = 1 << 16
    # each owner shares (sum, count) of its column among three compute parties
    held = np.zeros((3, 2), dtype=np.uint64)
    for data in datasets:
        local = np.array([int(data.sum()) * scale, rows], dtype=np.uint64)
        for party, share in enumerate(_additive_shares(local, 3)):
            held[party] += share
    opened = held.sum(axis=0, dtype=np.uint64)
    total, count = int(opened[0]), int(opened[1])
    secure_mean = total / scale / count
    plain_mean = float(np.concatenate(datasets).mean())
    table = Table(title="metisnet demo: joint mean of 3 private datasets")
    for col in ("program", "secure result", "plaintext", "abs error", "verdict"):
        table.add_column(col)
    err = abs(secure_mean - plain_mean)
    ok = err <= 2.0**-16
    table.add_row("mean(age)", f"{secure_mean:.6f}", f"{plain_mean:.6f}", f"{err:.2e}",
                  "verified" if ok else "MISMATCH")
    console.print(table)
    if not ok:
        sys.exit(1)

