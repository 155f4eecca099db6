"""Malicious-mode rows beside semi-honest ones (and MPyC): "mul", "less-than".

Same set-up as ``benchmarks/mpc.py`` (whose MPyC runner this script reuses): metisnet's 3
parties as OS processes over loopback TCP in one LocalCluster, MPyC's 3 parties as separate
processes, alternating repetition by repetition in the same run on the same inputs sizes.

For each op, three rows:

* ``<op> (semi-honest)`` - the passive-security protocol (``security="semi-honest"``);
* ``<op> (malicious)`` - the default mode: the op *plus* the check that must pass before
  any output is released (:func:`metisnet.mpc.malicious.verify`: sacrifice with bucketing;
  its note gives the time ratio to the semi-honest row of the same run);
* the MPyC figure sits in both rows' ``peer`` column for comparison. MPyC itself is
  semi-honest (passive, Shamir, honest majority): it has no malicious mode, so the
  malicious rows compare a stronger guarantee against a weaker one.

Usage: ``python benchmarks/mpc_malicious.py [--quick] [--json FILE] [--reps N]``.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def metis_job(channel: Any, op: str, n: int, job: int, security: str
              ) -> tuple[float, int, int, float]:
    """One repetition in one party: (seconds, bytes sent, rounds, peak RSS MiB)."""
    from metisnet import mpc
    from metisnet.mpc import MpcContext
    from metisnet.mpc.malicious import verify
    from mpc import _barrier

    ctx = MpcContext.setup(channel, session=f"mal{security[0]}{job}", security=security)
    x = mpc.random(ctx, (n,))
    y = mpc.random(ctx, (n,))
    verify(ctx)  # the set-up's own key check, outside the timed part
    _barrier(ctx)
    before = ctx.stats.snapshot()
    t = time.perf_counter()
    if op == "mul":
        mpc.mul(ctx, x, y)
    elif op == "less-than":
        mpc.less_than(ctx, x, y)
    verify(ctx)  # nothing may be released before this passes (no-op when semi-honest)
    dt = time.perf_counter() - t
    d = ctx.stats - before
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return dt, d.bytes_sent, d.rounds, rss


def plan(quick: bool) -> list[tuple[str, int, int]]:
    """(op, metisnet size, MPyC size)."""
    if quick:
        return [("mul", 10**5, 10**5), ("less-than", 10**4, 200)]
    return [("mul", 10**5, 10**5), ("mul", 10**6, 10**6), ("less-than", 10**4, 5000),
            ("less-than", 10**5, 5000)]


def main() -> None:
    from _report import emit, parser, row
    from metisnet.net.local_cluster import LocalCluster
    from mpc import MpycRun, mpyc_available

    args = parser(__doc__.splitlines()[0]).parse_args()
    reps = max(3, args.reps)
    peer = mpyc_available()
    rows = []
    job = 0
    with LocalCluster(3, timeout=900.0) as cluster:
        cluster.run(metis_job, "mul", 1000, -1, "malicious")  # warm-up
        for op, n, n_peer in plan(args.quick):
            ours: dict[str, list[float]] = {"semi-honest": [], "malicious": []}
            sent: dict[str, int] = {}
            rounds: dict[str, int] = {}
            rss = 0.0
            theirs: list[float] = []
            peer_run = MpycRun(op, n_peer, reps) if peer is not None else None
            for _ in range(reps):  # alternate MPyC, semi-honest, malicious
                if peer_run is not None:
                    theirs.append(n_peer / peer_run.rep())
                for sec in ("semi-honest", "malicious"):
                    job += 1
                    res = cluster.run(metis_job, op, n, job, sec)
                    ours[sec].append(n / max(r[0] for r in res))
                    sent[sec] = max(r[1] for r in res)
                    rounds[sec] = max(r[2] for r in res)
                    rss = max(rss, max(r[3] for r in res))
            if peer_run is not None:
                peer_run.close()
            semi = statistics.median(ours["semi-honest"])
            for sec in ("semi-honest", "malicious"):
                med = statistics.median(ours[sec])
                note = f"{sent[sec] / n:.2f} B per element per party"
                if sec == "malicious":
                    note += (f"; includes the check before release; {semi / med:.2f}x the "
                             f"semi-honest time, {sent[sec] / max(sent['semi-honest'], 1):.2f}x"
                             " its bytes")
                    if peer is not None:
                        note += "; MPyC has no malicious mode (its row is semi-honest)"
                if peer is not None and n_peer != n:
                    note += f"; MPyC at n={n_peer}, its elements/s compared"
                rows.append(row(f"{op} ({sec})", n, "elements/s", ours[sec], peer=peer,
                                peer_values=theirs or None, bytes_per_party=sent[sec],
                                rounds=rounds[sec], peak_rss=rss, note=note))
                sys.stderr.write(f"{op} ({sec}) n={n}: {med:.3g}/s\n")
    emit(rows, args.json)


if __name__ == "__main__":
    main()
