"""Fault injection over the multi-process devnet (issue 12): a committee member killed.

The in-process harness (:mod:`metisnet.node.chaos`) covers the fault kinds quickly; this
module checks the one that matters most against real processes: a compute node process
killed (SIGKILL) while its committee runs a task. The requester's session times out, it
restarts the task with a fresh committee (``TaskManager.restart``) and the task
completes; nobody is slashed; every data node keeps its datasets and an intact audit log
(read from its SQLite file after the devnet stops).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from pathlib import Path

import numpy as np

from metisnet.chain.tasks import TaskState
from metisnet.errors import MetisError
from metisnet.node.chaos import COMPLETED, FAILED_CLEANLY, ScenarioResult
from metisnet.node.devnet import DevnetRequester, DevnetState, devnet_down, devnet_up
from metisnet.node.localnet import synthetic_column
from metisnet.node.storage import Store
from metisnet.types import TaskId

__all__ = ["devnet_kill_scenario"]

log = logging.getLogger("metisnet.chaos")

FEE = 10**16


def _stakes(dr: DevnetRequester, state: DevnetState) -> dict[str, int]:
    return {p.address.lower(): int(dr.contracts.registry.stake_of(p.address))
            for p in state.procs if p.role in ("data", "compute")}


def _data_intact(root: Path, state: DevnetState) -> list[str]:
    """After shutdown: every data node's dataset is there and its audit chain verifies."""
    problems = []
    for p in state.by_role("data"):
        db = root / "nodes" / p.name / "node.db"
        try:
            store = Store(db)
        except MetisError as exc:
            problems.append(f"{p.name}: store unreadable: {exc}")
            continue
        try:
            store.verify_audit_chain()
            mine = {d for d, m in state.datasets.items() if m["node"].lower()
                    == p.address.lower()}
            have = {r.id for r in store.list_datasets()}
            if not mine <= have:
                problems.append(f"{p.name}: datasets missing: {sorted(mine - have)}")
            for r in store.list_datasets():
                if not (root / "nodes" / p.name / "datasets" / r.file_name).is_file():
                    problems.append(f"{p.name}: sealed file of {r.id} missing")
        except MetisError as exc:
            problems.append(f"{p.name}: {exc}")
        finally:
            store.close()
    return problems


def devnet_kill_scenario(root: Path, *, seed: int = 0, rows: int = 500,
                         session_timeout: float = 15.0) -> ScenarioResult:
    """Start a devnet of 6 compute nodes, kill a committee member mid-task, judge the end."""
    rng = random.Random(seed)
    res = ScenarioResult(0, "devnet_compute_killed", COMPLETED)
    t0 = time.perf_counter()
    state, started = devnet_up(root, rows=rows, compute_nodes=6)
    if not started:
        raise MetisError(f"a devnet already runs in {root}; the scenario needs its own")
    killed: dict[str, str] = {}
    try:
        with DevnetRequester(state, account_index=5, session_timeout=session_timeout) as dr:
            tm = dr.contracts.tasks
            stakes = _stakes(dr, state)
            escrow, credit = int(tm.escrow_total()), int(tm.credits(dr.address))
            pids = {p.address.lower(): p.pid for p in state.by_role("compute")}

            def progress(task_id: int, stage: str) -> None:
                if stage != "computing" or killed:
                    return
                info = tm.get_task(TaskId(task_id))
                victim = info.committee[rng.randrange(len(info.committee))].lower()
                os.kill(pids[victim], signal.SIGKILL)  # a devnet process this run started
                killed["address"] = victim
                res.faults_injected = 1

            spec = dr.spec("mean", [(d, ["age"]) for d in state.datasets], FEE)
            result = dr.requester(timeout=120, ack_wait=2.0, progress=progress).run(spec)
            info = tm.get_task(TaskId(result.task_id))
            res.state, res.verdict = info.state.name, result.verdict
            res.redraws, res.restarts = result.redraws, result.restarts
            union = np.concatenate([synthetic_column(m["seed"], m["rows"])
                                    for m in state.datasets.values()])
            released = int(tm.escrow_total()) == escrow
            if (info.state == TaskState.SETTLED and result.values is not None and released
                    and abs(float(result.values[0]) - float(union.mean())) < 1e-3):
                res.outcome = COMPLETED
            elif info.state in (TaskState.FAILED, TaskState.REJECTED) and released and \
                    int(tm.credits(dr.address)) - credit >= FEE:
                res.outcome = FAILED_CLEANLY
            if killed and not result.restarts:
                res.problems.append("the killed member's task was not restarted")
            for node, stake in _stakes(dr, state).items():
                if stake < stakes[node]:
                    if node == killed.get("address"):
                        res.faulty_slashed += 1
                    else:
                        res.honest_slashed += 1
                        res.problems.append(f"honest node {node} was slashed")
    finally:
        devnet_down(root)
    lost = _data_intact(root, state)
    res.data_lost = len(lost)
    res.problems.extend(lost)
    res.seconds = time.perf_counter() - t0
    return res
