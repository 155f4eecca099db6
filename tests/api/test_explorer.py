"""The explorer's JSON routes over a whole network in one process (embedded chain)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metisnet.api.explorer import STAGES, ChainView, create_explorer_app
from metisnet.node.localnet import LocalNetwork
from metisnet.node.taskspec import TaskSpec

FEE = 10**16
# what the explorer shows of a node and of a dataset: public chain data, never a row
NODE_KEYS = {"address", "role", "stake_wei", "stake_eth", "endpoint", "capacity",
             "unbonding_wei", "datasets_owned", "committees_served", "slashed_wei"}
DATASET_KEYS = {"dataset_id", "owner", "owner_role", "owner_stake_eth", "policy_hash",
                "schema_hash", "data_commitment", "rows", "revoked", "version", "tasks"}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork(tmp_path_factory.mktemp("explorer"), rows=[200, 150, 250])
    yield network
    network.close()


def _run(net: LocalNetwork, view: ChainView, live: list[str] | None = None) -> int:
    """Run a mean task, refreshing the view at every pump (as the watcher thread would).

    With ``live``, read ``/api/live`` at every pump too and note each new stage it shows.
    """
    pump = net.pump
    client = TestClient(create_explorer_app(view, refresh_on_read=False))

    def pump_and_watch() -> None:
        pump()
        view.refresh()
        if live is not None:
            task = client.get("/api/live").json()["task"]
            if task is not None and (not live or live[-1] != task["stage"]):
                live.append(task["stage"])

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
    assert all(set(n) == NODE_KEYS for n in nodes)

    assert client.get("/api/tasks").json() == []
    assert client.get("/api/live").json() == {"task": None}
    live: list[str] = []
    task_id = _run(net, view, live)
    # the live route followed the running task through its stages (a pump advances every
    # agent by a step, so some stages pass within one pump), then shows its verdict
    assert live == [s for s in STAGES if s in live] and len(live) >= 2, live
    assert "settled" not in live, live  # the verdict is posted after the last pump
    final = client.get("/api/live").json()["task"]
    assert final["task_id"] == task_id and final["stage"] == "settled"
    assert "credits" not in final and final["members"] and final["payouts"]
    assert client.get(f"/api/live?task={task_id}").json()["task"]["history"] == \
        final["history"]
    assert client.get("/api/live?task=99").status_code == 404

    # every dataset the task named is listed now, with owner and policy hash, never data
    datasets = client.get("/api/datasets").json()
    assert {d["dataset_id"] for d in datasets} == {d.lower() for d in net.dataset_ids}
    data_nodes = {a.me for a in net.data}
    rows = {d.lower(): n for d, n in zip(net.dataset_ids, [200, 150, 250], strict=True)}
    for d in datasets:
        assert d["owner"].lower() in data_nodes
        assert d["owner_role"] == "data" and d["owner_stake_eth"] > 0
        assert d["policy_hash"].startswith("0x") and len(d["policy_hash"]) == 66
        assert d["rows"] == rows[d["dataset_id"]] and d["tasks"] == [task_id]
        assert set(d) == DATASET_KEYS
    nodes = {n["address"].lower(): n for n in client.get("/api/nodes").json()}
    assert sorted(n["datasets_owned"] for n in nodes.values() if n["role"] == "data") \
        == [1, 1, 1]

    (listed,) = client.get("/api/tasks").json()
    assert listed["task_id"] == task_id and listed["stage"] == "settled"
    detail = client.get(f"/api/tasks/{task_id}").json()
    assert detail["verdict"] == "verified"
    assert detail["passed"] == list(STAGES)
    # the chain's events: every stage once, in order, at non-decreasing blocks
    history = detail["history"]
    assert [h["stage"] for h in history] == list(STAGES)
    blocks = [h["block"] for h in history]
    assert blocks == sorted(blocks) and len(set(blocks)) == len(blocks)
    assert history[2]["round"] == 0
    assert detail["rows"] == sum(rows.values())
    members = detail["members"]
    assert [m["address"] for m in members] == detail["committee"]
    assert all(m["acknowledged"] and m["stake_eth"] > 0 for m in members)
    assert all(nodes[m.lower()]["committees_served"] == 1 for m in detail["committee"])
    assert detail["verdicts"] == [{"receiver": net.requester_account.address,
                                   "success": True}]
    assert detail["slashed"] == [] and detail["closed_reason"] == "settled"
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
    assert stats["task_count"] == 1 and stats["in_flight"] == 0
    (done,) = stats["finished"]
    assert done["latency_source"] == "observed" and done["rows"] == sum(rows.values())
    assert set(done["stage_s"]) == set(observed[:-1])
    assert abs(sum(done["stage_s"].values()) - done["latency_s"]) < 0.01
    # throughput over time: one settled task, in the bucket of its finishing time
    series = client.get("/api/stats?bucket=60").json()["series"]
    assert sum(p["settled"] for p in series) == 1 and sum(p["failed"] for p in series) == 0
    (hit,) = [p for p in series if p["settled"]]
    assert hit["t"] <= done["finished_at"] < hit["t"] + 60
    assert hit["tasks_per_min"] == 1.0 and hit["rows_per_min"] == sum(rows.values())
    assert [p["t"] for p in series] == [series[0]["t"] + 60 * k for k in range(len(series))]
    assert len(series) >= 24 and series[-1]["t"] <= time.time() < series[-1]["t"] + 60
    assert client.get("/api/stats?bucket=0").status_code == 422

    # a view started after the task knows it from the chain's events: every dataset
    # (registration events), the stage history and a latency from block times
    late = TestClient(create_explorer_app(ChainView(net.contracts)))
    assert {d["dataset_id"] for d in late.get("/api/datasets").json()} == set(rows)
    late_detail = late.get(f"/api/tasks/{task_id}").json()
    assert late_detail["history"] == history and late_detail["payouts"] == detail["payouts"]
    (late_done,) = late.get("/api/stats").json()["finished"]
    assert late_done["latency_source"] == "chain" and late_done["latency_s"] >= 0
    assert late_done["finished_at"] is None  # not on this view's clock
    assert late_done["closed_chain_time"] == history[-1]["time"]
    assert late_done["closed_block"] == history[-1]["block"]

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


def test_throughput_series_buckets_and_trailing_rates() -> None:
    from metisnet.api.explorer import _series

    done = [{"stage": "settled", "finished_at": 1000.0, "rows": 100},
            {"stage": "settled", "finished_at": 1004.0, "rows": 50},
            {"stage": "failed", "finished_at": 1031.0, "rows": 70},
            {"stage": "settled", "finished_at": None, "rows": 9}]  # never seen finishing
    out = _series(done, now=1100.0, bucket=10)
    assert out["bucket_s"] == 10 and out["window_s"] == 60
    pts = {int(p["t"]): p for p in out["series"]}
    assert out["series"][-1]["t"] == 1100 and len(out["series"]) >= 24
    assert pts[1000]["settled"] == 2 and pts[1000]["rows"] == 150
    assert pts[1030]["failed"] == 1 and pts[1030]["rows"] == 0  # a failed task processed none
    # rates: what finished in the minute up to each bucket's end, per minute
    assert pts[1030]["tasks_per_min"] == 2 and pts[1030]["failed_per_min"] == 1
    assert pts[1030]["rows_per_min"] == 150
    assert pts[1060]["tasks_per_min"] == 0 and pts[1060]["failed_per_min"] == 1
    assert pts[1090]["failed_per_min"] == 0
    assert sum(p["settled"] for p in out["series"]) == 2
    # the bucket chosen for the span: ~40 buckets; an empty history still has an axis
    assert _series(done, now=1000.0 + 3600, bucket=None)["bucket_s"] == 120
    empty = _series([], now=500.0, bucket=None)
    assert empty["bucket_s"] == 5 and len(empty["series"]) == 24
    assert all(p["tasks_per_min"] == 0 for p in empty["series"])


def test_a_refused_task_and_a_redrawn_committee_as_the_explorer_shows_them(
        tmp_path: Path) -> None:
    """The unhappy paths: a refusal (rejected, refund) and a no-show (redraw, slashing)."""
    from collections.abc import Callable

    from metisnet.node.agents import ComputeAgent
    from metisnet.node.policy import Policy
    from metisnet.types import TaskId

    only_sum = Policy(allowed_programs=("sum",), allowed_columns=("*",),
                      allowed_requesters=("*",))
    net = LocalNetwork(tmp_path, rows=40, policy=only_sum, compute_nodes=5)
    view = ChainView(net.contracts)
    view.refresh()  # the explorer starts before the tasks, as its watcher would
    pump = net.pump

    def pump_and_watch() -> None:  # as the watcher thread would
        pump()
        view.refresh()

    net.pump = pump_and_watch  # type: ignore[method-assign]
    try:
        client = TestClient(create_explorer_app(view))
        me = net.requester_account.address
        inputs = [(d, ["age"]) for d in net.dataset_ids]
        refused = net.requester().run(TaskSpec.new("mean", inputs, [me], FEE))
        assert refused.verdict == "rejected"
        doc = client.get(f"/api/tasks/{refused.task_id}").json()
        assert doc["stage"] == "rejected" and doc["verdict"] == "rejected"
        assert doc["passed"] == ["submitted", "rejected"] and doc["committee"] == []
        assert doc["payouts"] == [{"account": me, "amount_wei": str(FEE)}]  # the refund
        assert doc["closed_reason"] and doc["members"] == []

        first: dict[int, str] = {}

        def refuse_if_first_drawn(agent: ComputeAgent) -> Callable[[int], bool]:
            def accept(task_id: int) -> bool:
                info = net.contracts.tasks.get_task(TaskId(task_id))
                if info.round == 0:
                    first.setdefault(task_id, info.committee[0].lower())
                return agent.me != first.get(task_id)
            return accept

        for agent in net.compute:
            agent.accept = refuse_if_first_drawn(agent)
        res = net.requester(ack_wait=0.5).run(
            TaskSpec.new("sum", inputs, [me], FEE, security="semi-honest"))
        assert res.verdict == "verified" and res.redraws == 1
        doc = client.get(f"/api/tasks/{res.task_id}").json()
        lazy = first[res.task_id]
        drawn = [h for h in doc["history"] if h["stage"] == "committee drawn"]
        assert [h["round"] for h in drawn] == [0, 1] and doc["round"] == 1
        assert doc["passed"] == list(STAGES)
        assert [s["member"].lower() for s in doc["slashed"]] == [lazy]
        assert lazy not in {m["address"].lower() for m in doc["members"]}
        assert all(m["acknowledged"] for m in doc["members"])  # the second round's acks
        nodes = {n["address"].lower(): n for n in client.get("/api/nodes").json()}
        assert int(nodes[lazy]["slashed_wei"]) == int(doc["slashed"][0]["amount_wei"]) > 0
        assert nodes[lazy]["committees_served"] == 1  # drawn once, replaced

        stats = client.get("/api/stats?bucket=60").json()
        assert [f["stage"] for f in stats["finished"]] == ["rejected", "settled"]
        assert sum(p["failed"] for p in stats["series"]) == 1
        assert sum(p["settled"] for p in stats["series"]) == 1
        assert sum(p["rows"] for p in stats["series"]) == 3 * 40  # the refused task's: none
    finally:
        del net.pump
        net.close()


def test_every_explorer_route_fuzzed_without_a_server_error(net: LocalNetwork) -> None:
    """schemathesis over the explorer's own OpenAPI schema: valid and malformed queries and
    path ids (huge, negative, non-numeric) to every route give a 2xx or a 4xx, never a 5xx.
    Bounded: a few examples per route and mode."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation.modes import GenerationMode

    app = create_explorer_app(ChainView(net.contracts))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/nodes", "/api/datasets", "/api/tasks",
                                              "/api/tasks/{task_id}", "/api/live",
                                              "/api/stats"}
    seen: dict[int, int] = {}
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=8, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case: object) -> None:
                response = case.call()  # type: ignore[attr-defined]
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                assert response.status_code < 500, (case, response.text[:300])

            try:
                run()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise  # only a route without inputs has no malformed cases
    assert any(200 <= code < 300 for code in seen), seen
    assert any(400 <= code < 500 for code in seen), seen
