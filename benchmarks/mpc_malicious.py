"""Malicious-mode rows beside semi-honest ones (and MPyC): "mul", "less-than", "dot".

Same set-up as ``benchmarks/mpc.py`` (whose MPyC runner this script reuses): metisnet's 3
parties as OS processes over loopback TCP in one LocalCluster, MPyC's 3 parties as separate
processes, alternating repetition by repetition in the same run on the same input sizes.

For each op, four rows:

* ``<op> (semi-honest)`` - the passive-security protocol (``security="semi-honest"``);
* ``<op> (malicious, online)`` - the default mode with verified triples made ahead
  (:func:`metisnet.mpc.malicious.preprocess`, outside the timed part): the op runs with
  Beaver products (one verified triple each), *plus* the check that must pass before any
  output is released (:func:`metisnet.mpc.malicious.verify`);
* ``<op> (malicious, total)`` - the same, with the making and verifying of the triples
  (cut-and-choose and bucketing) timed and counted too;
* ``<op> (malicious, no stock)`` - the default mode without triples made ahead: every
  product is checked by bucketing at the check before release (this ran first in each
  repetition, in the same session, and counted the triples the op needs).

Each malicious row's note gives its time and byte ratios to the semi-honest row of the
same run. The MPyC figure sits in every row's ``peer`` column. MPyC itself is semi-honest
(passive, Shamir, honest majority): it has no malicious mode, so the malicious rows compare
a stronger guarantee against a weaker one.

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
              ) -> dict[str, tuple[float, int, int]]:
    """One repetition in one party: ``{phase: (seconds, bytes sent, rounds)}`` with the
    phases "semi-honest" or "no stock", "prep" and "online" (malicious), and the peak RSS
    in MiB under "rss"."""
    from metisnet import mpc
    from metisnet.mpc import MpcContext
    from metisnet.mpc.malicious import preprocess, verify
    from mpc import _barrier

    ctx = MpcContext.setup(channel, session=f"mal{security[0]}{job}", security=security)
    x = mpc.random(ctx, (n,))
    y = mpc.random(ctx, (n,))
    verify(ctx)  # the set-up's own key check, outside the timed part
    out: dict[str, tuple[float, int, int]] = {}

    def timed(phase: str, fn: Any) -> None:
        _barrier(ctx)
        before = ctx.stats.snapshot()
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        d = ctx.stats - before
        out[phase] = (dt, d.bytes_sent, d.rounds)

    def run() -> None:
        if op == "mul":
            mpc.mul(ctx, x, y)
        elif op == "less-than":
            mpc.less_than(ctx, x, y)
        elif op == "dot":  # one inner product of length n: checked by compression
            mpc.dot(ctx, x, y)
        verify(ctx)  # nothing may be released before this passes (no-op when semi-honest)

    if security == "semi-honest":
        timed("semi-honest", run)
    else:
        if ctx.verifier is None:  # pragma: no cover - the default mode is malicious
            raise RuntimeError("expected a malicious-mode context")
        before = dict(ctx.verifier.checked)
        timed("no stock", run)  # every product checked by bucketing; counts the triples
        need = {k: ctx.verifier.checked[k] - before[k] for k in before}
        timed("prep", lambda: preprocess(ctx, need["arith"], need["bool"]))
        timed("online", run)
        if ctx.verifier.stock(False) or ctx.verifier.stock(True):
            raise RuntimeError("the online run left triples unused: miscounted")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["rss"] = (rss, 0, 0)
    return out


#: row name -> phase measured
ROWS = {"semi-honest": "semi-honest", "malicious, online": "online", "prep": "prep",
        "malicious, total": "total", "malicious, no stock": "no stock"}
ROW_NOTES = {
    "online": "verified triples made ahead; Beaver products plus the check before release",
    "total": "making and verifying the triples (bucketing) plus the online run",
    "no stock": "no triples made ahead: every product checked by bucketing before release",
}


def plan(quick: bool) -> list[tuple[str, int, int]]:
    """(op, metisnet size, MPyC size)."""
    if quick:
        return [("mul", 10**5, 10**5), ("less-than", 10**4, 200), ("dot", 10**5, 10**5)]
    return [("mul", 10**5, 10**5), ("mul", 10**6, 10**6), ("less-than", 10**4, 5000),
            ("less-than", 10**5, 5000), ("dot", 10**5, 10**5), ("dot", 10**6, 10**6)]


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
            secs: dict[str, list[float]] = {ph: [] for ph in ("semi-honest", "no stock",
                                                              "prep", "online")}
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
                    phases = ["semi-honest"] if sec == "semi-honest" else \
                        ["no stock", "prep", "online"]
                    for ph in phases:
                        secs[ph].append(max(r[ph][0] for r in res))
                        sent[ph] = max(r[ph][1] for r in res)
                        rounds[ph] = max(r[ph][2] for r in res)
                    rss = max(rss, max(r["rss"][0] for r in res))
            if peer_run is not None:
                peer_run.close()
            secs["total"] = [p + o for p, o in zip(secs["prep"], secs["online"], strict=True)]
            sent["total"] = sent["prep"] + sent["online"]
            rounds["total"] = rounds["prep"] + rounds["online"]
            semi = statistics.median(secs["semi-honest"])
            for name, ph in ROWS.items():
                if ph == "prep":
                    continue
                rates = [n / s for s in secs[ph]]
                note = f"{sent[ph] / n:.2f} B per element per party"
                if ph != "semi-honest":
                    note += (f"; {ROW_NOTES[ph]}; {statistics.median(secs[ph]) / semi:.2f}x the "
                             f"semi-honest time, {sent[ph] / max(sent['semi-honest'], 1):.2f}x"
                             " its bytes")
                    if peer is not None:
                        note += "; MPyC has no malicious mode (its row is semi-honest)"
                if op == "dot" and ph != "semi-honest":
                    note += ("; the inner product is checked by compression "
                             "(metisnet.mpc.ipcheck), so the malicious rows differ only in "
                             "the truncation's one checked product")
                if peer is not None and n_peer != n:
                    note += f"; MPyC at n={n_peer}, its elements/s compared"
                rows.append(row(f"{op} ({name})", n, "elements/s", rates, peer=peer,
                                peer_values=theirs or None, bytes_per_party=sent[ph],
                                rounds=rounds[ph], peak_rss=rss, note=note))
                sys.stderr.write(f"{op} ({name}) n={n}: {statistics.median(rates):.3g}/s\n")
    emit(rows, args.json)


if __name__ == "__main__":
    main()
