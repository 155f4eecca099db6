"""The last step on the committee: the query's aggregates, final, and nothing else.

Input per group (public-domain groups, or every sorted row of a secret-domain key): the row
count ``c`` (shared integer), the sums ``s`` (and sums of squares ``ss``) of the aggregated
expressions, the minima, the ``COUNT(DISTINCT)`` values. Output: one shared table, opened
only to the receiver, whose columns are

``[key]`` (secret-domain key only), ``present``, one column per opened aggregate
(:attr:`Plan.released_aggs`: those of SELECT and ORDER BY, and of HAVING when the receiver
evaluates it), ``[defined]``

and nothing else: a group's count leaves the committee only when the query asks for
``COUNT``; sums behind ``AVG``/``VARIANCE``/``STDDEV`` never do.

* ``present = [c >= max(k, 1)]``: the minimum-group-size policy and SQL's "no empty group"
  in one comparison (9 rounds); every value column is multiplied by it, so a suppressed group
  and an empty one look alike (all zero).
* ``AVG = s / c`` by :func:`divide_by_count`: :func:`metisnet.mpc.divide` (Catrina and
  Saxena, FC 2010: reduction by a secret power of two, then Newton) of ``s 2^-16`` by
  ``c 2^-16``, then once more on the residual: ``m = m0 + (s - c m0) / c``. The residual is
  exact (an integer times a fixed-point value), so the mean is within about 3 ulp of
  ``s / c``; and every probabilistic truncation inside acts on a value near the quotient,
  not near the sum (a truncation of a raw value ``v`` fails with probability ``v 2^-64``:
  the divide applied to a large sum directly would fail often).
* ``VAR = (ss - c m^2) / dof`` with ``dof = c`` (population) or ``c - 1`` (sample): the
  square of the mean split as in :func:`square`, times the integer count (exact), one more
  division; error about ``(4 |mean| + 2) ulp / VAR`` relative.
  ``STDDEV = sqrt(max(VAR, 0))`` (:func:`metisnet.mpc.sqrt`, by :func:`_sqrt_wide` beyond its
  domain 2^21).
* HAVING, when the plan runs it here (:class:`_Having`): one batch of comparisons over the
  aggregates, the key and constants, combined like WHERE, multiplied into ``present``.
* ``defined = present * [c >= 2]`` when a sample variance or deviation is asked: SQL gives
  NULL for one row, so the receiver learns that bit, as any SQL engine's answer shows it.

Domain: counts below 2^32; a group's mean, variance and sum below 2^31, 2^33 and 2^46.

Cost per group (rounds are shared by all groups and aggregates): 9 rounds for the flags
(+1 for ``defined``); with AVG/VAR/STD two divides (~35 rounds each) and two products;
with VAR/STD a square, a product and two more divides; with STDDEV two comparisons and two
square roots in one batch (~40); 1 round for the flags' products.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from metisnet import mpc
from metisnet.algorithms.sql.plan import Agg, Plan, agg_func, same_agg
from metisnet.errors import ShapeError
from metisnet.mpc import MpcContext, SharedArray

__all__ = ["SUM_FUNCS", "divide_by_count", "final_table", "released_names", "square",
           "sum_columns"]

#: aggregates built from per-group sums
SUM_FUNCS = ("sum", "avg", "var_samp", "var_pop", "std_samp", "std_pop")


def sum_columns(aggs: Sequence[Agg]) -> list[tuple[Agg, int, int | None]]:
    """(aggregate, column of its sum, column of its sum of squares or None) per sum-type
    aggregate, in the order the committee stacks them."""
    out: list[tuple[Agg, int, int | None]] = []
    col = 0
    for a in aggs:
        if a.func in ("sum", "avg"):
            out.append((a, col, None))
            col += 1
        elif a.func in SUM_FUNCS:
            out.append((a, col, col + 1))
            col += 2
    return out


def needs_defined(plan: Plan) -> bool:
    return any(a.func in ("var_samp", "std_samp") for a in plan.aggs)


def released_names(plan: Plan) -> list[str]:
    """The released table's columns, in order."""
    names = ["key"] if plan.secret_group else []
    names.append("present")
    names.extend(a.key for a in plan.released_aggs)
    if needs_defined(plan):
        names.append("defined")
    return names


def _ints(x: SharedArray) -> SharedArray:
    return x.like(x.a, x.b, frac_bits=0)


def _to_fixed(x: SharedArray, f: int) -> SharedArray:
    """A shared integer as fixed point (local, exact)."""
    return x.like(x.a << np.uint64(f), x.b << np.uint64(f), frac_bits=f)


def _cols(x: SharedArray, w: int) -> SharedArray:
    """A (G,) column repeated into (G, w)."""
    return x.like(np.ascontiguousarray(np.repeat(x.a[:, None], w, axis=1)),
                  np.ascontiguousarray(np.repeat(x.b[:, None], w, axis=1)))


def divide_by_count(ctx: MpcContext, x: SharedArray, c: SharedArray) -> SharedArray:
    """``x / c`` for (N, 1) fixed-point ``x`` and (N,) shared integers ``1 <= c < 2^32``.

    ``q0 = divide(x 2^-16, c 2^-16)`` (the quotient unchanged, the numerator small), then the
    exact residual ``r = x - c q0`` and ``q = q0 + divide(r, c 2^-16) 2^-16``. Error about
    3 ulp; 2 divides, 2 truncations and 1 product (~74 rounds).
    """
    f = x.frac_bits
    y = _cols(c.like(c.a, c.b, frac_bits=f), 1)  # the raw count read at f bits: c 2^-f
    small = mpc.trunc(ctx, x, f)
    q0 = mpc.divide(ctx, small.like(small.a, small.b, frac_bits=f), y)
    r = x - mpc.mul_raw(ctx, _ints(y), q0)
    q1 = mpc.divide(ctx, r, y)
    q1 = mpc.trunc(ctx, q1, f)
    return q0 + q1.like(q1.a, q1.b, frac_bits=f)


def square(ctx: MpcContext, v: SharedArray) -> SharedArray:
    """``v * v`` elementwise without truncating a large value (3 rounds, ~32 B per element).

    A plain fixed-point product truncates ``v^2 2^(2f)``, which fails with probability
    ``v^2 2^(2f-64)`` (0.4% for v = 4000). As in
    :func:`metisnet.algorithms.stats.cross_products`, ``v = hi + lo`` with ``hi`` on ``f/2``
    fractional bits: ``hi^2`` lands exactly on f bits, and only the small terms
    ``2 hi lo`` and ``lo^2`` are truncated. Error below 2 ulps.
    """
    f = v.frac_bits
    half = f // 2
    hi = mpc.trunc(ctx, v, half)  # f - half fractional bits
    lo = v - hi.like(hi.a << np.uint64(half), hi.b << np.uint64(half), frac_bits=f)
    hh = mpc.mul_raw(ctx, hi, hi)  # 2 (f - half) fractional bits
    hl = mpc.mul_raw(ctx, hi, lo)  # 2f - half
    ll = mpc.mul_raw(ctx, lo, lo)  # 2f
    if hh.frac_bits != f:  # odd f: bring hi^2 to f bits (a small truncation)
        hh = mpc.trunc(ctx, hh, hh.frac_bits - f)
    return hh + mpc.trunc(ctx, hl, f - half) * 2 + mpc.trunc(ctx, ll, f)


#: the square root's domain is [0, 2^21): larger variances are rooted as 2^6 sqrt(v 2^-12)
SQRT_SPLIT, SQRT_SHIFT = 20, 12


def _sqrt_wide(ctx: MpcContext, v: SharedArray) -> SharedArray:
    """``sqrt(max(v, 0))`` for ``v < 2^33``: one batch of two comparisons (``v < 0``,
    ``v < 2^20``), the square roots of ``v`` and ``v 2^-12`` in one call, a selection."""
    f = v.frac_bits
    flags = mpc.less_than(ctx, mpc.concat([v, v - float(2**SQRT_SPLIT)], axis=1), 0)
    w = v.shape[1]
    neg, small = flags[:, :w], flags[:, w:]
    v = v - mpc.mul_raw(ctx, neg, v)  # rounding can leave -1 ulp for VAR = 0
    low = mpc.trunc(ctx, v, SQRT_SHIFT)
    roots = mpc.sqrt(ctx, mpc.concat([v, low.like(low.a, low.b, frac_bits=f)], axis=1))
    hi = roots[:, w:] * (1 << (SQRT_SHIFT // 2))
    out = hi + mpc.mul_raw(ctx, small, roots[:, :w] - hi)
    return out.like(out.a, out.b, frac_bits=f)


Value = SharedArray | NDArray[np.float64]


class _Having:
    """HAVING on the committee (:func:`metisnet.algorithms.sql.plan._having_in_mpc` says
    which): aggregates are shared per group, a public-domain key is public per group, a
    secret-domain key is shared; all comparisons in one batch (9 rounds), AND a product,
    OR ``a + b - ab``, NOT ``1 - a``."""

    def __init__(self, ctx: MpcContext, plan: Plan, values: dict[str, SharedArray],
                 keys: SharedArray | None, g: int) -> None:
        self.ctx, self.plan, self.values, self.keys, self.g = ctx, plan, values, keys, g
        self.lt: list[SharedArray] = []
        self.eq: list[SharedArray] = []

    def _key(self, name: str) -> Value:
        plan = self.plan
        if plan.secret_group:
            if self.keys is None:
                raise ShapeError("the secret key is missing")
            return self.keys
        dims = [len(plan.domains[k]) for k in plan.group_by]
        idx = np.unravel_index(np.arange(self.g), dims)
        pos = plan.group_by.index(name)
        dom = plan.domains[name]
        return np.array([dom[int(i)] for i in idx[pos]], dtype=object)

    def value(self, node: Any) -> Value:
        from sqlglot import exp
        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if agg_func(node) is not None:
            for agg in self.plan.aggs:
                if same_agg(agg, node):
                    return self.values[agg.key]
            raise ShapeError(f"aggregate {node.sql()} was not planned")
        if isinstance(node, exp.Column):
            return self._key(str(node.name))
        if isinstance(node, exp.Literal):
            return np.full(self.g, float(str(node.this)))
        if isinstance(node, exp.Neg):
            return -self.value(node.this)
        a: Any = self.value(node.this)
        b: Any = self.value(node.expression)
        if isinstance(node, (exp.Add, exp.Sub)):
            if isinstance(node, exp.Sub):
                b = -b
            out: Value = a + b if isinstance(a, SharedArray) else b + a
            return out
        if isinstance(node, exp.Div):  # by a constant (checked by the plan)
            b = 1.0 / np.asarray(b, dtype=np.float64)
        if isinstance(a, SharedArray) and isinstance(b, SharedArray):
            raise ShapeError("a product of two aggregates is evaluated by the receiver")
        if isinstance(a, SharedArray) or isinstance(b, SharedArray):
            x, c = (a, b) if isinstance(a, SharedArray) else (b, a)
            if not isinstance(x, SharedArray):  # pragma: no cover - one side is shared
                raise ShapeError("no shared operand")
            c0 = float(np.asarray(c, dtype=np.float64)[0])
            return x * int(c0) if c0.is_integer() else mpc.mul_public(self.ctx, x, c0)
        return np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)

    def _queue(self, kind: str, a: Any, b: Any) -> Any:
        if not isinstance(a, SharedArray) and not isinstance(b, SharedArray):
            if kind == "eq":
                return ("pub", np.asarray(a == b, dtype=np.int64))
            return ("pub", np.asarray(np.asarray(a, dtype=np.float64)
                                      < np.asarray(b, dtype=np.float64), dtype=np.int64))
        diff: SharedArray = a - b if isinstance(a, SharedArray) else -(b - a)
        lst = self.lt if kind == "lt" else self.eq
        lst.append(diff)
        return (kind, len(lst) - 1)

    def tree(self, node: Any) -> Any:
        from sqlglot import exp
        if isinstance(node, exp.Paren):
            return self.tree(node.this)
        if isinstance(node, exp.And):
            return ("and", self.tree(node.this), self.tree(node.expression))
        if isinstance(node, exp.Or):
            return ("or", self.tree(node.this), self.tree(node.expression))
        if isinstance(node, exp.Not):
            return ("not", self.tree(node.this))
        if isinstance(node, (exp.EQ, exp.NEQ)):
            for col, lit in ((node.this, node.expression), (node.expression, node.this)):
                if isinstance(col, exp.Literal) or not (isinstance(lit, exp.Literal)
                                                        and lit.is_string):
                    continue
                got = ("pub", np.asarray(self._key(str(col.name)) == str(lit.this),
                                         dtype=np.int64))
                return got if isinstance(node, exp.EQ) else ("not", got)
            t = self._queue("eq", self.value(node.this), self.value(node.expression))
            return t if isinstance(node, exp.EQ) else ("not", t)
        x, y = self.value(node.this), self.value(node.expression)
        if isinstance(node, exp.LT):
            return self._queue("lt", x, y)
        if isinstance(node, exp.GT):
            return self._queue("lt", y, x)
        if isinstance(node, exp.LTE):
            return ("not", self._queue("lt", y, x))
        return ("not", self._queue("lt", x, y))  # GTE

    def mask(self) -> SharedArray:
        """The HAVING condition per group, shared 0/1."""
        tree = self.tree(self.plan.having)

        def batch(diffs: list[SharedArray], fn: Any) -> list[SharedArray]:
            if not diffs:
                return []
            res = fn(self.ctx, mpc.concat(diffs), 0)
            return [res[i * self.g:(i + 1) * self.g] for i in range(len(diffs))]

        lt, eq = batch(self.lt, mpc.less_than), batch(self.eq, mpc.equal)

        def combine(t: Any) -> SharedArray:
            if t[0] == "pub":
                return mpc.public(self.ctx, t[1], frac_bits=0)
            if t[0] in ("lt", "eq"):
                got: SharedArray = (lt if t[0] == "lt" else eq)[t[1]]
                return got
            if t[0] == "not":
                return 1 - combine(t[1])
            a, b = combine(t[1]), combine(t[2])
            ab = mpc.mul_raw(self.ctx, a, b)
            return ab if t[0] == "and" else a + b - ab

        return _ints(combine(tree))


def final_table(ctx: MpcContext, plan: Plan, counts: SharedArray, sums: SharedArray | None,
                ext: SharedArray | None, distinct: SharedArray | None, *, k: int,
                gate: SharedArray | None = None,
                keys: SharedArray | None = None) -> SharedArray:
    """The released table (see the module doc), shared, at ``sums``' scale (f = 16).

    ``counts`` (G,) shared integers; ``sums`` (G, m) in :func:`sum_columns` order; ``ext``
    (G, e) minima in MIN/MAX order (MAX as ``-MIN(-x)``); ``distinct`` (G, d) integers;
    ``gate`` (G,) 0/1 rows that may be released at all (the group ends of a sorted table);
    ``keys`` (G,) the secret-domain key.
    """
    if counts.frac_bits != 0:
        raise ShapeError("group counts must be shared integers")
    f = ctx.fxp.frac_bits if sums is None else sums.frac_bits
    g = counts.shape[0]
    two = needs_defined(plan)
    thresholds = [counts - max(k, 1)] + ([counts - 2] if two else [])
    below = mpc.less_than(ctx, mpc.concat(thresholds), 0)
    present = 1 - below[:g]
    if gate is not None:
        present = mpc.mul_raw(ctx, _ints(gate), present)
    defined = mpc.mul_raw(ctx, present, 1 - below[g:]) if two else None
    # divisors stay in the divide's domain: >= 1 always (an empty group divides by 1)
    c1 = counts + 1 - present

    by_key: dict[str, SharedArray] = {}
    spec = sum_columns(plan.aggs)
    if spec and sums is not None:
        need_mean = [(a, j) for a, j, _ in spec if a.func != "sum"]
        means: dict[str, SharedArray] = {}
        if need_mean:
            x = mpc.concat([sums[:, j:j + 1] for _, j in need_mean], axis=1)
            cc = mpc.concat([c1.reshape(g, 1)] * len(need_mean), axis=1).reshape(-1)
            m = divide_by_count(ctx, x.reshape(-1, 1), cc).reshape(x.shape)
            for i, (a, _) in enumerate(need_mean):
                means[a.key] = m[:, i]
        var_aggs = [(a, j, jj) for a, j, jj in spec if jj is not None]
        if var_aggs:
            ss = mpc.stack([sums[:, jj] for _, _, jj in var_aggs if jj is not None], axis=1)
            mm = mpc.stack([means[a.key] for a, _, _ in var_aggs], axis=1)
            m2 = ss - mpc.mul_raw(ctx, _ints(_cols(c1, len(var_aggs))), square(ctx, mm))
            dof = mpc.concat([(c1 - defined if a.func.endswith("samp") and defined is not None
                               else c1).reshape(g, 1) for a, _, _ in var_aggs], axis=1)
            var = divide_by_count(ctx, m2.reshape(-1, 1), dof.reshape(-1)).reshape(m2.shape)
            stds = [i for i, (a, _, _) in enumerate(var_aggs) if a.func.startswith("std")]
            if stds:
                root = _sqrt_wide(ctx, mpc.stack([var[:, i] for i in stds], axis=1))
                for pos, i in enumerate(stds):
                    by_key[var_aggs[i][0].key] = root[:, pos]
            for i, (a, _, _) in enumerate(var_aggs):
                by_key.setdefault(a.key, var[:, i])
        for a, j, _ in spec:
            if a.func == "sum":
                by_key[a.key] = sums[:, j]
            elif a.func == "avg":
                by_key[a.key] = means[a.key]
    ei = di = 0
    values: dict[str, SharedArray] = {}
    for a in plan.aggs:
        if a.func == "count":
            v = _to_fixed(counts, f)
        elif a.func == "count_distinct":
            if distinct is None:
                raise ShapeError("COUNT(DISTINCT) values are missing")
            v = _to_fixed(_ints(distinct[:, di]), f)
            di += 1
        elif a.func in ("min", "max"):
            if ext is None:
                raise ShapeError("MIN/MAX values are missing")
            v = ext[:, ei] if a.func == "min" else -ext[:, ei]
            ei += 1
        else:
            v = by_key[a.key]
        values[a.key] = v
    if plan.having_mpc:  # HAVING on the committee: folded into the flags, nothing opened
        mask = _Having(ctx, plan, values, keys, g).mask()
        both = mpc.mul_raw(ctx, mpc.concat([present] + ([defined] if defined is not None
                                                        else [])),
                           mpc.concat([mask] * (2 if defined is not None else 1)))
        present = both[:g]
        defined = both[g:] if defined is not None else None
    cols: list[SharedArray] = []
    gates: list[SharedArray] = []
    for a in plan.released_aggs:
        cols.append(values[a.key])
        gates.append(defined if a.func in ("var_samp", "std_samp") and defined is not None
                     else present)
    if keys is not None:
        cols.insert(0, keys)
        gates.insert(0, present)
    flag = _to_fixed(present, f).reshape(g, 1)
    out = [flag]
    if cols:  # one product round gates every released value
        table = mpc.mul_raw(ctx, _ints(mpc.stack(gates, axis=1)), mpc.stack(cols, axis=1))
        table = table.like(table.a, table.b, frac_bits=f)
        at = 1 if keys is not None else 0
        out = [table[:, :at], flag, table[:, at:]]
    if defined is not None:
        out.append(_to_fixed(defined, f).reshape(g, 1))
    return mpc.concat([o for o in out if o.shape[1]], axis=1)
