"""The explorer's reading of chain events: each task's stage history, committees and payouts.

:class:`EventLog` scans the logs of the task manager and the dataset registry incrementally
(each block once, in ranges of :attr:`EventLog.CHUNK` blocks, never the whole history per
request; DESIGN.md §6 notes that a full-history query is quadratic on the embedded chain).
From them it knows, for every task, the blocks at which it was created, approved, given a
committee (each round), set running and closed, which members acknowledged, who was credited
what, who was slashed and which verdicts were posted; and every dataset ever registered, so
the explorer lists datasets without being told their ids. A poll of a task's state can miss
a stage that lasts less than the poll interval; the events cannot. Only public chain data is
read.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from metisnet.chain.artifacts import load_artifact
from metisnet.chain.tasks import TaskState

__all__ = ["EventLog", "TaskEvents"]

#: task-manager events that mark a stage, and the stage each one enters
_STAGE_OF = {"TaskCreated": "submitted", "TaskApproved": "approved",
             "CommitteeDrawn": "committee drawn", "TaskRunning": "running"}
_TASK_EVENTS = (*_STAGE_OF, "TaskClosed", "Credited", "MemberSlashed", "VerdictPosted",
                "Acknowledged")


@dataclass
class TaskEvents:
    """What the chain's events say about one task, in block order."""

    history: list[dict[str, Any]] = field(default_factory=list)  # stage, block, time, round
    committees: list[list[str]] = field(default_factory=list)  # one per round drawn
    acks: list[set[str]] = field(default_factory=list)  # per round: members who acknowledged
    payouts: list[dict[str, Any]] = field(default_factory=list)  # account, amount_wei
    slashed: list[dict[str, Any]] = field(default_factory=list)  # member, amount_wei
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # receiver, success
    closed_reason: str = ""

    def stages(self) -> list[str]:
        return [h["stage"] for h in self.history]

    def chain_latency(self) -> float | None:
        """Seconds of chain time from creation to close (block timestamps), if both seen."""
        if len(self.history) < 2 or self.history[-1]["stage"] not in (
                "settled", "rejected", "failed") or self.history[0]["stage"] != "submitted":
            return None
        return float(self.history[-1]["time"] - self.history[0]["time"])


class EventLog:
    """Incremental scanner of one deployment's task and dataset events (read only)."""

    CHUNK = 2000

    def __init__(self, w3: Web3, tasks_address: str, datasets_address: str, *,
                 lock: threading.RLock | None = None) -> None:
        self._w3 = w3
        #: the lock that serialises the chain connection's users (the embedded chain is not
        #: safe to read while another thread sends a transaction)
        self._chain_lock: Any = lock if lock is not None else contextlib.nullcontext()
        self._addresses = [Web3.to_checksum_address(tasks_address),
                           Web3.to_checksum_address(datasets_address)]
        tm = w3.eth.contract(address=self._addresses[0],
                             abi=load_artifact("TaskManager").abi).events
        dr = w3.eth.contract(address=self._addresses[1],
                             abi=load_artifact("DatasetRegistry").abi).events
        self._decoders: dict[bytes, tuple[str, Any]] = {}
        for name in _TASK_EVENTS:
            ev = getattr(tm, name)
            self._decoders[Web3.to_bytes(hexstr=ev.topic)] = (name, ev())
        ev = dr.DatasetRegistered
        self._decoders[Web3.to_bytes(hexstr=ev.topic)] = ("DatasetRegistered", ev())
        self._scanned = -1
        self._block_time: dict[int, int] = {}
        self.tasks: dict[int, TaskEvents] = {}
        #: every registered dataset id (0x-hex, lower case), in registration order
        self.datasets: dict[str, None] = {}
        #: the last scan's failure ("" when it worked); the explorer then polls state only
        self.error = ""

    @property
    def scanned_block(self) -> int:
        return self._scanned

    def scan(self) -> None:
        """Read the logs of every block not yet scanned; never raises (sets :attr:`error`)."""
        try:
            with self._chain_lock:
                latest = int(self._w3.eth.block_number)
            while self._scanned < latest:
                lo = self._scanned + 1
                hi = min(latest, lo + self.CHUNK - 1)
                with self._chain_lock:
                    logs = list(self._w3.eth.get_logs(
                        {"address": self._addresses, "fromBlock": lo, "toBlock": hi}))
                logs.sort(key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"])))
                for lg in logs:
                    self._apply(lg)
                self._scanned = hi
            self.error = ""
        except Exception as exc:  # a node without logs, or briefly unreachable
            self.error = f"events unavailable: {type(exc).__name__}"

    def _time(self, block: int) -> int:
        if block not in self._block_time:
            with self._chain_lock:
                self._block_time[block] = int(self._w3.eth.get_block(block)["timestamp"])
        return self._block_time[block]

    def _apply(self, lg: Any) -> None:
        topics = lg["topics"]
        if not topics:
            return
        found = self._decoders.get(bytes(topics[0]))
        if found is None:  # votes, reveals, acks, withdrawals: not charted
            return
        name, event = found
        args = event.process_log(lg)["args"]
        if name == "DatasetRegistered":
            self.datasets.setdefault("0x" + bytes(args["dataset_id"]).hex(), None)
            return
        block = int(lg["blockNumber"])
        task = self.tasks.setdefault(int(args["task_id"]), TaskEvents())
        if name in _STAGE_OF:
            entry: dict[str, Any] = {"stage": _STAGE_OF[name], "block": block,
                                     "time": self._time(block)}
            if name == "CommitteeDrawn":
                entry["round"] = int(args["round"])
                committee = [str(a) for a in args["committee"]]
                task.committees.append(committee)
                # a redraw keeps the members who acknowledged; a restart's committee is
                # disjoint from the last one, so nothing carries over
                before = task.acks[-1] if task.acks else set()
                task.acks.append(before & {a.lower() for a in committee})
            task.history.append(entry)
        elif name == "TaskClosed":
            state = TaskState(int(args["state"]))
            task.history.append({"stage": state.name.lower().replace("_", " "),
                                 "block": block, "time": self._time(block)})
            task.closed_reason = str(args["reason"])
        elif name == "Credited":
            task.payouts.append({"account": str(args["account"]),
                                 "amount_wei": str(int(args["amount"]))})
        elif name == "MemberSlashed":
            task.slashed.append({"member": str(args["member"]),
                                 "amount_wei": str(int(args["amount"]))})
        elif name == "Acknowledged" and task.acks:  # for the latest committee drawn
            task.acks[-1].add(str(args["member"]).lower())
        elif name == "VerdictPosted":
            task.verdicts.append({"receiver": str(args["receiver"]),
                                  "success": bool(args["success"])})
