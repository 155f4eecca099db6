"""Secure computation engine beside MPyC: mul, dot, fxp mul, less-than (and sort if present).

Both run 3 parties as separate OS processes over loopback TCP, in the same run, alternating
repetition by repetition on the same machine:

* metisnet: one :class:`~metisnet.net.local_cluster.LocalCluster` (3 processes, plain TCP
  channel) for the whole run; each repetition draws fresh random shares (no messages),
  synchronises the parties, and times the operation alone. A row's value is
  ``elements / max over parties of the elapsed time``.
* MPyC 0.11 (Shamir, 3 parties, ``-M3 -I i``): this script relaunched as 3 processes per
  row (``METIS_MPYC_PEER=1``); inputs are secret-shared by ``mpc.input`` outside the timed
  part; for each repetition the parent signals MPyC's party 0, which times the operation
  and ``mpc.gather`` of its result between barriers, then runs one metisnet repetition.
  Where MPyC would take minutes at the issue's size (fixed-point multiplication, less-than,
  sort), it runs at a smaller size named in the note, and its elements/s are compared.

Both engines run in their semi-honest (passive security) mode, honest majority; metisnet's
malicious mode (the context's default) is measured by its own benchmark rows elsewhere.

Rows: "mul" (secint64 / ring elements), "dot" (length n inner product; elements/s counts
vector elements), "fxp mul" (16 fractional bits), "less-than" (shared 0/1 result), "sort".
``bytes_per_party`` is the most any party sent for the operation; ``rounds`` the most any
party counted (ChannelStats). Usage:
``python benchmarks/mpc.py [--quick] [--json FILE] [--reps N] [--ops mul,less-than]``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

PEER_ENV = "METIS_MPYC_PEER"


# -- the MPyC side (runs in its own processes) ---------------------------------------------
def _mpyc_peer() -> None:
    """One MPyC party. Party 0 waits for a line on stdin before each repetition and prints
    one JSON line per repetition, so the parent can interleave the two engines."""
    from mpyc.runtime import mpc

    op = os.environ["METIS_BENCH_OP"]
    n = int(os.environ["METIS_BENCH_N"])
    reps = int(os.environ["METIS_BENCH_REPS"])

    async def main() -> None:
        await mpc.start()
        if op == "fxp mul":
            sec: Any = mpc.SecFxp(64, 16)
            vals: Any = np.linspace(-100.0, 100.0, n)
        else:
            sec = mpc.SecInt(64)
            vals = (np.arange(n, dtype=np.int64) * 7919) % 100_003 - 50_000
        x = mpc.input(sec.array(vals), senders=0)
        y = mpc.input(sec.array(vals[::-1].copy()), senders=1)
        await mpc.gather(x, y)
        for _ in range(reps):
            if mpc.pid == 0:
                sys.stdin.readline()
            await mpc.barrier()
            t = time.perf_counter()
            if op in ("mul", "fxp mul"):
                z = x * y
            elif op == "dot":
                z = x @ y
            elif op == "less-than":
                z = x < y
            elif op == "sort":
                z = mpc.np_sort(x)
            else:
                raise SystemExit(f"unknown op {op}")
            await mpc.gather(z)
            await mpc.barrier()
            dt = time.perf_counter() - t
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            print(json.dumps({"dt": dt, "rss": rss}), flush=True)
        await mpc.shutdown()

    mpc.run(main())


def mpyc_available() -> str | None:
    try:
        import mpyc
    except ImportError:
        return None
    return f"MPyC {mpyc.__version__}"


class MpycRun:
    """Three MPyC party processes for one row; :meth:`rep` times one repetition."""

    def __init__(self, op: str, n: int, reps: int) -> None:
        from metisnet.net.local_cluster import free_ports

        port = free_ports(1)[0][1]  # MPyC uses ports base+i
        env = dict(os.environ, **{PEER_ENV: "1", "METIS_BENCH_OP": op,
                                  "METIS_BENCH_N": str(n), "METIS_BENCH_REPS": str(reps)})
        self.procs = [
            subprocess.Popen(
                [sys.executable, __file__, "-M3", f"-I{i}", "-B", str(port), "--no-log"],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            )
            for i in range(3)
        ]
        self.rss = 0.0

    def rep(self) -> float:
        p0 = self.procs[0]
        assert p0.stdin is not None and p0.stdout is not None
        p0.stdin.write("go\n")
        p0.stdin.flush()
        line = p0.stdout.readline()
        if not line:
            raise RuntimeError(f"MPyC party 0 failed: {p0.communicate()[1][-2000:]}")
        rec = json.loads(line)
        self.rss = max(self.rss, rec["rss"])
        return float(rec["dt"])

    def close(self) -> None:
        for p in self.procs:
            out, err = p.communicate(timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"MPyC party failed: {err[-2000:]}")
            for line in out.splitlines():
                self.rss = max(self.rss, json.loads(line)["rss"])


# -- the metisnet side (jobs for the LocalCluster) ------------------------------------------
def _barrier(ctx: Any) -> None:
    tag = ctx.tag("barrier")
    for peer in (ctx.next, ctx.prev):
        ctx.send(peer, tag, np.zeros(1, np.uint64))
    for peer in (ctx.next, ctx.prev):
        ctx.recv(peer, tag, (1,))


def metis_job(channel: Any, op: str, n: int, job: int) -> tuple[float, int, int, float]:
    """One repetition in one party: (seconds, bytes sent, rounds, peak RSS MiB)."""
    from metisnet import mpc
    from metisnet.mpc import MpcContext, SharedArray

    ctx = MpcContext.setup(channel, session=f"bench{job}", security="semi-honest")
    x = mpc.random(ctx, (n,))
    y = mpc.random(ctx, (n,))
    if op == "fxp mul":  # realistic magnitudes: shares of values below 2^10
        x = SharedArray(x.a >> np.uint64(38), x.b >> np.uint64(38), party=ctx.party,
                        frac_bits=16)
        y = SharedArray(y.a >> np.uint64(38), y.b >> np.uint64(38), party=ctx.party,
                        frac_bits=16)
    if op == "sort":  # keys below 2^62 in magnitude, as sort requires
        x = x.like(x.a >> np.uint64(4), x.b >> np.uint64(4))
    _barrier(ctx)
    before = ctx.stats.snapshot()
    t = time.perf_counter()
    if op in ("mul", "fxp mul"):
        mpc.mul(ctx, x, y)
    elif op == "dot":
        mpc.dot(ctx, x, y)
    elif op == "less-than":
        mpc.less_than(ctx, x, y)
    elif op == "sort":
        from metisnet.mpc.sort import sort

        sort(ctx, x)
    dt = time.perf_counter() - t
    d = ctx.stats - before
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return dt, d.bytes_sent, d.rounds, rss


def sort_available() -> bool:
    try:
        from metisnet.mpc import sort as sort_mod
    except ImportError:
        return False
    return hasattr(sort_mod, "sort")


# -- the table ------------------------------------------------------------------------------
def plan(quick: bool) -> list[tuple[str, int, int]]:
    """(op, metisnet size, MPyC size)."""
    if quick:
        rows = [("mul", 10**4, 10**4), ("mul", 10**5, 10**5), ("dot", 10**5, 10**5),
                ("fxp mul", 10**5, 500), ("less-than", 10**3, 200),
                ("less-than", 10**4, 200), ("sort", 10**3, 32)]
    else:
        rows = [("mul", 10**5, 10**5), ("mul", 10**6, 10**6), ("dot", 10**6, 10**6),
                ("fxp mul", 10**6, 10**4), ("less-than", 10**4, 5000),
                ("less-than", 10**5, 5000), ("sort", 10**4, 256)]
    if not sort_available():
        rows = [r for r in rows if r[0] != "sort"]
    return rows


def main() -> None:
    from _report import emit, parser, row
    from metisnet.net.local_cluster import LocalCluster

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--ops", default="", metavar="OPS",
                   help="comma-separated subset of rows to run, e.g. 'mul,less-than'")
    args = p.parse_args()
    only = {o.strip() for o in args.ops.split(",") if o.strip()}
    reps = max(3, args.reps)
    peer = mpyc_available()
    rows = []
    job = 0
    with LocalCluster(3, timeout=900.0) as cluster:
        cluster.run(metis_job, "mul", 1000, -1)  # warm-up
        for op, n, n_peer in plan(args.quick):
            if only and op not in only:
                continue
            ours: list[float] = []
            theirs: list[float] = []
            sent = rounds = 0
            rss = 0.0
            peer_run = MpycRun(op, n_peer, reps) if peer is not None else None
            for _ in range(reps):  # alternate: one MPyC repetition, one metisnet repetition
                if peer_run is not None:
                    theirs.append(n_peer / peer_run.rep())
                job += 1
                res = cluster.run(metis_job, op, n, job)
                ours.append(n / max(r[0] for r in res))
                sent = max(r[1] for r in res)
                rounds = max(r[2] for r in res)
                rss = max(rss, max(r[3] for r in res))
            if peer_run is not None:
                peer_run.close()
                rss = max(rss, peer_run.rss)
            outputs = 1 if op == "dot" else n
            note = f"{sent / outputs:.2f} B per output element per party"
            if peer is not None and n_peer != n:
                note += f"; MPyC at n={n_peer} (minutes at n={n}), its elements/s compared"
            if op == "sort":
                note += "; sort rates depend on n (n log^2 n work)"
            # both engines are CPU-bound here: say how busy the shared machine was
            note += f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            rows.append(row(op, n, "elements/s", ours, peer=peer, peer_values=theirs or None,
                            bytes_per_party=sent, rounds=rounds, peak_rss=rss, note=note))
            sys.stderr.write(f"{op} n={n}: metisnet {statistics.median(ours):.3g}/s"
                             + (f", MPyC {statistics.median(theirs):.3g}/s\n" if theirs
                                else "\n"))
    emit(rows, args.json)


if __name__ == "__main__":
    if os.environ.get(PEER_ENV) == "1":
        _mpyc_peer()
    else:
        main()
