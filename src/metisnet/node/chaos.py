"""Fault injection over a whole network: nothing lost, nobody honest punished (issue 12).

A :class:`ChaosRunner` runs tasks on an in-process :class:`~metisnet.node.localnet.LocalNetwork`
(embedded chain, real data nodes, real MPC over in-memory channels) and injects one fault
per scenario, drawn at random from a seeded generator so a run can be replayed:

===================== ==================================================== ===============
kind                  fault                                                expected end
===================== ==================================================== ===============
``honest``            none (control)                                       completed
``no_show``           a drawn compute node never acknowledges              completed after
                                                                           a redraw; the
                                                                           no-show slashed
``mpc_cheat``         a committee member flips bits in the MPC messages    cheat detected,
                      it sends                                             completed after
                                                                           a restart
``policy_refusal``    a data node's owner policy refuses the program       rejected, no
                                                                           session opened
``dealer_equivocation`` a data node deals one committee member a share     cheat detected;
                      that disagrees with its other holder's copy (every   failed cleanly
                      round)                                               once rounds run
                                                                           out
``compute_lost``      a committee member's channel dies mid-session        completed after
                                                                           a restart
``data_node_lost``    a data node's channel dies before its shares leave   failed cleanly
                      (every round)
``delays``            random delivery delays below the timeout             completed
``double_vote``       a data node votes a second time, the other way       completed; the
                                                                           chain refuses
                                                                           the second vote
``message_dropped``   one MPC message is lost for good                     completed after
                                                                           a restart
``corrupt_frame``     one frame a committee member receives is corrupted   completed after
                      on the wire (decoded by :mod:`metisnet.net.wire`)    a restart
``equivocation``      a committee member signs two digests for one claim   cheat detected;
                      item, one to each peer, then reports nothing         the cheater
                                                                           slashed with
                                                                           evidence; failed
                                                                           cleanly
``false_claim``       a committee member signs a false digest of a share   cheat detected;
                      it holds with one peer (a disagreement: a pair)      nobody slashed;
                                                                           completed after
                                                                           a restart
===================== ==================================================== ===============

A compute-side fault hits the task's first session only. The members report to the
requester why the session ended, with the signed claims they hold, and the requester
judges (:func:`metisnet.node.claims.judge`): an equivocation proves its signer, who is
slashed on chain with ``keccak(evidence)`` (the task fails, refunded); anything else names
a pair at most, so the requester restarts the task with a fresh committee disjoint from
the first (``TaskManager.restart``), which completes it, and nobody is slashed.

After every scenario the invariants are checked: a completed task settled with the
plaintext answer (within the program's error bound); a failed one ended Rejected or
Failed with its fee refunded and the escrow released; no node outside the scenario's
faulty set lost stake (``honest_slashed``, read from the chain: every registered node's
stake before and after); a member slashed for cheating is the faulty one and the hash
the chain logged is the keccak of the evidence bytes the requester kept
(``cheaters_slashed``); every data node still holds all its datasets
(sealed files on disk), the same policies, and an audit log whose hash chain verifies and
still begins with every entry it had before (``data_lost``).

Not modelled here (see the closing note of issue 12): faults over real processes (the
devnet), node restarts from stored state, a stopped chain node.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey
from numpy.typing import NDArray

from metisnet.chain.draw import seed_commitment
from metisnet.chain.registry import Role
from metisnet.chain.tasks import TaskState
from metisnet.errors import (
    CheatingDetected,
    MetisError,
    NetworkError,
    ProtocolError,
    TransactionReverted,
    WireError,
)
from metisnet.mpc.evidence import DIGEST_BYTES, Signer
from metisnet.net.channel import Channel, ChannelStats
from metisnet.net.wire import FrameDecoder, encode_frame
from metisnet.node.agents import ComputeAgent, DataNodeAgent, SessionOpener
from metisnet.node.claims import NodeSigner, parse_claim_message
from metisnet.node.localnet import LocalNetwork
from metisnet.node.policy import Policy
from metisnet.node.programs import get_program
from metisnet.node.requester import TaskResult
from metisnet.node.session import session_id
from metisnet.node.taskspec import TaskSpec
from metisnet.types import TaskId

__all__ = [
    "CHEATS",
    "COMPLETED",
    "EXPECTED",
    "FAILED_CLEANLY",
    "KINDS",
    "RESTARTED",
    "TOTAL_KEYS",
    "ChaosRunner",
    "ChaosTotals",
    "ClaimTamperChannel",
    "LedgerSigner",
    "ScenarioResult",
    "claim_cheater",
    "run_chaos",
]

log = logging.getLogger("metisnet.chaos")

COMPLETED = "completed"
FAILED_CLEANLY = "failed_cleanly"
UNCLEAN = "unclean"

#: Every scenario kind and how its task must end.
EXPECTED: dict[str, str] = {
    "honest": COMPLETED,
    "no_show": COMPLETED,
    "mpc_cheat": COMPLETED,
    "policy_refusal": FAILED_CLEANLY,
    "dealer_equivocation": FAILED_CLEANLY,
    "compute_lost": COMPLETED,
    "data_node_lost": FAILED_CLEANLY,
    "delays": COMPLETED,
    "message_dropped": COMPLETED,
    "corrupt_frame": COMPLETED,
    "double_vote": COMPLETED,
    "equivocation": FAILED_CLEANLY,
    "false_claim": COMPLETED,
}

#: Kinds whose first committee delivers nothing, so the task completes only on a restart.
RESTARTED = ("mpc_cheat", "compute_lost", "message_dropped", "corrupt_frame", "false_claim")
#: Kinds that are a cheat (detected by the checks), not an accident.
CHEATS = ("mpc_cheat", "dealer_equivocation", "equivocation", "false_claim")
KINDS: tuple[str, ...] = tuple(EXPECTED)

#: The keys of ``metis chaos --json``, in order.
TOTAL_KEYS = ("completed", "failed_cleanly", "faults_injected", "cheats_detected",
              "honest_slashed", "data_lost", "cheaters_slashed")

_MPC_TAGS = ("mpc:", "in:")


# -- channel wrappers ----------------------------------------------------------------------
class _Wrapped:
    """A channel that forwards to ``inner``; subclasses bend ``send`` or ``recv``."""

    def __init__(self, inner: Channel, fired: Callable[[], None]) -> None:
        self.inner = inner
        self._fired = fired

    @property
    def party(self) -> int:
        return self.inner.party

    @property
    def parties(self) -> int:
        return self.inner.parties

    @property
    def stats(self) -> ChannelStats:
        return self.inner.stats

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        self.inner.send(peer, tag, array)

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        return self.inner.recv(peer, tag, timeout)

    def close(self) -> None:
        self.inner.close()


class BitFlipChannel(_Wrapped):
    """A cheating committee member: from its ``start``-th MPC message on, flips a bit."""

    def __init__(self, inner: Channel, fired: Callable[[], None], rng: random.Random,
                 start: int) -> None:
        super().__init__(inner, fired)
        self._rng = rng
        self._left = start

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        if tag.startswith("mpc:") and array.dtype == np.uint64 and array.size:
            if self._left <= 0:
                array = np.array(array, copy=True)
                flat = array.reshape(-1)
                flat[self._rng.randrange(flat.size)] ^= np.uint64(1 << self._rng.randrange(64))
                self._fired()
            self._left -= 1
        self.inner.send(peer, tag, array)


class EquivocatingDealer(_Wrapped):
    """A data node that deals committee member 0 a copy of ``x_1`` its other holder lacks."""

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        if peer == 0 and tag == "in:0:b" and array.size:
            array = np.array(array, copy=True)
            array.reshape(-1)[0] += np.uint64(1 << 20)
            self._fired()
        self.inner.send(peer, tag, array)


class LostChannel(_Wrapped):
    """A node that dies after ``after`` sends: every later send or receive fails."""

    def __init__(self, inner: Channel, fired: Callable[[], None], after: int) -> None:
        super().__init__(inner, fired)
        self._left = after
        self._dead = False

    def _die(self) -> None:
        if not self._dead:
            self._dead = True
            self._fired()
        raise NetworkError("chaos: node lost")

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        if self._dead or self._left <= 0:
            self._die()
        self._left -= 1
        self.inner.send(peer, tag, array)

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        if self._dead:
            self._die()
        return self.inner.recv(peer, tag, timeout)


class DelayChannel(_Wrapped):
    """Holds a share ``p`` of the messages sent for up to ``max_delay`` seconds."""

    def __init__(self, inner: Channel, fired: Callable[[], None], rng: random.Random,
                 p: float, max_delay: float) -> None:
        super().__init__(inner, fired)
        self._rng = rng
        self._p = p
        self._max = max_delay

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        if self._rng.random() < self._p:
            time.sleep(self._rng.uniform(0.0, self._max))
            self._fired()
        self.inner.send(peer, tag, array)


class DropChannel(_Wrapped):
    """Loses the ``which``-th MPC message it sends (never delivered, never retried)."""

    def __init__(self, inner: Channel, fired: Callable[[], None], which: int) -> None:
        super().__init__(inner, fired)
        self._left = which

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        if tag.startswith(_MPC_TAGS):
            self._left -= 1
            if self._left == -1:
                self._fired()
                return
        self.inner.send(peer, tag, array)


class CorruptFrameChannel(_Wrapped):
    """The ``which``-th MPC frame received is re-framed, one byte corrupted, and decoded.

    As on a TCP link: the frame goes through :func:`~metisnet.net.wire.encode_frame` and
    :class:`~metisnet.net.wire.FrameDecoder`; a frame the decoder refuses, or one that
    decodes to another session, tag, dtype or shape, fails the receive (the endpoint
    would drop the connection); one whose payload alone changed is delivered, and the
    malicious-security checks must catch it.
    """

    def __init__(self, inner: Channel, fired: Callable[[], None], rng: random.Random,
                 which: int) -> None:
        super().__init__(inner, fired)
        self._rng = rng
        self._left = which

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        got = self.inner.recv(peer, tag, timeout)
        if not tag.startswith(_MPC_TAGS) or got.size == 0:
            return got
        self._left -= 1
        if self._left != -1:
            return got
        self._fired()
        sid = b"chaos-session-id"
        frame = bytearray(encode_frame(sid, tag, got))
        pos = self._rng.randrange(len(frame))
        frame[pos] ^= 1 << self._rng.randrange(8)
        dec = FrameDecoder()
        frames = dec.feed(bytes(frame))
        dec.close()  # raises WireError when the frame was cut short
        if len(frames) != 1:
            raise WireError("chaos: corrupted frame did not decode to one frame")
        h = frames[0].header
        if (h.session, h.tag, h.dtype, tuple(h.shape)) != (sid, tag, got.dtype, got.shape):
            raise ProtocolError("chaos: corrupted frame header (wrong session, tag or shape)")
        return np.array(frames[0].array, copy=True)


class LedgerSigner(NodeSigner):
    """A member's :class:`~metisnet.node.claims.NodeSigner` that also remembers which
    message each of its signatures signed (so a cheating channel can rewrite claims)."""

    def __init__(self, private_key: bytes, committee: Sequence[str]) -> None:
        super().__init__(private_key, committee)
        self.ledger: dict[bytes, bytes] = {}

    def sign(self, message: bytes) -> bytes:
        signature = super().sign(message)
        self.ledger[signature] = message
        return signature


class ClaimTamperChannel(_Wrapped):
    """A committee member that lies in a signed claim, re-signed with its own node key.

    In its first claim message to its predecessor (party ``p - 1``) on a ``:s`` step (the
    first check's input, dealt-pair and key digests), every claim whose item starts with
    one of ``items`` gets a different digest; its successor gets the true claims. Then
    the member reports nothing to the receivers (so only the honest members' reports can
    convict it). ``dealt:key/all`` goes to both peers: a lie about it is an
    **equivocation** (two signed digests for one item: provable); ``share:key/`` names a
    key only the predecessor holds too: a **disagreement** (a pair: never slashed).
    """

    def __init__(self, inner: Channel, fired: Callable[[], None],
                 signer: Callable[[], LedgerSigner | None], key: bytes,
                 items: tuple[str, ...]) -> None:
        super().__init__(inner, fired)
        self._signer = signer
        self._key = PrivateKey(key)
        self._items = items
        self._done = False

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        if tag == "out:r" and self._done:
            return  # silent towards the receivers
        if (not self._done and peer == (self.party + 2) % 3 and tag.startswith("mpc:")
                and tag.endswith(":s") and array.dtype == np.uint8):
            altered = self._alter(array.tobytes())
            if altered is not None:
                self._done = True
                self._fired()
                array = np.frombuffer(altered, dtype=np.uint8)
        self.inner.send(peer, tag, array)

    def _alter(self, raw: bytes) -> bytes | None:
        signer = self._signer()
        if signer is None:
            return None
        out, pos, changed = bytearray(), 0, False
        while pos + DIGEST_BYTES + 1 <= len(raw):
            dig = raw[pos:pos + DIGEST_BYTES]
            n = raw[pos + DIGEST_BYTES]
            sig = raw[pos + DIGEST_BYTES + 1:pos + DIGEST_BYTES + 1 + n]
            pos += DIGEST_BYTES + 1 + n
            claim = parse_claim_message(signer.ledger.get(sig, b""), sig)
            if claim is not None and claim.item.startswith(self._items):
                dig = bytes([dig[0] ^ 0xFF]) + dig[1:]
                lie = type(claim)(claim.session, claim.step, claim.item, claim.party, dig)
                sig = bytes(self._key.sign_msg_hash(keccak(lie.message())).to_bytes())
                changed = True
            out += dig + bytes([len(sig)]) + sig
        return bytes(out) if changed and pos == len(raw) else None


# -- results -------------------------------------------------------------------------------
@dataclass
class ScenarioResult:
    """One scenario: what was injected and how the invariants came out."""

    index: int
    kind: str
    expected: str
    outcome: str = UNCLEAN
    state: str = ""
    verdict: str = ""
    faults_injected: int = 0
    cheats_detected: int = 0
    honest_slashed: int = 0
    data_lost: int = 0
    cheaters_slashed: int = 0
    faulty_slashed: int = 0
    redraws: int = 0
    restarts: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.expected and not self.problems


@dataclass
class ChaosTotals:
    """The sums over a run (the keys of ``--json``) and per-kind rows."""

    completed: int = 0
    failed_cleanly: int = 0
    faults_injected: int = 0
    cheats_detected: int = 0
    honest_slashed: int = 0
    data_lost: int = 0
    cheaters_slashed: int = 0
    scenarios: list[ScenarioResult] = field(default_factory=list)

    def add(self, r: ScenarioResult) -> None:
        self.scenarios.append(r)
        self.completed += r.outcome == COMPLETED
        self.failed_cleanly += r.outcome == FAILED_CLEANLY
        self.faults_injected += r.faults_injected
        self.cheats_detected += r.cheats_detected
        self.honest_slashed += r.honest_slashed
        self.data_lost += r.data_lost
        self.cheaters_slashed += r.cheaters_slashed

    def totals(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in TOTAL_KEYS}

    @property
    def unexpected(self) -> list[ScenarioResult]:
        return [r for r in self.scenarios if not r.as_expected]

    def by_kind(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for r in self.scenarios:
            row = rows.setdefault(r.kind, {"runs": 0, "expected": r.expected,
                                           "as_expected": 0, "seconds": 0.0,
                                           **dict.fromkeys(TOTAL_KEYS, 0)})
            row["runs"] += 1
            row["as_expected"] += r.as_expected
            row["seconds"] += r.seconds
            row[COMPLETED] += r.outcome == COMPLETED
            row[FAILED_CLEANLY] += r.outcome == FAILED_CLEANLY
            for k in TOTAL_KEYS[2:]:
                row[k] += getattr(r, k)
        return rows

    def to_json(self) -> dict[str, Any]:
        return {**self.totals(), "scenarios": [asdict(r) for r in self.scenarios]}


# -- snapshots for the invariants ----------------------------------------------------------
@dataclass(frozen=True)
class _DataSnapshot:
    datasets: dict[str, tuple[bytes, str, str]]  # id -> (policy hash, status, file name)
    audit_count: int
    audit_head: bytes  # hash of the last audit entry


def _snapshot(agent: DataNodeAgent) -> _DataSnapshot:
    store = agent.node.store
    n = store.verify_audit_chain()
    last = store.audit(after=n - 1, limit=1) if n else []
    return _DataSnapshot(
        {r.id: (r.policy_hash, r.status, r.file_name) for r in store.list_datasets()},
        n, last[0].hash if last else b"")


def _data_problems(agent: DataNodeAgent, before: _DataSnapshot) -> list[str]:
    """What this data node lost since ``before`` (empty: nothing)."""
    store = agent.node.store
    out: list[str] = []
    try:
        n = store.verify_audit_chain()
    except MetisError as exc:
        return [f"{agent.me}: audit chain broken: {exc}"]
    if n < before.audit_count:
        out.append(f"{agent.me}: audit log shrank from {before.audit_count} to {n}")
    elif before.audit_count:
        head = store.audit(after=before.audit_count - 1, limit=1)
        if not head or head[0].hash != before.audit_head:
            out.append(f"{agent.me}: audit log rewritten")
    now = {r.id: r for r in store.list_datasets()}
    files = set(store.file_names())
    for ds, (policy_hash, status, file_name) in before.datasets.items():
        rec = now.get(ds)
        if rec is None:
            out.append(f"{agent.me}: dataset {ds} missing")
            continue
        if rec.policy_hash != policy_hash or rec.status != status:
            out.append(f"{agent.me}: dataset {ds} changed its policy or status")
        if file_name not in files or not _sealed_file(agent, file_name).is_file():
            out.append(f"{agent.me}: sealed file of dataset {ds} missing")
    return out


def _sealed_file(agent: DataNodeAgent, file_name: str) -> Path:
    return Path(agent.node.datasets_dir) / file_name


# -- the runner ----------------------------------------------------------------------------
class ChaosRunner:
    """Runs seeded fault scenarios on one in-process network (rebuilt every ``fresh`` runs)."""

    def __init__(self, root: Path, *, seed: int = 0, rows: int = 40, timeout: float = 2.0,
                 compute_nodes: int = 6, fresh: int = 25,
                 progress: Callable[[ScenarioResult], None] | None = None) -> None:
        self.root = Path(root)
        self.rng = random.Random(seed)
        self.rows = rows
        self.timeout = timeout
        self.compute_nodes = compute_nodes
        self.fresh = fresh
        self.progress = progress
        self._net: LocalNetwork | None = None
        self._built = 0
        self._runs_on_net = 0

    # -- network -----------------------------------------------------------------------------
    def _network(self) -> LocalNetwork:
        if self._net is None or self._runs_on_net >= self.fresh:
            self.close()
            self._built += 1
            self._net = LocalNetwork(self.root / f"net-{self._built}", rows=self.rows,
                                     compute_nodes=self.compute_nodes)
            self._net.sessions.timeout = self.timeout
            self._runs_on_net = 0
        self._runs_on_net += 1
        return self._net

    def close(self) -> None:
        if self._net is not None:
            self._net.close()
            self._net = None

    # -- scenarios -----------------------------------------------------------------------------
    def run(self, runs: int, kinds: Sequence[str] | None = None) -> ChaosTotals:
        """``runs`` scenarios; kinds drawn at random, or cycled through ``kinds``."""
        totals = ChaosTotals()
        for i in range(runs):
            kind = kinds[i % len(kinds)] if kinds else self.rng.choice(KINDS)
            r = self.scenario(i, kind)
            totals.add(r)
            if self.progress is not None:
                self.progress(r)
        return totals

    def scenario(self, index: int, kind: str) -> ScenarioResult:
        if kind not in EXPECTED:
            raise ValueError(f"unknown chaos scenario {kind!r}; known: {', '.join(KINDS)}")
        net = self._network()
        res = ScenarioResult(index, kind, EXPECTED[kind])
        self._refused: list[bool] = []
        t0 = time.perf_counter()
        faulty: set[str] = set()

        def fired() -> None:
            res.faults_injected = 1

        program = self.rng.choice(("sum", "mean", "variance"))
        if kind in ("mpc_cheat", "corrupt_frame", "message_dropped"):
            program = self.rng.choice(("mean", "variance"))  # ones with MPC rounds
        security = "malicious"
        if kind in ("honest", "delays", "no_show") and self.rng.random() < 0.3:
            security = "semi-honest"
        me = net.requester_account.address
        spec = TaskSpec.new(program, [(d, ["age"]) for d in net.dataset_ids], [me],
                            10**16, security=security)
        stakes = self._stakes(net)
        data_before = [_snapshot(a) for a in net.data]
        restore = self._inject(net, kind, faulty, fired, spec)
        escrow = net.contracts.tasks.escrow_total()
        errors_before = {id(a): len(a.errors) for a in _agents(net)}
        credit = net.contracts.tasks.credits(me)
        result: TaskResult | None = None
        try:
            result = net.requester(ack_wait=0.2, timeout=30.0).run(spec)
        except MetisError as exc:
            res.problems.append(f"requester raised: {type(exc).__name__}: {exc}")
        finally:
            restore()
        if result is not None:
            errors = self._settle_workers(net, result.task_id)
            for a in _agents(net):  # errors the agents already reaped
                errors += [e for t, e in a.errors[errors_before[id(a)]:]
                           if t == result.task_id]
            self._judge(net, res, result, spec, escrow, credit, errors)
        self._check_stakes(net, res, stakes, faulty, result)
        for agent, snap in zip(net.data, data_before, strict=True):
            lost = _data_problems(agent, snap)
            res.data_lost += len(lost)
            res.problems.extend(lost)
        res.seconds = time.perf_counter() - t0
        if not res.as_expected:
            log.warning("chaos scenario %d (%s): %s %s", index, kind, res.outcome, res.problems)
        return res

    def _inject(self, net: LocalNetwork, kind: str, faulty: set[str],
                fired: Callable[[], None], spec: TaskSpec) -> Callable[[], None]:
        """Arm the fault of ``kind``; returns the function that disarms it."""
        rng = random.Random(self.rng.getrandbits(64))
        pos = rng.randrange(3)  # which committee position misbehaves

        def wrap_compute(make: Callable[[Channel], Channel]) -> Callable[[], None]:
            saved = [(a, a.sessions) for a in net.compute]
            first: dict[str, bytes] = {}
            for a in net.compute:
                a.sessions = _member_opener(a, a.sessions, pos, make, faulty, first)

            def undo() -> None:
                for a, s in saved:
                    a.sessions = s
            return undo

        def wrap_data(make: Callable[[Channel], Channel]) -> Callable[[], None]:
            victim = rng.choice(net.data)
            faulty.add(victim.me)
            saved = victim.sessions
            victim.sessions = _wrap_opener(saved, make)

            def undo_data() -> None:
                victim.sessions = saved
            return undo_data

        if kind in ("honest",):
            return lambda: None
        if kind == "no_show":
            first: dict[int, str] = {}
            saved_accept = [(a, a.accept) for a in net.compute]
            for a in net.compute:
                a.accept = _no_show_hook(net, a, pos, first, faulty, fired)

            def undo_accept() -> None:
                for a, f in saved_accept:
                    a.accept = f
            return undo_accept
        if kind == "mpc_cheat":
            start = rng.randrange(4)
            return wrap_compute(lambda ch: BitFlipChannel(ch, fired, rng, start))
        if kind == "compute_lost":
            after = rng.randrange(1, 6)
            return wrap_compute(lambda ch: LostChannel(ch, fired, after))
        if kind == "delays":
            return wrap_compute(lambda ch: DelayChannel(ch, fired, rng, 0.2, 0.02))
        if kind == "message_dropped":
            which = rng.randrange(3)
            return wrap_compute(lambda ch: DropChannel(ch, fired, which))
        if kind == "corrupt_frame":
            which = rng.randrange(4)
            return wrap_compute(lambda ch: CorruptFrameChannel(ch, fired, rng, which))
        if kind in ("equivocation", "false_claim"):
            items = ("dealt:key/all",) if kind == "equivocation" else ("share:key/",)
            return claim_cheater(net, pos, items, faulty, fired)
        if kind == "dealer_equivocation":
            return wrap_data(lambda ch: EquivocatingDealer(ch, fired))
        if kind == "data_node_lost":
            # the spec goes to the 3 members first, then the shares: die in between
            return wrap_data(lambda ch: LostChannel(ch, fired, 3 + rng.randrange(3)))
        if kind == "double_vote":
            return _double_voter(rng.choice(net.data), faulty, fired, self._refused)
        if kind == "policy_refusal":
            victim = rng.choice(net.data)
            faulty.add(victim.me)
            rec = victim.node.store.list_datasets()[0]
            others = tuple(p for p in ("count", "sum", "mean", "variance")
                           if p != spec.program)
            strict = Policy(allowed_programs=others, allowed_columns=("*",),
                            allowed_requesters=("*",))
            victim.node.set_policy(rec.id, rec.owner, strict)
            fired()

            def undo_policy() -> None:
                victim.node.set_policy(rec.id, rec.owner, rec.policy)
            return undo_policy
        raise ValueError(kind)

    # -- invariants ----------------------------------------------------------------------------
    @staticmethod
    def _stakes(net: LocalNetwork) -> dict[str, int]:
        """Every registered node's stake, read from the chain."""
        reg = net.contracts.registry
        return {str(node).lower(): int(reg.stake_of(node))
                for role in (Role.COMPUTE, Role.DATA) for node, _ in reg.nodes(role)}

    def _settle_workers(self, net: LocalNetwork, task_id: int) -> list[BaseException]:
        """Wait for this task's session threads to end (they time out); their errors."""
        workers = [t.worker for a in net.compute for tid, t in a.tasks.items()
                   if tid == task_id and t.worker is not None]
        workers += [t.worker for a in net.data for tid, t in a.tasks.items()
                    if tid == task_id and t.worker is not None]
        deadline = time.monotonic() + 3 * self.timeout + 5.0
        for w in workers:
            w.thread.join(max(0.0, deadline - time.monotonic()))
        net.pump()
        return [w.error for w in workers if w.error is not None]

    def _check_stakes(self, net: LocalNetwork, res: ScenarioResult,
                      before: dict[str, int], faulty: set[str],
                      result: TaskResult | None) -> None:
        after = self._stakes(net)
        slashed = {node for node, stake in before.items() if after.get(node, 0) < stake}
        for node in sorted(slashed):
            if node in faulty:
                res.faulty_slashed += 1
            else:
                res.honest_slashed += 1
                res.problems.append(f"honest node {node} was slashed")
        if res.kind == "no_show" and res.faults_injected and not res.faulty_slashed:
            res.problems.append("the no-show was not slashed")
        if result is not None and result.slashed:
            named = result.slashed.lower()
            if named not in slashed:
                res.problems.append(f"the verdict named {named}, whose stake did not drop")
            elif keccak(result.evidence) != result.evidence_hash:
                res.problems.append("the evidence hash on chain is not keccak(evidence)")
            elif named in faulty:
                res.cheaters_slashed += 1
        if res.kind == "equivocation" and res.faults_injected and not res.cheaters_slashed:
            res.problems.append("the equivocating member was not slashed")
        if res.kind in ("false_claim", "mpc_cheat", "dealer_equivocation") and slashed:
            res.problems.append("a member was slashed on a disagreement (a pair at most)")

    def _judge(self, net: LocalNetwork, res: ScenarioResult, result: TaskResult,
               spec: TaskSpec, escrow: int, credit: int,
               errors: list[BaseException]) -> None:
        tm = net.contracts.tasks
        info = tm.get_task(TaskId(result.task_id))
        res.state, res.verdict, res.redraws = info.state.name, result.verdict, result.redraws
        res.restarts = result.restarts
        if res.kind in RESTARTED and res.faults_injected and not result.restarts:
            res.problems.append("the task was not restarted with a fresh committee")
        cheat = result.verdict.startswith("failed verification")
        if any(isinstance(e, CheatingDetected) for e in errors):
            cheat = True
        # a CheatingDetected caused by a corrupted frame or a lost message is no cheat
        cheat = cheat and res.kind in CHEATS
        res.errors = sorted({type(e).__name__ for e in errors})
        res.cheats_detected = int(cheat)
        escrow_ok = tm.escrow_total() == escrow
        if info.state == TaskState.SETTLED and result.verified and result.values is not None:
            union = np.concatenate(list(net.columns.values()))
            prog = get_program(spec.program)
            err = abs(float(result.values[0]) - float(prog.plain(union)[0]))
            if err > prog.error_bound(union, 16):
                res.problems.append(f"settled with a wrong result (error {err:g})")
            elif escrow_ok:
                res.outcome = COMPLETED
        elif info.state in (TaskState.REJECTED, TaskState.FAILED):
            refunded = tm.credits(net.requester_account.address) - credit >= spec.fee_wei
            if not refunded:
                res.problems.append("the fee was not refunded")
            if refunded and escrow_ok:
                res.outcome = FAILED_CLEANLY
        else:
            res.problems.append(f"task left in state {info.state.name}")
        if not escrow_ok:
            res.problems.append("escrow not released")
        if res.kind == "policy_refusal" and session_id(result.task_id, 0) in net.sessions._nets:
            res.problems.append("a session was opened for a refused task")
        if res.kind == "double_vote" and res.faults_injected and not all(self._refused):
            res.problems.append("the chain accepted a second vote")
        if res.kind in CHEATS and res.faults_injected and not cheat:
            res.problems.append("the cheat went undetected")


def claim_cheater(net: LocalNetwork, pos: int, items: tuple[str, ...], faulty: set[str],
                   fired: Callable[[], None]) -> Callable[[], None]:
    """The member at committee position ``pos`` of the task's first session lies about
    ``items`` in its signed claims (:class:`ClaimTamperChannel`)."""
    saved = [(a, a.sessions, a.make_signer) for a in net.compute]
    first: dict[str, bytes] = {}
    for a in net.compute:
        account = a.contracts.tasks.account
        if account is None:
            raise ValueError("a compute agent without a key cannot sign claims")
        key = bytes(account.key)
        made: list[LedgerSigner] = []

        def make_signer(committee: Sequence[str], key: bytes = key,
                        made: list[LedgerSigner] = made) -> Signer:
            made.append(LedgerSigner(key, committee))
            return made[-1]

        def latest(made: list[LedgerSigner] = made) -> LedgerSigner | None:
            return made[-1] if made else None

        def tamper(ch: Channel, latest: Callable[[], LedgerSigner | None] = latest,
                   key: bytes = key) -> Channel:
            return ClaimTamperChannel(ch, fired, latest, key, items)

        a.make_signer = make_signer
        a.sessions = _member_opener(a, a.sessions, pos, tamper, faulty, first)

    def undo() -> None:
        for a, sessions, make in saved:
            a.sessions, a.make_signer = sessions, make
    return undo


def _double_voter(agent: DataNodeAgent, faulty: set[str], fired: Callable[[], None],
                  refused: list[bool]) -> Callable[[], None]:
    """After ``agent`` votes on a task, it votes again the other way (owner and validator
    votes, with a different seed commitment); the chain must refuse both."""
    poll = agent.poll
    tried: set[int] = set()

    def poll_twice() -> None:
        poll()
        for task_id, t in agent.tasks.items():
            if not t.voted or task_id in tried:
                continue
            tried.add(task_id)
            faulty.add(agent.me)
            fired()
            tm = agent.contracts.tasks
            other = seed_commitment(secrets.token_bytes(32), agent.address)
            info = tm.get_task(TaskId(task_id))
            flip = not t.decision.approve
            for d in info.datasets:
                if agent.contracts.datasets.owner_of(d).lower() == agent.me:
                    refused.append(_reverts(tm.vote_dataset, TaskId(task_id), d, flip, other))
            refused.append(_reverts(tm.vote, TaskId(task_id), flip, other))

    agent.poll = poll_twice  # type: ignore[method-assign]

    def undo() -> None:
        agent.poll = poll  # type: ignore[method-assign]
    return undo


def _reverts(call: Callable[..., Any], *args: Any) -> bool:
    try:
        call(*args)
    except TransactionReverted:
        return True
    return False


def _agents(net: LocalNetwork) -> list[ComputeAgent | DataNodeAgent]:
    return [*net.compute, *net.data]


def _wrap_opener(opener: SessionOpener, make: Callable[[Channel], Channel]) -> SessionOpener:
    def open_session(sid: bytes, members: Sequence[str]) -> Channel:
        return make(opener(sid, members))
    return open_session


def _member_opener(agent: ComputeAgent, opener: SessionOpener, pos: int,
                   make: Callable[[Channel], Channel], faulty: set[str],
                   first: dict[str, bytes]) -> SessionOpener:
    """``agent``'s opener: its channel in the task's first session is wrapped when it sits
    at committee position ``pos`` there (a restarted task runs without the fault)."""
    def open_session(sid: bytes, members: Sequence[str]) -> Channel:
        ch = opener(sid, members)
        if first.setdefault("sid", sid) == sid and members[pos].lower() == agent.me:
            faulty.add(agent.me)
            return make(ch)
        return ch
    return open_session


def _no_show_hook(net: LocalNetwork, agent: ComputeAgent, pos: int, first: dict[int, str],
                  faulty: set[str], fired: Callable[[], None]) -> Callable[[int], bool]:
    def accept(task_id: int) -> bool:
        info = net.contracts.tasks.get_task(TaskId(task_id))
        if info.round == 0:
            first.setdefault(task_id, info.committee[pos].lower())
        if agent.me == first.get(task_id):
            faulty.add(agent.me)
            fired()
            return False
        return True
    return accept


def run_chaos(root: Path, runs: int, *, seed: int = 0, kinds: Sequence[str] | None = None,
              progress: Callable[[ScenarioResult], None] | None = None,
              **kw: Any) -> ChaosTotals:
    """``runs`` seeded scenarios on a fresh in-process network under ``root``."""
    runner = ChaosRunner(root, seed=seed, progress=progress, **kw)
    try:
        return runner.run(runs, kinds)
    finally:
        runner.close()
