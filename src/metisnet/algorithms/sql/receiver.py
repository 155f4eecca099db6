"""The receiver's side of SQL: rows from the released per-group table (a present flag and
the query's aggregates, computed on the committee), then the arithmetic over aggregates,
HAVING, ORDER BY and LIMIT, in the clear on released values only.

SQL semantics kept: an empty group does not appear; without GROUP BY there is one row even
when no row passes the filter (COUNT 0, the other aggregates NULL); a sample variance of
one row is NULL; division by zero is NULL; NULLs sort last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from metisnet.algorithms.sql.aggregates import released_names
from metisnet.algorithms.sql.plan import Plan, agg_func, same_agg
from metisnet.errors import ValidationError

__all__ = ["decode", "finish"]

F64 = NDArray[np.float64]


def decode(plan: Plan, table: F64) -> dict[str, Any]:
    """The opened table (:func:`~metisnet.algorithms.sql.aggregates.released_names`) as
    ``present``, ``aggs`` (key -> column), ``defined`` and ``keys``; for a secret-domain key
    only the rows marked present (the others are padding)."""
    names = released_names(plan)
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != len(names):
        raise ValidationError(f"the released table has shape {table.shape}, expected "
                              f"{len(names)} columns")
    if plan.secret_group:
        table = table[np.rint(table[:, names.index("present")]) == 1]
    elif table.shape[0] != plan.groups:
        raise ValidationError(f"the released table has {table.shape[0]} rows for "
                              f"{plan.groups} groups")
    res: dict[str, Any] = {"present": np.rint(table[:, names.index("present")]),
                           "aggs": {a.key: table[:, names.index(a.key)]
                                    for a in plan.released_aggs}}
    if "defined" in names:
        res["defined"] = np.rint(table[:, names.index("defined")])
    if plan.secret_group:
        res["keys"] = table[:, 0]
    return res


def _agg_values(plan: Plan, res: Mapping[str, Any], gi: int) -> dict[str, Any]:
    present = int(res["present"][gi]) == 1
    out: dict[str, Any] = {}
    for a in plan.released_aggs:
        v = float(res["aggs"][a.key][gi])
        if a.func in ("count", "count_distinct"):
            out[a.key] = round(v) if present else 0
        elif not present:
            out[a.key] = None
        elif a.func in ("var_samp", "std_samp") and int(res["defined"][gi]) != 1:
            out[a.key] = None  # one row: the sample variance is NULL
        else:
            out[a.key] = v
    return out


def _post_eval(node: Any, aggs: Mapping[str, Any], key: Any, plan: Plan) -> Any:
    from sqlglot import exp
    if isinstance(node, exp.Paren):
        return _post_eval(node.this, aggs, key, plan)
    if agg_func(node) is not None:
        for a in plan.aggs:
            if same_agg(a, node):
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


def _order_key(body: Any, names: list[str], plan: Plan) -> Any:
    from sqlglot import exp
    if isinstance(body, exp.Column) and str(body.name) in names and not body.table:
        idx = names.index(str(body.name))
        return lambda r: r[0][idx]
    if isinstance(body, exp.Literal):
        pos = int(str(body.this)) - 1
        return lambda r: r[0][pos]
    return lambda r: _post_eval(body, r[1], r[2], plan)


def finish(plan: Plan, res: Mapping[str, Any]) -> Any:
    """The receiver's part: rows from :func:`decode`'s arrays, then HAVING, ORDER BY, LIMIT."""
    import pandas as pd

    g = len(res["present"])
    rows: list[tuple[list[Any], dict[str, Any], Any]] = []
    for gi in range(g):
        if plan.group_by and int(res["present"][gi]) != 1:
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
        if (plan.having is not None and not plan.having_mpc
                and _post_eval(plan.having, aggs, key, plan) is not True):
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
