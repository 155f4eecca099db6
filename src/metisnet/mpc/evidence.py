"""Signed claims and the evidence an aborted session leaves behind for slashing.

The malicious-security checks (:mod:`metisnet.mpc.malicious`) never compare secrets; they
compare *digests* that parties claim about values two of them hold (a replicated share is
held by two parties) or about values that must be zero. Every such digest travels as a
:class:`Claim`: ``(session, step, item, party, digest)`` signed by the party's node key.

The signing key lives in the node layer, above ``mpc`` (which does no I/O and holds no
identity). The context therefore takes a :class:`Signer`, injected by whoever builds it:
the node signs with its secp256k1 key; tests use a local ECDSA signer; without one, claims
are unsigned (``signature == b""``) and evidence proves nothing to a third party.

What evidence can prove (:func:`proven_suspects`), and why no more:

* **disagreement** on a ``share:`` item: two parties signed different digests of the same
  replicated share. Its two holders derive it from their own data and from messages sent
  between the two of them only, so two honest holders always agree: one of the two
  signers cheated. A third party cannot tell which (it cannot see the share), so the
  evidence names the *pair*, and a pair must never be slashed.
* **equivocation**: one party signed two different digests for the same item (e.g. told
  its two peers different things). That pins the signer alone: slashable.
* a disagreement on a ``dealt:`` item (the key ``k_all`` party 0 deals to both others):
  the dealer may have equivocated, so a disagreement alone proves nothing; an
  equivocation (the dealer's own two signed digests) still pins it.
* a failed ``zero:`` check (a multiplication or range check did not hold): two honest
  parties disagree too when the corrupt one had cheated earlier, so nothing is proven
  about individuals; each honest party names the two others as suspects, locally.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import blake3
import numpy as np
from numpy.typing import NDArray

from metisnet.errors import ValidationError

__all__ = [
    "DIGEST_BYTES",
    "Claim",
    "Evidence",
    "Hasher",
    "Signer",
    "UnsignedSigner",
    "combine",
    "decode_claims",
    "digest",
    "encode_claims",
    "proven_suspects",
    "slashable",
]

#: Digests of shares and opened values (:class:`Hasher`, BLAKE3).
DIGEST_BYTES = 32
_DOMAIN = b"metisnet/mpc/claim/v1"


@runtime_checkable
class Signer(Protocol):
    """Signs this party's claims and checks its peers' (injected by the node layer)."""

    def sign(self, message: bytes) -> bytes:
        """This party's signature on ``message`` (at most 255 bytes)."""
        ...

    def verify(self, party: int, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is ``party``'s valid signature on ``message``."""
        ...


class UnsignedSigner:
    """No keys: claims carry an empty signature (checks still run; evidence is local only)."""

    def sign(self, message: bytes) -> bytes:
        return b""

    def verify(self, party: int, message: bytes, signature: bytes) -> bool:
        return signature == b""


class Hasher:
    """A running digest of arrays and bytes: BLAKE3 (O'Connor, Aumasson, Neves and
    Wilcox-O'Hearn, 2020), 32 bytes, 128-bit collision resistance.

    The checks hash every opened value and every input share, tens of MB per party per
    million products; on this project's machines BLAKE3 (one thread) hashes 32 MB in about
    6 ms against 22 ms for SHA-256 with the CPU's SHA extensions, and a digest here is only
    ever compared with another party's digest of the same data, never recomputed by a third
    party (the evidence is the signed claims)."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = blake3.blake3()

    def update(self, data: NDArray[np.uint64] | bytes) -> None:
        """Fold in ``data`` (an array's bytes in C order; dtype and shape are fixed by the
        protocol)."""
        if isinstance(data, bytes | bytearray | memoryview):
            self._h.update(data)
        else:
            self._h.update(np.ascontiguousarray(data).reshape(-1).view(np.uint8).data)

    def digest(self) -> bytes:
        """The 32-byte digest of everything folded in so far (the hasher stays usable)."""
        return bytes(self._h.digest())


def digest(*arrays: NDArray[np.uint64] | bytes) -> bytes:
    """The :class:`Hasher` digest of the arrays' bytes (dtype and order are the protocol's,
    fixed)."""
    h = Hasher()
    for arr in arrays:
        h.update(arr)
    return h.digest()


@dataclass(frozen=True)
class Claim:
    """``party`` states that ``item`` at ``step`` of ``session`` has digest ``digest``."""

    session: str
    step: str
    item: str
    party: int
    digest: bytes
    signature: bytes = b""

    def message(self) -> bytes:
        """The exact bytes that are signed."""
        head = json.dumps([self.session, self.step, self.item, self.party],
                          separators=(",", ":")).encode()
        return _DOMAIN + b"|" + head + b"|" + self.digest

    def signed(self, signer: Signer) -> Claim:
        return Claim(self.session, self.step, self.item, self.party, self.digest,
                     signer.sign(self.message()))

    def to_json(self) -> dict[str, object]:
        return {"session": self.session, "step": self.step, "item": self.item,
                "party": self.party, "digest": self.digest.hex(),
                "signature": self.signature.hex()}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> Claim:
        try:
            return cls(str(doc["session"]), str(doc["step"]), str(doc["item"]),
                       int(str(doc["party"])), bytes.fromhex(str(doc["digest"])),
                       bytes.fromhex(str(doc["signature"])))
        except (KeyError, ValueError) as exc:
            raise ValidationError(f"malformed claim: {exc}") from None


def encode_claims(claims: Iterable[Claim]) -> NDArray[np.uint8]:
    """Wire form of claims whose (session, step, item, party) the receiver already knows:
    per claim the 32-byte digest, one length byte, the signature."""
    out = bytearray()
    for c in claims:
        if len(c.digest) != DIGEST_BYTES or len(c.signature) > 255:
            raise ValidationError("a claim needs a 32-byte digest and a short signature")
        out += c.digest + bytes([len(c.signature)]) + c.signature
    return np.frombuffer(bytes(out), dtype=np.uint8)


def decode_claims(data: NDArray[np.uint8], expected: list[Claim]) -> list[Claim] | None:
    """Parse what :func:`encode_claims` made, filling in the ``expected`` headers (their
    digests and signatures are ignored). ``None`` if the bytes are malformed."""
    if data.dtype != np.uint8 or data.ndim != 1:
        return None
    raw = data.tobytes()
    out, pos = [], 0
    for head in expected:
        if pos + DIGEST_BYTES + 1 > len(raw):
            return None
        dig = raw[pos:pos + DIGEST_BYTES]
        n = raw[pos + DIGEST_BYTES]
        pos += DIGEST_BYTES + 1
        if pos + n > len(raw):
            return None
        out.append(Claim(head.session, head.step, head.item, head.party, dig, raw[pos:pos + n]))
        pos += n
    return out if pos == len(raw) else None


@dataclass(frozen=True)
class Evidence:
    """What an honest party that aborted can hand to others (and to the chain).

    ``kind``: ``"disagreement"`` (two holders of one share signed different digests),
    ``"equivocation"`` (one signer, two digests for one item), ``"failed-check"`` (a
    multiplication or range check did not hold: not attributable), ``"bad-message"`` (a
    peer's message was malformed or contradicted its own signed digest: the reporter is
    certain, a third party cannot check it). ``reporter`` is the party that aborted;
    ``suspects`` its local view; ``claims`` the signed claims involved.
    """

    kind: str
    session: str
    step: str
    reporter: int
    suspects: tuple[int, ...]
    claims: tuple[Claim, ...] = ()
    note: str = ""

    def to_bytes(self) -> bytes:
        doc = {"kind": self.kind, "session": self.session, "step": self.step,
               "reporter": self.reporter, "suspects": list(self.suspects),
               "claims": [c.to_json() for c in self.claims], "note": self.note,
               "version": 1}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Evidence:
        try:
            doc = json.loads(data.decode())
            claims = tuple(Claim.from_json(c) for c in doc["claims"])
            return cls(str(doc["kind"]), str(doc["session"]), str(doc["step"]),
                       int(doc["reporter"]), tuple(int(p) for p in doc["suspects"]),
                       claims, str(doc.get("note", "")))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ValidationError(f"malformed evidence: {exc}") from None


def _valid(claims: Iterable[Claim], check: Callable[[int, bytes, bytes], bool]) -> list[Claim]:
    return [c for c in claims if c.signature and check(c.party, c.message(), c.signature)]


def proven_suspects(evidence: Evidence,
                    check: Callable[[int, bytes, bytes], bool]) -> tuple[int, ...]:
    """The parties the *signed claims* prove one of which cheated, checked by anyone.

    ``check(party, message, signature)`` verifies a node's signature (e.g. against its
    registered secp256k1 key). Returns ``(p,)`` for an equivocation by ``p``, a sorted pair
    for a disagreement on a ``share:`` item, and ``()`` otherwise. Unsigned claims prove
    nothing.
    """
    claims = _valid(evidence.claims, check)
    by_key: dict[tuple[str, str, str], list[Claim]] = {}
    for c in claims:
        by_key.setdefault((c.session, c.step, c.item), []).append(c)
    pairs: set[tuple[int, int]] = set()
    for group in by_key.values():
        for i, c1 in enumerate(group):
            for c2 in group[i + 1:]:
                if c1.digest == c2.digest:
                    continue
                if c1.party == c2.party:
                    return (c1.party,)
                if c1.item.startswith("share:"):
                    lo, hi = sorted((c1.party, c2.party))
                    pairs.add((lo, hi))
    if len(pairs) == 1:
        return pairs.pop()
    if pairs:  # disagreements with two different parties: their common member
        common = set.intersection(*(set(p) for p in pairs))
        if len(common) == 1:
            return (common.pop(),)
    return ()


def combine(evidence: Iterable[Evidence]) -> Evidence | None:
    """Pool the claims of several reports (e.g. both honest parties') into one record.

    Returns ``None`` if there is nothing to pool. The pooled record's ``suspects`` are
    left for :func:`proven_suspects` to establish: an equivocation, or two disagreements
    on share items sharing one party, pins a single cheater.
    """
    reports = list(evidence)
    if not reports:
        return None
    seen: dict[tuple[str, str, str, int, bytes], Claim] = {}
    for ev in reports:
        for c in ev.claims:
            seen.setdefault((c.session, c.step, c.item, c.party, c.digest), c)
    first = reports[0]
    return Evidence("combined", first.session, first.step, first.reporter, (),
                    tuple(seen.values()), note=f"{len(reports)} reports")


def slashable(evidence: Evidence, check: Callable[[int, bytes, bytes], bool]) -> int | None:
    """The single party the evidence convicts, or ``None``: never slash on a pair."""
    proven = proven_suspects(evidence, check)
    return proven[0] if len(proven) == 1 else None
