"""End to end: the latency of one joint mean over 3 private datasets, task submitted to verdict.

metisnet: the multi-process devnet (``metis devnet``: anvil, 3 data nodes, 5 compute
nodes, each its own OS process, TLS between them, specs handed over REST), one ``mean``
task at a time over the 3 datasets of ``N`` rows each (10^6; ``--quick``: 10^4), in
malicious mode; the whole flow of DESIGN.md §7 is timed by the requester and split into its
stages: consensus (escrow, votes, seed reveals, committee draw, acknowledgements), sharing
(the committee's wait for the data nodes' shares) and computing (the secure mean and its
checks, as the slowest committee member reports them),
verifying and settling (verdict and payouts on chain). Setting up the devnet is not timed.

Peer, alternating in the same run: the plaintext mean of the same 3N values in DuckDB (one
process, no privacy, no network): what the answer costs when one party may see all data.
The ratio (peer / metisnet) is therefore tiny; it says what privacy and consensus cost.

Then, per repetition, one ``variance`` task in semi-honest mode and one in malicious mode
(the default: security with abort) over the same data: the task-level cost of malicious
security, beside DuckDB's ``var_pop``.

If the devnet cannot start (no anvil binary), the same flow runs on the embedded
single-process network (``LocalNetwork``) and the note says so.

Run: ``python benchmarks/e2e.py [--quick] [--json FILE] [--reps N]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import emit, parser, peak_rss_mib, row
from metisnet.errors import MetisError
from metisnet.node.requester import TaskResult

STAGES = ("consensus", "sharing", "computing", "verifying", "settling")


def _hwm_mib(pids: list[int]) -> float | None:
    """Largest peak resident memory (VmHWM) among ``pids``, MiB."""
    best = None
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    kib = int(line.split()[1])
                    best = max(best or 0.0, kib / 1024.0)
        except OSError:
            continue
    return best


def _peer(columns: list[np.ndarray[Any, Any]], agg: str = "avg") -> tuple[float, float]:
    """DuckDB's ``agg(age)`` over the union of the 3 columns: (seconds, value)."""
    import duckdb

    con = duckdb.connect()
    t0 = time.perf_counter()
    for name, col in zip("abc", columns, strict=True):
        con.register(name, {"age": col})
    got = con.execute(f"SELECT {agg}(age) FROM (SELECT age FROM a UNION ALL SELECT age "  # noqa: S608
                      "FROM b UNION ALL SELECT age FROM c)").fetchone()
    dt = time.perf_counter() - t0
    con.close()
    return dt, float(got[0]) if got else float("nan")


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    import duckdb

    from metisnet.node.devnet import DevnetNetwork
    from metisnet.node.localnet import LocalNetwork
    from metisnet.node.taskspec import TaskSpec

    rows = 10_000 if args.quick else 1_000_000
    tmp = tempfile.TemporaryDirectory(prefix="metis-bench-e2e-")
    where = "devnet (separate processes, anvil, TLS)"
    print(f"setting up: 3 data nodes x {rows} rows, 5 compute nodes ...", file=sys.stderr)
    net: Any
    try:
        net = DevnetNetwork(Path(tmp.name) / "devnet", rows=rows, account_index=4)
    except MetisError as exc:
        print(f"devnet unavailable ({exc}); using the embedded network", file=sys.stderr)
        where = f"EMBEDDED single-process network (devnet unavailable: {exc})"
        net = LocalNetwork(Path(tmp.name) / "local", rows=rows)
    results: list[TaskResult] = []
    peer_times: list[float] = []
    var_results: dict[str, list[TaskResult]] = {"semi-honest": [], "malicious": []}
    var_peer: list[float] = []
    try:
        columns = [net.columns[d] for d in net.dataset_ids]
        want = float(np.concatenate(columns).mean())
        for _ in range(args.reps):
            inputs = [(d, ["age"]) for d in net.dataset_ids]
            spec = (net.spec("mean", inputs, 10**16) if isinstance(net, DevnetNetwork)
                    else TaskSpec.new("mean", inputs, [net.requester_account.address], 10**16))
            res = net.requester().run(spec)
            if not res.verified or res.values is None:
                raise SystemExit(f"task {res.task_id} failed: {res.verdict}")
            if abs(float(res.values[0]) - want) > 1e-3:
                raise SystemExit(f"wrong mean {res.values[0]} (plaintext {want})")
            results.append(res)
            dt, got = _peer(columns)
            if abs(got - want) > 1e-6:
                raise SystemExit("the peer computed a different mean")
            peer_times.append(dt)
        # the security modes side by side: a variance (one secure product per value)
        want_var = float(np.concatenate(columns).var())  # the program: population variance
        for _ in range(args.reps):
            for mode in ("semi-honest", "malicious"):
                inputs = [(d, ["age"]) for d in net.dataset_ids]
                spec = (net.spec("variance", inputs, 10**16, security=mode)
                        if isinstance(net, DevnetNetwork)
                        else TaskSpec.new("variance", inputs, [net.requester_account.address],
                                          10**16, security=mode))
                res = net.requester().run(spec)
                if not res.verified or res.values is None:
                    raise SystemExit(f"task {res.task_id} failed: {res.verdict}")
                if abs(float(res.values[0]) - want_var) > 1e-2 * max(1.0, abs(want_var)):
                    raise SystemExit(f"wrong variance {res.values[0]} (plaintext {want_var})")
                var_results[mode].append(res)
            dt, got = _peer(columns, "var_pop")
            if abs(got - want_var) > 1e-6 * max(1.0, abs(want_var)):
                raise SystemExit("the peer computed a different variance")
            var_peer.append(dt)
        peak = (_hwm_mib([p.pid for p in net.state.procs if p.role != "chain"])
                if isinstance(net, DevnetNetwork) else peak_rss_mib(False))
    finally:
        net.close()
        tmp.cleanup()
    total = [r.timings["total"] for r in results]
    split = ", ".join(f"{s} {statistics.median(r.timings.get(s, 0.0) for r in results):.3f} s"
                      for s in STAGES)
    peer = f"DuckDB {duckdb.__version__} plaintext avg (one process, no privacy)"
    out = [row("joint mean", 3 * rows, "s", total, peer=peer, peer_values=peer_times,
               peak_rss=peak, note=f"{where}; 3 datasets x {rows} rows, malicious mode; "
               f"median split: {split}; rows = values in all 3 datasets")]
    for s in STAGES:
        out.append(row(f"joint mean: {s}", 3 * rows, "s",
                       [r.timings.get(s, 0.0) for r in results],
                       note=f"stage of the row above ({where}); sharing and computing as "
                       "the slowest committee member reports them" if s in
                       ("sharing", "computing") else f"stage of the row above ({where})"))
    med = {m: statistics.median(r.timings["total"] for r in rs) for m, rs in var_results.items()}
    comp = {m: statistics.median(r.timings.get("computing", 0.0) for r in rs)
            for m, rs in var_results.items()}
    for mode, rs in var_results.items():
        extra = (f"; {med['malicious'] / med['semi-honest']:.2f}x the semi-honest task's "
                 f"total, {comp['malicious'] / max(comp['semi-honest'], 1e-9):.2f}x its "
                 "computing stage" if mode == "malicious" else "")
        out.append(row(f"joint variance ({mode})", 3 * rows, "s",
                       [r.timings["total"] for r in rs], peer=peer.replace("avg", "var_pop"),
                       peer_values=var_peer, peak_rss=peak,
                       note=f"{where}; {mode} mode, alternating with the other mode in the "
                       f"same run; median computing stage {comp[mode]:.3f} s{extra}"))
    emit(out, args.json)


if __name__ == "__main__":
    main()
