"""Homomorphic outsourcing as a task: data nodes encrypt, one compute node aggregates.

The ``mode: "he"`` path of the task flow (DESIGN.md §4 and §7), beside the MPC path of
:mod:`metisnet.node.session`. Consensus is the same (votes, seeds, a draw), but the chain
draws *one* compute node (``committee_size`` 1), and the requester brings a Paillier key
pair: its public key is in the spec's params (so the spec hash on chain binds it), the
private key never leaves the requester. The cryptography is :mod:`metisnet.verify.outsource`;
this module moves its messages over a task session and turns a failed check into slashing
evidence.

Session members, in party order: the compute node (party 0), the data nodes (the on-chain
owners of the task's datasets, each once; owner index ``j`` is the position among them),
the receiver (exactly one: the holder of the Paillier key, usually the requester). Every
message is msgpack (no pickle) carried as a ``uint8`` array; pairwise links are private
(TLS between processes), so what the requester sends a data node is not seen by the
compute node. One attempt (a draw round) of task ``T`` has the MAC task id
``T.to_bytes(32) || round.to_bytes(4)`` (:func:`attempt_id`): a redrawn task is prepared
again under fresh one-time MAC keys.

1. requester -> data node ``j``: ``he:mac``, the one-time MAC seed of owner ``j`` for this
   attempt (:meth:`~metisnet.verify.mac.TaskKeys.owner_seed`);
2. data node ``j`` -> compute node: ``he:spec`` (the canonical spec; its keccak must be
   the spec hash on chain) and ``he:batch`` (value and tag ciphertexts of its rows: all
   its held inputs' first columns, concatenated); -> requester: ``he:commit``, the
   commitment (Merkle root of the ciphertexts, MAC seed hash), signed with the node key;
3. compute node -> receiver: ``he:result``, the evaluated program, signed with its key;
4. the requester checks (:func:`~metisnet.verify.outsource.verify_result`), decodes, and
   posts the verdict. On a failed check it builds a *dispute* (:func:`check_dispute`): the
   verifier's evidence, the compute node's signed result and the owners' signed
   commitments. Anyone holding the spec (for the public key) and the chain (for the
   compute node and the owners' addresses) can check it; its keccak is the evidence hash
   posted with ``submit_verdict(..., success=False, cheater=<compute node>)``.

Programs (over the union of all owners' rows; ``f`` = 16 fractional bits, values encoded
once by each owner, everything after that exact):

=========  ===========================  ===========================================
program    evaluated                    error bound
=========  ===========================  ===========================================
count      ``sum`` (rows committed)     exact
sum        ``sum``                      ``N * 2^-(f+1)``
mean       ``sum``, divided by ``N``    ``2^-(f+1)``
variance   ``colsum`` over [x, x^2]     ``(4 max|x| + 1) * 2^-(f+1)`` (population)
=========  ===========================  ===========================================

What the receiver learns beyond the aggregate: each owner's row count (in its commitment)
and each owner's own partial sums, because :func:`~metisnet.verify.outsource.verify_result`
decrypts and MAC-checks every owner's output separately before adding them. The MPC path
reveals only the aggregate; a data node's policy that must hide its own partial sum from
the requester should allow only ``mode: "mpc"`` (with one owner the partial sum is the aggregate, so
nothing extra is revealed).

Cost for ``N`` rows over ``J`` owners with a ``k``-bit modulus: each owner ``2 N_j``
encryptions (``4 N_j`` for variance) and sends ``2 N_j * k/4`` bytes; the compute node
``2 N`` ciphertext multiplications; the requester ``2 J`` decryptions (``4 J`` for variance)
and the PRF sums of :mod:`metisnet.verify.mac`. One round: owners -> compute -> requester.
Soundness error per task below 2^-63 (:mod:`metisnet.verify.outsource`). Keys below 2048
bits (the 512-bit keys of the fast tests) are for tests only; :data:`MIN_KEY_BITS` is the
floor a data node accepts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError as EthValidationError
from numpy.typing import NDArray

from metisnet.chain.tasks import TaskInfo
from metisnet.errors import CheatingDetected, ProtocolError, ValidationError
from metisnet.he.paillier import PaillierKeypair, PaillierPublicKey
from metisnet.net.channel import Channel
from metisnet.node.taskspec import TaskSpec
from metisnet.verify.mac import SEED_BYTES, MacKey, TaskKeys
from metisnet.verify.outsource import check_evidence, evaluate, prepare, verify_result
from metisnet.verify.programs import LinearProgram

__all__ = [
    "HE_PROGRAMS",
    "MIN_KEY_BITS",
    "Evaluate",
    "HeTask",
    "OutsourceLayout",
    "OutsourceVerifier",
    "attempt_id",
    "check_dispute",
    "contribute",
    "he_error_bound",
    "he_params",
    "he_task",
    "outsource_layout",
    "serve",
]

log = logging.getLogger("metisnet.outsource")

VERSION = 1
#: The smallest Paillier modulus a data node accepts in a spec (below 2048: tests only).
MIN_KEY_BITS = 512
#: Largest message accepted on an outsourcing session (a batch of ~10^6 values at 2048 bits).
MAX_MESSAGE_BYTES = 1 << 30
HE_PROGRAMS = ("count", "sum", "mean", "variance")

_COMMIT_DOMAIN = b"metisnet/outsource-task/commitment/v1"
_RESULT_DOMAIN = b"metisnet/outsource-task/result/v1"

#: The compute node's evaluation (``verify.outsource.evaluate``; tests inject cheats here).
Evaluate = Callable[[LinearProgram, Sequence[Mapping[str, Any]]], dict[str, Any]]


# -- the spec -------------------------------------------------------------------------------
def he_params(public_key: PaillierPublicKey) -> dict[str, Any]:
    """Spec params carrying the requester's Paillier public key (JSON: hex and ints)."""
    d = public_key.to_dict()
    return {"paillier": {"n": d["n"].hex(), "h_s": d["h_s"].hex(), "r_bits": d["r_bits"],
                         "frac_bits": d["frac_bits"]}}


@dataclass(frozen=True)
class HeTask:
    """An ``he`` spec's program and key, checked."""

    name: str
    program: LinearProgram
    public_key: PaillierPublicKey
    squares: bool

    def finish(self, verified: Any) -> NDArray[np.float64]:
        """The task's value from a :class:`~metisnet.verify.outsource.VerifiedResult`."""
        if self.name == "count":
            return np.array([float(verified.rows)])
        if self.name == "sum":
            return np.array([verified.values()[0]])
        if self.name == "mean":
            return np.array([verified.mean()[0]])
        return np.array([verified.variance(ddof=0)])


def he_task(spec: TaskSpec) -> HeTask:
    """Validate an ``he`` spec's program, params and receivers (raises ValidationError)."""
    if spec.mode != "he":
        raise ValidationError("not an he task")
    if spec.program not in HE_PROGRAMS:
        raise ValidationError(f"program {spec.program!r} has no he form; "
                              f"available: {', '.join(HE_PROGRAMS)}")
    if set(spec.params) != {"paillier"} or not isinstance(spec.params["paillier"], dict):
        raise ValidationError("an he task takes exactly one parameter, 'paillier' "
                              "(the receiver's public key; see he_params)")
    p = spec.params["paillier"]
    try:
        key = PaillierPublicKey.from_dict({
            "scheme": "paillier-djn", "n": bytes.fromhex(p["n"]),
            "h_s": bytes.fromhex(p["h_s"]), "r_bits": int(p["r_bits"]),
            "frac_bits": int(p["frac_bits"])})
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError("malformed Paillier key in the spec params") from None
    if key.bits < MIN_KEY_BITS:
        raise ValidationError(f"the Paillier key has {key.bits} bits; at least "
                              f"{MIN_KEY_BITS} are required")
    if len(spec.receivers) != 1:
        raise ValidationError("an he task has exactly one receiver, the key holder")
    if spec.committee_size != 1:
        raise ValidationError("an he task is outsourced to exactly one compute node")
    program = LinearProgram.colsum() if spec.program == "variance" else LinearProgram.sum()
    return HeTask(spec.program, program, key, squares=spec.program == "variance")


def he_error_bound(program: str, x: NDArray[np.float64], frac_bits: int = 16) -> float:
    """The stated error of an ``he`` program on the union ``x`` of all rows."""
    ulp = 2.0 ** -(frac_bits + 1)
    if program == "count":
        return 0.0
    if program == "sum":
        return float(x.size) * ulp
    if program == "mean":
        return ulp
    if program == "variance":
        return (4.0 * float(np.max(np.abs(x))) + 1.0) * ulp
    raise ValidationError(f"unknown he program {program!r}")


def attempt_id(task_id: int, round_: int) -> bytes:
    """The MAC task id of one attempt (draw round) of an on-chain task."""
    return task_id.to_bytes(32, "big") + round_.to_bytes(4, "big")


# -- the session ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutsourceLayout:
    """Who is in an outsourcing session, in party order."""

    compute: str
    data_nodes: tuple[str, ...]
    receiver: str

    def __post_init__(self) -> None:
        if not self.data_nodes or len(set(self.data_nodes)) != len(self.data_nodes):
            raise ValidationError("an outsourcing session needs distinct data nodes")
        if self.compute in self.data_nodes or self.compute == self.receiver:
            raise ValidationError("the compute node may not be a data node or the receiver")
        if self.receiver in self.data_nodes:
            raise ValidationError("the receiver of an he task may not also be one of its "
                                  "data nodes (it would send itself its own MAC key)")

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.compute, *self.data_nodes, self.receiver)))

    def index(self, node: str) -> int:
        try:
            return self.members.index(node.lower())
        except ValueError:
            raise ValidationError(f"{node} is not a member of this session") from None

    def owner(self, node: str) -> int:
        """The owner index (MAC key, commitment) of a data node."""
        try:
            return self.data_nodes.index(node.lower())
        except ValueError:
            raise ValidationError(f"{node} is not a data node of this session") from None


def outsource_layout(info: TaskInfo, owner_of: Callable[[bytes], str]) -> OutsourceLayout:
    """The layout of an ``he`` task from chain state only."""
    if len(info.committee) != 1 or len(info.receivers) != 1:
        raise ValidationError("an he task has one compute node and one receiver")
    owners = [owner_of(bytes(d)).lower() for d in info.datasets]
    return OutsourceLayout(info.committee[0].lower(), tuple(dict.fromkeys(owners)),
                           info.receivers[0].lower())


def _send(channel: Channel, peer: int, tag: str, msg: Any) -> None:
    channel.send(peer, tag, np.frombuffer(msgpack.packb(msg, use_bin_type=True),
                                          dtype=np.uint8))


def _recv(channel: Channel, peer: int, tag: str, timeout: float) -> Any:
    raw = channel.recv(peer, tag, timeout)
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"party {peer} sent a malformed {tag!r} message")
    try:
        return msgpack.unpackb(raw.tobytes(), raw=False)
    except (msgpack.UnpackException, ValueError) as exc:
        raise ProtocolError(f"party {peer} sent undecodable {tag!r}") from exc


def _signable(domain: bytes, body: bytes) -> Any:
    return encode_defunct(primitive=keccak(domain + body))


def _sign(account: LocalAccount | None, domain: bytes, body: bytes) -> bytes:
    if account is None:
        raise ValidationError("this node has no signing key")
    return bytes(account.sign_message(_signable(domain, body)).signature)


def _signer(domain: bytes, body: Any, signature: Any) -> str | None:
    """The lower-case address that signed ``body``, or None."""
    if not isinstance(body, bytes) or not isinstance(signature, bytes):
        return None
    try:
        return str(Account.recover_message(_signable(domain, body),
                                           signature=signature)).lower()
    except (BadSignature, EthValidationError, ValueError, TypeError):
        return None


# -- data node --------------------------------------------------------------------------------
def contribute(channel: Channel, layout: OutsourceLayout, me: str, spec: TaskSpec,
               columns: Sequence[NDArray[np.float64]], attempt: bytes,
               account: LocalAccount | None, *, timeout: float = 60.0) -> dict[str, Any]:
    """As a data node: take the MAC seed, encrypt and tag the rows, send batch and commitment.

    Returns the commitment (also kept by the node as its record of what it sent).
    """
    task = he_task(spec)
    j = layout.owner(me)
    receiver = layout.index(layout.receiver)
    msg = _recv(channel, receiver, "he:mac", timeout)
    if not isinstance(msg, dict) or msg.get("task") != attempt or msg.get("owner") != j \
            or not isinstance(msg.get("seed"), bytes) or len(msg["seed"]) != SEED_BYTES:
        raise ProtocolError("the receiver sent a MAC key for another task or owner")
    mac = MacKey(msg["seed"], task.public_key.n)
    values = np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1) for c in columns])
    if values.size == 0:
        raise ValidationError("no rows to contribute")
    batch, commitment = prepare(task.public_key, mac, attempt, j, values, squares=task.squares)
    _send(channel, 0, "he:spec", spec.canonical())
    _send(channel, 0, "he:batch", batch)
    body = msgpack.packb(commitment, use_bin_type=True)
    _send(channel, receiver, "he:commit",
          {"commitment": body, "sig": _sign(account, _COMMIT_DOMAIN, body)})
    return commitment


# -- compute node -----------------------------------------------------------------------------
def serve(channel: Channel, layout: OutsourceLayout, spec_hash: bytes,
          account: LocalAccount | None, *, evaluate_fn: Evaluate | None = None,
          parse: Callable[[bytes], TaskSpec], timeout: float = 60.0,
          on_spec: Callable[[TaskSpec], None] | None = None) -> dict[str, Any]:
    """As the compute node: take spec and batch from every data node, evaluate, sign, send.

    ``parse`` turns canonical spec bytes into a spec (``taskspec.parse_spec``); ``on_spec``
    is called with it once its hash matched the chain.
    """
    spec: TaskSpec | None = None
    batches = []
    for node in layout.data_nodes:
        peer = layout.index(node)
        raw = _recv(channel, peer, "he:spec", timeout)
        if not isinstance(raw, bytes) or keccak(raw) != bytes(spec_hash):
            raise ProtocolError(f"data node {node} sent a spec that is not the task's")
        if spec is None:
            spec = parse(raw)
            if on_spec is not None:
                on_spec(spec)
        batches.append(_recv(channel, peer, "he:batch", timeout))
    if spec is None:  # pragma: no cover - a layout always has a data node
        raise ProtocolError("no spec received")
    task = he_task(spec)
    result = (evaluate_fn or evaluate)(task.program, batches)
    body = msgpack.packb(result, use_bin_type=True)
    _send(channel, layout.index(layout.receiver), "he:result",
          {"result": body, "sig": _sign(account, _RESULT_DOMAIN, body)})
    return result


# -- requester --------------------------------------------------------------------------------
@dataclass
class OutsourceVerifier:
    """The requester's secrets for ``he`` tasks: its Paillier key pair and MAC master.

    ``disputes`` keeps each failed task's dispute (public; its keccak is on chain).
    """

    keypair: PaillierKeypair
    mac_keys: TaskKeys = field(default_factory=TaskKeys)
    timeout: float = 60.0
    disputes: dict[bytes, bytes] = field(default_factory=dict)
    #: seconds the last :func:`verify_result` took (decryptions and MAC checks)
    last_verify_s: float = 0.0

    def __repr__(self) -> str:
        return f"OutsourceVerifier({self.keypair.public_key!r}, <secrets hidden>)"

    def check_spec(self, spec: TaskSpec) -> HeTask:
        task = he_task(spec)
        if task.public_key != self.keypair.public_key:
            raise ValidationError("the spec names a Paillier key other than this requester's")
        return task

    def receive(self, channel: Channel, layout: OutsourceLayout, spec: TaskSpec,
                attempt: bytes) -> NDArray[np.float64]:
        """Hand out MAC keys, collect commitments and the result, verify, decode.

        Raises :class:`CheatingDetected`: with ``suspects=(0,)`` and a dispute as evidence
        when the compute node's signed result fails a check; with no suspect when a
        message is malformed or unsigned (nothing a third party could check).
        """
        task = self.check_spec(spec)
        try:
            return self._receive(channel, layout, task, attempt)
        except CheatingDetected:
            raise
        except (ProtocolError, ValidationError) as exc:  # malformed: no one provably at fault
            raise CheatingDetected(f"outsourcing session failed: {exc}") from exc

    def _receive(self, channel: Channel, layout: OutsourceLayout, task: HeTask,
                 attempt: bytes) -> NDArray[np.float64]:
        pk = task.public_key
        for j, node in enumerate(layout.data_nodes):
            _send(channel, layout.index(node), "he:mac",
                  {"task": attempt, "owner": j,
                   "seed": self.mac_keys.owner_seed(attempt, j)})
        signed_commits: list[list[Any]] = []
        commitments: list[dict[str, Any]] = []
        for j, node in enumerate(layout.data_nodes):
            msg = _recv(channel, layout.index(node), "he:commit", self.timeout)
            body = msg.get("commitment") if isinstance(msg, dict) else None
            sig = msg.get("sig") if isinstance(msg, dict) else None
            if _signer(_COMMIT_DOMAIN, body, sig) != node:
                raise CheatingDetected(f"data node {node} sent an unsigned commitment")
            c = msgpack.unpackb(body, raw=False)
            if not isinstance(c, dict) or c.get("task") != attempt or c.get("owner") != j \
                    or c.get("key_id") != pk.key_id:
                raise CheatingDetected(f"data node {node} committed to another task or key")
            signed_commits.append([body, sig])
            commitments.append(c)
        msg = _recv(channel, 0, "he:result", self.timeout)
        body = msg.get("result") if isinstance(msg, dict) else None
        sig = msg.get("sig") if isinstance(msg, dict) else None
        if _signer(_RESULT_DOMAIN, body, sig) != layout.compute:
            raise CheatingDetected("the compute node's result is not signed by it")
        result = msgpack.unpackb(body, raw=False)
        t0 = time.perf_counter()
        try:
            verified = verify_result(self.keypair.private_key, self.mac_keys, attempt,
                                     task.program, commitments, result)
        except CheatingDetected as exc:
            dispute = msgpack.packb(
                {"v": VERSION, "type": "he-dispute", "task": attempt,
                 "evidence": exc.evidence, "result": body, "result_sig": sig,
                 "commitments": signed_commits}, use_bin_type=True)
            self.disputes[attempt] = dispute
            # name the compute node only when a third party can check the dispute
            provable = check_dispute(dispute, pk, layout.compute, layout.data_nodes)
            log.warning("he task %s: the compute node's result failed verification (%s); "
                        "dispute %s", attempt.hex(), "provable" if provable else
                        "not provable to a third party", keccak(dispute).hex())
            raise CheatingDetected(str(exc), suspects=(0,) if provable else (),
                                   evidence=dispute) from None
        finally:
            self.last_verify_s = time.perf_counter() - t0
        return task.finish(verified)


def check_dispute(dispute: bytes, public_key: PaillierPublicKey, compute_node: str,
                  owners: Sequence[str]) -> bool:
    """Whether ``dispute`` proves that ``compute_node`` answered an ``he`` task wrongly.

    Needs public data only: the key from the spec's params (bound by the spec hash on
    chain), the drawn compute node and the data nodes (dataset owners, in session order)
    from the chain. Checks the compute node's signature on the result, each owner's
    signature on its commitment, that the evidence's commitment is one of them, and the
    evidence itself (:func:`~metisnet.verify.outsource.check_evidence`).
    """
    try:
        d = msgpack.unpackb(dispute, raw=False)
        if not isinstance(d, dict) or d.get("type") != "he-dispute" or d.get("v") != VERSION:
            return False
        if _signer(_RESULT_DOMAIN, d["result"], d["result_sig"]) != compute_node.lower():
            return False
        commits = []
        for body, sig in d["commitments"]:
            c = msgpack.unpackb(body, raw=False)
            owner = int(c["owner"])
            if not 0 <= owner < len(owners) or c["task"] != d["task"] \
                    or _signer(_COMMIT_DOMAIN, body, sig) != owners[owner].lower():
                return False
            commits.append(c)
        if sorted(int(c["owner"]) for c in commits) != list(range(len(owners))):
            return False
        ev = msgpack.unpackb(d["evidence"], raw=False)
        if ev.get("task") != d["task"]:
            return False
        if "commitment" in ev and ev["commitment"] not in commits:
            return False
        result = msgpack.unpackb(d["result"], raw=False)
        program = LinearProgram.from_dict(ev["program"])
        return _misshapen(result, commits, program) \
            or check_evidence(d["evidence"], public_key, result)
    except (KeyError, TypeError, ValueError, IndexError, msgpack.UnpackException):
        return False


def _misshapen(result: Any, commits: Sequence[Mapping[str, Any]],
               program: LinearProgram) -> bool:
    """Whether a result's shape alone contradicts the commitments: a missing, extra or
    repeated owner, or the wrong number of outputs for an owner's committed block."""
    outs = result.get("outputs") if isinstance(result, dict) else None
    if not isinstance(outs, list) or not all(isinstance(o, dict) for o in outs):
        return True
    owners = [o.get("owner") for o in outs]
    if len(set(map(repr, owners))) != len(owners) \
            or set(owners) != {int(c["owner"]) for c in commits}:
        return True
    by_owner = {int(c["owner"]): c for c in commits}
    for o in outs:
        c = by_owner[int(o["owner"])]
        m = program.output_count(int(c["rows"]), int(c["cols"]))
        vals, tags = o.get("values"), o.get("tags")
        if not isinstance(vals, list) or not isinstance(tags, list) or len(vals) != m \
                or len(tags) != m:
            return True
    return False
