"""SQL through the task flow on a local network: each query is a task (spec with the query,
policy check at every data node, votes, committee draw, the committee runs the compiled plan,
the receiver opens the result), checked against DuckDB on the plaintext union.

Also: a query a data node's policy refuses is rejected on chain and opens no session (no
share moves); an unsupported query is refused by the client before any task exists.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from metisnet.chain.tasks import TaskState
from metisnet.errors import PolicyViolation, ValidationError
from metisnet.node.localnet import LocalNetwork
from metisnet.node.policy import Policy
from metisnet.node.session import InMemorySessions, session_id
from metisnet.sdk import Client, Table
from metisnet.types import TaskId

GEN = np.random.default_rng(5)  # plaintext test data only
REGIONS = ["north", "south", "east", "west"]
DOMAINS: dict[str, Any] = {"region": REGIONS, "dept": [1, 2, 3, 4]}


def _people(n: int, ids: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "region": GEN.choice(REGIONS[:3], n),
                         "dept": GEN.integers(1, 5, n), "age": GEN.integers(18, 80, n),
                         "income": np.round(GEN.normal(50, 12, n), 2)})


IDS = GEN.permutation(500)[:60]
PEOPLE = [_people(20, IDS[:20]), _people(25, IDS[20:45]), _people(15, IDS[45:])]
OIDS = np.concatenate([GEN.choice(IDS, 30, replace=True), 900 + np.arange(6)])  # ids repeat
ORDERS = [pd.DataFrame({"id": part, "spend": np.round(GEN.uniform(0, 100, len(part)), 2)})
          for part in np.array_split(OIDS, 3)]
OPEN = Policy(allowed_programs=("sql",), allowed_columns=("*",), allowed_requesters=("*",))


def _csv(df: pd.DataFrame) -> io.BytesIO:
    return io.BytesIO(df.to_csv(index=False).encode())


def _add(net: LocalNetwork, parts: list[pd.DataFrame], name: str,
         policies: list[Policy] | None = None) -> tuple[str, ...]:
    ids = []
    for i, (agent, part) in enumerate(zip(net.data, parts, strict=True)):
        rec = agent.node.add_dataset(_csv(part), owner=agent.address, name=f"{name}-{i}",
                                     policy=(policies or [OPEN] * 3)[i])
        ids.append(rec.id)
    return tuple(ids)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork(tmp_path_factory.mktemp("sqlnet"), rows=[10, 10, 10])
    yield network
    network.close()


@pytest.fixture(scope="module")
def client(net: LocalNetwork) -> Client:
    people = _add(net, PEOPLE, "people")
    orders = _add(net, ORDERS, "orders")
    cols = {"id": None, "region": REGIONS, "dept": DOMAINS["dept"], "age": None,
            "income": None}
    return Client(net, {"people": Table(people, cols),
                        "orders": Table(orders, {"id": None, "spend": None})})


def _duck(query: str) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("people", pd.concat(PEOPLE, ignore_index=True))
    con.register("orders", pd.concat(ORDERS, ignore_index=True))
    return con.execute(query).df()


def _same(query: str, got: pd.DataFrame, want: pd.DataFrame) -> None:
    def rows(df: pd.DataFrame) -> list[list[Any]]:
        out = [[None if isinstance(v, float) and math.isnan(v) else v for v in r]
               for r in df.itertuples(index=False, name=None)]
        return out if "ORDER BY" in query else sorted(out, key=str)
    g, w = rows(got), rows(want)
    assert len(g) == len(w), f"{query}: {g} vs {w}"
    for rg, rw in zip(g, w, strict=True):
        for a, b in zip(rg, rw, strict=True):
            if isinstance(b, str) or a is None or b is None:
                assert a == b, f"{query}: {rg} vs {rw}"
            else:
                assert math.isclose(float(a), float(b), rel_tol=1e-4, abs_tol=5e-3), \
                    f"{query}: {rg} vs {rw}"


QUERIES = [
    ("SELECT region, COUNT(*), AVG(income) FROM people GROUP BY region ORDER BY region",
     "malicious"),
    ("SELECT COUNT(*), SUM(income), MIN(age), MAX(age), STDDEV(income) FROM people "
     "WHERE age > 30 AND region <> 'east'", "malicious"),
    ("SELECT dept, COUNT(DISTINCT region) FROM people GROUP BY dept HAVING COUNT(*) > 10",
     "malicious"),
    # one-to-many: several orders per person
    ("SELECT region, SUM(spend), COUNT(*) FROM people JOIN orders ON people.id = orders.id "
     "GROUP BY region", "semi-honest"),
    ("SELECT age, COUNT(*) FROM people WHERE income > 50 GROUP BY age", "semi-honest"),
    # two joins on one key; people on two sides (each of its data nodes deals it twice)
    ("SELECT p.region, COUNT(*), SUM(o.spend), MAX(q.age) FROM people AS p JOIN orders AS o "
     "ON p.id = o.id JOIN people AS q ON q.id = o.id GROUP BY p.region", "semi-honest"),
]


@pytest.mark.parametrize(("query", "security"), QUERIES)
def test_sql_tasks_match_duckdb(net: LocalNetwork, client: Client, query: str,
                                security: str) -> None:
    if "JOIN" in query:
        assert pd.concat(ORDERS)["id"].duplicated().any()  # a one-to-many join
    got = client.sql(query, security=security)
    _same(query, got, _duck(query))
    info = net.contracts.tasks.get_task(TaskId(got.attrs["task_id"]))
    assert info.state == TaskState.SETTLED
    assert client.last.verified and len(got.attrs["committee"]) == 3
    assert "present" in got.attrs["released"]


def test_only_the_asked_aggregates_reach_the_receiver(client: Client) -> None:
    q = "SELECT region, AVG(income) FROM people GROUP BY region"
    got = client.sql(q, k=18)
    want = _duck("SELECT region, AVG(income) FROM people GROUP BY region "
                 "HAVING COUNT(*) >= 18")
    _same(q, got, want)
    values = client.last.values  # what the receiver opened: a flag and the AVG per group
    assert values.shape == (len(REGIONS), 2)
    assert set(np.unique(values[:, 0])) <= {0.0, 1.0}


def _record_sessions(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    opened: list[bytes] = []
    real = InMemorySessions.open

    def spy(self: InMemorySessions, node: str, sid: bytes, members: Any) -> Any:
        opened.append(sid)
        return real(self, node, sid, members)

    monkeypatch.setattr(InMemorySessions, "open", spy)
    return opened


def test_a_policy_breaking_query_moves_no_share(net: LocalNetwork, client: Client,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    strict = Policy(allowed_programs=("sql",), allowed_columns=("region", "age"),
                    allowed_requesters=("*",), min_group_size=5)
    tight = _add(net, PEOPLE, "tight", [OPEN, strict, OPEN])
    c = Client(net, {"tight": Table(tight, client.tables["people"].columns)})
    opened = _record_sessions(monkeypatch)
    before = net.contracts.tasks.task_count()
    for q, k, why in [("SELECT region, AVG(income) FROM tight GROUP BY region", 5, "income"),
                      ("SELECT region, AVG(age) FROM tight GROUP BY region", 1, "at least 5")]:
        with pytest.raises(PolicyViolation, match="no share moved") as err:
            c.sql(q, k=k)
        assert why in str(err.value)
        task_id = c.last.task_id
        assert net.contracts.tasks.get_task(TaskId(task_id)).state == TaskState.REJECTED
        assert session_id(task_id, 1) not in opened and session_id(task_id, 0) not in opened
    assert opened == []  # no session at all: no share was dealt
    assert net.contracts.tasks.task_count() == before + 2
    for agent in net.data:  # nobody read a column for these tasks
        assert not [e for e in agent.node.store.audit(limit=1000)
                    if e.action == "read_columns" and e.dataset_id in tight]
    # the same table answers a query within the policy
    q = "SELECT region, AVG(age) FROM tight GROUP BY region"
    _same(q, c.sql(q, k=5), _duck(q.replace("tight", "people") + " HAVING COUNT(*) >= 5"))


def test_unsupported_sql_is_refused_before_any_task(net: LocalNetwork, client: Client) -> None:
    before = net.contracts.tasks.task_count()
    for q, needle in [("SELECT age FROM people", "aggregate"),
                      ("SELECT COUNT(*) FROM people WHERE age IS NULL", "IS"),
                      ("SELECT SUM(spend) FROM people JOIN orders ON people.id = orders.id",
                       "semi-honest")]:
        with pytest.raises(ValidationError, match=needle):
            client.sql(q)
    assert net.contracts.tasks.task_count() == before
    assert "estimated total" in "\n".join(client.sql("EXPLAIN SELECT COUNT(*) FROM people")
                                          ["plan"])
