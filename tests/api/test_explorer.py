"""The explorer's JSON routes over a whole network in one process (embedded chain)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metisnet.api.explorer import STAGES, ChainView, create_explorer_app
from metisnet.node.localnet import LocalNetwork
from metisnet.node.taskspec import TaskSpec

FEE = 10**16


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork(tmp_path_factory.mktemp("explorer"), rows=[200, 150, 250])
    yield network
    network.close()


def _run(net: LocalNetwork, view: ChainView) -> int:
    """Run a mean task, refreshing the view at every pump (as the watcher thread would)."""
    pump = net.pump

    def pump_and_watch() -> None:
        pump()
        view.refresh()

    net.pump = pump_and_watch  # type: ignore[method-assign]
    try:
        me = net.requester_account.address
        spec = TaskSpec.new("mean", [(d, ["age"]) for d in net.dataset_ids], [me], FEE)
        res = net.requester().run(spec)
    finally:
        del net.pump
    assert res.verdict == "verified", res.verdict
    return res.task_id


def test_routes_show_nodes_datasets_and_a_task_to_its_verdict(net: LocalNetwork) -> None:
    view = ChainView(net.contracts, dataset_ids=net.dataset_ids[:1])
    client = TestClient(create_explorer_app(view))

    nodes = client.get("/api/nodes").json()
    assert sorted(n["role"] for n in nodes) == ["compute"] * 5 + ["data"] * 3
    assert all(int(n["stake_wei"]) > 0 and n["stake_eth"] > 0 for n in nodes)

    assert client.get("/api/tasks").json() == []
    task_id = _run(net, view)

    # every dataset the task named is listed now, with owner and policy hash, never data
    datasets = client.get("/api/datasets").json()
    assert {d["dataset_id"] for d in datasets} == {d.lower() for d in net.dataset_ids}
    data_nodes = {a.me for a in net.data}
    for d in datasets:
        assert d["owner"].lower() in data_nodes
        assert d["policy_hash"].startswith("0x") and len(d["policy_hash"]) == 66
        assert set(d) == {"dataset_id", "owner", "policy_hash", "schema_hash",
                          "data_commitment", "rows", "revoked", "version"}

    (listed,) = client.get("/api/tasks").json()
    assert listed["task_id"] == task_id and listed["stage"] == "settled"
    detail = client.get(f"/api/tasks/{task_id}").json()
    assert detail["verdict"] == "verified"
    assert detail["passed"] == list(STAGES)
    observed = list(detail["observed"])  # what the polls saw, in order; it ends settled
    assert observed == [s for s in STAGES if s in observed] and observed[-1] == "settled"
    assert len(observed) >= 3
    assert len(detail["committee"]) == 3 and detail["acks"] == 3
    assert detail["result_commitment"].startswith("0x")
    paid = {p["account"].lower(): int(p["amount_wei"]) for p in detail["payouts"]}
    assert {c.lower() for c in detail["committee"]} <= set(paid)
    assert sum(paid.values()) == FEE
    assert detail["latency_s"] is not None and detail["latency_s"] >= 0
    credits = {a.lower(): int(v) for a, v in detail["credits"].items()}
    assert set(credits) >= {c.lower() for c in detail["committee"]} | data_nodes
    assert all(credits[a] >= v for a, v in paid.items() if a in credits)

    stats = client.get("/api/stats").json()
    assert [f["task_id"] for f in stats["finished"]] == [task_id]
    assert stats["task_count"] == 1

    page = client.get("/")
    assert page.status_code == 200 and "<canvas" not in page.text
    assert "setInterval(tick, 1000)" in page.text and "http" not in page.text.split(
        "<script>")[1].replace("http://www.w3.org/2000/svg", "")


def test_unknown_task_is_404_and_bad_limit_422(net: LocalNetwork, tmp_path: Path) -> None:
    client = TestClient(create_explorer_app(ChainView(net.contracts)))
    assert client.get("/api/tasks/999").status_code == 404
    assert client.get("/api/tasks/0").status_code == 404
    assert client.get("/api/tasks?limit=0").status_code == 422
    assert client.post("/api/tasks").status_code == 405  # read only


def test_cli_without_a_devnet_says_how_to_start_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from metisnet.cli import main
    from metisnet.errors import ConfigError

    res = CliRunner().invoke(main, ["explorer", "--data-dir", str(tmp_path / "none")])
    assert isinstance(res.exception, ConfigError)
    assert "metis devnet up" in str(res.exception)
    res = CliRunner().invoke(main, ["explorer", "--chain-url", "http://127.0.0.1:1"])
    assert isinstance(res.exception, ConfigError)
