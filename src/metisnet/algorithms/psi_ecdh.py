"""Two-party private set intersection by commutative blinding (ECDH-PSI) over secp256k1.

For two data nodes alone, with no committee (Meadows, S&P 1986; Huberman, Franklin and Hogg,
EC 1999; the protocol family analysed by De Cristofaro and Tsudik, FC 2010, §3):

1. the **receiver** R hashes its ids to curve points, raises them to its secret ``alpha``
   and sends ``alpha*H(a)`` (in its own order);
2. the **sender** S returns ``beta*(alpha*H(a))`` as short tags, in R's order (mode
   ``"intersection"``) or shuffled (mode ``"size"``), and sends ``beta*H(b)`` shuffled;
3. R computes ``alpha*(beta*H(b))`` and compares tags: it learns the intersection (which of
   its own ids) or only its size. S learns only ``|A|``.

Security: semi-honest, under the decisional Diffie-Hellman assumption on secp256k1 in the
random-oracle model for ``H``. Neither party learns the other's ids outside the
intersection. Not protected: a malicious party may use different exponents for different
elements or send chosen points (it can then only spoil its own result or, for S, shrink
R's output); set sizes are revealed.

Hash to curve: try-and-increment - ``x = SHA-256("metisnet/psi/h2c" || len || id || ctr)``
taken as an x-coordinate, the first ``ctr`` for which ``x^3 + 7`` is a square mod p, with the
even ``y``. The expected number of tries is 2; the time it takes depends on the id (a timing
side channel, out of scope), and nobody knows the discrete logarithm of the result. Exponents
come from :class:`~metisnet.crypto.prg.Csprng`; tags are the first 16 bytes of
SHA-256(compressed point).

Cost per element: each side hashes its own ids to the curve once and does 2 scalar
multiplications (R: its own points and the sender's; S: R's points and its own). Bytes: 33 per
element each way plus 16 per receiver element back. Rounds: 2 messages (R -> S -> R).
Throughput on this machine: about 10^4 scalar multiplications per second per core through
coincurve (libsecp256k1), so 2^20 x 2^20 takes minutes; see ``benchmarks/algorithms.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from coincurve import PublicKey
from numpy.typing import NDArray

from metisnet.crypto.prg import Csprng
from metisnet.errors import ProtocolError, ValidationError
from metisnet.net.channel import Channel

__all__ = ["POINT_BYTES", "TAG_BYTES", "EcdhPsi", "ecdh_psi", "hash_to_curve"]

POINT_BYTES = 33
TAG_BYTES = 16
#: secp256k1's group order.
ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_DOMAIN = b"metisnet/psi/h2c"

Id = bytes | str | int


def _id_bytes(v: Id) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (int, np.integer)):
        return int(v).to_bytes(16, "big", signed=True)
    raise ValidationError(f"ids must be bytes, str or int, not {type(v).__name__}")


def hash_to_curve(ident: Id) -> bytes:
    """The compressed secp256k1 point of ``ident`` by try-and-increment (see module doc)."""
    raw = _id_bytes(ident)
    prefix = _DOMAIN + len(raw).to_bytes(4, "big") + raw
    for ctr in range(256):
        x = hashlib.sha256(prefix + bytes([ctr])).digest()
        try:
            return bytes(PublicKey(b"\x02" + x).format(compressed=True))
        except ValueError:
            continue
    raise ProtocolError("hash to curve failed 256 times (probability 2^-256)")  # pragma: no cover


def _tag(point: bytes) -> bytes:
    return hashlib.sha256(point).digest()[:TAG_BYTES]


def _permutation(rng: Csprng, n: int) -> NDArray[np.int64]:
    return np.argsort(rng.uint64(n), kind="stable").astype(np.int64)


class EcdhPsi:
    """One data node's side of ECDH-PSI, as pure message transformations (no I/O).

    ``EcdhPsi(ids, rng)`` hashes the ids and draws the secret exponent. The receiver calls
    :meth:`blind` and later :meth:`finish`; the sender calls :meth:`respond`.
    """

    def __init__(self, ids: Sequence[Id], rng: Csprng | None = None) -> None:
        self._rng = rng if rng is not None else Csprng()
        self._secret = (1 + self._rng.integer_below(ORDER - 1)).to_bytes(32, "big")
        self.ids = list(ids)
        if len({_id_bytes(i) for i in self.ids}) != len(self.ids):
            raise ValidationError("ids must be distinct")
        self._points = [hash_to_curve(i) for i in self.ids]
        self._own: list[bytes] | None = None

    def __repr__(self) -> str:
        return f"EcdhPsi(n={len(self.ids)}, <secret hidden>)"

    def _mul(self, points: Sequence[bytes]) -> list[bytes]:
        out = []
        for p in points:
            try:
                out.append(bytes(PublicKey(p).multiply(self._secret).format(compressed=True)))
            except ValueError as exc:
                raise ProtocolError("the peer sent a value that is not a curve point") from exc
        return out

    def precompute(self) -> None:
        """Sender: blind its own points ahead of time (overlaps with the receiver's work)."""
        if self._own is None:
            own = self._mul(self._points)
            self._own = [own[i] for i in _permutation(self._rng, len(own))]

    def blind(self) -> NDArray[np.uint8]:
        """Receiver, message 1: ``alpha*H(a)`` as an ``(n, 33)`` byte array, in id order."""
        return _pack(self._mul(self._points), POINT_BYTES)

    def respond(self, blinded: NDArray[np.uint8], *, shuffle: bool
                ) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        """Sender, message 2: tags of ``beta*(alpha*H(a))`` (shuffled if ``shuffle``, for the
        size-only mode) and ``beta*H(b)`` shuffled."""
        theirs = [_tag(p) for p in self._mul(_unpack(blinded, POINT_BYTES))]
        if shuffle:
            theirs = [theirs[i] for i in _permutation(self._rng, len(theirs))]
        self.precompute()
        return _pack(theirs, TAG_BYTES), _pack(self._own or [], POINT_BYTES)

    def finish(self, my_tags: NDArray[np.uint8], their_points: NDArray[np.uint8]
               ) -> NDArray[np.int64]:
        """Receiver: positions (in its id order) of its ids that are in the intersection.

        After a size-only response the positions are meaningless; use their count.
        """
        tags = _unpack(my_tags, TAG_BYTES)
        if len(tags) != len(self.ids):
            raise ProtocolError("the sender returned a wrong number of tags")
        theirs = {_tag(p) for p in self._mul(_unpack(their_points, POINT_BYTES))}
        return np.array([i for i, t in enumerate(tags) if t in theirs], dtype=np.int64)


def _pack(items: Sequence[bytes], width: int) -> NDArray[np.uint8]:
    if not items:
        return np.zeros((0, width), dtype=np.uint8)
    return np.frombuffer(b"".join(items), dtype=np.uint8).reshape(len(items), width)


def _unpack(arr: NDArray[np.uint8], width: int) -> list[bytes]:
    a = np.asarray(arr)
    if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] != width:
        raise ProtocolError(f"expected an (n, {width}) byte array")
    return [bytes(row) for row in a]


def ecdh_psi(channel: Channel, ids: Sequence[Id], *, receiver: int, mode: str = "intersection",
             rng: Csprng | None = None, session: str = "psi") -> list[Id] | int | None:
    """Run ECDH-PSI between the two parties of ``channel`` (both call it).

    The ``receiver`` (a party index) gets its ids in the intersection (``mode=
    "intersection"``) or the intersection's size (``mode="size"``); the other party gets
    ``None``. Two messages; see the module doc for what each side learns.
    """
    if channel.parties != 2:
        raise ValidationError("ECDH-PSI runs between exactly two data nodes")
    if mode not in ("intersection", "size"):
        raise ValidationError(f"unknown mode {mode!r}: intersection or size")
    me = channel.party
    peer = 1 - me
    party = EcdhPsi(ids, rng)
    if me == receiver:
        channel.send(peer, f"{session}:1", party.blind())
        tags = channel.recv(peer, f"{session}:2a")
        points = channel.recv(peer, f"{session}:2b")
        pos = party.finish(tags, points)
        if mode == "size":
            return int(pos.size)
        return [party.ids[i] for i in pos]
    party.precompute()  # in parallel with the receiver's blinding
    blinded = channel.recv(peer, f"{session}:1")
    tags, points = party.respond(blinded, shuffle=(mode == "size"))
    channel.send(peer, f"{session}:2a", tags)
    channel.send(peer, f"{session}:2b", points)
    return None
