"""A read-only network explorer: nodes, stakes, datasets, tasks and verdicts, from the chain.

:class:`ChainView` reads the three contracts of one deployment (no account needed, nothing is
ever sent), scans their events incrementally (:mod:`metisnet.api.explorer_events`: each
task's stage history with blocks, committees per round, acknowledgements, payouts,
slashings; every registered dataset) and remembers when it first saw each task in each stage
(sub-second, its own clock), which gives the task latencies, the time spent per stage and
the throughput series the page charts. :func:`create_explorer_app` serves JSON under
``/api/`` and one static page at ``/`` (:mod:`metisnet.api.explorer_page`: vanilla
JavaScript and inline SVG; no build step, no external assets). Only what the chain holds is
shown: addresses, roles, stakes, dataset owners, policy and schema hashes and row counts,
task stages, committees, votes, result commitments and payouts; a dataset's rows never
reach the explorer.

:class:`Watcher` polls the chain on a thread so that short stages are recorded even when no
page is open; without it the view refreshes on each request.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from metisnet import __version__
from metisnet.api.explorer_events import EventLog, TaskEvents
from metisnet.api.explorer_page import PAGE
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
    """What polls of one task's state saw: when each stage was first seen (wall clock)."""

    stages: dict[str, float] = field(default_factory=dict)
    state: TaskState = TaskState.NONE
    datasets: tuple[str, ...] = ()
    rows: int = 0
    #: already final when the view first refreshed: the polls say nothing of its timing
    late: bool = False


#: bucket widths (seconds) the throughput series chooses from, ~40 buckets over its span
_BUCKETS = (5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
_MIN_POINTS, _MAX_POINTS = 24, 120


class ChainView:
    """What the explorer knows: the chain's contracts, their events, the stage times it saw.

    ``dataset_ids`` are datasets to list before their registration event has been read (every
    dataset registered on chain is listed once the event log is scanned, and every dataset a
    task names as well).
    """

    def __init__(self, contracts: Contracts, *, dataset_ids: list[str] | None = None,
                 clock: Any = time.time) -> None:
        self.contracts = contracts
        self._clock = clock
        self._lock = threading.RLock()
        self._seen: dict[int, _Seen] = {}
        self._datasets: dict[str, None] = dict.fromkeys(
            (d.lower() if d.startswith("0x") else "0x" + d.lower()) for d in dataset_ids or [])
        self._rows: dict[str, int] = {}
        self._stakes: dict[str, tuple[int, float]] = {}
        self._final: dict[int, TaskInfo] = {}
        self._initial: int | None = None  # tasks on chain at the first refresh
        chain = contracts.registry.chain
        self.events = EventLog(chain.w3, contracts.tasks.address, contracts.datasets.address,
                               lock=getattr(chain, "lock", None))  # the chain connection's lock
        self._refreshed = 0.0

    # ------------------------------------------------------------------ polling
    def refresh(self) -> None:
        """Scan new events; read the state of every task not yet final; note new stages."""
        with self._lock:
            self._scan()
            tm = self.contracts.tasks
            now = self._clock()
            count = tm.task_count()
            if self._initial is None:
                self._initial = count
            for i in range(1, count + 1):
                seen = self._seen.setdefault(i, _Seen())
                if seen.state in _TERMINAL:
                    continue
                info = tm.get_task(TaskId(i))
                if not seen.stages:
                    self._first_sight(seen, info)
                self._observe(seen, info.state, now)
            self._refreshed = now

    def maybe_refresh(self, max_age: float = 0.5) -> None:
        if self._clock() - self._refreshed >= max_age:
            self.refresh()

    def _scan(self) -> None:
        self.events.scan()
        for d in self.events.datasets:
            self._datasets.setdefault(d, None)

    def _first_sight(self, seen: _Seen, info: TaskInfo) -> None:
        seen.datasets = tuple(_hex(d) for d in info.datasets)
        for d in seen.datasets:
            self._datasets.setdefault(d, None)
        seen.rows = sum(self._row_count(d) for d in seen.datasets)
        # final before this view first looked: when it finished is unknown to its clock (a
        # task created since, and final by its first poll, finished within that poll)
        seen.late = info.state in _TERMINAL and (
            self._initial is None or int(info.task_id) <= self._initial)

    @staticmethod
    def _observe(seen: _Seen, state: TaskState, now: float) -> None:
        seen.state = state
        seen.stages.setdefault(stage_name(state), now)

    def _row_count(self, dataset: str) -> int:
        if dataset not in self._rows:
            info = self.contracts.datasets.get_dataset(DatasetId(bytes.fromhex(dataset[2:])))
            self._rows[dataset] = info.row_count if info is not None else 0
        return self._rows[dataset]

    # ------------------------------------------------------------------ reads
    def nodes(self) -> list[dict[str, Any]]:
        """Every registered node: role, stake, endpoint, and what it did (public data only)."""
        reg = self.contracts.registry
        owned: dict[str, int] = {}
        for d in self.datasets():
            owned[d["owner"].lower()] = owned.get(d["owner"].lower(), 0) + 1
        served: dict[str, int] = {}
        slashed: dict[str, int] = {}
        with self._lock:
            for ev in self.events.tasks.values():
                for member in {m.lower() for c in ev.committees for m in c}:
                    served[member] = served.get(member, 0) + 1
                for s in ev.slashed:
                    key = s["member"].lower()
                    slashed[key] = slashed.get(key, 0) + int(s["amount_wei"])
        out = []
        for role in (Role.DATA, Role.COMPUTE):
            for addr, stake in reg.nodes(role):
                info = reg.get_node(addr)
                key = str(addr).lower()
                out.append({
                    "address": addr, "role": role.name.lower(), "stake_wei": str(int(stake)),
                    "stake_eth": int(stake) / 1e18,
                    "endpoint": info.endpoint if info else "",
                    "capacity": info.capacity if info else 0,
                    "unbonding_wei": str(int(info.unbonding)) if info else "0",
                    "datasets_owned": owned.get(key, 0),
                    "committees_served": served.get(key, 0),
                    "slashed_wei": str(slashed.get(key, 0)),
                })
        return out

    def datasets(self) -> list[dict[str, Any]]:
        """Every known dataset's registry entry: owner, policy hash, rows; never its data."""
        with self._lock:
            ids = list(self._datasets)
            used: dict[str, list[int]] = {}
            for tid, seen in sorted(self._seen.items()):
                for d in seen.datasets:
                    used.setdefault(d, []).append(tid)
        reg = self.contracts.registry
        owners: dict[str, tuple[str, float]] = {}
        out = []
        for d in ids:
            info = self.contracts.datasets.get_dataset(DatasetId(bytes.fromhex(d[2:])))
            if info is None:
                continue
            if info.owner not in owners:
                node = reg.get_node(info.owner)
                owners[info.owner] = ((node.role.name.lower(), int(node.stake) / 1e18)
                                      if node else ("unregistered", 0.0))
            role, stake = owners[info.owner]
            out.append({
                "dataset_id": d, "owner": info.owner, "owner_role": role,
                "owner_stake_eth": stake, "policy_hash": _hex(info.policy_hash),
                "schema_hash": _hex(info.schema_hash),
                "data_commitment": _hex(info.data_commitment), "rows": info.row_count,
                "revoked": info.revoked, "version": info.version,
                "tasks": used.get(d, []),
            })
        return out

    def tasks(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            count = self.contracts.tasks.task_count()
        first = max(1, count - limit + 1)
        return [self.task(i, payouts=False) for i in range(count, first - 1, -1)]

    def live(self) -> dict[str, Any] | None:
        """The task the live view follows: the newest still in flight, else the newest."""
        tm = self.contracts.tasks
        count = tm.task_count()
        if count == 0:
            return None
        with self._lock:
            for i in range(count, max(0, count - 20), -1):  # the 20 newest tasks
                seen = self._seen.get(i)
                if seen is not None and seen.state in _TERMINAL:
                    continue  # final tasks never change again
                if tm.state(TaskId(i)) not in _TERMINAL:
                    return self.task(i, extras=False)
        return self.task(count, extras=False)

    def task(self, task_id: int, *, payouts: bool = True, extras: bool = True
             ) -> dict[str, Any]:
        """One task: stage, history, committee, votes, verdict.

        With ``payouts``: its payouts, slashings, verdicts and committee members; with
        ``extras`` as well: its validator set and the credits (all tasks) of its accounts,
        which take a chain call per account (the live view leaves them out).
        """
        if task_id < 1:
            raise ValidationError("task ids start at 1")
        info = self._final.get(task_id)
        if info is None:
            try:
                info = self.contracts.tasks.get_task(TaskId(task_id))
            except ChainError:
                raise ValidationError(f"no task {task_id}") from None
            if info.state in _TERMINAL:  # a final task's record never changes again
                self._final[task_id] = info
        with self._lock:
            if payouts:
                self._scan()  # incremental: the blocks mined since the last scan
            seen = self._seen.get(task_id)
            if seen is not None and seen.state not in _TERMINAL:  # a fresher observation
                self._observe(seen, info.state, self._clock())
            if seen is not None and not seen.datasets:
                self._first_sight(seen, info)
            ev = self.events.tasks.get(task_id)
            doc = self._summary(info, seen, ev)
            if payouts:
                if self.events.error:
                    doc["payouts"] = [{"error": self.events.error}]
                else:
                    doc["payouts"] = list(ev.payouts) if ev else []
                doc["slashed"] = list(ev.slashed) if ev else []
                doc["verdicts"] = list(ev.verdicts) if ev else []
                doc["closed_reason"] = ev.closed_reason if ev else ""
        if payouts:
            doc["members"] = self._members(info, ev)
        if payouts and extras:
            doc["validators"] = [str(v) for v in
                                 self.contracts.tasks.validators(TaskId(task_id))]
            doc["credits"] = self._credits(info)
        return doc

    def _members(self, info: TaskInfo, ev: TaskEvents | None) -> list[dict[str, Any]]:
        """The current committee: whether each acknowledged (events, else a call), stake."""
        acked: set[str] | None = None
        if not self.events.error and ev is not None and len(ev.acks) == info.round + 1:
            acked = ev.acks[-1]
        out = []
        for m in info.committee:
            ack = (str(m).lower() in acked if acked is not None
                   else self.contracts.tasks.has_acknowledged(info.task_id, m))
            out.append({"address": str(m), "acknowledged": ack,
                        "stake_eth": self._stake(str(m)) / 1e18})
        return out

    def _stake(self, node: str, max_age: float = 5.0) -> int:
        """A node's stake, read at most every ``max_age`` seconds (it changes rarely)."""
        now = self._clock()
        cached = self._stakes.get(node)
        if cached is None or now - cached[1] > max_age:
            cached = (int(self.contracts.registry.stake_of(node)), now)
            self._stakes[node] = cached
        return cached[0]

    def _summary(self, info: TaskInfo, seen: _Seen | None,
                 ev: TaskEvents | None) -> dict[str, Any]:
        stage = stage_name(info.state)
        stages = dict(seen.stages) if seen else {}
        history = list(ev.history) if ev else []
        if history:  # what the chain's events say happened, in order
            passed = list(dict.fromkeys(h["stage"] for h in history))
        else:  # inferred: a task is past every stage before the one it is in
            reached = STAGES.index(stage) if stage in STAGES else -1
            passed = list(STAGES[:reached + 1]) if reached >= 0 else ["submitted", stage]
        latency, source = _latency(info.state, seen, ev)
        return {
            "task_id": int(info.task_id), "stage": stage, "passed": passed,
            "history": history, "observed": stages, "stage_s": _durations(stages),
            "requester": info.requester, "fee_wei": str(int(info.fee)),
            "datasets": [_hex(d) for d in info.datasets], "rows": seen.rows if seen else None,
            "receivers": list(info.receivers),
            "committee": list(info.committee), "committee_size": info.committee_size,
            "acks": info.acks, "round": info.round,
            "votes": {"approve_wei": str(int(info.approve_weight)),
                      "reject_wei": str(int(info.reject_weight)),
                      "validator_total_wei": str(int(info.validator_total)),
                      "owner_approvals": info.owner_approvals, "reveals": info.reveals},
            "verdict": _VERDICTS.get(info.state),
            "result_commitment": (None if info.result_commitment == _ZERO32
                                  else _hex(info.result_commitment)),
            "spec_hash": _hex(info.spec_hash), "latency_s": latency,
            "latency_source": source,
        }

    def _credits(self, info: TaskInfo) -> dict[str, str]:
        """Credit not yet withdrawn (all tasks) of the task's committee, owners, requester."""
        accounts = [*info.committee, info.requester]
        for d in info.datasets:
            owner = self.contracts.datasets.owner_of(d)
            if owner not in accounts:
                accounts.append(owner)
        return {str(a): str(int(self.contracts.tasks.credits(a))) for a in accounts}

    def stats(self, bucket: int | None = None) -> dict[str, Any]:
        """Finished tasks (latency, time per stage, rows) and throughput over time.

        ``series`` counts the tasks that finished in each ``bucket_s``-second bucket of the
        explorer's clock (chosen for ~40 buckets over the span when ``bucket`` is None) and
        gives rates per minute (see :func:`_series`): tasks settled, tasks failed or
        rejected, and the input rows of the settled tasks (the registered row counts of the
        datasets they named). Bytes moved are not on chain and are not charted. A task
        already final when the explorer first saw it is listed (with its latency in chain
        time and its closing block) but not placed on the time axis.
        """
        with self._lock:
            now = self._clock()
            done: list[dict[str, Any]] = []
            for tid, seen in sorted(self._seen.items()):
                if seen.state not in _TERMINAL:
                    continue
                ev = self.events.tasks.get(tid)
                # on the explorer's clock only when it saw the task finish: chain time can
                # be moved (anvil's evm_increaseTime, the embedded chain's time travel)
                end = None if seen.late else seen.stages.get(stage_name(seen.state))
                closed = ev.history[-1] if ev is not None and ev.history else None
                latency, source = _latency(seen.state, seen, ev)
                done.append({"task_id": tid, "stage": stage_name(seen.state),
                             "finished_at": end, "closed_block": closed and closed["block"],
                             "closed_chain_time": closed and closed["time"],
                             "latency_s": latency,
                             "latency_source": source,
                             "stage_s": {} if seen.late else _durations(seen.stages),
                             "rows": seen.rows})
            count = self.contracts.tasks.task_count()
            running = sum(1 for s in self._seen.values()
                          if s.state not in _TERMINAL and s.state != TaskState.NONE)
        ends = [float(d["finished_at"]) for d in done if d["finished_at"] is not None]
        span = (max(ends) - min(ends)) if len(ends) > 1 else 0.0
        per_min = (len(ends) - 1) / span * 60 if span > 0 else None
        return {"finished": done, "tasks_per_minute": per_min, "task_count": count,
                "in_flight": running, "now": now, **_series(done, now, bucket),
                "events_error": self.events.error}


def _latency(state: TaskState, seen: _Seen | None,
             ev: TaskEvents | None) -> tuple[float | None, str | None]:
    """A final task's latency: from the polls that saw it (sub-second), else block times."""
    if state not in _TERMINAL:
        return None, None
    if seen is not None and not seen.late and len(seen.stages) > 1:
        stage = stage_name(state)
        if stage in seen.stages:
            return seen.stages[stage] - min(seen.stages.values()), "observed"
    chain = ev.chain_latency() if ev is not None else None
    return (chain, "chain") if chain is not None else (None, None)


def _durations(stages: dict[str, float]) -> dict[str, float]:
    """Seconds from each observed stage to the next one observed (the last has none)."""
    items = sorted(stages.items(), key=lambda kv: kv[1])
    return {a: round(tb - ta, 3) for (a, ta), (_, tb) in itertools.pairwise(items)}


def _series(done: list[dict[str, Any]], now: float, bucket: int | None) -> dict[str, Any]:
    """Finished tasks counted per time bucket, with per-minute rates over a trailing window.

    The axis runs to ``now`` and spans at least :data:`_MIN_POINTS` buckets (so one task is
    one bar, not the whole chart), at most :data:`_MAX_POINTS` (the most recent). A bucket's
    rates count the tasks that finished in the ``window_s`` seconds (one minute, or the
    bucket if longer) up to the bucket's end, so they read as "per minute" whatever the
    bucket width.
    """
    ends = [(float(d["finished_at"]), d) for d in done if d["finished_at"] is not None]
    first = min((e for e, _ in ends), default=now)
    if bucket is None:
        bucket = next((b for b in _BUCKETS if b * 40 >= now - first), _BUCKETS[-1])
    window = max(60, bucket)
    stop = math.floor(max(now, first) / bucket) * bucket + bucket  # end of the last bucket
    start = min(math.floor(first / bucket) * bucket, stop - _MIN_POINTS * bucket)
    start = max(start, stop - _MAX_POINTS * bucket)
    points: list[dict[str, float]] = []
    for t in range(int(start), int(stop), bucket):
        p: dict[str, float] = {"t": t, "settled": 0, "failed": 0, "rows": 0,
                               "tasks_per_min": 0.0, "failed_per_min": 0.0,
                               "rows_per_min": 0.0}
        for end, d in ends:
            ok = d["stage"] == "settled"
            if t <= end < t + bucket:
                p["settled" if ok else "failed"] += 1
                p["rows"] += int(d["rows"] or 0) if ok else 0
            if t + bucket - window <= end < t + bucket:
                p["tasks_per_min" if ok else "failed_per_min"] += 60 / window
                p["rows_per_min"] += int(d["rows"] or 0) * 60 / window if ok else 0
        points.append(p)
    return {"bucket_s": bucket, "window_s": window, "series": points}


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

    @app.get("/api/live")
    def live(task: int | None = None) -> dict[str, Any]:
        """The task a live view follows: ``task``, else the newest in flight, else the
        newest, or null; without the validator set and credits (a few chain reads only)."""
        fresh()
        if task is None:
            return {"task": view.live()}
        try:
            return {"task": view.task(task, extras=False)}
        except ValidationError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/stats")
    def stats(bucket: int | None = None) -> dict[str, Any]:
        if bucket is not None and not 1 <= bucket <= 86400:
            raise HTTPException(422, "bucket must be between 1 and 86400 seconds")
        fresh()
        return view.stats(bucket)

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
