"""The data nodes' side of SQL: public metadata of their tables, and dealing.

A data node reads its part of a table (a pandas DataFrame or a dict of numpy columns),
encodes the columns a checked plan reads (numbers as fixed point; a category as its index in
the column's public domain) and deals them as replicated shares
(:func:`metisnet.algorithms.common.deal`), or, for a join, as keyed-tag PSI inputs
(:func:`metisnet.algorithms.sql.joins.prepare_rows`: keys may repeat). Values outside a
declared domain, NULLs and magnitudes beyond ``2^VALUE_BITS`` are refused before anything is dealt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from metisnet.algorithms.common import deal
from metisnet.algorithms.psi import PsiShares
from metisnet.algorithms.sql.joins import prepare_rows
from metisnet.algorithms.sql.plan import Plan
from metisnet.crypto.prg import Csprng
from metisnet.errors import ValidationError

__all__ = ["FRAC_BITS", "VALUE_BITS", "Part", "Schemas", "columns_of", "deal_join",
           "deal_tables", "encode", "schemas_of"]

FRAC_BITS = 16
#: values must satisfy |x| < 2^VALUE_BITS (the MIN/MAX bound sits above it)
VALUE_BITS = 30
F64 = NDArray[np.float64]
Part = Any  # a pandas DataFrame or a mapping of column name -> 1-D array


def columns_of(part: Part) -> dict[str, NDArray[Any]]:
    if hasattr(part, "columns") and hasattr(part, "__getitem__") and not isinstance(part, Mapping):
        return {str(c): np.asarray(part[c]) for c in part.columns}
    if isinstance(part, Mapping):
        return {str(c): np.asarray(v) for c, v in part.items()}
    raise ValidationError("a data node's table must be a pandas DataFrame or a dict of columns")


def _declared_domain(part: Part, col: str) -> tuple[Any, ...] | None:
    if hasattr(part, "dtypes") and col in getattr(part, "columns", ()):
        dtype = part[col].dtype
        if str(dtype) == "category":
            return tuple(dtype.categories.tolist())
    return None


Schemas = dict[str, dict[str, tuple[Any, ...] | None]]


def schemas_of(tables: Mapping[str, Sequence[Part]],
               domains: Mapping[str, Sequence[Any]] | None = None,
               ) -> tuple[Schemas, dict[str, int]]:
    """Public metadata of the data nodes' tables: column domains and row counts.

    A column's domain is declared by ``domains`` (``"table.column"`` or ``"column"``) or by a
    pandas categorical dtype; numeric columns may have none. Row counts are public (they are
    registered on chain with a dataset).
    """
    schemas: dict[str, dict[str, tuple[Any, ...] | None]] = {}
    rows: dict[str, int] = {}
    doms = dict(domains or {})
    for name, parts in tables.items():
        if len(parts) < 1:
            raise ValidationError(f"table `{name}` has no data node parts")
        cols0 = columns_of(parts[0])
        cols: dict[str, tuple[Any, ...] | None] = {}
        for c in cols0:
            d = doms.get(f"{name}.{c}", doms.get(c))
            cols[c] = tuple(d) if d is not None else _declared_domain(parts[0], c)
        total = 0
        for p in parts:
            cp = columns_of(p)
            if set(cp) != set(cols0):
                raise ValidationError(f"the data nodes of table `{name}` have different columns")
            lens = {len(v) for v in cp.values()}
            if len(lens) > 1:
                raise ValidationError(f"a part of table `{name}` has columns of unequal length")
            total += lens.pop() if lens else 0
        schemas[name] = cols
        rows[name] = total
    return schemas, rows


def encode(values: NDArray[Any], domain: tuple[Any, ...] | None, col: str) -> F64:
    """What a data node deals for a column: numbers, or a category's index in the domain."""
    if domain is not None and any(isinstance(v, str) for v in domain):
        index = {v: i for i, v in enumerate(domain)}
        try:
            return np.array([index[v] for v in values.tolist()], dtype=np.float64)
        except KeyError as exc:
            raise ValidationError(
                f"a value of column `{col}` is outside its declared domain") from exc
    if values.dtype.kind not in "iufb":
        raise ValidationError(f"column `{col}` is not numeric; declare its domain of values")
    out = values.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValidationError(f"column `{col}` holds NULL/NaN values, which are not supported")
    if np.any(np.abs(out) >= 2.0**VALUE_BITS):
        raise ValidationError(f"column `{col}` has values beyond +-2^{VALUE_BITS}")
    if domain is not None and not np.all(np.isin(out, np.asarray(domain, dtype=np.float64))):
        raise ValidationError(f"a value of column `{col}` is outside its declared domain")
    return out


def _node_rng(seed: bytes | None, *labels: object) -> Csprng:
    """A data node's CSPRNG: fresh from the OS, or derived from ``seed`` (reproducible runs,
    e.g. benchmarks whose members each recompute the same dealing)."""
    if seed is None:
        return Csprng()
    return Csprng(hashlib.sha256(seed + repr(labels).encode()).digest()[:16])


def deal_join(plan: Plan, tables: Mapping[str, Sequence[Part]], tag_key: bytes, *,
              seed: bytes | None = None) -> list[list[list[PsiShares]]]:
    """Each data node of both join sides: keyed tags of its ids and its payload columns
    (:func:`metisnet.algorithms.sql.joins.prepare_rows`): side -> node -> one input per
    member."""
    if plan.join is None:
        raise ValidationError("not a join")
    out = []
    for si, side in enumerate(plan.join):
        nodes = []
        for ni, part in enumerate(tables[side.table]):
            cols = columns_of(part)
            ids = [cols[key] for key in side.keys]
            for key, v in zip(side.keys, ids, strict=True):
                if v.dtype.kind not in "iu":
                    raise ValidationError(f"join key `{side.table}.{key}` must hold integers")
            payload = None
            if side.columns:
                payload = np.stack([encode(cols[raw], plan.domains.get(name), name)
                                    for name, raw in side.columns], axis=1)
            nodes.append(prepare_rows(ids, tag_key, _node_rng(seed, "join", si, ni),
                                      payload=payload, frac_bits=FRAC_BITS))
        out.append(nodes)
    return out


def deal_tables(plan: Plan, parts: Sequence[Part], *, seed: bytes | None = None
                ) -> dict[str, list[list[tuple[Any, Any]]]]:
    """Each data node deals the plan's columns of its part: column -> node -> 3 pairs."""
    dealt: dict[str, list[list[tuple[Any, Any]]]] = {}
    encoded = [columns_of(p) for p in parts]
    for col in plan.columns:
        dom = plan.domains.get(col)
        vals = [encode(cols[col], dom, col) for cols in encoded]
        dealt[col] = [deal(v, _node_rng(seed, col, i), frac_bits=FRAC_BITS)
                      for i, v in enumerate(vals)]
    return dealt
