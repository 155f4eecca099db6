"""The on-chain side of a task: data-node and compute-node agents.

An agent follows the task manager contract and acts for its node, one step per
:meth:`poll` (called in a loop by the node process, or round-robin by a single-process
network). It never blocks on the network: secure sessions run in worker threads, and
``poll`` only sends transactions and starts or reaps workers. The task lifecycle is
DESIGN.md §7:

* :class:`DataNodeAgent` receives a task spec from the requester (:meth:`submit`), checks
  it against the chain (same spec hash, same requester) and its owners' policies
  (:meth:`metisnet.node.datanode.DataNode.request_spec`), then votes (as the owner of each
  named dataset it holds, and as a validator when drawn into the task's validator set)
  with a commitment to a fresh random seed; reveals the seed once the task is approved;
  and when the committee has acknowledged, sends the spec and its secret-shared inputs to
  the committee (:func:`metisnet.node.session.contribute_inputs`). A refused spec is voted
  down and no share ever leaves the node. Each accepted task is written to the node's
  store before the node votes (spec, decision, vote seed, dealing key) and its progress
  after each step (:class:`~metisnet.node.storage.ChainTaskRecord`): a restarted node
  reloads its unfinished tasks and goes on from the chain state (votes it has not cast,
  reveals its stored seed, deals, closes the local records of ended tasks), with no help
  from the requester. Its dealings draw their randomness from the stored dealing key, one
  stream per round, so a round dealt again after a restart sends the same shares (the
  committee never sees two different dealings); an SQL or he dealing, whose messages are
  not all derived from that key, is not sent twice: the round is left to fail and the
  requester draws a fresh committee.
* :class:`ComputeAgent` acknowledges committees it was drawn into and, once the task
  runs, joins the session: it takes the spec from every data node, checks its hash
  against the chain, and runs the program (:func:`metisnet.node.session.run_committee`),
  signing its malicious-mode claims with its node key
  (:class:`~metisnet.node.claims.NodeSigner`). If the session ends early, it reports why
  to the receivers, with the signed claims it holds, so that a proven cheater is slashed.

Session layout from the chain alone: the committee (``task.committee``), the data nodes
(the on-chain owners of ``task.datasets``, in that order, each once; one input per
dataset) and ``task.receivers``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_hash.auto import keccak

from metisnet.chain.deploy import Contracts
from metisnet.chain.draw import seed_commitment
from metisnet.chain.tasks import TaskInfo, TaskState
from metisnet.crypto.prg import Csprng
from metisnet.errors import (
    MetisError,
    PolicyViolation,
    ProtocolError,
    TransactionReverted,
    ValidationError,
)
from metisnet.mpc.evidence import Signer
from metisnet.net.channel import Channel
from metisnet.node import outsource_task, sql_task
from metisnet.node.claims import NodeSigner
from metisnet.node.datanode import DataNode
from metisnet.node.programs import get_program
from metisnet.node.session import (
    SessionLayout,
    contribute_inputs,
    report_abort,
    run_committee,
    session_id,
    session_label,
)
from metisnet.node.storage import ChainTaskRecord
from metisnet.node.taskspec import TaskSpec, parse_spec
from metisnet.types import DatasetId, TaskId

__all__ = [
    "ComputeAgent",
    "DataNodeAgent",
    "Decision",
    "SessionOpener",
    "layout_for",
]

log = logging.getLogger("metisnet.agent")

_OPEN = (TaskState.SUBMITTED, TaskState.APPROVED, TaskState.COMMITTEE_DRAWN,
         TaskState.RUNNING)


#: Opens this node's channel in session ``sid`` among ``members`` (in party order).
SessionOpener = Callable[[bytes, Sequence[str]], Channel]


@dataclass(frozen=True)
class Decision:
    """A data node's answer to a submitted spec."""

    approve: bool
    reason: str = ""
    rule: str = ""


def layout_for(task: TaskInfo, owner_of: Callable[[bytes], str]) -> SessionLayout:
    """The session layout of ``task``, derived from chain state only."""
    owners = [owner_of(d).lower() for d in task.datasets]
    nodes = list(dict.fromkeys(owners))
    return SessionLayout(
        committee=tuple(c.lower() for c in task.committee),
        data_nodes=tuple(nodes),
        receivers=tuple(r.lower() for r in task.receivers),
        inputs_per_node=tuple(owners.count(n) for n in nodes),
    )


def _advance(tasks: dict[int, Any], step: Callable[[int, Any], None],
             errors: list[tuple[int, BaseException]]) -> None:
    """One step of every open task; a refused step is logged and kept, never raised."""
    for task_id, t in list(tasks.items()):
        if t.closed:
            continue
        try:
            step(task_id, t)
        except MetisError as exc:
            log.warning("task %d: %s", task_id, exc)
            errors.append((task_id, exc))


class _Worker:
    """A session worker thread and its outcome."""

    def __init__(self, name: str, fn: Callable[[], Any]) -> None:
        self.error: BaseException | None = None
        self.result: Any = None

        def run() -> None:
            try:
                self.result = fn()
            except BaseException as exc:  # kept and reported by the agent
                self.error = exc

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


@dataclass
class _DataTask:
    spec: TaskSpec
    requester: str
    decision: Decision
    local_ids: list[str] = field(default_factory=list)
    seed: bytes = b""
    deal_key: bytes = b""
    owner_votes: set[bytes] = field(default_factory=set)
    voted: bool = False
    revealed: bool = False
    contributed: set[int] = field(default_factory=set)
    #: rounds dealt (or started) before this process: sent again only if derivable
    dealt_before: set[int] = field(default_factory=set)
    worker: _Worker | None = None
    earlier: list[_Worker] = field(default_factory=list)
    closed: bool = False


class DataNodeAgent:
    """A data node's part in tasks (see the module docstring)."""

    def __init__(self, node: DataNode, contracts: Contracts, sessions: SessionOpener) -> None:
        self.node = node
        self.contracts = contracts
        self.sessions = sessions
        self.address = str(contracts.tasks.sender)  # checksummed, for contract calls
        self.me = self.address.lower()
        self.tasks: dict[int, _DataTask] = {}
        self.errors: list[tuple[int, BaseException]] = []
        self.resumed = self._resume()

    # -- restart ----------------------------------------------------------------------------
    def _resume(self) -> list[int]:
        """Reload the unfinished tasks of an earlier run from the store; their ids."""
        out = []
        for rec in self.node.store.open_chain_tasks():
            try:
                spec = parse_spec(rec.spec_json)
            except MetisError as exc:
                log.warning("task %d: stored spec unreadable, not resumed: %s",
                            rec.task_id, exc)
                continue
            if spec.hash != rec.spec_hash or len(rec.seed) != 32 or len(rec.deal_key) != 32:
                log.warning("task %d: stored record inconsistent, not resumed", rec.task_id)
                continue
            self.tasks[rec.task_id] = _DataTask(
                spec, rec.requester, Decision(rec.approve, rec.reason, rec.rule),
                list(rec.local_ids), seed=rec.seed, deal_key=rec.deal_key,
                owner_votes=set(rec.owner_votes), voted=rec.voted, revealed=rec.revealed,
                dealt_before=set(rec.dealt))
            out.append(rec.task_id)
        if out:
            log.info("resumed %d unfinished task(s) from the store: %s", len(out), out)
        return out

    # -- from the requester -------------------------------------------------------------
    def submit(self, task_id: int, spec: TaskSpec | dict[str, Any] | str) -> Decision:
        """Take a spec for on-chain task ``task_id``; check it and decide the vote."""
        spec = spec if isinstance(spec, TaskSpec) else parse_spec(spec)
        if task_id in self.tasks:
            return self.tasks[task_id].decision
        info = self.contracts.tasks.get_task(TaskId(task_id))  # raises ChainError if unknown
        if info.spec_hash != spec.hash:
            raise ValidationError("the spec does not match the task's spec hash on chain")
        named = {bytes(d) for d in info.datasets}
        if {bytes.fromhex(i.dataset[2:]) for i in spec.inputs} != named:
            raise ValidationError("the spec's inputs differ from the task's datasets")
        if {r.lower() for r in spec.receivers} != {r.lower() for r in info.receivers}:
            raise ValidationError("the spec's receivers differ from the task's receivers")
        if spec.mode == "he":  # refuses unknown programs, parameters and keys
            outsource_task.he_task(spec)
        else:
            get_program(spec.program, spec.params)
        try:
            records = self.node.request_spec(info.requester, spec)
            decision = Decision(True)
            local = [r.id for r in records]
        except PolicyViolation as exc:
            decision = Decision(False, str(exc), exc.rule)
            local = []
        t = _DataTask(spec, info.requester.lower(), decision, local,
                      seed=secrets.token_bytes(32), deal_key=secrets.token_bytes(32))
        # stored before any vote: a restarted node reveals the seed it committed to
        self.node.store.put_chain_task(ChainTaskRecord(
            task_id, spec.canonical().decode(), spec.hash, t.requester, decision.approve,
            decision.reason, decision.rule, tuple(local), t.seed, t.deal_key))
        self.tasks[task_id] = t
        log.info("task %d: %s", task_id, "approve" if decision.approve else "refuse")
        return decision

    # -- the loop -------------------------------------------------------------------------
    def poll(self) -> None:
        """Advance every open task by what its chain state allows."""
        _advance(self.tasks, self._step, self.errors)

    def _step(self, task_id: int, t: _DataTask) -> None:
        tm = self.contracts.tasks
        info = tm.get_task(TaskId(task_id))
        store = self.node.store
        if info.state == TaskState.SUBMITTED and not t.voted:
            if len(t.seed) != 32:
                raise ProtocolError("no stored vote seed for this task")
            commit = seed_commitment(t.seed, self.address)
            for d in info.datasets:
                if bytes(d) in t.owner_votes:
                    continue
                if self.contracts.datasets.owner_of(d).lower() == self.me:
                    _once(lambda d=d: tm.vote_dataset(TaskId(task_id), d,  # type: ignore[misc]
                                                      t.decision.approve, commit))
                t.owner_votes.add(bytes(d))
                store.update_chain_task(task_id, owner_votes=frozenset(t.owner_votes))
            if tm.validator_weight(TaskId(task_id), self.address) > 0:
                _once(lambda: tm.vote(TaskId(task_id), t.decision.approve, commit))
            t.voted = True
            store.update_chain_task(task_id, voted=True)
        elif info.state == TaskState.APPROVED and t.voted and not t.revealed:
            if tm.commitment_of(TaskId(task_id), self.address) != b"\0" * 32 and \
                    not tm.has_revealed(TaskId(task_id), self.address):
                tm.reveal(TaskId(task_id), t.seed)
            t.revealed = True
            store.update_chain_task(task_id, revealed=True)
        elif info.state == TaskState.RUNNING and info.round not in t.contributed:
            if t.worker is not None and not t.worker.done:
                # an earlier round's sharing, still waiting on a lost committee member:
                # the restarted task's fresh committee must not wait for it
                t.earlier.append(t.worker)
            t.contributed.add(info.round)
            if info.round in t.dealt_before and not self._derivable(t.spec):
                log.warning("task %d: round %d may have been dealt before the restart; "
                            "an %s dealing is not sent twice", task_id, info.round,
                            "sql" if t.spec.mode != "he" else "he")
            else:
                store.update_chain_task(task_id, dealt=frozenset(t.dealt_before
                                                                  | t.contributed))
                t.worker = _Worker(f"share-{task_id}",
                                   lambda: self._contribute(task_id, info, t))
        elif info.state not in _OPEN:
            self._close(task_id, t, info.state)
        if t.worker is not None and t.worker.done and t.worker.error is not None:
            log.warning("task %d: sharing failed: %s", task_id, t.worker.error)
            self.errors.append((task_id, t.worker.error))
            t.worker = None
        for w in [w for w in t.earlier if w.done]:
            t.earlier.remove(w)
            if w.error is not None:
                self.errors.append((task_id, w.error))

    @staticmethod
    def _derivable(spec: TaskSpec) -> bool:
        """Whether every message of this spec's dealing comes from the dealing key."""
        return spec.mode != "he" and spec.program != sql_task.SQL_PROGRAM

    @staticmethod
    def _deal_rng(t: _DataTask, task_id: int, round_: int) -> Csprng:
        """This round's dealing randomness: the same after a restart, fresh per round (a
        new committee never gets shares of the same sharing)."""
        if len(t.deal_key) != 32:
            raise ProtocolError("no stored dealing key for this task")
        return Csprng(hashlib.sha256(b"metisnet/dealing/v1" + t.deal_key
                                     + task_id.to_bytes(32, "big")
                                     + round_.to_bytes(32, "big")).digest())

    def _contribute(self, task_id: int, info: TaskInfo, t: _DataTask) -> None:
        rng = self._deal_rng(t, task_id, info.round)
        if t.spec.program == sql_task.SQL_PROGRAM:  # whole tables, its own session protocol
            layout = layout_for(info, lambda d: self.contracts.datasets.owner_of(DatasetId(d)))
            channel = self.sessions(session_id(task_id, info.round), layout.members)
            return sql_task.contribute(channel, layout, self.me, t.spec, self.node, t.local_ids,
                                       rng=rng)
        columns = []
        for inp, local_id in zip(self._held_inputs(t.spec), t.local_ids, strict=True):
            cols = self.node.read_columns(local_id, inp.columns[:1])
            columns.append(np.asarray(cols[inp.columns[0]], dtype=np.float64))
        for local in t.local_ids:
            if self.node.get_task(local).state == "approved":
                self.node.set_task_state(local, "running")
        if t.spec.mode == "he":
            he = outsource_task.outsource_layout(
                info, lambda d: self.contracts.datasets.owner_of(DatasetId(d)))
            channel = self.sessions(session_id(task_id, info.round), he.members)
            outsource_task.contribute(channel, he, self.me, t.spec, columns,
                                      outsource_task.attempt_id(task_id, info.round),
                                      self.contracts.tasks.account)
            return
        layout = layout_for(info, lambda d: self.contracts.datasets.owner_of(DatasetId(d)))
        channel = self.sessions(session_id(task_id, info.round), layout.members)
        spec_bytes = np.frombuffer(t.spec.canonical(), dtype=np.uint8)
        for i in range(len(layout.committee)):
            channel.send(i, "spec", spec_bytes)
        contribute_inputs(channel, layout, columns, rng=rng,
                          split=get_program(t.spec.program, t.spec.params).split_inputs)

    def _held_inputs(self, spec: TaskSpec) -> list[Any]:
        return [i for i in spec.inputs if self.node.store.get_dataset(i.dataset.lower())]

    def _close(self, task_id: int, t: _DataTask, state: TaskState) -> None:
        t.closed = True
        try:
            self.node.store.update_chain_task(task_id, closed=True)  # erases seed and key
        except MetisError as exc:
            log.warning("task %d: stored record: %s", task_id, exc)
        final = "done" if state == TaskState.SETTLED else "failed"
        for local in t.local_ids:
            try:
                if self.node.get_task(local).state in ("approved", "running"):
                    self.node.set_task_state(local, final, reason=state.name.lower())
            except MetisError as exc:
                log.warning("task %d: local state: %s", task_id, exc)


def _once(send: Callable[[], object]) -> None:
    """Send a vote; one the chain already holds (cast before a restart) counts as sent."""
    try:
        send()
    except TransactionReverted as exc:
        if "already voted" not in f"{exc.reason} {exc}":
            raise
        log.info("vote already on chain (cast before a restart)")


@dataclass
class _ComputeTask:
    acked_rounds: set[int] = field(default_factory=set)
    started_rounds: set[int] = field(default_factory=set)
    worker: _Worker | None = None
    closed: bool = False


class ComputeAgent:
    """A compute node's part in tasks (see the module docstring)."""

    def __init__(self, contracts: Contracts, sessions: SessionOpener, *,
                 signer: Signer | None = None, accept: Callable[[int], bool] | None = None,
                 spec_timeout: float = 60.0,
                 on_spec: Callable[[int, TaskSpec], None] | None = None) -> None:
        self.contracts = contracts
        self.sessions = sessions
        self.signer = signer
        self.address = str(contracts.tasks.sender)  # checksummed, for contract calls
        self.me = self.address.lower()
        self.accept = accept or (lambda task_id: True)
        self.spec_timeout = spec_timeout
        #: called with each task's spec once its hash matched the chain (e.g. to pin the
        #: spec's receivers before the outputs go to them)
        self.on_spec = on_spec
        #: the he path's evaluation (None: verify.outsource.evaluate; tests inject cheats)
        self.he_evaluate: outsource_task.Evaluate | None = None
        #: the signer of one session's claims, from its committee (default: the node key,
        #: :class:`~metisnet.node.claims.NodeSigner`); ``signer`` overrides it
        self.make_signer: Callable[[Sequence[str]], Signer | None] = self._node_signer
        self.tasks: dict[int, _ComputeTask] = {}
        self.errors: list[tuple[int, BaseException]] = []
        self.completed: list[int] = []
        self._next_id = 1

    def poll(self) -> None:
        tm = self.contracts.tasks
        count = tm.task_count()
        while self._next_id <= count:
            self.tasks.setdefault(self._next_id, _ComputeTask())
            self._next_id += 1
        _advance(self.tasks, self._step, self.errors)

    def _step(self, task_id: int, t: _ComputeTask) -> None:
        tm = self.contracts.tasks
        info = tm.get_task(TaskId(task_id))
        if info.state not in _OPEN:
            t.closed = True
            return
        mine = self.me in {c.lower() for c in info.committee}
        if info.state == TaskState.COMMITTEE_DRAWN and mine and info.round not in t.acked_rounds:
            if self.accept(task_id) and not tm.has_acknowledged(TaskId(task_id), self.address):
                tm.acknowledge(TaskId(task_id))
                t.acked_rounds.add(info.round)
        elif info.state == TaskState.RUNNING and mine and info.round not in t.started_rounds:
            t.started_rounds.add(info.round)
            t.worker = _Worker(f"mpc-{task_id}", lambda: self._run(task_id, info))
        if t.worker is not None and t.worker.done:
            if t.worker.error is not None:
                log.warning("task %d: session failed: %s", task_id, t.worker.error)
                self.errors.append((task_id, t.worker.error))
            else:
                self.completed.append(task_id)
            t.worker = None

    def _run(self, task_id: int, info: TaskInfo) -> Any:
        if info.committee_size == 1:  # only he tasks are outsourced to one node
            he = outsource_task.outsource_layout(
                info, lambda d: self.contracts.datasets.owner_of(DatasetId(d)))
            hook = self.on_spec
            return outsource_task.serve(
                self.sessions(session_id(task_id, info.round), he.members), he,
                info.spec_hash, self.contracts.tasks.account, evaluate_fn=self.he_evaluate,
                parse=parse_spec, timeout=self.spec_timeout,
                on_spec=None if hook is None else (lambda spec: hook(task_id, spec)))
        layout = layout_for(info, lambda d: self.contracts.datasets.owner_of(DatasetId(d)))
        channel = self.sessions(session_id(task_id, info.round), layout.members)
        signer = self.signer if self.signer is not None else self.make_signer(layout.committee)
        label = session_label(task_id, info.round)
        try:
            spec: TaskSpec | None = None
            for node in layout.data_nodes:
                raw = channel.recv(layout.index(node), "spec", self.spec_timeout)
                if raw.dtype != np.uint8 or keccak(raw.tobytes()) != info.spec_hash:
                    raise ProtocolError(f"data node {node} sent a spec that is not the task's")
                if spec is None:
                    spec = parse_spec(raw.tobytes())
                    if self.on_spec is not None:
                        self.on_spec(task_id, spec)
            if spec is None:  # pragma: no cover - a layout always has a data node
                raise ProtocolError("no spec received")
            program = get_program(spec.program, spec.params)
        except Exception as exc:  # the receivers learn why this member stopped
            report_abort(channel, layout, exc, signer, label)
            raise
        return run_committee(channel, layout, program, security=spec.security,
                             signer=signer, label=label)

    def _node_signer(self, committee: Sequence[str]) -> Signer | None:
        """Signs this member's claims with its node key (checks peers against
        ``committee``); ``None`` (unsigned claims) if the contracts hold no key."""
        account = self.contracts.tasks.account
        key = getattr(account, "key", None)
        return None if key is None else NodeSigner(bytes(key), committee)
