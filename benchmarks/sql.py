"""SQL over private data: a GROUP BY aggregate over a key join of two tables, beside DuckDB.

The query (``QUERY`` below) joins ``t(id, dept, age, income)`` and ``u(id, spend)`` on ``id``
(each table split across 3 data nodes; half of u's ids are in t), filters on a secret column
and aggregates per department (a public domain of 10 values)::

    SELECT dept, COUNT(*), SUM(spend), AVG(income) FROM t JOIN u ON t.id = u.id
    WHERE age > 30 GROUP BY dept

metisnet: the committee's part (private join, comparisons, one-hot, sums, the final
aggregates with AVG divided on the committee, the present flags, opening only those to the
receiver), its 3 members as OS processes over loopback TCP (one LocalCluster), semi-honest
(the private join is semi-honest only). Dealing at the data nodes is measured
apart (in the note). DuckDB runs the same query on the plaintext union in this process,
alternating with metisnet. Rows are ``n`` per table (10^5 by default, 10^4 with --quick).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numpy as np

QUERY = ("SELECT dept, COUNT(*), SUM(spend), AVG(income) FROM t JOIN u ON t.id = u.id "
         "WHERE age > 30 GROUP BY dept")
#: the same aggregate grouped by a key without public domain (oblivious sort)
QUERY_SORTED = ("SELECT age, COUNT(*), SUM(spend), AVG(income) FROM t JOIN u ON t.id = u.id "
                "WHERE age > 30 GROUP BY age")
DOMAINS = {"dept": list(range(1, 11))}
TAG_KEY = b"bench-sql-tagkey"  # the data nodes' agreed tag key (fixed: a benchmark)


def tables(n: int) -> dict[str, list[Any]]:
    """Plaintext demo data (numpy's generator: data only, not protocol randomness)."""
    import pandas as pd

    gen = np.random.default_rng(n)
    ids = gen.permutation(4 * n)[:n]
    t = pd.DataFrame({"id": ids, "dept": gen.integers(1, 11, n), "age": gen.integers(18, 80, n),
                      "income": np.round(gen.normal(50, 12, n), 2)})
    uids = np.concatenate([gen.choice(ids, n // 2, replace=False), 4 * n + np.arange(n - n // 2)])
    gen.shuffle(uids)
    u = pd.DataFrame({"id": uids, "spend": np.round(gen.uniform(0, 100, n), 2)})

    def split(df: Any) -> list[Any]:
        return [df.iloc[c].reset_index(drop=True) for c in np.array_split(np.arange(len(df)), 3)]

    return {"t": split(t), "u": split(u)}


def _barrier(ctx: Any) -> None:
    tag = ctx.tag("barrier")
    for peer in (ctx.next, ctx.prev):
        ctx.send(peer, tag, np.zeros(1, np.uint64))
    for peer in (ctx.next, ctx.prev):
        ctx.recv(peer, tag, (1,))


def member(channel: Any, n: int, job: int, query: str = QUERY
           ) -> tuple[float, int, int, float, Any]:
    """One committee member: (seconds, bytes sent, rounds, dealing seconds, result)."""
    from metisnet.algorithms.sql import execute, plan_query, schemas_of
    from metisnet.mpc import MpcContext

    data = tables(n)
    schemas, rows = schemas_of(data, DOMAINS)
    plan = plan_query(query, schemas, rows=rows)
    t0 = time.perf_counter()
    # every member recomputes the same dealing (seeded) and keeps its own shares
    dealt = execute.deal_join(plan, data, TAG_KEY, seed=b"bench-sql-%d" % job)
    deal_s = time.perf_counter() - t0
    ctx = MpcContext.setup(channel, session=f"sql{job}", security="semi-honest")
    _barrier(ctx)
    before = ctx.stats.snapshot()
    t = time.perf_counter()
    res = execute.committee(ctx, plan, dealt, k=1, to=0)
    dt = time.perf_counter() - t
    d = ctx.stats - before
    return dt, d.bytes_sent, d.rounds, deal_s, res


def duckdb_time(data: dict[str, list[Any]], query: str) -> tuple[float, Any]:
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    for name, parts in data.items():
        con.register(name, pd.concat(parts, ignore_index=True))
    t = time.perf_counter()
    out = con.execute(query).df()
    return time.perf_counter() - t, out


def main() -> None:
    import duckdb

    from _report import emit, parser, peak_rss_mib, row
    from metisnet.algorithms.sql import execute, plan_query, schemas_of
    from metisnet.net.local_cluster import LocalCluster

    args = parser(__doc__.splitlines()[0]).parse_args()
    reps = max(3, args.reps)
    n = 10_000 if args.quick else 100_000
    data = tables(n)
    schemas, rows_ = schemas_of(data, DOMAINS)
    out = []
    with LocalCluster(3, timeout=1800.0) as cluster:
        for label, query, key in (("sql join + group by (public domain)", QUERY, "dept"),
                                  ("sql join + group by (secret domain)", QUERY_SORTED, "age")):
            plan = plan_query(query, schemas, rows=rows_)
            ours, peer, deal = [], [], []
            sent = rounds = 0
            err = 0.0
            for job in range(reps):
                dt, want = duckdb_time(data, query)
                peer.append(dt)
                res = cluster.run(member, n, 100 * len(out) + job, query)
                ours.append(max(r[0] for r in res))
                sent = max(r[1] for r in res)
                rounds = max(r[2] for r in res)
                deal.append(max(r[3] for r in res))
                got = execute.finish(plan, res[0][4]).sort_values(key)
                want = want.sort_values(key)
                if len(got) != len(want) or np.any(got.iloc[:, 1].to_numpy() != want.iloc[:, 1]):
                    raise SystemExit(f"{label}: metisnet and DuckDB disagree on the group counts")
                err = max(err, float(np.max(np.abs(got.iloc[:, 2:].to_numpy(float)
                                                   - want.iloc[:, 2:].to_numpy(float)))))
                sys.stderr.write(f"{label} rep {job}: metisnet {ours[-1]:.2f} s, "
                                 f"DuckDB {dt * 1e3:.1f} ms\n")
            note = (f"2 tables x {n} rows on 3 data nodes each, key join (half of u matches), "
                    "WHERE on a secret column, "
                    + ("up to 62 groups (oblivious sort, segmented scans); " if plan.secret_group
                       else f"{plan.groups} groups (one-hot of the public domain); ")
                    + "committee of 3 processes over loopback, semi-honest; data-node dealing "
                    f"{statistics.median(deal):.2f} s apart; max abs error vs DuckDB {err:.2g}; "
                    f"estimate {plan.rounds} rounds, {plan.bytes_per_party:,} B")
            out.append(row(label, n, "s", ours, peer=f"duckdb {duckdb.__version__}",
                           peer_values=peer, bytes_per_party=sent, rounds=rounds,
                           peak_rss=peak_rss_mib(), note=note))
    emit(out, args.json)


if __name__ == "__main__":
    main()
