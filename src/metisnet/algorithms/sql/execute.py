"""Execute a checked SQL plan: data nodes deal (:mod:`.datanodes`), the 3-member committee
computes (here), the receiver post-processes the released results (:mod:`.receiver`).

Committee program (every member runs :func:`committee` on its shares; SPMD):

1. Each data node's columns arrive as replicated shares (fixed point, f = 16); the rows of
   the nodes are stacked (the union of the table).
2. Row expressions (``+ -`` local; ``*`` by a secret one product, by a constant local or
   one truncation; ``/`` by a constant).
3. One batch of comparisons for every WHERE atom and one batch of equalities for every WHERE
   equality, the one-hot of the GROUP BY key against its public domain, and the indicator
   columns of ``COUNT(DISTINCT)``; the masks are combined (AND a product, OR ``a+b-ab``,
   NOT ``1-a``) and folded into the one-hot ``H`` (n x groups).
4. Per-group counts (local column sums of ``H``), sums ``H^T X`` (one product), MIN/MAX by a
   tournament over ``H*(x - B) + B`` (B a large public bound), COUNT(DISTINCT) as the number
   of domain values whose per-group count is positive.
5. The final aggregates and the k policy (:mod:`.aggregates`): a present flag per group
   (``count >= max(k, 1)``, oblivious), AVG/VARIANCE/STDDEV divided on the committee, every
   value of an absent or suppressed group zeroed; only that table (:func:`released`) is
   opened, to the receiver only (member 0 in :func:`run_sql`, the task's receivers in the
   task flow, :mod:`metisnet.node.sql_task`).

Fixed-point error (u = 2^-16): each input is rounded to u/2; sums are exact in the ring over
the rounded inputs (error below n u/2); a product of two secrets or by a non-integral constant
adds under 1 ulp per row; MIN/MAX are exact on the rounded inputs; COUNT and COUNT(DISTINCT)
are exact; AVG within about 3 ulp of the sum over the count, VARIANCE within
``(4 |mean| + 2) u`` relative, STDDEV within the square root's 4 ulp of that.
Comparisons see the rounded values: two values closer than u may compare equal.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from metisnet import mpc
from metisnet.algorithms.common import output, receive
from metisnet.algorithms.psi import PsiShares
from metisnet.algorithms.sql.aggregates import SUM_FUNCS, final_table, released_names, square
from metisnet.algorithms.sql.datanodes import (
    FRAC_BITS,
    VALUE_BITS,
    Part,
    columns_of,
    deal_join,
    deal_tables,
    schemas_of,
)
from metisnet.algorithms.sql.joins import join_chain
from metisnet.algorithms.sql.plan import (
    Plan,
    TablePolicy,
    check_policies,
    plan_query,
    strip_explain,
)
from metisnet.algorithms.sql.receiver import decode, finish
from metisnet.algorithms.sql.secret_groups import grouped_by_secret_key
from metisnet.crypto.prg import Csprng
from metisnet.errors import ValidationError
from metisnet.mpc import MpcContext, SharedArray
from metisnet.net.channel import InMemoryNetwork

__all__ = ["FRAC_BITS", "committee", "deal_join", "deal_tables", "decode", "explain_tables",
           "finish", "own_shares", "released", "run_sql", "schemas_of", "square"]

_BIG = float(2**VALUE_BITS)
F64 = NDArray[np.float64]


# -- committee -------------------------------------------------------------------------------
Val = SharedArray | float
Mask = SharedArray | int


class _Program:
    def __init__(self, ctx: MpcContext, plan: Plan, cols: dict[str, SharedArray], n: int) -> None:
        self.ctx, self.plan, self.cols, self.n = ctx, plan, cols, n
        self.lt: list[SharedArray] = []
        self.eq: list[SharedArray] = []

    # values
    def value(self, node: Any) -> Val:
        from sqlglot import exp
        ctx = self.ctx
        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if isinstance(node, exp.Column):
            return self.cols[str(node.name)]
        if isinstance(node, exp.Literal):
            return float(str(node.this))
        if isinstance(node, exp.Neg):
            v = self.value(node.this)
            return -v
        a, b = self.value(node.this), self.value(node.expression)
        if isinstance(node, exp.Add):
            return a + b
        if isinstance(node, exp.Sub):
            return a - b
        if isinstance(node, exp.Mul):
            if isinstance(a, SharedArray) and isinstance(b, SharedArray):
                return mpc.mul(ctx, a, b)
            if isinstance(a, SharedArray) or isinstance(b, SharedArray):
                x, c = (a, b) if isinstance(a, SharedArray) else (b, a)
                if isinstance(x, SharedArray) and isinstance(c, float):
                    return x * int(c) if c.is_integer() else mpc.mul_public(ctx, x, c)
            return float(a) * float(b)  # type: ignore[arg-type]
        if isinstance(node, exp.Div):
            if isinstance(b, SharedArray):
                raise ValidationError("division by a secret value is not supported")
            if b == 0:
                raise ValidationError("division by zero in a row expression")
            if isinstance(a, SharedArray):
                inv = 1.0 / b
                return a * int(inv) if inv.is_integer() else mpc.mul_public(ctx, a, inv)
            return a / b
        raise ValidationError(f"unsupported expression {type(node).__name__}")

    def row_values(self, node: Any) -> SharedArray:
        v = self.value(node)
        if isinstance(v, SharedArray):
            return v
        return mpc.public(self.ctx, np.full(self.n, v), frac_bits=FRAC_BITS)

    # masks: pass 1 queues comparisons, pass 2 combines their results
    def _queue(self, kind: str, diff: Val) -> Any:
        if not isinstance(diff, SharedArray):
            return ("const", int(diff < 0) if kind == "lt" else int(diff == 0))
        lst = self.lt if kind == "lt" else self.eq
        lst.append(diff)
        return (kind, len(lst) - 1)

    def _category(self, col: Any, lit: Any) -> Val:
        dom = self.plan.domains[str(col.name)]
        text = str(lit.this)
        if text not in dom:
            return 1.0  # never equal: a non-zero constant difference
        return self.cols[str(col.name)] - float(dom.index(text))

    def _cmp_diff(self, a: Any, b: Any) -> Val:
        from sqlglot import exp
        for col, lit in ((a, b), (b, a)):
            if isinstance(col, exp.Column) and isinstance(lit, exp.Literal) and lit.is_string:
                return self._category(col, lit)
        return self.value(a) - self.value(b)

    def queue_mask(self, node: Any) -> Any:
        """A tree of ('and'|'or'|'not'|'sum', ...) over queued atoms."""
        from sqlglot import exp
        if isinstance(node, exp.Paren):
            return self.queue_mask(node.this)
        if isinstance(node, exp.And):
            return ("and", self.queue_mask(node.this), self.queue_mask(node.expression))
        if isinstance(node, exp.Or):
            return ("or", self.queue_mask(node.this), self.queue_mask(node.expression))
        if isinstance(node, exp.Not):
            return ("not", self.queue_mask(node.this))
        if isinstance(node, exp.EQ):
            return self._queue("eq", self._cmp_diff(node.this, node.expression))
        if isinstance(node, exp.NEQ):
            return ("not", self._queue("eq", self._cmp_diff(node.this, node.expression)))
        x = node.this
        if isinstance(node, exp.LT):
            return self._queue("lt", self.value(x) - self.value(node.expression))
        if isinstance(node, exp.GT):
            return self._queue("lt", self.value(node.expression) - self.value(x))
        if isinstance(node, exp.LTE):
            return ("not", self._queue("lt", self.value(node.expression) - self.value(x)))
        if isinstance(node, exp.GTE):
            return ("not", self._queue("lt", self.value(x) - self.value(node.expression)))
        if isinstance(node, exp.Between):
            v = self.value(x)
            lo = ("not", self._queue("lt", v - self.value(node.args["low"])))
            hi = ("not", self._queue("lt", self.value(node.args["high"]) - v))
            return ("and", lo, hi)
        if isinstance(node, exp.In):
            seen: list[Any] = []
            for e in node.expressions:
                key = e.sql()
                if key not in [s.sql() for s in seen]:
                    seen.append(e)
            return ("sum", *[self._queue("eq", self._cmp_diff(x, e)) for e in seen])
        raise ValidationError(f"unsupported condition {type(node).__name__}")

    def run_batches(self) -> tuple[list[SharedArray], list[SharedArray]]:
        def batch(diffs: list[SharedArray], fn: Any) -> list[SharedArray]:
            if not diffs:
                return []
            flat = mpc.concat([d.reshape(-1) for d in diffs])
            res = fn(self.ctx, flat, 0)
            out, pos = [], 0
            for d in diffs:
                out.append(res[pos:pos + d.size].reshape(d.shape))
                pos += d.size
            return out
        return batch(self.lt, mpc.less_than), batch(self.eq, mpc.equal)

    def combine(self, tree: Any, lt: list[SharedArray], eq: list[SharedArray]) -> Mask:
        op = tree[0]
        if op == "const":
            return int(tree[1])
        if op == "lt":
            got: SharedArray = lt[tree[1]]
            return got
        if op == "eq":
            got = eq[tree[1]]
            return got
        if op == "not":
            a = self.combine(tree[1], lt, eq)
            return 1 - a
        if op == "sum":
            parts = [self.combine(t, lt, eq) for t in tree[1:]]
            total: Mask = 0
            for p in parts:
                total = p + total if isinstance(p, SharedArray) else total + p
            return total
        a, b = self.combine(tree[1], lt, eq), self.combine(tree[2], lt, eq)
        if op == "and":
            if isinstance(a, int) or isinstance(b, int):
                c, other = (a, b) if isinstance(a, int) else (b, a)
                return other if c else 0
            return mpc.mul_raw(self.ctx, a, b)
        if isinstance(a, int) or isinstance(b, int):  # or
            c, other = (a, b) if isinstance(a, int) else (b, a)
            return 1 if c else other
        return a + b - mpc.mul_raw(self.ctx, a, b)


def _secret_group(ctx: MpcContext, prog: _Program, plan: Plan, cols: dict[str, SharedArray],
                  mask: Mask, k: int) -> SharedArray:
    n = prog.n
    if not isinstance(mask, SharedArray):
        mask = mpc.public(ctx, np.full(n, int(mask), dtype=np.int64), frac_bits=0)
    sums: list[SharedArray] = []
    mins: list[SharedArray] = []
    for agg in plan.aggs:
        if agg.func in SUM_FUNCS:
            v = prog.row_values(agg.arg)
            sums.append(v)
            if agg.func not in ("sum", "avg"):
                sums.append(square(ctx, v))
        elif agg.func in ("min", "max"):
            v = prog.row_values(agg.arg)
            mins.append(-v if agg.func == "max" else v)
    skey, end, counts, sum_t, min_t = grouped_by_secret_key(
        ctx, cols[plan.group_by[0]], _ints(mask), sums, mins, big=_BIG)
    table = final_table(ctx, plan, counts, sum_t, min_t, None, k=k, gate=end, keys=skey)
    # shuffle the n rows: the positions of the released groups in key order would tell
    # the sizes of filtered or suppressed runs
    (table,) = mpc.shuffle(ctx, [table])
    return table


def _tournament_min(ctx: MpcContext, t: SharedArray) -> SharedArray:
    """Column minima of a (n, m) table: ceil(log2 n) layers of comparisons (10 rounds each)."""
    vals = t
    while vals.shape[0] > 1:
        m = vals.shape[0]
        half = m // 2
        a, b = vals[0:2 * half:2], vals[1:2 * half:2]
        win = mpc.select(ctx, mpc.less_than(ctx, a, b), a, b)
        vals = mpc.concat([win, vals[m - 1:]]) if m % 2 else win
    return vals[0]


def _tile_cols(x: SharedArray, reps: int) -> SharedArray:
    return x.like(np.tile(x.a, (1, reps)), np.tile(x.b, (1, reps)))


def _bcast(x: SharedArray, shape: tuple[int, int]) -> SharedArray:
    """A (n,) column repeated into (n, g)."""
    return x.like(np.ascontiguousarray(np.broadcast_to(x.a[:, None], shape)),
                  np.ascontiguousarray(np.broadcast_to(x.b[:, None], shape)))


def _ints(x: SharedArray) -> SharedArray:
    return x.like(x.a, x.b, frac_bits=0)


def own_shares(plan: Plan, dealt: Any, party: int) -> Any:
    """Member ``party``'s part of the dealt inputs: column -> [pair per data node], or for a
    join side -> [PSI input per data node]."""
    if plan.join is not None:
        return [[node[party] for node in nodes] for nodes in dealt]
    return {c: [node[party] for node in parts] for c, parts in dealt.items()}


def committee(ctx: MpcContext, plan: Plan, dealt: Any, *,
              k: int = 1, to: int = 0) -> dict[str, Any] | None:
    """One member's part of the query; the receiver ``to`` gets the released results.

    ``dealt`` is :func:`deal_tables`' output (column -> node -> pairs), or for a join
    :func:`deal_join`'s (side -> node -> PSI inputs).
    """
    table = released(ctx, plan, own_shares(plan, dealt, ctx.party), k=k, rows=plan.rows)
    got = output(ctx, table, to)
    return None if got is None else decode(plan, got)


def released(ctx: MpcContext, plan: Plan, mine: Any, *, k: int, rows: int) -> SharedArray:
    """The committee program: the shared table of released results (columns
    :func:`~metisnet.algorithms.sql.aggregates.released_names`, fixed point f = 16).

    ``mine`` is this member's shares (:func:`own_shares`; a column's parts may also be
    shared arrays already, as the task flow receives them); ``rows`` the table's public row
    count (the union of the data nodes' parts; ignored for a join, whose size the committee
    learns).
    """
    if plan.join is not None:
        cols, n = _joined_columns(ctx, plan, mine, k)
    else:
        cols = {c: mpc.concat([p if isinstance(p, SharedArray)
                               else receive(ctx, p, frac_bits=FRAC_BITS) for p in pairs])
                for c, pairs in mine.items()}
        n = rows
        if any(c.shape[0] != n for c in cols.values()):
            raise ValidationError("the dealt columns do not have the table's row count")
    if n == 0:  # an empty join: nothing to compute, every group is empty
        w = len(released_names(plan))
        return mpc.public(ctx, np.zeros((1 if plan.secret_group else plan.groups, w)),
                          frac_bits=FRAC_BITS)
    prog = _Program(ctx, plan, cols, n)
    g = plan.groups
    tree = prog.queue_mask(plan.where) if plan.where is not None else ("const", 1)
    group_slots = []
    for name in plan.group_by if not plan.secret_group else ():
        dom = plan.domains[name]
        gk = len(dom)
        codes = np.arange(gk, dtype=np.float64) if any(isinstance(v, str) for v in dom) \
            else np.asarray(dom, dtype=np.float64)
        prog.eq.append(_bcast(cols[name], (n, gk)) - np.broadcast_to(codes, (n, gk)))
        group_slots.append(len(prog.eq) - 1)
    distinct_slots: list[int] = []
    for agg in plan.aggs:
        if agg.func == "count_distinct":
            col = str(agg.arg.name)
            dom = plan.domains[col]
            codes = np.arange(len(dom), dtype=np.float64) if any(isinstance(v, str) for v in dom) \
                else np.asarray(dom, dtype=np.float64)
            prog.eq.append(_bcast(cols[col], (n, len(dom))) - np.broadcast_to(codes, (n, len(dom))))
            distinct_slots.append(len(prog.eq) - 1)
    lt, eq = prog.run_batches()
    mask = prog.combine(tree, lt, eq)
    if plan.secret_group:
        return _secret_group(ctx, prog, plan, cols, mask, k)

    # H: (n, g) shared 0/1 with the WHERE mask folded in
    if group_slots:
        onehot = _ints(eq[group_slots[0]])
        for slot in group_slots[1:]:  # row-wise outer product: groups in C order of the keys
            nxt = _ints(eq[slot])
            ga, gb = onehot.shape[1], nxt.shape[1]
            left = onehot.like(np.repeat(onehot.a, gb, axis=1), np.repeat(onehot.b, gb, axis=1))
            right = nxt.like(np.tile(nxt.a, (1, ga)), np.tile(nxt.b, (1, ga)))
            onehot = mpc.mul_raw(ctx, left, right)
        if isinstance(mask, SharedArray):
            h = mpc.mul_raw(ctx, onehot, _bcast(mask, (n, g)))
        else:
            h = onehot if mask else onehot * 0
    elif isinstance(mask, SharedArray):
        h = mask.reshape(n, 1)
    else:
        h = mpc.public(ctx, np.full((n, 1), int(mask), dtype=np.int64), frac_bits=0)
    h = _ints(h)
    counts = mpc.arith.sum(h, axis=0)

    # sums of row expressions (and of squares for VARIANCE / STDDEV)
    sum_cols: list[SharedArray] = []
    for agg in plan.aggs:
        if agg.func in SUM_FUNCS:
            v = prog.row_values(agg.arg)
            sum_cols.append(v)
            if agg.func not in ("sum", "avg"):
                sum_cols.append(square(ctx, v))
    sums = None
    if sum_cols:
        x = mpc.stack(sum_cols, axis=1)
        s = mpc.matmul(ctx, h.T, x, truncate=False)
        sums = s.like(s.a, s.b, frac_bits=FRAC_BITS)
    # MIN / MAX: min over rows of H*(v - B) + B (max as -min(-v))
    ext = [a for a in plan.aggs if a.func in ("min", "max")]
    ext_t = None
    if ext:
        vs = []
        for a in ext:
            v = prog.row_values(a.arg)
            v = -v if a.func == "max" else v
            vs.append(_bcast(v - _BIG, (n, g)))
        table = mpc.mul_raw(ctx, _tile_cols(h, len(ext)), mpc.concat(vs, axis=1))
        table = table.like(table.a, table.b, frac_bits=FRAC_BITS) + _BIG
        mins = _tournament_min(ctx, table)  # (len(ext) * g,) ordered [agg][group]
        ext_t = mins.reshape(len(ext), g).T
    distinct = None
    if distinct_slots:
        present = []
        for slot in distinct_slots:
            c = mpc.matmul(ctx, h.T, _ints(eq[slot]), truncate=False)
            present.append(_ints(c))
        flat = mpc.concat([p.reshape(-1) for p in present])
        pos_flags = mpc.greater_than(ctx, flat, 0)
        outs, pos = [], 0
        for p in present:
            part = pos_flags[pos:pos + p.size].reshape(p.shape)
            pos += p.size
            outs.append(mpc.arith.sum(part, axis=1).reshape(g, 1))
        distinct = _ints(mpc.concat(outs, axis=1))
    return final_table(ctx, plan, _ints(counts), sums, ext_t, distinct, k=k)


def _joined_columns(ctx: MpcContext, plan: Plan, own: Sequence[Sequence[PsiShares]],
                    k: int) -> tuple[dict[str, SharedArray], int]:
    if plan.join is None:
        raise ValidationError("not a join")
    inputs = []
    for mine in own:
        a = np.concatenate([m.pair[0] for m in mine])
        b = np.concatenate([m.pair[1] for m in mine])
        inputs.append(PsiShares((a, b), mine[0].payload_cols, mine[0].frac_bits))
    joined = join_chain(ctx, inputs, plan.join_on, k=k)
    names = [name for side in plan.join for name, _ in side.columns]
    cols = {}
    for j, name in enumerate(names):
        c = joined.rows[:, j]
        cols[name] = c.like(np.ascontiguousarray(c.a), np.ascontiguousarray(c.b))
    return cols, joined.size



# -- in-process run --------------------------------------------------------------------------
def run_sql(query: str, tables: Mapping[str, Sequence[Part]], *, k: int = 1,
            security: str = "semi-honest", domains: Mapping[str, Sequence[Any]] | None = None,
            policies: Mapping[str, TablePolicy] | None = None, timeout: float = 300.0) -> Any:
    """Run ``query`` over the union of the data nodes' parts of each table; a DataFrame.

    ``EXPLAIN SELECT ...`` returns the plan's lines (column ``plan``) and deals nothing.
    ``tables`` maps a table name to one part per data node (a pandas DataFrame or a dict of
    numpy columns). The query is parsed and checked against the public schema first; a
    refused query raises :class:`~metisnet.errors.ValidationError` before any share moves;
    so does a query that breaks a table's ``policies`` entry (PolicyViolation), whose
    minimum group size also raises ``k``.
    The committee is three threads over the in-memory channel; the result's ``attrs`` hold
    the measured ``rounds`` and ``bytes_per_party`` (the busiest member) and the plan.
    """
    if k < 1:
        raise ValidationError("the minimum group size k must be at least 1")
    schemas, rows = schemas_of(tables, domains)
    query, explain_only = strip_explain(query)
    plan = plan_query(query, schemas, rows=rows)
    if explain_only:  # EXPLAIN: the plan's lines, nothing dealt
        import pandas as pd

        from metisnet.algorithms.sql.plan import explain
        return pd.DataFrame({"plan": explain(plan).splitlines()})
    k = check_policies(plan, policies, k)
    plan = plan.with_k(k)
    for col, table, raw in _raw_columns(plan):  # text without a domain: refuse before dealing
        for part in tables[table]:
            v = columns_of(part)[raw]
            if v.dtype.kind not in "iufb" and col not in plan.domains:
                raise ValidationError(
                    f"column `{col}` is not numeric; declare its domain of values")
    if plan.rows == 0:
        raise ValidationError(f"table `{plan.table}` has no rows")
    if plan.secret_group and security != "semi-honest":
        raise ValidationError("GROUP BY a key without public domain sorts obliviously, which is "
                              "semi-honest only; pass security='semi-honest' or declare the "
                              "key's domain")
    if plan.join is not None:
        if security != "semi-honest":
            raise ValidationError("JOIN runs the committee's private join, which is semi-honest "
                                  "only; pass security='semi-honest'")
        # the data nodes agree a fresh tag key among themselves (the committee never sees it)
        dealt: Any = deal_join(plan, tables, Csprng().key())
    else:
        dealt = deal_tables(plan, tables[plan.table])
    net = InMemoryNetwork(3, timeout=timeout)
    out: list[Any] = [None] * 3
    stats: list[Any] = [None] * 3
    errors: list[BaseException] = []
    session = Csprng().key().hex()[:16]

    def member(i: int) -> None:
        try:
            ch = net.channel(i)
            ctx = MpcContext.setup(ch, session=f"sql-{session}", security=security)
            out[i] = committee(ctx, plan, dealt, k=k, to=0)
            if ctx.verifier is not None:
                from metisnet.mpc import malicious
                malicious.verify(ctx)
            stats[i] = ctx.stats.snapshot()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    df = finish(plan, out[0])
    df.attrs["rounds"] = max(s.rounds for s in stats)
    df.attrs["bytes_per_party"] = max(s.bytes_sent for s in stats)
    df.attrs["estimated_rounds"] = plan.rounds
    df.attrs["estimated_bytes_per_party"] = plan.bytes_per_party
    df.attrs["released"] = released_names(plan)
    return df


def _raw_columns(plan: Plan) -> list[tuple[str, str, str]]:
    """(name in the plan, table, raw column) of every column the plan reads."""
    if plan.join is None:
        return [(c, plan.table, c) for c in plan.columns]
    return [(name, side.table, raw) for side in plan.join for name, raw in side.columns]


def explain_tables(query: str, tables: Mapping[str, Sequence[Part]],
                   domains: Mapping[str, Sequence[Any]] | None = None, *, k: int = 1) -> str:
    """``EXPLAIN`` against real parts (their public schema and row counts only)."""
    from metisnet.algorithms.sql.plan import explain
    schemas, rows = schemas_of(tables, domains)
    return explain(query, schemas, rows=rows, k=k)


