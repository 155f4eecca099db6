"""Oblivious sorting beside MPyC: shuffle-then-quicksort and the bitonic network.

Rows (elements sorted per second; 3 parties as separate OS processes over loopback TCP for
metisnet and for MPyC, alternating repetition by repetition, median of at least 3):

* "sort" - :func:`metisnet.mpc.shuffling.shuffle_sort` (shuffle, then quicksort with revealed
  comparisons on distinct keys; Hamada et al., ICISC 2012), semi-honest, with one payload
  column, at 10^4 elements (``--quick``: 10^3).
* "sort (bitonic)" - :func:`metisnet.mpc.sort.sort`, the bitonic network, semi-honest, same
  inputs, at 10^4 (``--quick``: 10^3).
* both again at the size MPyC can do in seconds (256; ``--quick``: 64), where the ratio is
  like for like.

MPyC 0.11 sorts a secure integer array with ``mpc.np_sort`` (a Batcher network; Shamir
sharing, ``-M3``); this script relaunches itself as its 3 parties (``METIS_SORT_PEER=1``).
Inputs are secret-shared outside the timed part; the timed part ends when the sorted
array is gathered. Keys are 40-bit integers; ``bytes_per_party`` and ``rounds`` are the
most any metisnet party sent / counted. Usage:
``python benchmarks/mpc_sort.py [--quick] [--json FILE] [--reps N]``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _mpyc import mpyc_version, run_parties

PEER_ENV = "METIS_SORT_PEER"


def _keys(n: int) -> Any:
    """The same pseudo-random 40-bit keys for both libraries (a public formula)."""
    return ((np.arange(n, dtype=np.int64) * 2654435761 + 12345) % (2**40)) - 2**39


# -- MPyC (runs in its own processes) -----------------------------------------------------
def _mpyc_peer() -> None:
    from mpyc.runtime import mpc

    n = int(os.environ["METIS_SORT_N"])

    async def main() -> None:
        await mpc.start()
        sec = mpc.SecInt(64)
        x = mpc.input(sec.array(_keys(n)), senders=0)
        await mpc.gather(x)
        await mpc.barrier()
        t = time.perf_counter()
        z = mpc.np_sort(x)
        out = await mpc.output(z)
        dt = time.perf_counter() - t
        if not np.array_equal(np.asarray(out, dtype=np.int64), np.sort(_keys(n))):
            raise SystemExit("MPyC sorted wrongly")
        await mpc.barrier()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(json.dumps({"dt": dt, "rss": rss}), flush=True)
        await mpc.shutdown()

    mpc.run(main())


def run_mpyc(n: int) -> tuple[float, float]:
    """One repetition of MPyC's sort: (seconds, peak RSS MiB of the busiest party)."""
    return run_parties(__file__, {PEER_ENV: "1", "METIS_SORT_N": str(n)})


# -- metisnet (a job for every party of the LocalCluster) -----------------------------------
def metis_job(channel: Any, how: str, n: int, job: int) -> tuple[float, int, int, float]:
    """One repetition in one party: (seconds, bytes sent, rounds, peak RSS MiB)."""
    from metisnet import mpc
    from metisnet.mpc import MpcContext
    from metisnet.mpc.shuffling import shuffle_sort
    from metisnet.mpc.sort import sort as bitonic_sort

    ctx = MpcContext.setup(channel, session=f"sort{job}", security="semi-honest")
    keys = _keys(n)
    x = mpc.share(ctx, keys if ctx.party == 0 else None, owner=0, shape=(n,), frac_bits=0)
    pay = mpc.share(ctx, np.arange(n) if ctx.party == 1 else None, owner=1, shape=(n,),
                    frac_bits=0)
    tag = ctx.tag("barrier")
    for peer in (ctx.next, ctx.prev):
        ctx.send(peer, tag, np.zeros(1, np.uint64))
    for peer in (ctx.next, ctx.prev):
        ctx.recv(peer, tag, (1,))
    before = ctx.stats.snapshot()
    t = time.perf_counter()
    if how == "shuffle":
        out, _ = shuffle_sort(ctx, x, [pay])
    else:
        out, _ = bitonic_sort(ctx, x, [pay])
    dt = time.perf_counter() - t
    d = ctx.stats - before
    if not np.array_equal(mpc.reveal(ctx, out), np.sort(keys)):
        raise RuntimeError("metisnet sorted wrongly")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return dt, d.bytes_sent, d.rounds, rss


def plan(quick: bool) -> list[tuple[str, str, int, int | None]]:
    """(row name, metisnet method, metisnet size, MPyC size or None)."""
    big, small, peer_small = (10**3, 64, 32) if quick else (10**4, 256, 256)
    return [("sort", "shuffle", big, peer_small), ("sort (bitonic)", "bitonic", big, None),
            ("sort", "shuffle", small, small), ("sort (bitonic)", "bitonic", small, None)]


def main() -> None:
    from _report import emit, parser, row
    from metisnet.net.local_cluster import LocalCluster

    args = parser(__doc__.splitlines()[0]).parse_args()
    reps = max(3, args.reps)
    peer = mpyc_version()
    peer_cache: dict[int, list[float]] = {}
    rows = []
    job = 0
    with LocalCluster(3, timeout=900.0) as cluster:
        cluster.run(metis_job, "shuffle", 64, -1)  # warm-up
        for name, how, n, n_peer in plan(args.quick):
            ours: list[float] = []
            theirs: list[float] = []
            sent = rounds = 0
            rss = 0.0
            for _ in range(reps):
                if peer is not None and n_peer is not None and (
                        len(peer_cache.get(n_peer, [])) < reps):
                    dt_p, rss_p = run_mpyc(n_peer)
                    peer_cache.setdefault(n_peer, []).append(n_peer / dt_p)
                    rss = max(rss, rss_p)
                job += 1
                res = cluster.run(metis_job, how, n, job)
                ours.append(n / max(r[0] for r in res))
                sent = max(sent, max(r[1] for r in res))
                rounds = max(rounds, max(r[2] for r in res))
                rss = max(rss, max(r[3] for r in res))
            if peer is not None and n_peer is not None:
                theirs = peer_cache[n_peer]
            note = f"{sent / n:.0f} B per element per party; semi-honest"
            if how == "shuffle":
                note += "; shuffle + quicksort with revealed comparisons (rounds vary by run)"
            else:
                note += "; bitonic network, 10 rounds per layer"
            if theirs and n_peer != n:
                note += (f"; MPyC np_sort at n={n_peer} (minutes at n={n}): its elements/s "
                         "compared, which favours MPyC (per-element work grows with n)")
            rows.append(row(name, n, "elements/s", ours, peer=peer if theirs else None,
                            peer_values=theirs or None, bytes_per_party=sent, rounds=rounds,
                            peak_rss=rss, note=note))
            sys.stderr.write(f"{name} n={n}: metisnet {statistics.median(ours):.3g}/s"
                             + (f", MPyC {statistics.median(theirs):.3g}/s\n" if theirs
                                else "\n"))
    emit(rows, args.json)


if __name__ == "__main__":
    if os.environ.get(PEER_ENV) == "1":
        _mpyc_peer()
    else:
        main()
