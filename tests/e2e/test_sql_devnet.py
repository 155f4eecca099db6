"""SQL through the task flow over real processes: ``metis devnet`` (anvil, 3 data nodes,
6 compute nodes, TLS between them). The demo tables are hosted on the data nodes over REST
by a requester, who then runs queries as tasks (:class:`metisnet.sdk.Client` and
``metis sql --network devnet``), checked against DuckDB on the plaintext union; a query
one owner's policy refuses is rejected and no data node reads a column for it.
"""

from __future__ import annotations

import math
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from metisnet.chain.tasks import TaskState
from metisnet.cli import main
from metisnet.cli.sql import DOMAINS, demo_tables
from metisnet.errors import PolicyViolation
from metisnet.node.devnet import DevnetRequester, devnet_down, devnet_up
from metisnet.node.identity import NodeKey
from metisnet.sdk import Client, NodeClient, Table
from metisnet.types import TaskId

pytestmark = pytest.mark.integration

ROWS = 90
OPEN = {"allowed_programs": ["sql"], "allowed_columns": ["*"], "allowed_requesters": ["*"]}


def _host(req: DevnetRequester, parts: list[Any], name: str,
          policies: list[dict[str, Any]]) -> tuple[str, ...]:
    ids = []
    signer = NodeKey(bytes(req.account.key))
    with tempfile.TemporaryDirectory() as tmp:
        for i, (proc, part) in enumerate(zip(req.state.by_role("data"), parts, strict=True)):
            path = Path(tmp) / f"{name}-{i}.csv"
            part.to_csv(path, index=False)
            with NodeClient(proc.rest_url, signer) as nc:
                rec = nc.host_dataset(path, name=f"{name}-{i}")
                nc.set_policy(rec["dataset_id"], policies[i])
            ids.append(rec["dataset_id"])
    return tuple(ids)


def _duck(tables: dict[str, list[Any]], query: str) -> Any:
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    for name, parts in tables.items():
        con.register(name, pd.concat(parts, ignore_index=True))
    return con.execute(query).df()


def _same(got: Any, want: Any) -> None:
    g = sorted(map(list, got.itertuples(index=False, name=None)), key=str)
    w = sorted(map(list, want.itertuples(index=False, name=None)), key=str)
    assert len(g) == len(w), (g, w)
    for rg, rw in zip(g, w, strict=True):
        for a, b in zip(rg, rw, strict=True):
            assert a == b if isinstance(b, str) else math.isclose(
                float(a), float(b), rel_tol=1e-4, abs_tol=5e-3), (rg, rw)


def test_sql_tasks_over_the_devnet(tmp_path: Path) -> None:
    root = tmp_path / "devnet"
    state, _ = devnet_up(root, rows=20)
    tight: tuple[str, ...] = ()
    try:
        tables = demo_tables(ROWS)
        schema = {n: {c: DOMAINS.get(c) for c in parts[0].columns} for n, parts in tables.items()}
        with DevnetRequester(state) as req:
            catalog = {n: Table(_host(req, parts, n, [OPEN] * 3), schema[n])
                       for n, parts in tables.items()}
            client = Client(req, catalog)
            for q, security in [
                    ("SELECT region, COUNT(*), AVG(income), STDDEV(age) FROM people "
                     "WHERE score > 2 GROUP BY region", "malicious"),
                    ("SELECT level, SUM(spend), AVG(income) FROM people JOIN orders "
                     "ON people.id = orders.id GROUP BY level", "semi-honest")]:
                _same(client.sql(q, security=security), _duck(tables, q))
                assert client.last.verified
            strict = {**OPEN, "allowed_columns": ["region", "age"]}
            tight = _host(req, tables["people"], "tight", [OPEN, strict, OPEN])
            c2 = Client(req, {"tight": Table(tight, schema["people"])})
            with pytest.raises(PolicyViolation, match="no share moved"):
                c2.sql("SELECT region, AVG(income) FROM tight GROUP BY region")
            refused = c2.last.task_id
            assert req.contracts.tasks.get_task(TaskId(refused)).state == TaskState.REJECTED
        out = CliRunner().invoke(main, [
            "sql", "SELECT dept, COUNT(*), MIN(income) FROM people GROUP BY dept",
            "--network", "devnet", "--devnet-dir", str(root), "--rows", str(ROWS)])
        assert out.exit_code == 0, out.output
        assert "verified and settled" in out.output and "committee malicious" in out.output
    finally:
        devnet_down(root)
    for p in state.by_role("data"):  # the audit logs, read after shutdown
        con = sqlite3.connect(f"file:{root / 'nodes' / p.name / 'node.db'}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT action, outcome, dataset_id FROM audit").fetchall()
        finally:
            con.close()
        assert any(a == "read_columns" for a, _, _ in rows)  # the queries that ran
        # the refused query: voted on (refused at data-1), never read, never dealt
        assert not [r for r in rows if r[0] == "read_columns" and r[2] in tight]
        asked = [o for a, o, d in rows if a == "request" and d in tight]
        assert asked == (["refused"] if p.name == "data-1" else ["ok"])
