"""The receiver's side of SQL: rows from the released per-group arrays, then the
aggregates' arithmetic, HAVING, ORDER BY and LIMIT, in the clear on released values only.

SQL semantics kept: an empty group does not appear; without GROUP BY there is one row even
when no row passes the filter (COUNT 0, the other aggregates NULL); a sample variance of
one row is NULL; division by zero is NULL; NULLs sort last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from metisnet.algorithms.sql.plan import Agg, Plan, agg_func
from metisnet.errors import ValidationError

__all__ = ["finish"]

F64 = NDArray[np.float64]


def _agg_values(plan: Plan, res: Mapping[str, F64], gi: int) -> dict[str, Any]:
    c = round(float(res["counts"][gi]))
    out: dict[str, Any] = {}
    si = ei = di = 0
    for a in plan.aggs:
        if a.func == "count":
            out[a.key] = c
        elif a.func == "count_distinct":
            out[a.key] = round(float(res["distinct"][gi, di]))
            di += 1
        elif a.func in ("sum", "avg"):
            s = float(res["sums"][gi, si])
            si += 1
            out[a.key] = None if c == 0 else (s if a.func == "sum" else s / c)
        elif a.func in ("var_samp", "var_pop", "std_samp", "std_pop"):
            s, ss = float(res["sums"][gi, si]), float(res["sums"][gi, si + 1])
            si += 2
            dof = c - 1 if a.func.endswith("samp") else c
            if dof <= 0 or c == 0:
                out[a.key] = None
            else:
                var = max((ss - s * s / c) / dof, 0.0)
                out[a.key] = var if a.func.startswith("var") else math.sqrt(var)
        else:
            v = float(res["ext"][gi, ei])
            ei += 1
            out[a.key] = None if c == 0 else (-v if a.func == "max" else v)
    return out


def _post_eval(node: Any, aggs: Mapping[str, Any], key: Any, plan: Plan) -> Any:
    from sqlglot import exp
    if isinstance(node, exp.Paren):
        return _post_eval(node.this, aggs, key, plan)
    if agg_func(node) is not None:
        for a in plan.aggs:
            if _same_agg(a, node):
                return aggs[a.key]
        raise ValidationError(f"aggregate {node.sql()} was not planned")
    if isinstance(node, exp.Column):
        return key[str(node.name)]
    if isinstance(node, exp.Literal):
        if node.is_string:
            return str(node.this)
        v = float(str(node.this))
        return int(v) if v.is_integer() and "." not in str(node.this) else v
    if isinstance(node, exp.Neg):
        v = _post_eval(node.this, aggs, key, plan)
        return None if v is None else -v
    if isinstance(node, exp.Not):
        v = _post_eval(node.this, aggs, key, plan)
        return None if v is None else not v
    a = _post_eval(node.this, aggs, key, plan)
    b = _post_eval(node.expression, aggs, key, plan)
    if isinstance(node, exp.And):
        if a is False or b is False:
            return False
        return None if a is None or b is None else True
    if isinstance(node, exp.Or):
        if a is True or b is True:
            return True
        return None if a is None or b is None else False
    if a is None or b is None:
        return None
    ops = {exp.Add: lambda: a + b, exp.Sub: lambda: a - b, exp.Mul: lambda: a * b,
           exp.Div: lambda: None if b == 0 else a / b,
           exp.EQ: lambda: a == b, exp.NEQ: lambda: a != b, exp.GT: lambda: a > b,
           exp.GTE: lambda: a >= b, exp.LT: lambda: a < b, exp.LTE: lambda: a <= b}
    fn: Any = ops.get(type(node))
    if fn is None:
        raise ValidationError(f"unsupported expression {type(node).__name__}")
    return fn()


def _same_agg(a: Agg, node: Any) -> bool:
    from sqlglot import exp
    fn = agg_func(node)
    arg = node.this
    if fn == "count":
        if isinstance(arg, exp.Distinct):
            name = arg.expressions[0].name
            return a.func == "count_distinct" and a.key == f"count(distinct {name})"
        return a.func == "count"
    return (a.func == fn and a.arg is not None
            and a.arg.sql(dialect="duckdb") == arg.sql(dialect="duckdb"))


def _order_key(body: Any, names: list[str], plan: Plan) -> Any:
    from sqlglot import exp
    if isinstance(body, exp.Column) and str(body.name) in names and not body.table:
        idx = names.index(str(body.name))
        return lambda r: r[0][idx]
    if isinstance(body, exp.Literal):
        pos = int(str(body.this)) - 1
        return lambda r: r[0][pos]
    return lambda r: _post_eval(body, r[1], r[2], plan)


def finish(plan: Plan, res: Mapping[str, F64]) -> Any:
    """The receiver's part: rows from the released arrays, then HAVING, ORDER BY, LIMIT."""
    import pandas as pd

    g = len(res["counts"]) if "keys" in res else plan.groups
    rows: list[tuple[list[Any], dict[str, Any], Any]] = []
    for gi in range(g):
        c = round(float(res["counts"][gi]))
        if plan.group_by and c == 0:
            continue  # empty or suppressed group
        if "keys" in res:
            kv = float(res["keys"][gi])
            # a key is exact up to its fixed-point rounding (2^-17): show integers as such
            key: dict[str, Any] = {plan.group_by[0]: round(kv) if abs(kv - round(kv)) < 1e-5
                                   else kv}
        else:
            idx = np.unravel_index(gi, [len(plan.domains[k]) for k in plan.group_by]) \
                if plan.group_by else ()
            key = {name: plan.domains[name][int(i)] for name, i in zip(plan.group_by, idx,
                                                                       strict=True)}
        aggs = _agg_values(plan, res, gi)
        if plan.having is not None and _post_eval(plan.having, aggs, key, plan) is not True:
            continue
        vals = [_post_eval(e, aggs, key, plan) for _, e in plan.outputs]
        rows.append((vals, aggs, key))
    names = [nm for nm, _ in plan.outputs]
    for body, desc in reversed(plan.order):
        keyf = _order_key(body, names, plan)
        present = [r for r in rows if keyf(r) is not None]
        nulls = [r for r in rows if keyf(r) is None]
        present.sort(key=keyf, reverse=desc)
        rows = present + nulls
    if plan.limit is not None:
        rows = rows[:plan.limit]
    return pd.DataFrame([r[0] for r in rows], columns=names)
