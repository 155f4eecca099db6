"""The requester's side of a task: submit, drive, receive, verify, settle.

:class:`Requester` runs one task end to end as DESIGN.md §7 describes, timing each stage:

1. **consensus**: escrow the fee with the spec hash (``create_task``), hand the spec to
   the data nodes that hold the named datasets, wait for their votes and the validators',
   wait for the seed reveals and draw the committee (anyone may; the requester does), wait
   for the committee's acknowledgements (a member that never acknowledges is replaced by
   ``redraw`` after the deadline, and slashed for the no-show);
2. **sharing + computing**: join the task's session as a receiver and wait for the output
   shares (the data nodes share, the committee computes); a committee that delivers
   nothing in time (a member lost mid-task, or a session aborted by the malicious checks)
   sends what reports its members made; the requester judges them
   (:func:`metisnet.node.claims.judge`): if the signed claims prove one member cheated
   (it equivocated), the verdict names it with ``keccak(evidence)`` and it is slashed (the
   task fails, refunded; the evidence bytes are kept in :attr:`TaskResult.evidence`,
   :attr:`Requester.evidence` and, with ``evidence_dir``, a file named by the hash);
   otherwise (a pair at most, or silence) the committee is replaced by ``restart``, a
   fresh committee disjoint from it, and the task runs again (nobody slashed; bounded by
   the chain's draw rounds, then it fails with a refund);
3. **verifying**: the malicious-security checks ran inside the committee before any share
   was released; here the two copies of every output share must agree
   (:func:`metisnet.node.session.collect_output`), else the result is withheld;
4. **settling**: post the result commitment and the verdict, which pays the committee and
   the data owners, or refunds the fee.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eth_hash.auto import keccak
from numpy.typing import NDArray

from metisnet.chain.deploy import Contracts
from metisnet.chain.tasks import TaskInfo, TaskState
from metisnet.errors import (
    CheatingDetected,
    MetisError,
    NetworkError,
    PeerTimeout,
    ProtocolError,
    TransactionReverted,
    ValidationError,
)
from metisnet.node import outsource_task
from metisnet.node.agents import Decision, SessionOpener, layout_for
from metisnet.node.claims import judge
from metisnet.node.programs import get_program
from metisnet.node.session import SessionAborted, collect_output, session_id, session_label
from metisnet.node.taskspec import TaskSpec
from metisnet.types import DatasetId, TaskId, Wei

__all__ = ["Requester", "TaskResult"]

log = logging.getLogger("metisnet.requester")

#: Hands a spec to the data node with the given address; returns its decision.
Deliver = Callable[[str, int, TaskSpec], Decision]

_DONE = (TaskState.SETTLED, TaskState.REJECTED, TaskState.FAILED)


@dataclass
class TaskResult:
    """What a task came to: the value, the verdict, the stages' times and the payouts."""

    task_id: int
    spec: TaskSpec
    state: TaskState
    verdict: str
    values: NDArray[np.float64] | None = None
    committee: tuple[str, ...] = ()
    refusals: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    payouts: dict[str, int] = field(default_factory=dict)
    redraws: int = 0
    #: fresh committees drawn because a running one delivered nothing
    restarts: int = 0
    #: the public evidence of a failed verification (its keccak is posted on chain)
    evidence: bytes = b""
    #: the member slashed by this task's verdict, and the evidence hash the chain logged
    slashed: str = ""
    evidence_hash: bytes = b""
    #: why each aborted session named nobody (one entry per restart after an abort)
    judgements: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.verdict == "verified"


class Requester:
    """Runs tasks for the account its ``contracts`` are bound to (also the receiver)."""

    def __init__(self, contracts: Contracts, sessions: SessionOpener, deliver: Deliver, *,
                 pump: Callable[[], None] | None = None, poll_interval: float = 0.05,
                 timeout: float = 300.0, ack_wait: float = 20.0,
                 advance_time: Callable[[int], None] | None = None,
                 now: Callable[[], int] | None = None,
                 progress: Callable[[int, str], None] | None = None,
                 he: outsource_task.OutsourceVerifier | None = None,
                 restart_lost: bool = True, evidence_dir: Path | None = None) -> None:
        self.contracts = contracts
        self.sessions = sessions
        self.deliver = deliver
        self.pump = pump
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.ack_wait = ack_wait
        self.advance_time = advance_time
        self.now = now
        self.progress = progress or (lambda task_id, stage: None)
        self.address = contracts.tasks.sender
        #: the Paillier key pair and MAC secrets for ``mode: "he"`` tasks
        self.he = he
        #: draw a fresh committee when the running one delivers nothing (DESIGN.md §5)
        self.restart_lost = restart_lost
        #: evidence posted on chain, by its keccak (anyone may ask for the bytes and check)
        self.evidence: dict[bytes, bytes] = {}
        self.evidence_dir = evidence_dir

    # -- helpers ----------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.pump is not None:
            self.pump()
        else:
            time.sleep(self.poll_interval)

    def _info(self, task_id: int) -> TaskInfo:
        return self.contracts.tasks.get_task(TaskId(task_id))

    def _wait(self, task_id: int, until: Callable[[TaskInfo], bool], what: str) -> TaskInfo:
        deadline = time.monotonic() + self.timeout
        while True:
            self._tick()
            info = self._info(task_id)
            if until(info) or info.state in _DONE:
                return info
            if time.monotonic() > deadline:
                raise PeerTimeout(f"task {task_id}: no progress while waiting for {what}")

    # -- the flow ---------------------------------------------------------------------------
    def submit(self, spec: TaskSpec) -> tuple[int, dict[str, str]]:
        """Escrow the fee and hand the spec to the data nodes; returns (task id, refusals)."""
        if self.address.lower() not in {r.lower() for r in spec.receivers}:
            raise ValidationError("the requester must be one of the spec's receivers")
        datasets = [DatasetId(bytes.fromhex(i.dataset[2:])) for i in spec.inputs]
        if len(set(datasets)) != len(datasets):
            raise ValidationError("name each dataset once in a task spec")
        task_id = int(self.contracts.tasks.create_task(
            spec.hash, datasets, list(spec.receivers), Wei(spec.fee_wei), spec.committee_size))
        self.progress(task_id, "submitted")
        refusals: dict[str, str] = {}
        owners = dict.fromkeys(self.contracts.datasets.owner_of(d) for d in datasets)
        for owner in owners:
            decision = self.deliver(owner, task_id, spec)
            if not decision.approve:
                refusals[owner] = decision.reason
        return task_id, refusals

    def run(self, spec: TaskSpec) -> TaskResult:
        """Run ``spec`` to its end; never raises for a task that fails on the network."""
        if spec.mode == "he":
            if self.he is None:
                raise ValidationError("an he task needs the requester's Paillier key pair")
            self.he.check_spec(spec)
            integer = False
        else:
            integer = get_program(spec.program, spec.params).integer_output
        t0 = time.perf_counter()
        task_id, refusals = self.submit(spec)
        result = TaskResult(task_id, spec, TaskState.SUBMITTED, "pending", refusals=refusals)
        try:
            info = self._consensus(task_id, result)
            result.timings["consensus"] = time.perf_counter() - t0
            if info.state != TaskState.RUNNING:
                result.verdict = "rejected" if info.state == TaskState.REJECTED else "failed"
                return self._finish(task_id, result, t0)
            result.committee = info.committee
            t1 = time.perf_counter()
            self._tick()  # let the nodes see the task running
            self.progress(task_id, "computing")
            values = self._receive_or_restart(task_id, info, spec, integer, result)
            result.timings["sharing+computing"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            commitment = keccak(np.ascontiguousarray(values).tobytes() + spec.hash)
            result.timings["verifying"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            self.progress(task_id, "settling")
            self.contracts.tasks.submit_verdict(TaskId(task_id), commitment, True)
            result.timings["settling"] = time.perf_counter() - t3
            result.values, result.verdict = values, "verified"
        except CheatingDetected as exc:
            result.verdict = f"failed verification: {exc}"
            result.evidence = exc.evidence
            self._fail(task_id, exc, result)
        except (NetworkError, ProtocolError, TransactionReverted) as exc:
            # a lost peer (PeerTimeout is a NetworkError) or a malformed output message
            result.verdict = f"failed: {exc}"
            self._fail(task_id, exc)
        return self._finish(task_id, result, t0)

    def _receive_or_restart(self, task_id: int, info: TaskInfo, spec: TaskSpec,
                            integer: bool, result: TaskResult) -> NDArray[np.float64]:
        """The output; when the committee delivers nothing (a member lost, or the session
        aborted), a fresh committee is drawn (``restart``) and the task runs again, until
        the chain's draw rounds are spent (the task then fails with a refund)."""
        while True:
            try:
                return self._receive(task_id, info, spec, integer, result.timings)
            except SessionAborted as exc:
                verdict = judge(exc.reports, info.committee,
                                session_label(task_id, info.round))
                if verdict.cheater is not None:
                    raise CheatingDetected(
                        f"committee member {info.committee[verdict.cheater]} proven to "
                        f"cheat ({verdict.reason})", suspects=(verdict.cheater,),
                        evidence=verdict.evidence) from None
                log.info("task %d round %d aborted (reports %s): %s", task_id, info.round,
                         verdict.kinds, verdict.reason)
                result.judgements.append(verdict.reason)
                lost: PeerTimeout = exc
            except PeerTimeout as exc:
                lost = exc
            if not self.restart_lost or self._info(task_id).state != TaskState.RUNNING:
                raise lost
            self.progress(task_id, "restarting (the committee delivered nothing)")
            if self.contracts.tasks.restart(TaskId(task_id)) is None:
                raise lost  # draw rounds spent or too few compute nodes: failed, refunded
            result.restarts += 1
            info = self._await_acks(task_id, result)
            if info.state != TaskState.RUNNING:
                raise lost
            result.committee = info.committee
            self._tick()  # let the nodes see the task running again

    def _receive(self, task_id: int, info: TaskInfo, spec: TaskSpec,
                 integer: bool, timings: dict[str, float]) -> NDArray[np.float64]:
        """The task's output from its session (mpc: output shares; he: verified result)."""
        def owner_of(d: bytes) -> str:
            return str(self.contracts.datasets.owner_of(DatasetId(d)))
        if spec.mode == "he" and self.he is not None:
            he = outsource_task.outsource_layout(info, owner_of)
            channel = self.sessions(session_id(task_id, info.round), he.members)
            try:
                return self.he.receive(channel, he, spec,
                                       outsource_task.attempt_id(task_id, info.round))
            finally:
                channel.close()
        layout = layout_for(info, owner_of)
        channel = self.sessions(session_id(task_id, info.round), layout.members)
        try:
            return collect_output(channel, layout, frac_bits=16, integer=integer,
                                  timings=timings)
        finally:
            channel.close()

    def _finish(self, task_id: int, result: TaskResult, t0: float) -> TaskResult:
        result.state = self._info(task_id).state
        result.payouts = self._payouts(task_id)
        result.timings["total"] = time.perf_counter() - t0
        self.progress(task_id, result.verdict)
        return result

    def _consensus(self, task_id: int, result: TaskResult) -> TaskInfo:
        tm = self.contracts.tasks
        self.progress(task_id, "voting")
        info = self._wait(task_id, lambda i: i.state != TaskState.SUBMITTED, "votes")
        if info.state != TaskState.APPROVED:
            return info
        self.progress(task_id, "revealing seeds")
        info = self._wait(task_id, lambda i: i.state != TaskState.APPROVED
                          or i.reveals == i.committers, "seed reveals")
        if info.state == TaskState.APPROVED:
            tm.draw_committee(TaskId(task_id))
        self.progress(task_id, "committee drawn")
        return self._await_acks(task_id, result)

    def _await_acks(self, task_id: int, result: TaskResult) -> TaskInfo:
        """Wait for the drawn committee's acknowledgements, redrawing no-shows."""
        tm = self.contracts.tasks
        while True:
            # an in-process network (pump) has no chain node that could stall
            info = self._wait(task_id, self._acked_or_late(
                time.monotonic() + self.ack_wait,
                stall=math.inf if self.pump is not None else 1.0), "acknowledgements")
            if info.state != TaskState.COMMITTEE_DRAWN:
                return info
            # some member did not acknowledge in time: past the deadline, redraw
            if self.advance_time is not None and self.now is not None:
                gap = info.ack_deadline - self.now()
                if gap >= 0:
                    self.advance_time(gap + 1)
            elif self.now is not None and self.now() < info.ack_deadline:
                continue
            self.progress(task_id, "redrawing (no-show)")
            result.redraws += 1
            if tm.redraw(TaskId(task_id)) is None:
                return self._info(task_id)

    @staticmethod
    def _acked_or_late(until: float, stall: float = 1.0) -> Callable[[TaskInfo], bool]:
        """Acknowledged, or ``until`` passed. A gap of more than ``stall`` seconds between
        two checks (a stopped chain node blocks the read) is not the members' time: it
        pushes ``until`` back, so they are not redrawn and slashed for the chain's pause."""
        clock = {"until": until, "last": time.monotonic()}

        def check(info: TaskInfo) -> bool:
            now = time.monotonic()
            if now - clock["last"] > stall:
                clock["until"] += now - clock["last"]
            clock["last"] = now
            return info.state != TaskState.COMMITTEE_DRAWN or now > clock["until"]
        return check

    def _fail(self, task_id: int, exc: BaseException,
              result: TaskResult | None = None) -> None:
        cheater = None
        evidence = None
        if isinstance(exc, CheatingDetected) and len(exc.suspects) == 1:
            info = self._info(task_id)
            cheater = info.committee[exc.suspects[0]]
            raw = exc.evidence or str(exc).encode()
            evidence = keccak(raw)
            self._keep_evidence(task_id, evidence, raw)
        try:
            if self._info(task_id).state == TaskState.RUNNING:
                tm = self.contracts.tasks
                receipt = tm.submit_verdict(TaskId(task_id), b"\0" * 32, False,
                                            cheater, evidence)
                for ev in tm.events(receipt, "MemberSlashed") if cheater else []:
                    if result is not None:
                        result.slashed = str(ev["member"])
                        result.evidence_hash = bytes(ev["evidence_hash"])
                    log.warning("task %d: member %s slashed %d wei, evidence %s",
                                task_id, ev["member"], ev["amount"],
                                bytes(ev["evidence_hash"]).hex())
        except MetisError as err:
            log.warning("task %d: could not post the failed verdict: %s", task_id, err)

    def _keep_evidence(self, task_id: int, digest: bytes, raw: bytes) -> None:
        """Keep the bytes whose hash goes on chain, so anyone can check them."""
        self.evidence[digest] = raw
        if self.evidence_dir is not None:
            try:
                self.evidence_dir.mkdir(parents=True, exist_ok=True)
                (self.evidence_dir / f"{digest.hex()}.json").write_bytes(raw)
            except OSError as err:
                log.warning("task %d: evidence not written: %s", task_id, err)

    def _payouts(self, task_id: int) -> dict[str, int]:
        info = self._info(task_id)
        who = [*info.committee, *(self.contracts.datasets.owner_of(d) for d in info.datasets),
               self.address]
        return {a: int(self.contracts.tasks.credits(a)) for a in dict.fromkeys(who)}
