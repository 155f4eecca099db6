"""A read-only network explorer: nodes, stakes, datasets, tasks and verdicts, from the chain.

:class:`ChainView` reads the three contracts of one deployment (no account needed, nothing is
ever sent) and remembers when it first saw each task in each stage, which gives the task
latencies and the throughput the page charts. :func:`create_explorer_app` serves JSON under
``/api/`` and one static page at ``/`` (vanilla JavaScript polling ``/api`` every second; no
build step, no external assets). Only what the chain holds is shown: addresses, stakes,
dataset owners and policy hashes, task stages, committees, result commitments and payouts;
a dataset's rows never reach the explorer.

:class:`Watcher` polls the chain on a thread so that short stages are recorded even when no
page is open; without it the view refreshes on each request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from web3 import Web3

from metisnet import __version__
from metisnet.api.explorer_page import PAGE
from metisnet.chain.artifacts import load_artifact
from metisnet.chain.deploy import Contracts
from metisnet.chain.registry import Role
from metisnet.chain.tasks import TaskInfo, TaskState
from metisnet.errors import ChainError, ValidationError
from metisnet.types import DatasetId, TaskId

__all__ = ["STAGES", "ChainView", "Watcher", "create_explorer_app", "serve_explorer",
           "stage_name"]

#: The stages of a successful task, in order (DESIGN.md §7).
STAGES = ("submitted", "approved", "committee drawn", "running", "settled")
_TERMINAL = {TaskState.SETTLED, TaskState.REJECTED, TaskState.FAILED}
_VERDICTS = {TaskState.SETTLED: "verified", TaskState.REJECTED: "rejected",
             TaskState.FAILED: "failed"}
_ZERO32 = b"\0" * 32


def stage_name(state: TaskState) -> str:
    """The stage shown for ``state`` ("committee drawn", not "COMMITTEE_DRAWN")."""
    return state.name.lower().replace("_", " ")


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass
class _Seen:
    """When the view first saw a task in each stage (wall clock, seconds)."""

    stages: dict[str, float] = field(default_factory=dict)
    state: TaskState = TaskState.NONE


class ChainView:
    """What the explorer knows: the chain's contracts plus the stage times it observed.

    ``dataset_ids`` are datasets to list even before a task names them (the registry keeps
    no index of its datasets; every dataset a task names is listed as well).
    """

    def __init__(self, contracts: Contracts, *, dataset_ids: list[str] | None = None,
                 clock: Any = time.time) -> None:
        self.contracts = contracts
        self._clock = clock
        self._lock = threading.RLock()
        self._seen: dict[int, _Seen] = {}
        self._datasets: dict[str, None] = dict.fromkeys(
            (d.lower() if d.startswith("0x") else "0x" + d.lower()) for d in dataset_ids or [])
        tm = contracts.tasks
        self._events = contracts.registry.chain.w3.eth.contract(
            address=Web3.to_checksum_address(tm.address),
            abi=load_artifact("TaskManager").abi).events
        self._refreshed = 0.0

    # ------------------------------------------------------------------ polling
    def refresh(self) -> None:
        """Read the state of every task not yet final; record newly seen stages."""
        with self._lock:
            tm = self.contracts.tasks
            now = self._clock()
            for i in range(1, tm.task_count() + 1):
                seen = self._seen.setdefault(i, _Seen())
                if seen.state in _TERMINAL:
                    continue
                info = tm.get_task(TaskId(i))
                if not seen.stages:
                    for d in info.datasets:
                        self._datasets.setdefault(_hex(d), None)
                seen.state = info.state
                seen.stages.setdefault(stage_name(info.state), now)
            self._refreshed = now

    def maybe_refresh(self, max_age: float = 0.5) -> None:
        if self._clock() - self._refreshed >= max_age:
            self.refresh()

    # ------------------------------------------------------------------ reads
    def nodes(self) -> list[dict[str, Any]]:
        reg = self.contracts.registry
        out = []
        for role in (Role.DATA, Role.COMPUTE):
            for addr, stake in reg.nodes(role):
                info = reg.get_node(addr)
                out.append({
                    "address": addr, "role": role.name.lower(), "stake_wei": str(int(stake)),
                    "stake_eth": int(stake) / 1e18,
                    "endpoint": info.endpoint if info else "",
                    "capacity": info.capacity if info else 0,
                    "unbonding_wei": str(int(info.unbonding)) if info else "0",
                })
        return out

    def datasets(self) -> list[dict[str, Any]]:
        with self._lock:
            ids = list(self._datasets)
        out = []
        for d in ids:
            info = self.contracts.datasets.get_dataset(DatasetId(bytes.fromhex(d[2:])))
            if info is None:
                continue
            out.append({
                "dataset_id": d, "owner": info.owner, "policy_hash": _hex(info.policy_hash),
                "schema_hash": _hex(info.schema_hash),
                "data_commitment": _hex(info.data_commitment), "rows": info.row_count,
                "revoked": info.revoked, "version": info.version,
            })
        return out

    def tasks(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            count = self.contracts.tasks.task_count()
        first = max(1, count - limit + 1)
        return [self.task(i, payouts=False) for i in range(count, first - 1, -1)]

    def task(self, task_id: int, *, payouts: bool = True) -> dict[str, Any]:
        if task_id < 1:
            raise ValidationError("task ids start at 1")
        try:
            info = self.contracts.tasks.get_task(TaskId(task_id))
        except ChainError:
            raise ValidationError(f"no task {task_id}") from None
        with self._lock:
            seen = self._seen.get(task_id)
            if seen is not None and seen.state not in _TERMINAL:  # a fresher observation
                seen.state = info.state
                seen.stages.setdefault(stage_name(info.state), self._clock())
            stages = dict(seen.stages) if seen else {}
        doc = self._summary(info, stages)
        if payouts:
            doc["payouts"] = self._payouts(task_id)
            doc["validators"] = [str(v) for v in self.contracts.tasks.validators(
                TaskId(task_id))]
            doc["credits"] = self._credits(info)
        return doc

    def _summary(self, info: TaskInfo, stages: dict[str, float]) -> dict[str, Any]:
        stage = stage_name(info.state)
        reached = STAGES.index(stage) if stage in STAGES else -1
        latency = None  # from the first stage observed (an explorer started late sees less)
        if info.state in _TERMINAL and stage in stages:
            latency = stages[stage] - min(stages.values())
        return {
            "task_id": int(info.task_id), "stage": stage,
            # a stage is passed once the task is beyond it (a poll may miss a short one)
            "passed": list(STAGES[:reached + 1]) if reached >= 0 else ["submitted"],
            "observed": stages, "requester": info.requester, "fee_wei": str(int(info.fee)),
            "datasets": [_hex(d) for d in info.datasets], "receivers": list(info.receivers),
            "committee": list(info.committee), "committee_size": info.committee_size,
            "acks": info.acks, "round": info.round,
            "votes": {"approve_wei": str(int(info.approve_weight)),
                      "reject_wei": str(int(info.reject_weight)),
                      "owner_approvals": info.owner_approvals, "reveals": info.reveals},
            "verdict": _VERDICTS.get(info.state),
            "result_commitment": (None if info.result_commitment == _ZERO32
                                  else _hex(info.result_commitment)),
            "spec_hash": _hex(info.spec_hash), "latency_s": latency,
        }

    def _credits(self, info: TaskInfo) -> dict[str, str]:
        """Credit not yet withdrawn (all tasks) of the task's committee, owners, requester."""
        accounts = [*info.committee, info.requester]
        for d in info.datasets:
            owner = self.contracts.datasets.owner_of(d)
            if owner not in accounts:
                accounts.append(owner)
        return {str(a): str(int(self.contracts.tasks.credits(a))) for a in accounts}

    def _payouts(self, task_id: int) -> list[dict[str, Any]]:
        """The task's ``Credited`` events: who was paid what (fees, refunds, penalties)."""
        try:
            logs = self._events.Credited().get_logs(
                from_block=0, argument_filters={"task_id": task_id})
        except Exception as exc:  # a node without logs still shows the task
            return [{"error": f"payouts unavailable: {type(exc).__name__}"}]
        return [{"account": str(lg["args"]["account"]),
                 "amount_wei": str(int(lg["args"]["amount"]))} for lg in logs]

    def stats(self) -> dict[str, Any]:
        """Per finished task its observed latency; tasks finished per minute."""
        with self._lock:
            done: list[dict[str, Any]] = []
            for tid, seen in sorted(self._seen.items()):
                if seen.state not in _TERMINAL:
                    continue
                end = seen.stages.get(stage_name(seen.state))
                start = min(seen.stages.values(), default=None)
                done.append({"task_id": tid, "stage": stage_name(seen.state),
                             "finished_at": end,
                             "latency_s": None if start is None or end is None
                             else end - start})
        ends = [float(d["finished_at"]) for d in done if d["finished_at"] is not None]
        span = (max(ends) - min(ends)) if len(ends) > 1 else 0.0
        per_min = (len(ends) - 1) / span * 60 if span > 0 else None
        return {"finished": done, "tasks_per_minute": per_min,
                "task_count": self.contracts.tasks.task_count()}


class Watcher:
    """Refreshes a :class:`ChainView` every ``interval`` seconds on a daemon thread."""

    def __init__(self, view: ChainView, interval: float = 0.25) -> None:
        self.view = view
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="explorer-watcher",
                                        daemon=True)
        self.last_error = ""

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.view.refresh()
                self.last_error = ""
            except Exception as exc:  # the chain may be briefly unreachable
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def create_explorer_app(view: ChainView, *, refresh_on_read: bool = True) -> FastAPI:
    """The explorer's app over ``view`` (read only: every route is a GET)."""
    app = FastAPI(title="metisnet explorer", version=__version__,
                  description="Nodes, stakes, datasets, tasks and verdicts of one metisnet "
                  "chain. Read only; never shows any dataset's data.")

    def fresh() -> None:
        if refresh_on_read:
            view.maybe_refresh()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return PAGE

    @app.get("/api/nodes")
    def nodes() -> list[dict[str, Any]]:
        return view.nodes()

    @app.get("/api/datasets")
    def datasets() -> list[dict[str, Any]]:
        fresh()
        return view.datasets()

    @app.get("/api/tasks")
    def tasks(limit: int = 50) -> list[dict[str, Any]]:
        if not 1 <= limit <= 500:
            raise HTTPException(422, "limit must be between 1 and 500")
        fresh()
        return view.tasks(limit)

    @app.get("/api/tasks/{task_id}")
    def task(task_id: int) -> dict[str, Any]:
        fresh()
        try:
            return view.task(task_id)
        except ValidationError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/stats")
    def stats() -> dict[str, Any]:
        fresh()
        return view.stats()

    return app


def serve_explorer(view: ChainView, *, host: str = "127.0.0.1", port: int = 8800,
                   interval: float = 0.25, announce: Any = None) -> None:
    """Serve the explorer until SIGINT/SIGTERM (blocking), with a :class:`Watcher`.

    uvicorn installs its own signal handlers for the run and restores the previous ones.
    """
    import uvicorn

    if host not in ("127.0.0.1", "::1", "localhost"):
        # the explorer shows only public chain data, but this build keeps to loopback
        raise ValidationError(f"the explorer listens on loopback only, not {host}")
    watcher = Watcher(view, interval).start()
    try:
        server = uvicorn.Server(uvicorn.Config(
            create_explorer_app(view, refresh_on_read=False), host=host, port=port,
            log_level="warning", access_log=False, lifespan="off", server_header=False,
            timeout_graceful_shutdown=5))
        if announce is not None:
            announce(f"http://{host}:{port}")
        server.run()
    finally:
        watcher.stop()
