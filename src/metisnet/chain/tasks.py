"""Typed client of the TaskManager contract (the task lifecycle of DESIGN.md §7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from web3.types import TxReceipt

from metisnet.chain._base import ContractClient, bytes32
from metisnet.errors import ChainError
from metisnet.types import Address, DatasetId, SpecHash, TaskId, Wei

__all__ = ["TaskInfo", "TaskManager", "TaskState"]

_ZERO_ADDRESS = "0x" + "00" * 20
_ZERO32 = b"\0" * 32


class TaskState(IntEnum):
    """A task's state on chain; 0 means no such task."""

    NONE = 0
    SUBMITTED = 1
    APPROVED = 2
    COMMITTEE_DRAWN = 3
    RUNNING = 4
    SETTLED = 5
    REJECTED = 6
    FAILED = 7


@dataclass(frozen=True)
class TaskInfo:
    """A task's on-chain record."""

    task_id: TaskId
    requester: Address
    spec_hash: SpecHash
    fee: Wei
    state: TaskState
    committee_size: int
    datasets: tuple[DatasetId, ...]
    receivers: tuple[Address, ...]
    validator_total: Wei
    approve_weight: Wei
    reject_weight: Wei
    owner_approvals: int
    committers: int
    reveals: int
    seed: bytes
    round: int
    committee: tuple[Address, ...]
    acks: int
    vote_deadline: int
    reveal_deadline: int
    ack_deadline: int
    result_deadline: int
    result_commitment: bytes


class TaskManager(ContractClient):
    """Client of ``TaskManager.vy``.

    Votes carry ``seed_commitment(seed, voter)`` (see :mod:`metisnet.chain.draw`); the voter
    keeps the seed and later calls :meth:`reveal`.
    """

    ARTIFACT = "TaskManager"

    # ---------------------------------------------------------------- requester
    def create_task(
        self,
        spec_hash: SpecHash,
        datasets: Sequence[DatasetId],
        receivers: Sequence[str],
        fee: Wei,
        committee_size: int = 0,
    ) -> TaskId:
        """Escrow ``fee`` for a new task; returns its id. ``committee_size`` 0 = default."""
        receipt = self.create_task_receipt(spec_hash, datasets, receivers, fee, committee_size)
        return TaskId(self.events(receipt, "TaskCreated")[0]["task_id"])

    def create_task_receipt(
        self,
        spec_hash: SpecHash,
        datasets: Sequence[DatasetId],
        receivers: Sequence[str],
        fee: Wei,
        committee_size: int = 0,
    ) -> TxReceipt:
        return self._send(
            "create_task",
            bytes32(spec_hash, "spec_hash"),
            [bytes32(d, "dataset id") for d in datasets],
            list(receivers),
            committee_size,
            value=fee,
        )

    # ---------------------------------------------------------------- data nodes
    def vote_dataset(
        self, task_id: TaskId, dataset_id: DatasetId, approve: bool, seed_commitment: bytes
    ) -> TxReceipt:
        """As the owner of ``dataset_id``, approve or reject its use by the task."""
        return self._send(
            "vote_dataset", task_id, bytes32(dataset_id, "dataset id"), approve,
            bytes32(seed_commitment, "seed commitment"),
        )

    def vote(self, task_id: TaskId, approve: bool, seed_commitment: bytes) -> TxReceipt:
        """As a member of the task's validator set, approve or reject the task."""
        return self._send("vote", task_id, approve, bytes32(seed_commitment, "seed commitment"))

    def reveal(self, task_id: TaskId, seed: bytes) -> TxReceipt:
        return self._send("reveal", task_id, bytes32(seed, "seed"))

    # ---------------------------------------------------------------- anyone
    def draw_committee(self, task_id: TaskId) -> list[Address]:
        """Draw the committee; returns its members in slot order."""
        receipt = self._send("draw_committee", task_id)
        return [Address(a) for a in self.events(receipt, "CommitteeDrawn")[0]["committee"]]

    def redraw(self, task_id: TaskId) -> list[Address] | None:
        """Slash no-shows and replace them; the new committee, or None if the task failed."""
        receipt = self._send("redraw", task_id)
        drawn = self.events(receipt, "CommitteeDrawn")
        return [Address(a) for a in drawn[0]["committee"]] if drawn else None

    def restart(self, task_id: TaskId) -> list[Address] | None:
        """A receiver: draw a fresh committee for a running task that delivered nothing.

        Returns the new committee, or None if the task failed instead (redraws spent or
        too few compute nodes). Nobody is slashed.
        """
        receipt = self._send("restart", task_id)
        drawn = self.events(receipt, "CommitteeDrawn")
        return [Address(a) for a in drawn[0]["committee"]] if drawn else None

    def expire(self, task_id: TaskId) -> TxReceipt:
        """Close a task whose current stage ran past its deadline (refunds the requester)."""
        return self._send("expire", task_id)

    def withdraw(self) -> Wei:
        """Collect everything credited to the bound account; returns the amount."""
        receipt = self._send("withdraw")
        return Wei(self.events(receipt, "Withdrawn")[0]["amount"])

    # ---------------------------------------------------------------- compute nodes
    def acknowledge(self, task_id: TaskId) -> TxReceipt:
        return self._send("acknowledge", task_id)

    # ---------------------------------------------------------------- result receivers
    def submit_verdict(
        self,
        task_id: TaskId,
        result_commitment: bytes,
        success: bool,
        cheater: str | None = None,
        evidence_hash: bytes | None = None,
    ) -> TxReceipt:
        """Post the result commitment and verdict; settles (success) or fails the task.

        A failed verdict may name a committee member as ``cheater`` together with the hash
        of the evidence (e.g. :class:`~metisnet.errors.CheatingDetected.evidence`); that
        member is slashed.
        """
        return self._send(
            "submit_verdict",
            task_id,
            bytes32(result_commitment, "result commitment"),
            success,
            cheater or _ZERO_ADDRESS,
            _ZERO32 if evidence_hash is None else bytes32(evidence_hash, "evidence hash"),
        )

    # ---------------------------------------------------------------- views
    def get_task(self, task_id: TaskId) -> TaskInfo:
        raw = self._call("get_task", task_id)
        if raw[3] == 0:
            raise ChainError(f"no task {task_id}")
        (requester, spec, fee, state, size, datasets, receivers, vtotal, approve, reject,
         owner_approvals, committers, reveals, seed, round_, committee, acks, vote_dl,
         reveal_dl, ack_dl, result_dl, result_commitment) = raw
        return TaskInfo(
            task_id, Address(requester), SpecHash(bytes(spec)), Wei(fee), TaskState(state),
            size, tuple(DatasetId(bytes(d)) for d in datasets),
            tuple(Address(r) for r in receivers), Wei(vtotal), Wei(approve), Wei(reject),
            owner_approvals, committers, reveals, bytes(seed), round_,
            tuple(Address(c) for c in committee), acks, vote_dl, reveal_dl, ack_dl,
            result_dl, bytes(result_commitment),
        )

    def tasks_after(self, last_seen: int, limit: int = 100) -> list[TaskInfo]:
        """Tasks with ids above ``last_seen`` (at most ``limit``), oldest first.

        How a node learns of new tasks without scanning event history: remember the highest
        id seen and poll this; the cost is one view call per new task.
        """
        end = min(self.task_count(), last_seen + limit)
        return [self.get_task(TaskId(i)) for i in range(last_seen + 1, end + 1)]

    def is_validator(self, task_id: TaskId, node: str) -> bool:
        """Whether ``node`` is in the task's validator set."""
        return self.validator_weight(task_id, node) > 0

    def state(self, task_id: TaskId) -> TaskState:
        return TaskState(self._call("get_task", task_id)[3])

    def validators(self, task_id: TaskId) -> list[Address]:
        return [Address(a) for a in self._call("get_validators", task_id)]

    def validator_weight(self, task_id: TaskId, node: str) -> Wei:
        return Wei(self._call("validator_weight", task_id, node))

    def commitment_of(self, task_id: TaskId, voter: str) -> bytes:
        return bytes(self._call("commitments", task_id, voter))

    def has_revealed(self, task_id: TaskId, voter: str) -> bool:
        return bool(self._call("has_revealed", task_id, voter))

    def has_acknowledged(self, task_id: TaskId, member: str) -> bool:
        return bool(self._call("has_acknowledged", task_id, member))

    def credits(self, account: str) -> Wei:
        """Amount credited to ``account`` and not yet withdrawn."""
        return Wei(self._call("credits", account))

    def task_count(self) -> int:
        return int(self._call("task_count"))

    def escrow_total(self) -> Wei:
        return Wei(self._call("escrow_total"))

    def credit_total(self) -> Wei:
        return Wei(self._call("credit_total"))
