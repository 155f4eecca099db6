"""What checking elementwise products by compression would cost here (one core, numpy).

Not a protocol benchmark: it times the arithmetic that a compressed check of ``m``
separate products would need (see the notes in :mod:`metisnet.mpc.malicious`), so that the
claim "too slow for the 3x target" is a measurement anyone can rerun:

* the first fold's weighted cross products ``C[d, j, k] = sum_c w[d, c] x[c, j] y[c, k]``
  (48 limbs of an extension-ring weight per product, ``L`` chunks), for ``m`` products;
* one product in GR(2^64, 48) (:func:`metisnet.crypto.galois_ring.mul_many`), which every
  later fold needs per element;
* beside them, the local part of a semi-honest product of ``m`` (two multiplies, two adds).

Usage: ``python scripts/gr_cost.py [--m M]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from metisnet.crypto import galois_ring as gr
from metisnet.crypto.prg import Prg


def _best(fn: Callable[[], object], reps: int = 3) -> tuple[float, float, float]:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=10**6, help="products (default 10^6)")
    m = ap.parse_args().m
    prg = Prg(bytes(16))
    d = gr.DEGREE

    def words(*shape: int) -> np.ndarray:
        return prg.uint64(int(np.prod(shape))).reshape(shape)

    x, y = words(m), words(m)
    rows = []
    rows.append(("semi-honest product, local part", "-",
                 _best(lambda: x * y + x * y + x)))
    for chunks in (8, 16, 64):
        n = m // chunks
        xs, ys, w = x[:n * chunks].reshape(n, chunks), y[:n * chunks].reshape(n, chunks), \
            words(d, n)

        def cross(xs: np.ndarray = xs, ys: np.ndarray = ys, w: np.ndarray = w) -> None:
            for lo in range(0, d, 8):  # 8 limbs at a time: bounded memory
                np.einsum("dcj,ck->djk", w[lo:lo + 8, :, None] * xs[None], ys)

        rows.append((f"first fold, weighted cross products, L = {chunks}",
                     f"{d * chunks}", _best(cross)))
    k = 20000
    a, b = words(d, k), words(d, k)
    per = _best(lambda: gr.mul_many(a, b))
    scaled = tuple(t * m / k for t in per)
    rows.append((f"GR(2^64, 48) products, scaled from {k} to m", f"{d * d}",
                 (scaled[0], scaled[1], scaled[2])))
    print(f"m = {m} products, one core, median (min-max) of 3\n")
    print("| step | multiply-adds per product | seconds |")
    print("|---|---|---|")
    for name, mac, (med, lo, hi) in rows:
        print(f"| {name} | {mac} | {med:.3f} ({lo:.3f}-{hi:.3f}) |")


if __name__ == "__main__":
    main()
