"""SQL as a task program: a requester's query runs through the normal task lifecycle.

The spec (:mod:`metisnet.node.taskspec`) names ``program: "sql"``, one input per dataset
(each dataset a data node's part of a table, with the columns the query reads) and
``params``:

``query``            the SQL text (the subset of :mod:`metisnet.algorithms.sql.plan`)
``tables``           ``[[table, dataset id, owner], ...]``, one per input, in the spec's
                     order (the owner, the data node registered for the dataset, fixes
                     the order in which the committee receives the inputs)
``schema``           ``[[table, [[column, domain or null], ...]], ...]``: the public schema
                     (a column's domain of values, e.g. categories, or null for a number)
``min_group_size``   k: smaller groups are suppressed (each owner's policy may demand more)

Lifecycle (DESIGN.md §7, as for every program):

1. The requester (:class:`metisnet.sdk.Client`) plans the query locally and refuses what is
   unsupported before anything is submitted; the spec's inputs carry exactly the columns
   the plan reads, so each owner's policy is checked on them.
2. Every data node re-checks the spec (:func:`check_spec`: the query parses and plans, the
   datasets and the columns match it) and its owners' policies (program ``sql``, columns,
   requester, k, uses) and votes; a refusal votes no and no share ever leaves the node.
3. Consensus, seeds, committee draw and acknowledgements as for any task.
4. Each data node re-reads its columns (the policy is checked again), encodes them (numbers
   as fixed point, categories as their index in the declared domain; values outside it are
   refused) and deals replicated shares to the committee (:func:`contribute`), one input
   per dataset in the session's input protocol (:mod:`metisnet.node.session`): the
   ``(rows, columns + 1)`` table (a last column of ones keeps the row count readable when
   a query reads no column) flattened; for a join, keyed-tag PSI inputs
   (:func:`metisnet.algorithms.sql.joins.prepare_rows`, ``(rows, 2 keys + 1 + columns)`` per join
   side) under a tag key the first data node draws and sends to the others over the
   session (the committee never sees it).
5. The committee runs the program like any other
   (:func:`metisnet.node.session.run_committee`): the ``sql`` program
   (:func:`program`) cuts the inputs back into tables by the spec, runs the compiled plan
   (:func:`metisnet.algorithms.sql.execute.released`); every product is verified in
   malicious mode before the receivers get their shares of the released table only: a
   present flag and the query's aggregates per group.
6. The receiver checks the copies of every share and opens the table
   (:func:`metisnet.node.session.collect_output`); :func:`result_frame` turns it into the
   query's answer (HAVING, ORDER BY, LIMIT on released values).

Security: aggregates, WHERE, GROUP BY a public-domain key and COUNT(DISTINCT) run in
malicious mode (security with abort, the default); a JOIN (the committee's private join) and
GROUP BY a key without a public domain (oblivious sort and shuffle) are semi-honest only, and
a spec asking for them in malicious mode is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from metisnet.algorithms.common import deal
from metisnet.algorithms.psi import PsiShares
from metisnet.algorithms.sql.datanodes import FRAC_BITS, encode
from metisnet.algorithms.sql.execute import released
from metisnet.algorithms.sql.joins import prepare_rows
from metisnet.algorithms.sql.plan import Plan, plan_query, read_columns, strip_explain
from metisnet.algorithms.sql.receiver import decode, finish
from metisnet.crypto.prg import Csprng
from metisnet.crypto.sharing import share
from metisnet.errors import ProtocolError, ValidationError
from metisnet.mpc.context import MpcContext
from metisnet.mpc.shares import SharedArray
from metisnet.net.channel import Channel
from metisnet.node.programs import Program
from metisnet.node.session import SessionLayout
from metisnet.node.taskspec import TaskSpec

__all__ = ["SQL_PROGRAM", "SqlTask", "check_spec", "contribute", "parse_params", "program",
           "result_frame", "sql_params"]

log = logging.getLogger("metisnet.sql_task")

SQL_PROGRAM = "sql"
MAX_QUERY = 8192
_PARAMS = {"query", "tables", "schema", "min_group_size"}
_TAG_KEY = "sql:tagkey"

Schema = dict[str, dict[str, tuple[Any, ...] | None]]


@dataclass(frozen=True)
class SqlTask:
    """A checked SQL spec: the query, each input's table, the public schema, k, the plan."""

    query: str
    tables: tuple[tuple[str, str, str], ...]  # (table, dataset id, owner) per spec input
    schema: Schema
    k: int
    plan: Plan

    def uses(self, j: int) -> list[int]:
        """The sides input ``j`` is dealt for: [0] for one table, the join sides of its
        table for a join (both for a self-join)."""
        table = self.tables[j][0]
        if self.plan.join is None:
            return [0] if table == self.plan.table else []
        return [s for s, side in enumerate(self.plan.join) if side.table == table]

    def width(self, side: int) -> int:
        """Columns of one dealt block: the plan's columns and a column of ones (no join),
        or the PSI input's tags, index and payload (a join)."""
        if self.plan.join is None:
            return len(self.plan.columns) + 1
        return 2 * len(self.plan.join[side].keys) + 1 + len(self.plan.join[side].columns)

    def receive_order(self) -> list[int]:
        """The inputs in the order the committee receives them: by data node (in order of
        first appearance), then in the spec's order (:func:`metisnet.node.agents.layout_for`)."""
        owners = [o for _, _, o in self.tables]
        return [j for node in dict.fromkeys(owners) for j, o in enumerate(owners) if o == node]


def sql_params(query: str, tables: Sequence[tuple[str, str, str]], schema: Mapping[str, Any],
               *, k: int = 1) -> dict[str, Any]:
    """The ``params`` of an SQL spec (see the module doc); ``tables`` holds
    ``(table, dataset id, owner address)`` per input."""
    return {"query": query, "tables": [[t, d, o.lower()] for t, d, o in tables],
            "schema": [[t, [[c, None if dom is None else list(dom)]
                            for c, dom in cols.items()]] for t, cols in schema.items()],
            "min_group_size": int(k)}


def _str(value: Any, what: str, limit: int = 64) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ValidationError(f"sql params: {what} must be a non-empty string")
    return value


def parse_params(params: Mapping[str, Any]) -> SqlTask:
    """Validate an SQL spec's ``params`` and plan its query; ValidationError otherwise."""
    if not isinstance(params, Mapping) or set(params) != _PARAMS:
        raise ValidationError(f"sql params need exactly {', '.join(sorted(_PARAMS))}")
    query = _str(params["query"], "query", MAX_QUERY)
    if strip_explain(query)[1]:
        raise ValidationError("EXPLAIN is answered by the requester's client, not a task")
    k = params["min_group_size"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 10**9:
        raise ValidationError("sql params: min_group_size must be an integer from 1 to 10^9")
    raw_tables = params["tables"]
    if not isinstance(raw_tables, list) or not 0 < len(raw_tables) <= 64:
        raise ValidationError("sql params: tables must list (table, dataset) per input")
    tables = []
    for item in raw_tables:
        if not isinstance(item, list) or len(item) != 3:
            raise ValidationError("sql params: each tables entry is [table, dataset id, owner]")
        tables.append((_str(item[0], "a table name"), _str(item[1], "a dataset id", 66).lower(),
                       _str(item[2], "an owner address", 42).lower()))
    raw_schema = params["schema"]
    if not isinstance(raw_schema, list) or not 0 < len(raw_schema) <= 16:
        raise ValidationError("sql params: schema must list [table, columns] entries")
    schema: Schema = {}
    for entry in raw_schema:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], list):
            raise ValidationError("sql params: each schema entry is [table, [[column, domain]]]")
        name = _str(entry[0], "a table name")
        cols: dict[str, tuple[Any, ...] | None] = {}
        for col in entry[1][:256]:
            if not isinstance(col, list) or len(col) != 2:
                raise ValidationError("sql params: a column is [name, domain or null]")
            dom = col[1]
            if dom is not None and (not isinstance(dom, list) or not 0 < len(dom) <= 4096
                                    or not all(isinstance(v, (str, int, float))
                                               and not isinstance(v, bool) for v in dom)):
                raise ValidationError("sql params: a domain is a list of up to 4096 values")
            cols[_str(col[0], "a column name")] = None if dom is None else tuple(dom)
        schema[name] = cols
    for table, _, _ in tables:
        if table not in schema:
            raise ValidationError(f"sql params: table `{table}` has no schema")
    if len({d for _, d, _ in tables}) != len(tables):
        raise ValidationError("sql params: a dataset is named twice")
    plan = plan_query(query, schema, k=k)
    return SqlTask(query, tuple(tables), schema, k, plan)


def check_spec(spec: TaskSpec) -> SqlTask:
    """An SQL spec, checked: its params (:func:`parse_params`), its inputs against them (the
    same datasets in the same order, each declaring the columns the query reads of its
    table), every table read held by at least one input, and the security mode."""
    if spec.program != SQL_PROGRAM or spec.mode != "mpc":
        raise ValidationError("not an mpc sql spec")
    task = parse_params(spec.params)
    if len(task.tables) != len(spec.inputs):
        raise ValidationError("sql params: tables must name each input of the spec once")
    reads = read_columns(task.plan)
    for j, (inp, (table, dataset, _)) in enumerate(zip(spec.inputs, task.tables, strict=True)):
        if inp.dataset.lower() != dataset:
            raise ValidationError(f"sql params: input {j} is not dataset {dataset}")
        missing = sorted(reads.get(table, set()) - set(inp.columns))
        if missing:
            raise ValidationError(f"input {j} (table `{table}`) must declare the column(s) "
                                  f"{', '.join(missing)} the query reads")
        unknown = sorted(set(inp.columns) - set(task.schema[table]))
        if unknown:
            raise ValidationError(f"input {j}: column(s) {', '.join(unknown)} are not in "
                                  f"the schema of table `{table}`")
    absent = sorted(set(reads) - {t for t, _, _ in task.tables})
    if absent:
        raise ValidationError(f"no input holds table(s) {', '.join(absent)}")
    if spec.security != "semi-honest" and (task.plan.join is not None
                                          or task.plan.secret_group):
        what = "a JOIN" if task.plan.join is not None else "GROUP BY a key without a domain"
        raise ValidationError(f"{what} runs semi-honest only; ask for security "
                              "'semi-honest' (or declare the key's domain)")
    return task


# -- data nodes ------------------------------------------------------------------------------
def _side_columns(task: SqlTask, side: int) -> list[str]:
    """The raw columns dealt for one side: the plan's columns (no join), or the side's
    payload (a join; the key travels as keyed tags)."""
    plan = task.plan
    if plan.join is None:
        return list(plan.columns)
    return [raw for _, raw in plan.join[side].columns]


def _encoded(task: SqlTask, side: int, data: Mapping[str, NDArray[Any]], n: int
             ) -> NDArray[np.float64]:
    plan = task.plan
    if plan.join is None:
        cols = [encode(np.asarray(data[c]), plan.domains.get(c), c) for c in plan.columns]
    else:
        cols = [encode(np.asarray(data[raw]), plan.domains.get(name), name)
                for name, raw in plan.join[side].columns]
    if not cols:
        return np.zeros((n, 0))
    return np.stack(cols, axis=1)


def contribute(channel: Channel, layout: SessionLayout, me: str, spec: TaskSpec, node: Any,
               local_ids: Sequence[str], *, rng: Csprng | None = None) -> None:
    """As a data node (``node``, a :class:`~metisnet.node.datanode.DataNode`): read, encode
    and deal this node's inputs of an SQL task; ``local_ids`` are its approved local tasks,
    one per input it holds, in the spec's order.

    Everything is read and encoded (and any refusal raised) before anything is sent.
    """
    task = check_spec(spec)
    rng = rng or Csprng()
    held = [(j, inp) for j, inp in enumerate(spec.inputs)
            if node.store.get_dataset(inp.dataset.lower())]
    if len(held) != len(local_ids):
        raise ValidationError("the approved tasks do not match the inputs held here")
    if any(task.tables[j][2] != me.lower() for j, _ in held):
        raise ValidationError("the spec names another owner for a dataset held here")
    reads: list[tuple[int, dict[str, NDArray[Any]], int]] = []
    for (j, inp), local in zip(held, local_ids, strict=True):
        need: dict[str, None] = {}
        for side in task.uses(j):
            if task.plan.join is not None:
                need.update(dict.fromkeys(task.plan.join[side].keys))
            need.update(dict.fromkeys(_side_columns(task, side)))
        data = node.read_columns(local, list(need)) if need else {}
        rows = {len(v) for v in data.values()} or {int(node.get_dataset(inp.dataset).row_count)}
        if len(rows) != 1:
            raise ValidationError(f"input {j}: columns of unequal length")
        reads.append((j, data, rows.pop()))
    for local in local_ids:
        if node.get_task(local).state == "approved":
            node.set_task_state(local, "running")
    tag_key = _agree_tag_key(channel, layout, me) if task.plan.join is not None else b""
    inputs: list[list[tuple[NDArray[np.uint64], NDArray[np.uint64]]]] = []
    for j, data, n in reads:
        parts: list[list[tuple[NDArray[np.uint64], NDArray[np.uint64]]]] = []
        for side in task.uses(j):
            values = _encoded(task, side, data, n)
            if task.plan.join is None:
                table = np.concatenate([values, np.ones((n, 1))], axis=1)
                parts.append(deal(table, rng, frac_bits=FRAC_BITS))
            else:
                ids = [np.asarray(data[key]) for key in task.plan.join[side].keys]
                if any(v.dtype.kind not in "iu" for v in ids):
                    raise ValidationError(f"the join keys of input {j} must hold integers")
                dealt = prepare_rows(ids, tag_key, rng, payload=values if values.shape[1]
                                     else None, frac_bits=FRAC_BITS)
                parts.append([p.pair for p in dealt])
        inputs.append([(np.concatenate([p[i][0].reshape(-1) for p in parts]),
                        np.concatenate([p[i][1].reshape(-1) for p in parts]))
                       for i in range(len(layout.committee))])
    spec_bytes = np.frombuffer(spec.canonical(), dtype=np.uint8)
    for i in range(len(layout.committee)):
        channel.send(i, "spec", spec_bytes)
    for k, pairs in enumerate(inputs):  # the session's input protocol, one input per dataset
        size = share(np.array([pairs[0][0].size], dtype=np.uint64), rng)
        for i in range(len(layout.committee)):
            channel.send(i, f"in:{k}:a", np.ascontiguousarray(pairs[i][0]))
            channel.send(i, f"in:{k}:b", np.ascontiguousarray(pairs[i][1]))
            channel.send(i, f"in:{k}:n", np.stack(size[i]))


def _agree_tag_key(channel: Channel, layout: SessionLayout, me: str) -> bytes:
    """The join's tag key: drawn by the first data node, sent to the others over the
    session (TLS between the nodes; the committee is not a party to it)."""
    first = layout.data_nodes[0]
    if me.lower() == first:
        key = Csprng().key()
        for d in layout.data_nodes[1:]:
            channel.send(layout.index(d), _TAG_KEY, np.frombuffer(key, dtype=np.uint8))
        return key
    got = channel.recv(layout.index(first), _TAG_KEY)
    if got.dtype != np.uint8 or got.shape != (16,):
        raise ProtocolError("the first data node sent a malformed tag key")
    return got.tobytes()


# -- committee -------------------------------------------------------------------------------
def _secure(task: SqlTask, ctx: MpcContext, columns: Sequence[SharedArray],
            counts: Sequence[SharedArray], n: int) -> SharedArray:
    """The committee's part: cut the received inputs back into tables, run the plan; the
    released table (shared) goes to the receivers."""
    order = task.receive_order()
    if len(columns) != len(order):
        raise ProtocolError(f"{len(columns)} inputs received, the spec has {len(order)}")
    blocks: dict[tuple[int, int], SharedArray] = {}
    rows: dict[str, int] = {}
    for j, col in zip(order, columns, strict=True):
        uses = task.uses(j)
        total = sum(task.width(s) for s in uses)
        if not uses or col.ndim != 1 or col.size % total:
            raise ProtocolError(f"input {j} does not hold whole rows of its table")
        m = col.size // total
        at = 0
        for s in uses:
            w = task.width(s)
            blocks[(j, s)] = col[at:at + m * w].reshape(m, w)
            at += m * w
        table = task.tables[j][0]
        rows[table] = rows.get(table, 0) + m
    plan = plan_query(task.query, task.schema, rows=rows, k=task.k)
    keys = sorted(blocks)
    mine: Any
    if plan.join is None:
        mine = {c: [blocks[key][:, ci] for key in keys] for ci, c in enumerate(plan.columns)}
        total_rows = sum(blocks[key].shape[0] for key in keys)
    else:
        mine = [[PsiShares((np.ascontiguousarray(blocks[key].a),
                            np.ascontiguousarray(blocks[key].b)), len(side.columns), FRAC_BITS)
                 for key in keys if key[1] == s] for s, side in enumerate(plan.join)]
        total_rows = 0
    out = released(ctx, plan, mine, k=task.k, rows=total_rows)
    log.info("sql: %d group row(s), %d column(s) released", out.shape[0], out.shape[1])
    return out


def program(params: Mapping[str, Any]) -> Program:
    """The ``sql`` program of one spec's ``params`` (checked by :func:`parse_params`)."""
    task = parse_params(params)

    def secure(ctx: MpcContext, columns: Sequence[SharedArray],
               counts: Sequence[SharedArray], n: int,
               highs: Sequence[SharedArray] = ()) -> SharedArray:
        return _secure(task, ctx, columns, counts, n)

    def plain(x: NDArray[np.float64]) -> NDArray[np.float64]:
        raise ValidationError("an sql task's reference is the query on the plaintext union "
                              "(e.g. DuckDB)")

    return Program(SQL_PROGRAM, secure, plain, lambda x, f: 0.0)


# -- receiver --------------------------------------------------------------------------------
def result_frame(spec: TaskSpec, values: NDArray[np.float64]) -> Any:
    """The query's answer (a pandas DataFrame) from the opened table of an SQL task."""
    plan = check_spec(spec).plan
    return finish(plan, decode(plan, values))
