"""Verifiable outsourcing of linear programs on Paillier ciphertexts, as plain messages.

Three roles, each a function from messages to messages; every message is a dict of
msgpack-compatible values (bytes, small ints, strings, lists), so a transport can send it
as it is (``msgpack.packb(msg, use_bin_type=True)``); nothing is pickled.

* **Requester** (the receiver of the result; holds the Paillier private key and a
  :class:`~metisnet.verify.mac.TaskKeys` master secret). Hands each owner ``j`` its
  one-time :class:`~metisnet.verify.mac.MacKey` for the task (``keys.owner_key(task, j, n)``,
  over a private channel) and later calls :func:`verify_result`.
* **Data owner / data node** (several in multi-owner aggregation; all encrypt under the
  requester's public key): :func:`prepare` returns the *batch* for the compute node
  (value and tag ciphertexts) and the *commitment* for the requester and the chain
  (a Merkle root of the ciphertexts bound to task and owner, plus a hash of the MAC seed).
  A data node outsourcing its own data is simply owner 0 and requester at once.
* **Compute node** (one, drawn by the chain): :func:`evaluate` runs the public
  :class:`~metisnet.verify.programs.LinearProgram` on every batch and returns the *result*:
  per owner the value and tag ciphertexts of each output and the Merkle root of the inputs
  it used.

:func:`verify_result` accepts only if the result names the task and program, covers
exactly the committed owners with the committed input roots, and every output passes its
MAC check; otherwise it raises :class:`~metisnet.errors.CheatingDetected` with
``suspects=(owner,)`` and ``evidence`` (msgpack bytes) that :func:`check_evidence`
verifies from public data: the revealed one-time MAC seed (checked against the
commitment), and for the failing output the decrypted values with Paillier randomness
proofs. A verified result is a :class:`VerifiedResult`, a different type from anything
unverified. Soundness error per task: below 2^-63 (see :mod:`metisnet.verify.mac` and
:mod:`metisnet.verify.programs`).

Communication (one round: owners -> compute node -> requester; ciphertexts are
``2k/8`` bytes for a ``k``-bit modulus, 512 bytes at 2048 bits): a batch carries
``2 * N`` ciphertexts (1 KiB per value at 2048 bits), a commitment about 150 bytes, a
result ``2 * m`` ciphertexts and a 32-byte root per owner for ``m`` outputs.

Task ids: ``task_id`` is bytes, unique per attempt (e.g. the chain's task id and the
attempt number, ``task.to_bytes(32, "big") + attempt.to_bytes(4, "big")``). Evidence
reveals the owner's one-time MAC seed for that attempt, so a task re-drawn after a failure
must be prepared anew under a new attempt id, never re-sent with the old tags.

Dispute caveat: evidence shows that the compute node's signed answer fails the check
under the committed key; that the owner's tags were well formed is a separate claim an
owner can prove by opening its inputs (Merkle inclusion proofs plus randomness proofs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import msgpack
import numpy as np
from gmpy2 import mpz
from numpy.typing import ArrayLike

from metisnet.crypto.fixedpoint import DEFAULT_FRAC_BITS, FixedPoint
from metisnet.crypto.prg import Csprng
from metisnet.errors import (
    CheatingDetected,
    DecryptionError,
    ShapeError,
    ValidationError,
)
from metisnet.he.paillier import (
    PaillierPrivateKey,
    PaillierPublicKey,
    check_randomness_proof,
)
from metisnet.verify.mac import MacKey, TaskKeys
from metisnet.verify.merkle import MerkleTree
from metisnet.verify.programs import LinearProgram

__all__ = [
    "VERSION",
    "VerifiedResult",
    "check_evidence",
    "encode_block",
    "evaluate",
    "input_root",
    "prepare",
    "verify_result",
]

VERSION = 1
#: The compute node's suspect index in CheatingDetected (owners are data, not suspects).
COMPUTE_NODE = 0


# -- helpers -------------------------------------------------------------------------------
def _ct_bytes(key: PaillierPublicKey, c: int) -> bytes:
    return bytes(mpz(c).to_bytes(key.nsquare_bytes, "big"))


def _ct_from(key: PaillierPublicKey, b: Any) -> mpz:
    if not isinstance(b, bytes) or len(b) != key.nsquare_bytes:
        raise ValidationError("ciphertext has the wrong type or length for this key")
    return key.check_ciphertext(mpz.from_bytes(b, "big"))


def _domain(task_id: bytes, owner: int) -> bytes:
    return b"metisnet/outsource/v1" + len(task_id).to_bytes(2, "big") + task_id \
        + owner.to_bytes(4, "big")


def input_root(task_id: bytes, owner: int, values: Sequence[bytes],
               tags: Sequence[bytes]) -> bytes:
    """The Merkle root over chunks ``value_i || tag_i`` bound to task and owner."""
    if len(values) != len(tags):
        raise ShapeError("values and tags differ in number")
    return MerkleTree([v + t for v, t in zip(values, tags, strict=True)],
                      _domain(task_id, owner)).root


def _need(msg: Mapping[str, Any], kind: str) -> None:
    if not isinstance(msg, Mapping) or msg.get("type") != kind or msg.get("v") != VERSION:
        raise ValidationError(f"expected a version-{VERSION} {kind!r} message")


def encode_block(values: ArrayLike, frac_bits: int | None = None,
                 squares: bool = False) -> tuple[list[int], int, int, list[int]]:
    """Encode a 1-D or 2-D array as ``(ints row-major, rows, cols, column scales)``.

    Integer arrays stay exact (scale 0) unless ``frac_bits`` is given; reals use the shared
    fixed-point encoding (default 16 bits). With ``squares`` a 1-D input becomes the two
    columns ``[x, x^2]`` (scales ``f`` and ``2f``), for variance.
    """
    arr = np.asarray(values)
    if arr.ndim == 0 or arr.ndim > 2 or arr.size == 0:
        raise ShapeError("values must be a non-empty vector or matrix")
    if arr.dtype.kind in "iu" and frac_bits is None:
        f = 0
        ints = [int(v) for v in arr.reshape(-1)]
    elif arr.dtype.kind in "iuf":
        f = DEFAULT_FRAC_BITS if frac_bits is None else frac_bits
        fp = FixedPoint(f)
        ints = [fp.encode_int(float(v)) for v in arr.reshape(-1)]
    else:
        raise ValidationError("values must be numbers")
    rows, cols = (arr.shape[0], 1) if arr.ndim == 1 else (arr.shape[0], arr.shape[1])
    scales = [f] * cols
    if squares:
        if cols != 1:
            raise ShapeError("squares=True takes a vector")
        ints = [v for x in ints for v in (x, x * x)]
        cols, scales = 2, [f, 2 * f]
    return ints, rows, cols, scales


# -- data owner ----------------------------------------------------------------------------
def prepare(public_key: PaillierPublicKey, mac_key: MacKey, task_id: bytes, owner: int,
            values: ArrayLike, *, frac_bits: int | None = None, squares: bool = False,
            rng: Csprng | None = None,
            encrypt_many: Callable[[list[int]], Sequence[bytes]] | None = None,
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Encrypt and tag an owner's block: ``(batch for the compute node, commitment)``.

    ``encrypt_many`` (optional) replaces the in-process encryption: it maps integers mod
    ``n`` to ciphertext bytes under ``public_key`` (e.g. a node's process pool calling
    ``raw_encrypt_many`` in workers); the result is checked for length and range only.
    Cost: ``2 * rows * cols`` encryptions (values and tags) and as many SHA-256 leaves.
    """
    if mac_key.n != public_key.n:
        raise ValidationError("the MAC key was made for another Paillier modulus")
    ints, rows, cols, scales = encode_block(values, frac_bits, squares)
    if any(abs(x) > public_key.max_int for x in ints):
        raise ValidationError("a value is too large for this key")
    tags = mac_key.tags(0, ints)
    if encrypt_many is None:
        rng = rng or Csprng()
        vb = [_ct_bytes(public_key, c) for c in public_key.raw_encrypt_many(ints, rng=rng)]
        tb = [_ct_bytes(public_key, c)
              for c in public_key.raw_encrypt_many([int(t) for t in tags], rng=rng)]
    else:
        n = int(public_key.n)
        vb = list(encrypt_many([x % n for x in ints]))
        tb = list(encrypt_many([int(t) for t in tags]))
        if len(vb) != len(ints) or len(tb) != len(ints):
            raise ValidationError("encrypt_many returned the wrong number of ciphertexts")
        for b in (*vb, *tb):
            _ct_from(public_key, b)
    root = input_root(task_id, owner, vb, tb)
    batch = {"v": VERSION, "type": "batch", "task": task_id, "owner": owner,
             "key": public_key.to_dict(), "rows": rows, "cols": cols, "scales": scales,
             "values": vb, "tags": tb}
    commitment = {"v": VERSION, "type": "commitment", "task": task_id, "owner": owner,
                  "key_id": public_key.key_id, "rows": rows, "cols": cols, "scales": scales,
                  "root": root, "mac_commit": mac_key.commitment()}
    return batch, commitment


# -- compute node --------------------------------------------------------------------------
def evaluate(program: LinearProgram | Mapping[str, Any],
             batches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Run ``program`` on every owner's batch (one task); returns the result message.

    Cost per owner: the program twice on ciphertexts (values, tags) and one Merkle root.
    """
    prog = program if isinstance(program, LinearProgram) else LinearProgram.from_dict(
        dict(program))
    if not batches:
        raise ValidationError("no batches to evaluate")
    task = batches[0].get("task")
    outputs = []
    seen: set[int] = set()
    for batch in batches:
        _need(batch, "batch")
        if batch["task"] != task:
            raise ValidationError("batches of different tasks")
        owner = int(batch["owner"])
        if owner in seen:
            raise ValidationError(f"two batches from owner {owner}")
        seen.add(owner)
        key = PaillierPublicKey.from_dict(batch["key"])
        rows, cols = int(batch["rows"]), int(batch["cols"])
        vals, tags = batch["values"], batch["tags"]
        if len(vals) != rows * cols or len(tags) != rows * cols:
            raise ShapeError("batch size does not match its layout")
        vct = [_ct_from(key, b) for b in vals]
        tct = [_ct_from(key, b) for b in tags]
        ys = prog.evaluate(key, vct, rows, cols, with_offset=True)
        ts = prog.evaluate(key, tct, rows, cols, with_offset=False)
        outputs.append({"owner": owner, "root": input_root(task, owner, vals, tags),
                        "count": rows * cols,
                        "values": [_ct_bytes(key, c) for c in ys],
                        "tags": [_ct_bytes(key, c) for c in ts]})
    return {"v": VERSION, "type": "result", "task": task, "program": prog.digest,
            "outputs": outputs}


# -- requester -----------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifiedResult:
    """Outputs that passed every check: exact integers with their fixed-point scales.

    ``per_owner[j][k]`` is output ``k`` on owner ``j``'s block; ``total[k]`` their sum (the
    multi-owner aggregate); ``counts[j]`` the rows of owner ``j``.
    """

    task: bytes
    per_owner: Mapping[int, tuple[int, ...]]
    total: tuple[int, ...]
    scales: tuple[int, ...]
    counts: Mapping[int, int]

    def values(self) -> list[float]:
        """``total`` decoded to reals."""
        return [float(Fraction(v, 1 << s)) for v, s in zip(self.total, self.scales,
                                                            strict=True)]

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def mean(self) -> list[float]:
        """Column means from a ``sum``/``colsum`` result (over all owners' rows)."""
        return [float(Fraction(v, (1 << s) * self.rows))
                for v, s in zip(self.total, self.scales, strict=True)]

    def variance(self, ddof: int = 0) -> float:
        """Variance from a ``colsum`` over ``[x, x^2]`` (see ``prepare(squares=True)``),
        computed exactly from the two integer sums."""
        if len(self.total) != 2 or self.scales[1] != 2 * self.scales[0]:
            raise ShapeError("variance needs a colsum over [x, x^2]")
        n = self.rows
        if n - ddof <= 0:
            raise ValidationError("not enough rows for this ddof")
        s1 = Fraction(self.total[0], 1 << self.scales[0])
        s2 = Fraction(self.total[1], 1 << self.scales[1])
        return float((s2 - s1 * s1 / n) / (n - ddof))


def _cheat(msg: str, owner: int | None, evidence: dict[str, Any]) -> CheatingDetected:
    evidence = {"v": VERSION, "type": "evidence", "reason": msg, **evidence}
    if owner is not None:
        evidence["owner"] = owner
    return CheatingDetected(
        f"compute node failed verification: {msg}", suspects=(COMPUTE_NODE,),
        evidence=bytes(msgpack.packb(evidence, use_bin_type=True)))


def verify_result(private_key: PaillierPrivateKey,
                  mac_keys: TaskKeys | Mapping[int, MacKey], task_id: bytes,
                  program: LinearProgram, commitments: Sequence[Mapping[str, Any]],
                  result: Mapping[str, Any], *, rng: Csprng | None = None) -> VerifiedResult:
    """Check ``result`` against the owners' ``commitments``; raise
    :class:`CheatingDetected` (with evidence) on any deviation.

    Cost: two decryptions per output and per owner, PRF word sums (sums) or one
    small-by-big product per input (weighted programs); no work on input ciphertexts.
    """
    pk = private_key.public_key
    _need(result, "result")
    base = {"task": task_id, "program": program.to_dict()}
    if result.get("task") != task_id:
        raise _cheat("result names another task (replayed or misrouted)", None, base)
    if result.get("program") != program.digest:
        raise _cheat("result was computed for another program", None, base)
    comms: dict[int, Mapping[str, Any]] = {}
    for c in commitments:
        _need(c, "commitment")
        if c["task"] != task_id or c["key_id"] != pk.key_id:
            raise ValidationError("a commitment belongs to another task or key")
        comms[int(c["owner"])] = c
    outs = result.get("outputs")
    if not isinstance(outs, list):
        raise _cheat("malformed result", None, base)
    by_owner: dict[int, Mapping[str, Any]] = {}
    for o in outs:
        if not isinstance(o, Mapping) or not isinstance(o.get("owner"), int):
            raise _cheat("malformed result", None, base)
        owner = int(o["owner"])
        if owner in by_owner:
            raise _cheat(f"owner {owner} appears twice", owner, base)
        by_owner[owner] = o
    if set(by_owner) != set(comms):
        raise _cheat("result does not cover exactly the committed owners", None, base)

    per_owner: dict[int, tuple[int, ...]] = {}
    counts: dict[int, int] = {}
    scales: list[int] | None = None
    for owner, c in sorted(comms.items()):
        o = by_owner[owner]
        rows, cols = int(c["rows"]), int(c["cols"])
        if o.get("root") != c["root"] or o.get("count") != rows * cols:
            raise _cheat("inputs differ from the committed ones", owner,
                         {**base, "commitment": dict(c)})
        m = program.output_count(rows, cols)
        vb, tb = o.get("values"), o.get("tags")
        if not isinstance(vb, list) or not isinstance(tb, list) or len(vb) != m \
                or len(tb) != m:
            raise _cheat("wrong number of outputs", owner, base)
        try:
            vct = [_ct_from(pk, b) for b in vb]
            tct = [_ct_from(pk, b) for b in tb]
            ys = [private_key.raw_decrypt_signed(x) for x in vct]
            taus = [int(private_key.raw_decrypt(x)) for x in tct]
        except (DecryptionError, ValidationError):
            raise _cheat("an output is not a ciphertext under the requester's key", owner,
                         base) from None
        mac = mac_keys.owner_key(task_id, owner, pk.n) if isinstance(mac_keys, TaskKeys) \
            else mac_keys[owner]
        if not program.check(mac, ys, taus, rows, cols, rng=rng):
            bad = program.failing_outputs(mac, ys, taus, rows, cols)
            k = bad[0] if bad else 0
            ev: dict[str, Any] = {**base, "commitment": dict(c), "seed": mac.seed, "output": k}
            for name, ct in (("value", vct[k]), ("tag", tct[k])):
                mv, r = private_key.randomness_proof(ct)
                ev[name] = {"ct": _ct_bytes(pk, ct), "m": str(mv), "r": str(int(r))}
            raise _cheat("MAC check failed", owner, ev)
        per_owner[owner] = tuple(ys)
        counts[owner] = rows
        sc = program.output_scales(list(c["scales"]), rows, cols)
        if scales is not None and sc != scales:
            raise ValidationError("owners committed to different column scales")
        scales = sc
    m = len(next(iter(per_owner.values())))
    if any(len(v) != m for v in per_owner.values()):
        raise ValidationError("owners' blocks give different numbers of outputs")
    total = tuple(sum(v[k] for v in per_owner.values()) for k in range(m))
    return VerifiedResult(task=task_id, per_owner=per_owner, total=total,
                          scales=tuple(scales or ()), counts=counts)


# -- third party ---------------------------------------------------------------------------
def check_evidence(evidence: bytes, public_key: PaillierPublicKey,
                   result: Mapping[str, Any]) -> bool:
    """Whether ``evidence`` proves that ``result`` (the compute node's signed answer)
    fails a check; needs no secret. The caller must have ``result`` signed by the compute
    node and the commitment (inside the evidence) signed by the owner or posted on chain.

    Wrong task, wrong program and wrong input roots are checked by comparison. For a MAC
    failure it checks: the revealed seed matches the commitment's ``mac_commit``; the disputed
    ciphertexts are the ones in ``result``; their decryptions are proven by Paillier
    randomness; and the MAC equation fails for them. Evidence of other kinds (wrong task,
    wrong root, missing owner) is checked by comparing ``result`` with the commitments.
    """
    try:
        ev = msgpack.unpackb(evidence, raw=False)
        if ev.get("type") != "evidence":
            return False
        program = LinearProgram.from_dict(ev["program"])
        if ev["reason"].startswith("result names another task"):
            return bool(result.get("task") != ev["task"])
        if ev["reason"] == "result was computed for another program":
            return bool(result.get("program") != program.digest)
        if ev["reason"] == "inputs differ from the committed ones":
            c = ev["commitment"]
            if c["task"] != ev["task"] or c["key_id"] != public_key.key_id:
                return False
            outs = [o for o in result["outputs"] if o["owner"] == c["owner"]]
            return len(outs) == 1 and (outs[0]["root"] != c["root"]
                                       or outs[0]["count"] != c["rows"] * c["cols"])
        if "seed" not in ev:
            return False
        c = ev["commitment"]
        seed = ev["seed"]
        if hashlib.sha256(b"metisnet/mac/commit" + seed).digest() != c["mac_commit"]:
            return False
        if c["key_id"] != public_key.key_id or result.get("task") != ev["task"]:
            return False
        owner, k = int(ev["owner"]), int(ev["output"])
        outs = [o for o in result["outputs"] if o["owner"] == owner]
        if len(outs) != 1:
            return False
        vals = {}
        for name, field_name in (("value", "values"), ("tag", "tags")):
            item = ev[name]
            if outs[0][field_name][k] != item["ct"]:
                return False
            m, r = int(item["m"]), int(item["r"])
            if not check_randomness_proof(public_key, mpz.from_bytes(item["ct"], "big"), m, r):
                return False
            vals[name] = m
        rows, cols = int(c["rows"]), int(c["cols"])
        mac = MacKey(seed, public_key.n)
        n = public_key.n
        y = vals["value"] - n if vals["value"] > n // 2 else vals["value"]
        b = program.b_single(mac, k, rows, cols)
        return not mac.check(y, vals["tag"], b, program.offsets(rows, cols)[k])
    except (KeyError, TypeError, ValueError, IndexError, msgpack.UnpackException):
        return False
