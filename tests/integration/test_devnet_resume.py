"""Issue 12, "restarted nodes resume from their stored state", over real processes.

A data node's process is killed (SIGKILL) right after it voted on a task (its seed
commitment is on chain; it has neither revealed nor dealt yet) and started again from its
config, keys and SQLite store. The requester hands nothing to it again: the node reloads
the task from its store, reveals the seed it committed to, deals its inputs to the
committee, and the task settles with the plaintext mean; the node then closes its record
(the vote seed and dealing key are erased) and its local task record ends ``done``.

Then the chain node is stopped (SIGSTOP) for a few seconds: every node's poll loop says
once "chain unresponsive since ..." and, once it is continued, "chain back after N s".
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from metisnet.chain.anvil import find_anvil
from metisnet.chain.tasks import TaskState
from metisnet.errors import ChainError
from metisnet.node.agents import Decision
from metisnet.node.devnet import (
    DevnetRequester,
    devnet_down,
    devnet_up,
    restart_node,
    stop_node,
)
from metisnet.node.localnet import synthetic_column
from metisnet.node.taskspec import TaskSpec
from metisnet.types import TaskId

pytestmark = pytest.mark.integration

FEE = 10**16


def _wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_data_node_killed_after_voting_resumes_the_task(tmp_path: Path) -> None:
    try:
        find_anvil()
    except ChainError as exc:
        pytest.fail(f"{exc} (run scripts/install-anvil.sh)")
    root = tmp_path / "devnet"
    state, started = devnet_up(root, rows=300)
    assert started
    try:
        with DevnetRequester(state, session_timeout=20.0) as dr:
            spec = dr.spec("mean", [(d, ["age"]) for d in state.datasets], FEE)
            victim = state.by_role("data")[0]
            tasks = dr.contracts.tasks
            handed: list[str] = []

            def deliver(owner: str, task_id: int, s: TaskSpec) -> Decision:
                handed.append(owner.lower())
                decision = dr.deliver(owner, task_id, s)
                if owner.lower() == victim.address.lower():
                    # the others have no spec yet: the task cannot be approved before
                    # the kill, so the victim has voted but neither revealed nor dealt
                    _wait("the victim's vote", lambda: tasks.commitment_of(
                        TaskId(task_id), victim.address) != b"\0" * 32)
                    assert tasks.get_task(TaskId(task_id)).state == TaskState.SUBMITTED
                    assert not tasks.has_revealed(TaskId(task_id), victim.address)
                    stop_node(root, victim.name)  # SIGKILL
                    restart_node(root, victim.name)
                return decision

            req = dr.requester(timeout=120, ack_wait=10.0)
            req.deliver = deliver
            res = req.run(spec)
            assert handed.count(victim.address.lower()) == 1  # nothing handed again
            assert res.state == TaskState.SETTLED, res.verdict
            assert tasks.has_revealed(TaskId(res.task_id), victim.address)
            union = np.concatenate([synthetic_column(m["seed"], m["rows"])
                                    for m in state.datasets.values()])
            assert res.values is not None and abs(res.values[0] - union.mean()) < 1e-3
            db = root / "nodes" / victim.name / "node.db"

            def closed() -> bool:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    row = con.execute("SELECT closed, seed, deal_key FROM chain_tasks "
                                      "WHERE task_id = ?", (res.task_id,)).fetchone()
                    local = [r[0] for r in con.execute("SELECT state FROM tasks")]
                finally:
                    con.close()
                return row == (1, None, None) and local == ["done"] * len(local) != []

            _wait("the victim to close its task record", closed, timeout=30.0)
            log = Path(victim.log).read_text(encoding="utf-8")
            assert "resumed 1 unfinished task(s) from the store" in log
            assert "chain unresponsive" not in log
        nodes = state.by_role("data") + state.by_role("compute")
        chain = state.by_role("chain")[0]
        os.kill(chain.pid, signal.SIGSTOP)  # the anvil this test started
        try:
            time.sleep(6.5)  # over the 3 s stall + 1 s idle probe + 0.5 s watchdog tick
        finally:
            os.kill(chain.pid, signal.SIGCONT)

        def said(text: str) -> bool:
            return all(Path(p.log).read_text(encoding="utf-8").count(text) == 1
                       for p in nodes)

        _wait("every node to say the chain is back", lambda: said("chain back after"), 30.0)
        assert said("chain unresponsive since")
    finally:
        devnet_down(root)
