"""A data node's on-chain tasks survive a restart (issue 12: "restarted nodes resume from
their stored state"): the store's ``chain_tasks`` table, its migration from a store made
before it, the agent resuming a task it voted on, and the chain watch of the poll loops."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from metisnet.chain.tasks import TaskState
from metisnet.errors import StorageError
from metisnet.node.agents import DataNodeAgent, Decision
from metisnet.node.compute import ChainWatch
from metisnet.node.datanode import DataNode
from metisnet.node.localnet import LocalNetwork
from metisnet.node.storage import SCHEMA_VERSION, ChainTaskRecord, Store
from metisnet.node.taskspec import TaskSpec
from metisnet.types import TaskId

SEED, KEY = bytes(range(32)), bytes(range(32, 64))


def _record(task_id: int = 7) -> ChainTaskRecord:
    return ChainTaskRecord(task_id, '{"x":1}', b"\x11" * 32, "0xabc", True, "", "",
                           ("t-1", "t-2"), SEED, KEY)


def test_chain_task_round_trip_and_closing_erases_the_secrets(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.db")
    store.put_chain_task(_record())
    store.put_chain_task(_record(8))
    store.update_chain_task(7, owner_votes=frozenset({b"\x01" * 32}), voted=True)
    store.update_chain_task(7, revealed=True, dealt=frozenset({1, 2}))
    store.close()
    store = Store(tmp_path / "node.db")  # a restart reads what was written
    assert (tmp_path / "node.db").stat().st_mode & 0o777 == 0o600  # it holds the seeds
    got = store.get_chain_task(7)
    assert got is not None
    assert (got.spec_json, got.spec_hash, got.local_ids, got.seed, got.deal_key) == (
        '{"x":1}', b"\x11" * 32, ("t-1", "t-2"), SEED, KEY)
    assert got.owner_votes == {b"\x01" * 32} and got.voted and got.revealed
    assert got.dealt == {1, 2} and not got.closed
    assert SEED.hex() not in repr(got) and KEY.hex() not in repr(got)
    assert [r.task_id for r in store.open_chain_tasks()] == [7, 8]
    store.put_chain_task(ChainTaskRecord(7, "{}", b"\x22" * 32, "0xdef", False, "", "",
                                         (), KEY, SEED))  # the first record is kept
    assert store.get_chain_task(7) == got
    store.update_chain_task(7, closed=True)
    closed = store.get_chain_task(7)
    assert closed is not None and closed.closed and closed.seed == b"" == closed.deal_key
    assert [r.task_id for r in store.open_chain_tasks()] == [8]
    with pytest.raises(StorageError):
        store.update_chain_task(99, voted=True)
    store.close()


def test_a_store_made_before_the_table_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)  # the layout of version 0: no chain_tasks, user_version 0
    db.executescript("""
        CREATE TABLE nonces (address TEXT NOT NULL, nonce TEXT NOT NULL, ts INTEGER NOT NULL,
                             PRIMARY KEY (address, nonce));
        INSERT INTO nonces VALUES ('0xa', 'n1', 5);
    """)
    db.commit()
    db.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION == 1
    assert not store.use_nonce("0xa", "n1", 5, keep_after=0)  # old rows kept
    store.put_chain_task(_record())
    assert store.get_chain_task(7) is not None
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 9")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="schema version 9"):
        Store(path)


def _restart(agent: DataNodeAgent) -> DataNodeAgent:
    """The data node's process dies and starts again from its config and store."""
    cfg, registrar = agent.node.config, agent.node.registrar
    agent.node.close()
    return DataNodeAgent(DataNode(cfg, registrar=registrar), agent.contracts, agent.sessions)


def test_a_data_node_restarted_after_voting_resumes_the_task(tmp_path: Path) -> None:
    net = LocalNetwork(tmp_path, rows=[120, 90, 150], compute_nodes=4)
    try:
        me = net.requester_account.address
        spec = TaskSpec.new("mean", [(d, ["age"]) for d in net.dataset_ids], [me], 10**16)
        handed: list[str] = []
        victim = net.data[0].me

        def deliver(owner: str, task_id: int, s: TaskSpec) -> Decision:
            handed.append(owner.lower())
            decision = net.deliver(owner, task_id, s)
            if owner.lower() == victim:
                old = net.data[0]
                old.poll()  # it votes (its seed commitment is on chain)
                assert old.tasks[task_id].voted
                commit = net.contracts.tasks.commitment_of(TaskId(task_id), old.address)
                assert commit != b"\0" * 32
                net.data[0] = _restart(old)
                assert net.data[0].resumed == [task_id]
            return decision

        req = net.requester()
        req.deliver = deliver
        res = req.run(spec)
        assert res.state == TaskState.SETTLED, res.verdict
        assert handed.count(victim) == 1  # nothing handed again after the restart
        union = np.concatenate(list(net.columns.values()))
        assert res.values is not None and abs(res.values[0] - union.mean()) < 1e-3
        tasks = net.contracts.tasks
        assert tasks.has_revealed(TaskId(res.task_id), net.data[0].address)
        net.pump()  # the resumed agent sees the task settled
        node = net.data[0].node
        assert all(r.state == "done" for r in node.store.list_tasks())
        assert node.store.open_chain_tasks() == []
    finally:
        net.close()


def test_a_round_dealt_again_after_a_restart_sends_the_same_shares(tmp_path: Path) -> None:
    net = LocalNetwork(tmp_path, rows=[50, 50, 50], compute_nodes=3)
    try:
        agent = net.data[0]
        spec = TaskSpec.new("mean", [(d, ["age"]) for d in net.dataset_ids],
                            [net.requester_account.address], 10**16)
        task_id, _ = net.requester().submit(spec)  # hands the spec to every data node
        before = [agent._deal_rng(agent.tasks[task_id], task_id, r).key() for r in (1, 2)]
        again = _restart(agent)
        net.data[0] = again
        after = [again._deal_rng(again.tasks[task_id], task_id, r).key() for r in (1, 2)]
        assert before == after and before[0] != before[1]
    finally:
        net.close()


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_chain_watch_says_once_when_the_chain_stops_and_when_it_is_back(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    log = logging.getLogger("test.chainwatch")
    watch = ChainWatch(log, interval_s=0.1, stall_s=5.0, max_backoff_s=2.0, clock=clock,
                       wall=lambda: 0.0)
    with caplog.at_level(logging.DEBUG, logger="test.chainwatch"):
        assert watch.end() == 0.1 and not watch.down
        watch.begin()  # a poll that hangs (anvil stopped)
        clock.t += 3.0
        watch.check()
        assert not watch.down
        clock.t += 3.0
        watch.check()
        watch.check()
        assert watch.down
        waits = []
        for _ in range(6):  # then calls fail: backoff, no new warning
            watch.begin()
            clock.t += 1.0
            waits.append(watch.end(TimeoutError("read timed out")))
        assert waits == sorted(waits) and waits[-1] == 2.0 and waits[0] > 0.1
        watch.begin()
        assert watch.end() == 0.1 and not watch.down
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("chain unresponsive since 23:59:54 UTC")
    assert warnings[1] == "chain back after 12.0 s"
    assert watch.events == [("down", 100.0), ("back", 12.0)]
