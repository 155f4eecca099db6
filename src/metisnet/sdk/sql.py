"""``Client.sql``: a requester writes SQL, the network computes it as a task.

::

    client = Client(network, {"people": Table(datasets=(id0, id1, id2),
                                              columns={"region": ["north", "south"],
                                                       "age": None})})
    df = client.sql("SELECT region, AVG(age) FROM people GROUP BY region")

``network`` is anything with ``requester(**kw) -> Requester`` (a
:class:`~metisnet.node.localnet.LocalNetwork`, a :class:`~metisnet.node.devnet.DevnetNetwork`
or a :class:`~metisnet.node.devnet.DevnetRequester`); when it also has ``spec(program,
inputs, fee_wei, **kw)`` (the devnet's, which pins the requester's TLS endpoint) specs are
made with it. A table is the union of its datasets (one per data node), all with the
declared columns; a column's domain (its public list of values) makes it a GROUP BY key or
a category, ``None`` a number.

The query is planned here first: unsupported SQL, unknown columns, or a JOIN / secret-domain
GROUP BY in malicious mode raise :class:`~metisnet.errors.ValidationError` before anything is
submitted. Each data node then checks the spec and its owners' policies before voting; a
refusal raises :class:`~metisnet.errors.PolicyViolation` naming the node's reason (the task
is rejected on chain and no share moves). See :mod:`metisnet.node.sql_task` for the rest of
the lifecycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metisnet.algorithms.sql.plan import explain, plan_query, read_columns, strip_explain
from metisnet.errors import MetisError, PolicyViolation, ValidationError
from metisnet.node.sql_task import SQL_PROGRAM, check_spec, result_frame, sql_params
from metisnet.node.taskspec import TaskSpec
from metisnet.types import DatasetId

__all__ = ["Client", "SqlTaskFailed", "Table"]


class SqlTaskFailed(MetisError, RuntimeError):
    """The network ran the task but delivered no verified result (``result`` says why)."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Table:
    """A table of the network: its datasets (one per data node) and public schema."""

    datasets: tuple[str, ...]
    columns: Mapping[str, Sequence[Any] | None] = field(default_factory=dict)
    #: public row count (for EXPLAIN's estimates only)
    rows: int | None = None


class Client:
    """Runs SQL over a network's registered datasets through the task flow."""

    def __init__(self, network: Any, tables: Mapping[str, Table], *, fee_wei: int = 10**16,
                 timeout: float = 300.0) -> None:
        if not tables:
            raise ValidationError("a client needs at least one table")
        for name, t in tables.items():
            if not t.datasets or not t.columns:
                raise ValidationError(f"table `{name}` needs datasets and columns")
        self.network = network
        self.tables = dict(tables)
        self.fee_wei = fee_wei
        self.timeout = timeout
        self.last: Any = None  # the last TaskResult

    @property
    def schema(self) -> dict[str, dict[str, tuple[Any, ...] | None]]:
        return {n: {c: None if d is None else tuple(d) for c, d in t.columns.items()}
                for n, t in self.tables.items()}

    def _rows(self) -> dict[str, int]:
        return {n: t.rows for n, t in self.tables.items() if t.rows is not None}

    def explain(self, query: str, *, k: int = 1) -> str:
        """The secure plan with estimated rounds and bytes; nothing is submitted."""
        return explain(strip_explain(query)[0], self.schema, rows=self._rows(), k=k)

    def spec(self, query: str, *, k: int = 1, security: str = "malicious",
             requester: Any = None) -> TaskSpec:
        """The task spec of ``query``, checked like the data nodes will check it."""
        plan = plan_query(query, self.schema, k=k)
        reads = read_columns(plan)
        requester = requester or self.network.requester(timeout=self.timeout)
        owner_of = requester.contracts.datasets.owner_of
        inputs: list[tuple[str, list[str]]] = []
        tables: list[tuple[str, str, str]] = []
        for name in reads:
            t = self.tables[name]
            cols = sorted(reads[name]) or [next(iter(t.columns))]  # COUNT(*): one column
            for d in t.datasets:
                inputs.append((d, cols))
                tables.append((name, d, str(owner_of(DatasetId(bytes.fromhex(d[2:]))))))
        kw: dict[str, Any] = {"params": sql_params(query, tables, self.schema, k=k),
                              "security": security}
        maker = getattr(self.network, "spec", None)
        if maker is not None:
            spec: TaskSpec = maker(SQL_PROGRAM, inputs, self.fee_wei, **kw)
        else:
            me = self.network.requester_account.address
            spec = TaskSpec.new(SQL_PROGRAM, inputs, [me], self.fee_wei, **kw)
        check_spec(spec)
        return spec

    def sql(self, query: str, *, k: int = 1, security: str = "malicious") -> Any:
        """Run ``query`` on the network; a pandas DataFrame (``EXPLAIN ...``: the plan).

        ``attrs`` of the result: ``task_id``, ``committee``, ``timings``, ``security`` and
        ``released`` (the columns that left the committee)."""
        text, explain_only = strip_explain(query)
        if explain_only:
            import pandas as pd
            return pd.DataFrame({"plan": self.explain(text, k=k).splitlines()})
        requester = self.network.requester(timeout=self.timeout)
        spec = self.spec(text, k=k, security=security, requester=requester)
        result = requester.run(spec)
        self.last = result
        if result.refusals:
            reasons = "; ".join(f"{node}: {why}" for node, why in result.refusals.items())
            raise PolicyViolation(f"task {result.task_id} refused by the data nodes "
                                  f"({reasons}); no share moved", rule="refused")
        if not result.verified or result.values is None:
            raise SqlTaskFailed(f"task {result.task_id}: {result.verdict}", result)
        df = result_frame(spec, result.values)
        from metisnet.algorithms.sql.aggregates import released_names
        df.attrs.update(task_id=result.task_id, committee=list(result.committee),
                        timings=dict(result.timings), security=security,
                        released=released_names(check_spec(spec).plan))
        return df
