"""Dataset schemas: the column types a data node stores, declared or inferred, and the hash.

A schema is an ordered tuple of ``(name, type)`` with ``type`` one of :data:`TYPES`. Its
hash, registered on chain, is SHA-256 of the canonical JSON ``[["name","type"],...]``
(no spaces, UTF-8), so anyone holding the schema can recompute it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from metisnet.errors import ValidationError

__all__ = ["TYPES", "Schema", "parse_schema", "schema_from_arrow", "schema_hash", "to_arrow"]

#: Supported column types and their Arrow types.
TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "date32": pa.date32(),
    "timestamp": pa.timestamp("s"),
}
_ALIASES = {"int": "int64", "integer": "int64", "float": "float64", "double": "float64",
            "str": "string", "boolean": "bool", "date": "date32"}

Schema = tuple[tuple[str, str], ...]

MAX_NAME = 128


def _check_names(names: Sequence[str], max_columns: int) -> None:
    if not names:
        raise ValidationError("a dataset needs at least one column")
    if len(names) > max_columns:
        raise ValidationError(f"too many columns ({len(names)} > {max_columns})")
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise ValidationError(f"column names must be 1-{MAX_NAME} non-blank characters")
        if any(ord(c) < 32 for c in name):
            raise ValidationError("column names must not contain control characters")
        if name in seen:
            raise ValidationError(f"duplicate column name {name!r}")
        seen.add(name)


def parse_schema(raw: Any, max_columns: int = 1024) -> Schema:
    """A declared schema: ``{"col": "int64", ...}`` or ``[["col", "int64"], ...]``."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValidationError("the declared schema is not valid JSON") from None
    pairs: list[tuple[Any, Any]]
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in raw):
        pairs = [(p[0], p[1]) for p in raw]
    else:
        raise ValidationError('a schema is {"column": "type", ...} or [["column", "type"], ...]')
    _check_names([p[0] for p in pairs], max_columns)
    out = []
    for name, typ in pairs:
        if not isinstance(typ, str):
            raise ValidationError(f"the type of column {name!r} must be a string")
        t = _ALIASES.get(typ.lower(), typ.lower())
        if t not in TYPES:
            raise ValidationError(
                f"column {name!r} has unsupported type {typ!r}; use one of {', '.join(TYPES)}"
            )
        out.append((name, t))
    return tuple(out)


def schema_from_arrow(schema: pa.Schema, max_columns: int = 1024) -> Schema:
    """Map an inferred Arrow schema onto :data:`TYPES` (refusing what has no mapping)."""
    _check_names(schema.names, max_columns)
    out = []
    for field in schema:
        t = field.type
        name = next((k for k, v in TYPES.items() if v == t), None)
        if name is None:
            if pa.types.is_large_string(t) or pa.types.is_null(t):
                name = "string"
            elif pa.types.is_timestamp(t):
                name = "timestamp"
            elif pa.types.is_integer(t):
                name = "int64"
            elif pa.types.is_floating(t):
                name = "float64"
            else:
                raise ValidationError(
                    f"column {field.name!r} has type {t} with no metisnet mapping; "
                    "declare a schema"
                )
        out.append((field.name, name))
    return tuple(out)


def to_arrow(schema: Schema) -> pa.Schema:
    return pa.schema([(n, TYPES[t]) for n, t in schema])


def schema_hash(schema: Schema) -> bytes:
    canon = json.dumps([[n, t] for n, t in schema], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).digest()
