"""Streaming ingest: CSV or Parquet in, a Parquet file out through a sealing writer.

Memory stays bounded by the CSV block size plus one Parquet row group, whatever the input
size: the CSV is parsed block by block (``pyarrow.csv.open_csv``), batches are buffered up
to ``row_group_rows`` rows and written as one row group, and the Parquet bytes go straight
into the encrypting sink. Parquet input needs random access (footer first), so the caller
passes a seekable source.

Errors are :class:`ValidationError` with messages that name the column and the expected
type but never echo a value from the data.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from metisnet.errors import MetisError, ValidationError
from metisnet.node.schema import Schema, schema_from_arrow, to_arrow

__all__ = ["ByteSource", "IngestResult", "ingest"]

#: A readable binary stream: a file, a socket reader or one of our raw streams.
ByteSource = BinaryIO | io.RawIOBase

CSV_BLOCK = 8 << 20
FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class IngestResult:
    schema: Schema
    rows: int


def _csv_error(exc: Exception) -> ValidationError:
    msg = str(exc)
    if "Empty CSV file" in msg:
        return ValidationError("malformed CSV: the file is empty")
    m = re.search(r"Expected (\d+) columns, got (\d+)", msg)
    if m:
        return ValidationError(
            f"malformed CSV: a row has {m.group(2)} fields where the header has {m.group(1)}"
        )
    m = re.search(r"column #(\d+).*conversion error to (\w+)", msg, re.S)
    if m:
        return ValidationError(
            f"schema mismatch: CSV column #{m.group(1)} holds a value that is not "
            f"{m.group(2)}"
        )
    if "UTF8" in msg or "utf-8" in msg.lower():
        return ValidationError("malformed CSV: text is not valid UTF-8")
    return ValidationError("malformed CSV: the file could not be parsed")


def _names_mismatch(found: list[str], declared: Schema) -> ValidationError | None:
    want = [n for n, _ in declared]
    missing = [n for n in want if n not in found]
    extra = [n for n in found if n not in want]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(map(repr, missing[:10]))}")
        if extra:
            parts.append(f"undeclared column(s) {', '.join(map(repr, extra[:10]))}")
        return ValidationError("schema mismatch: " + "; ".join(parts))
    return None


class _RowGroupWriter:
    def __init__(self, sink: ByteSource, schema: pa.Schema, rows_per_group: int) -> None:
        self._w = pq.ParquetWriter(sink, schema, compression="snappy")
        self._schema = schema
        self._n = rows_per_group
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= self._n:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self._schema)
            self._w.write_table(table, row_group_size=max(self._n, table.num_rows))
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._w.close()


def _ingest_csv(
    source: ByteSource,
    declared: Schema | None,
    sink: ByteSource,
    rows_per_group: int,
    max_cols: int,
) -> IngestResult:
    convert = pacsv.ConvertOptions(
        column_types=to_arrow(declared) if declared else None, strings_can_be_null=False
    )
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK, use_threads=True),
            convert_options=convert,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        raise _csv_error(exc) from None
    found = reader.schema.names
    if declared:
        err = _names_mismatch(found, declared)
        if err:
            raise err
        schema = declared
    else:
        schema = schema_from_arrow(reader.schema, max_cols)
    target = to_arrow(schema)
    order = [n for n, _ in schema]
    out = _RowGroupWriter(sink, target, rows_per_group)
    try:
        for batch in reader:
            if batch.schema != target:
                batch = batch.select(order).cast(target, safe=True)
            out.add(batch)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
            UnicodeDecodeError) as exc:
        raise _csv_error(exc) from None
    out.close()
    return IngestResult(schema, out.rows)


def _ingest_parquet(
    source: ByteSource,
    declared: Schema | None,
    sink: ByteSource,
    rows_per_group: int,
    max_cols: int,
) -> IngestResult:
    try:
        pf = pq.ParquetFile(source)
        found = pf.schema_arrow
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        raise ValidationError("malformed Parquet: the upload is not a readable Parquet file") \
            from None
    if declared:
        err = _names_mismatch(found.names, declared)
        if err:
            raise err
        schema = declared
    else:
        schema = schema_from_arrow(found, max_cols)
    target = to_arrow(schema)
    order = [n for n, _ in schema]
    out = _RowGroupWriter(sink, target, rows_per_group)
    try:
        for batch in pf.iter_batches(batch_size=65_536, columns=order):
            try:
                batch = batch.select(order).cast(target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                raise ValidationError(
                    "schema mismatch: a Parquet column does not convert to its declared type"
                ) from None
            out.add(batch)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        if isinstance(exc, MetisError):
            raise
        raise ValidationError("malformed Parquet: the file could not be read") from None
    out.close()
    return IngestResult(schema, out.rows)


def ingest(
    source: ByteSource,
    fmt: str,
    declared: Schema | None,
    sink: ByteSource,
    *,
    rows_per_group: int = 262_144,
    max_columns: int = 1024,
) -> IngestResult:
    """Read ``source`` (``fmt`` "csv" or "parquet") and write it as Parquet into ``sink``."""
    args: Any = (source, declared, sink, rows_per_group, max_columns)
    if fmt == "csv":
        try:
            result = _ingest_csv(*args)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                UnicodeDecodeError) as exc:
            raise _csv_error(exc) from None
    elif fmt == "parquet":
        result = _ingest_parquet(*args)
    else:
        raise ValidationError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if result.rows == 0:
        raise ValidationError("the dataset has no rows")
    return result
