"""TEST-ONLY misbehaviour of devnet node processes (issue 12: cheaters over real processes).

The devnet chaos harness (:mod:`metisnet.node.chaos_devnet`) makes a compute node cheat
and a data node vote twice or deal inconsistent shares, in the node's own process. The
cheats are the in-process harness's (:mod:`metisnet.node.chaos`): a
:class:`~metisnet.node.chaos.BitFlipChannel`, a :class:`~metisnet.node.chaos.ClaimTamperChannel`
(an equivocation about ``dealt:key/all``), an
:class:`~metisnet.node.chaos.EquivocatingDealer` and a second vote the other way.

How a node is told, and why production cannot reach it by accident:

* Only a node process whose environment holds :data:`MISBEHAVE_ENV` (a directory) arms
  the hooks at all. No config key, TOML table or ``METIS_*`` override names it (config
  overrides use ``METIS_<FIELD>`` of the config dataclasses only); :mod:`metisnet.node.devnet`
  sets it only for a *proxied* devnet's node processes, which only the chaos harness starts
  (their registered ports lead nowhere without its fault proxies). A node started any
  other way never reads the directory.
* In that directory the harness writes one order per scenario, ``order.json``:
  ``{"kind": ..., "task": N, "round": 0, "pos": P, "node": "0x..", "seed": S}``. A compute
  node cheats when it sits at committee position ``pos`` of task ``N``'s round-``round``
  session; a data node when it is ``node``. Every other task runs honestly.
* A node that carried its order out writes ``fired-<address>-<task>.json`` there (with
  what the chain answered a second vote), so the harness knows whom to hold to account.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metisnet.chain.draw import seed_commitment
from metisnet.errors import ConfigError, TransactionReverted
from metisnet.mpc.evidence import Signer
from metisnet.net.channel import Channel
from metisnet.node.agents import ComputeAgent, DataNodeAgent
from metisnet.node.session import session_id
from metisnet.types import TaskId

__all__ = [
    "COMPUTE_KINDS",
    "DATA_KINDS",
    "MISBEHAVE_ENV",
    "arm_compute",
    "arm_data",
    "clear_order",
    "fired_reports",
    "write_order",
]

log = logging.getLogger("metisnet.misbehave")

#: TEST ONLY: the directory a devnet chaos harness writes its orders to.
MISBEHAVE_ENV = "METISNET_TEST_MISBEHAVE_DIR"
COMPUTE_KINDS = ("compute_bitflip", "compute_equivocation")
DATA_KINDS = ("data_double_vote", "data_inconsistent_shares")
ORDER = "order.json"


# -- the harness's side -------------------------------------------------------------------
def write_order(directory: Path, kind: str, task: int, *, pos: int = 0, node: str = "",
                round_: int = 0, seed: int = 0) -> None:
    """Order the nodes reading ``directory`` to misbehave in task ``task`` (atomically)."""
    if kind not in COMPUTE_KINDS + DATA_KINDS:
        raise ConfigError(f"unknown misbehaviour {kind!r}")
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{ORDER}.{os.getpid()}"
    tmp.write_text(json.dumps({"kind": kind, "task": task, "round": round_, "pos": pos,
                               "node": node.lower(), "seed": seed}), encoding="utf-8")
    os.replace(tmp, directory / ORDER)


def clear_order(directory: Path) -> None:
    (directory / ORDER).unlink(missing_ok=True)


def fired_reports(directory: Path, task: int) -> dict[str, dict[str, Any]]:
    """address -> what the node reported for ``task`` once it misbehaved."""
    out: dict[str, dict[str, Any]] = {}
    for f in directory.glob(f"fired-*-{task}.json"):
        try:
            out[f.name.split("-")[1]] = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return out


# -- the node's side ----------------------------------------------------------------------
def _directory() -> Path | None:
    d = os.environ.get(MISBEHAVE_ENV, "")
    return Path(d) if d else None


def _order(directory: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((directory / ORDER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _fired(directory: Path, me: str, task: int, **detail: Any) -> None:
    path = directory / f"fired-{me}-{task}.json"
    path.write_text(json.dumps({"node": me, "task": task, **detail}), encoding="utf-8")
    log.warning("TEST-ONLY misbehaviour carried out in task %d: %s", task, detail)


def arm_compute(agent: ComputeAgent) -> None:
    """Hook ``agent`` to the harness's orders; a no-op unless :data:`MISBEHAVE_ENV` is set."""
    directory = _directory()
    if directory is None:
        return
    from metisnet.node.chaos import BitFlipChannel, ClaimTamperChannel, LedgerSigner

    log.warning("TEST-ONLY misbehaviour hooks armed (%s is set)", MISBEHAVE_ENV)
    account = agent.contracts.tasks.account
    key = getattr(account, "key", None)
    if key is None:
        raise ConfigError("a misbehaving compute node needs its key")
    key_bytes = bytes(key)
    made: list[LedgerSigner] = []
    opener = agent.sessions

    def make_signer(committee: Sequence[str]) -> Signer | None:
        made.append(LedgerSigner(key_bytes, committee))
        return made[-1]

    def latest() -> LedgerSigner | None:
        return made[-1] if made else None

    def open_session(sid: bytes, members: Sequence[str]) -> Channel:
        ch = opener(sid, members)
        order = _order(directory)
        if order is None or order.get("kind") not in COMPUTE_KINDS:
            return ch
        task, pos = int(order["task"]), int(order["pos"])
        if sid != session_id(task, int(order["round"])) or members[pos].lower() != agent.me:
            return ch
        kind = str(order["kind"])
        done: list[bool] = []

        def fired() -> None:
            if not done:
                done.append(True)
                _fired(directory, agent.me, task, kind=kind)

        if kind == "compute_bitflip":
            rng = random.Random(int(order["seed"]))
            return BitFlipChannel(ch, fired, rng, rng.randrange(4))
        return ClaimTamperChannel(ch, fired, latest, key_bytes, ("dealt:key/all",))

    agent.make_signer = make_signer
    agent.sessions = open_session


def arm_data(agent: DataNodeAgent) -> None:
    """Hook ``agent`` to the harness's orders; a no-op unless :data:`MISBEHAVE_ENV` is set."""
    directory = _directory()
    if directory is None:
        return
    from metisnet.node.chaos import EquivocatingDealer

    log.warning("TEST-ONLY misbehaviour hooks armed (%s is set)", MISBEHAVE_ENV)
    opener = agent.sessions
    poll = agent.poll
    tried: set[int] = set()

    def mine(kind: str) -> dict[str, Any] | None:
        order = _order(directory)
        if order is None or order.get("kind") != kind or order.get("node") != agent.me:
            return None
        return order

    def open_session(sid: bytes, members: Sequence[str]) -> Channel:
        ch = opener(sid, members)
        order = mine("data_inconsistent_shares")
        if order is None or sid != session_id(int(order["task"]), int(order["round"])):
            return ch
        task = int(order["task"])
        return EquivocatingDealer(
            ch, lambda: _fired(directory, agent.me, task, kind="data_inconsistent_shares"))

    def poll_twice() -> None:
        poll()
        order = mine("data_double_vote")
        if order is None:
            return
        task = int(order["task"])
        t = agent.tasks.get(task)
        if t is None or not t.voted or task in tried:
            return
        tried.add(task)
        tm = agent.contracts.tasks
        other = seed_commitment(secrets.token_bytes(32), agent.address)
        flip = not t.decision.approve
        refused: list[bool] = []
        for d in tm.get_task(TaskId(task)).datasets:
            if agent.contracts.datasets.owner_of(d).lower() == agent.me:
                refused.append(_reverts(tm.vote_dataset, TaskId(task), d, flip, other))
        refused.append(_reverts(tm.vote, TaskId(task), flip, other))
        _fired(directory, agent.me, task, kind="data_double_vote", refused=refused)

    agent.sessions = open_session
    agent.poll = poll_twice  # type: ignore[method-assign]


def _reverts(call: Callable[..., Any], *args: Any) -> bool:
    try:
        call(*args)
    except TransactionReverted:
        return True
    return False
