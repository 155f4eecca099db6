"""Committee-assisted private set intersection and private join, for large sets.

Construction (keyed tags, committee shuffle, one matcher)
---------------------------------------------------------
1. **Data nodes** (two or more) agree a per-task tag key ``s`` among themselves (16 bytes;
   e.g. by an ECDH between the nodes, or sealed to them by the requester). The committee
   never gets ``s``. Each node computes 128-bit tags ``t = AES-128_s(id)`` (ids are 64-bit
   integers, or any bytes first hashed with BLAKE2b-128), permutes its rows with its own
   CSPRNG, and deals ``(tag_hi, tag_lo, row index, payload...)`` as replicated shares
   (:func:`prepare`).
2. **Committee**: for a join, every input table is first shuffled obliviously
   (:func:`metisnet.mpc.shuffle`: three re-sharing passes, the permutation known to no
   single member); then only the tag columns are opened to one member, the *matcher*
   (member 0). For the size alone no position leaves the matcher, so the committee skips
   the shuffle: the matcher sees the tags in each data node's own random order.
3. The matcher intersects the tags in the clear (numpy) and tells the other two members
   the matching positions, ordered by tag value (a pseudorandom order). Every member gathers
   the matching rows of its shares locally: the **private join** leaves the joined rows
   secret-shared, of public size ``m``.

Modes: :func:`intersection_size` (only ``m``, to the receivers), :func:`private_join`
(shared rows for further computation, e.g. :mod:`metisnet.algorithms.stats` on vertically
split data), :func:`intersection_to` (a data node's own row indices in the intersection, or
any dealt id column, opened to one receiver only).

**Semi-honest mode only** (the context must be ``security="semi-honest"``): the shuffle and
the matcher's messages are not covered by the malicious-security checks, and
:func:`metisnet.mpc.shuffle` refuses a malicious context.

What each party learns (semi-honest, honest majority, one corrupt member):

* the matcher: ``m``, the sizes of the inputs, and the pattern of equal tags between
  tables after a shuffle it does not know (the committee's for a join, the data nodes' own
  for the size) - pseudorandom 128-bit values, useless without ``s``; a fresh ``s`` per
  task keeps tasks unlinkable. It must not collude with a data node that knows ``s`` (that
  node could test guessed ids against the tags): the one trust assumption beyond the
  honest majority, and why a two-node ECDH run (:mod:`metisnet.algorithms.psi_ecdh`) is
  offered where it cannot be met.
* each other member: only ``m`` (join mode; nothing in size mode unless it is a receiver)
  and uniformly random shares; even together with a data node it cannot link the
  positions it is sent to that node's rows, since the shuffle has a pass it did not see.
* data nodes: nothing beyond the output they receive.

False matches: two different ids collide in a 128-bit tag with probability about
``n_A n_B 2^-128``.

Cost for tables of ``n`` rows and ``w`` columns (3 + payload): opening the tags to the
matcher, 1 round and ``16 n`` bytes from one member; for a join also the shuffle (3 rounds,
``16 n w`` bytes per member on average) and the positions (``8 m`` per table to each of
the two others). Computation is AES at the data nodes, ``argsort`` of ``n`` random words
per shuffle pass and one sort-based intersection at the matcher. Measured at 2^20 x 2^20
on 2 shared cores (``benchmarks/algorithms.py``): about 1 s for the size at the committee
after about 2 s of preparation at each data node in parallel; the join takes longer
because of the shuffle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import ArrayLike, NDArray

from metisnet import mpc
from metisnet.algorithms.common import Receivers, SharePair, check_min_rows, output
from metisnet.crypto.fixedpoint import FixedPoint
from metisnet.crypto.prg import KEY_BYTES, Csprng
from metisnet.crypto.sharing import share
from metisnet.errors import ProtocolError, ShapeError, ValidationError
from metisnet.mpc import MpcContext, SharedArray

__all__ = [
    "MATCHER",
    "Joined",
    "PsiShares",
    "intersection_size",
    "intersection_to",
    "prepare",
    "private_join",
    "tags",
]

U64 = NDArray[np.uint64]
#: The committee member that sees the (keyed, shuffled) tags.
MATCHER = 0
_TAG_COLS = 2


@dataclass(frozen=True)
class PsiShares:
    """What one committee member receives from one data node: its pair of the packed table
    ``(tag_hi, tag_lo, index, payload...)`` and how to read it."""

    pair: SharePair
    payload_cols: int
    frac_bits: int


# -- data nodes --------------------------------------------------------------------------------
def tags(ids: ArrayLike | Sequence[bytes | str], key: bytes) -> U64:
    """128-bit keyed tags ``AES-128_key(id)`` as an ``(n, 2)`` uint64 array.

    Integer ids are encoded as 8 little-endian bytes and 8 zero bytes; bytes or str ids are
    hashed to 16 bytes with BLAKE2b first (a separate domain: a non-zero last byte).
    """
    if len(key) != KEY_BYTES:
        raise ValidationError(f"the tag key must be {KEY_BYTES} bytes")
    textual = isinstance(ids, (list, tuple)) and bool(ids) and isinstance(ids[0], (bytes, str))
    arr = None if textual else np.asarray(ids)
    if arr is not None and arr.dtype.kind in "iu":
        blocks = np.zeros((arr.size, 2), dtype=np.uint64)
        blocks[:, 0] = arr.reshape(-1).astype(np.int64).view(np.uint64)
        data = blocks.tobytes()
    else:
        seq = list(ids)  # type: ignore[arg-type]
        data = b"".join(
            hashlib.blake2b(v.encode() if isinstance(v, str) else bytes(v),  # type: ignore[arg-type]
                            digest_size=15,
                            person=b"metisnet-psi").digest() + b"\x01" for v in seq)
    # AES applied to single distinct blocks as a pseudorandom permutation (a keyed tag),
    # not as an encryption mode: ECB is exactly "AES on each block".
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    out = enc.update(data) + enc.finalize()
    return np.frombuffer(out, dtype=np.uint64).reshape(-1, 2).copy()


def prepare(ids: ArrayLike | Sequence[bytes | str], key: bytes, rng: Csprng, *,
            payload: ArrayLike | None = None, frac_bits: int = 16) -> list[PsiShares]:
    """A data node's input to the committee: one :class:`PsiShares` per member.

    ``payload`` (n, c) are real values dealt at ``frac_bits`` (e.g. the columns this node
    contributes to a vertical join). Rows are permuted with ``rng`` before dealing; each
    row carries its original index so the node can be told which of its rows matched.
    """
    t = tags(ids, key)
    if not _unique_hi(t) and np.unique(t, axis=0).shape[0] != t.shape[0]:
        raise ValidationError("ids must be distinct")
    return deal_rows([t], rng, payload=payload, frac_bits=frac_bits)


def deal_rows(tag_cols: Sequence[NDArray[np.uint64]], rng: Csprng, *,
              payload: ArrayLike | None = None, frac_bits: int = 16) -> list[PsiShares]:
    """Rows ``(tag columns..., original index, payload at frac_bits...)`` permuted with
    ``rng`` and dealt as one :class:`PsiShares` per member (shared by PSI and the SQL
    joins)."""
    n = tag_cols[0].shape[0]
    cols = [*tag_cols, np.arange(n, dtype=np.int64).view(np.uint64).reshape(n, 1)]
    c = 0
    if payload is not None:
        p = np.asarray(payload, dtype=np.float64)
        p = p.reshape(n, -1) if p.ndim == 1 else p
        if p.shape[0] != n:
            raise ShapeError(f"payload has {p.shape[0]} rows for {n} ids")
        c = p.shape[1]
        cols.append(FixedPoint(frac_bits).encode(p))
    packed = np.ascontiguousarray(np.concatenate(cols, axis=1))
    perm = np.argsort(rng.uint64(n))  # uniform up to ties (probability < n^2 2^-65)
    return [PsiShares(pr, c, frac_bits) for pr in share(packed[perm], rng)]


# -- committee ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Joined:
    """The private join: ``m`` matched rows, secret-shared on the committee.

    ``rows`` has the payload columns of every input side by side (fixed point), ``indices``
    each input's original row index per matched row (shared integers).
    """

    size: int
    rows: SharedArray
    indices: list[SharedArray]


def _as_shared(ctx: MpcContext, inp: PsiShares) -> SharedArray:
    a, b = inp.pair
    if a.ndim != 2 or a.shape[1] != _TAG_COLS + 1 + inp.payload_cols:
        raise ShapeError("a PSI input has the wrong number of columns")
    return mpc.share_pair(ctx, a, b, frac_bits=0)


def _unique_hi(t: U64) -> bool:
    s = np.sort(t[:, 0])
    return bool(s.size < 2 or np.all(s[1:] != s[:-1]))


def _match_two(ta: U64, tb: U64) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Positions of equal 128-bit tags in two tables, ordered by tag.

    Fast path: one argsort of the high words of both tables; equal neighbours are
    candidate pairs, confirmed on the low words. Needs unique high words within each table
    (fails with probability about n^2 2^-65); otherwise a slower exact path on all 128 bits.
    """
    if _unique_hi(ta) and _unique_hi(tb):
        na = ta.shape[0]
        allh = np.concatenate([ta[:, 0], tb[:, 0]])
        order = np.argsort(allh)
        srt = allh[order]
        eq = np.nonzero(srt[1:] == srt[:-1])[0]
        # an equal pair is one row of each table (high words are unique within a table)
        first, second = order[eq], order[eq + 1]
        i, j = np.minimum(first, second), np.maximum(first, second) - na
        keep = ta[i, 1] == tb[j, 1]
        return i[keep].astype(np.int64), j[keep].astype(np.int64)
    ka = np.ascontiguousarray(ta).view(np.dtype((np.void, 16))).reshape(-1)
    kb = np.ascontiguousarray(tb).view(np.dtype((np.void, 16))).reshape(-1)
    _, i, j = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
    return i.astype(np.int64), j.astype(np.int64)


def _match(opened: list[U64]) -> list[NDArray[np.int64]]:
    """Positions of the tags common to every table (matcher only)."""
    i0, i1 = _match_two(opened[0], opened[1])
    pos = [i0, i1]
    for t in opened[2:]:
        sub, j = _match_two(opened[0][pos[0]], t)
        pos = [p[sub] for p in pos] + [j]
    return pos


def _shuffled_and_matched(ctx: MpcContext, inputs: Sequence[PsiShares], need_positions: bool
                          ) -> tuple[int, list[SharedArray], list[NDArray[np.int64]] | None]:
    if len(inputs) < 2:
        raise ValidationError("an intersection needs at least two inputs")
    if ctx.security != "semi-honest":
        raise ValidationError("committee PSI is semi-honest only; set up the context with "
                              "security='semi-honest' (or use the two-party ECDH-PSI)")
    tables = [_as_shared(ctx, inp) for inp in inputs]
    if need_positions:  # positions go to every member: hide the dealt order first
        tables = [mpc.shuffle(ctx, [t])[0] for t in tables]
    opened: list[U64 | None] = []
    for t in tables:
        got = mpc.reveal_to(ctx, t[:, :_TAG_COLS], MATCHER)
        opened.append(None if got is None else np.asarray(got).view(np.uint64))
    tag = ctx.tag("psi-match")
    if ctx.party == MATCHER:
        pos = _match([o for o in opened if o is not None])
        m = int(pos[0].size)
        if not need_positions:
            return m, tables, pos
        msg = np.concatenate([np.array([m], np.int64), *pos]).view(np.uint64)
        for peer in (ctx.next, ctx.prev):
            ctx.send(peer, tag, np.array([msg.size], np.uint64))
            ctx.send(peer, tag + ":pos", msg)
        return m, tables, pos
    if not need_positions:
        return -1, tables, None
    size = int(ctx.recv(MATCHER, tag, (1,))[0])
    flat = np.asarray(ctx.recv(MATCHER, tag + ":pos", (size,)).view(np.int64), dtype=np.int64)
    m = int(flat[0])
    if size != 1 + m * len(tables):
        raise ProtocolError("the matcher sent malformed positions")
    pos = [flat[1 + i * m:1 + (i + 1) * m] for i in range(len(tables))]
    for p, t in zip(pos, tables, strict=True):
        if p.size and (p.min() < 0 or p.max() >= t.shape[0]):
            raise ProtocolError("the matcher sent positions out of range")
    return m, tables, pos


def intersection_size(ctx: MpcContext, inputs: Sequence[PsiShares], *, k: int = 1,
                      to: Receivers = None) -> int | None:
    """The size of the intersection of all inputs, at the receivers ``to`` (all members if
    ``None``; the matcher always learns it). A size below ``k`` is released as 0 (the
    matcher decides it in the clear). 1 more message from the matcher."""
    m, _, _ = _shuffled_and_matched(ctx, inputs, need_positions=False)
    if ctx.party == MATCHER and m < k:
        m = 0
    targets = {0, 1, 2} if to is None else ({to} if isinstance(to, int) else set(to))
    tag = ctx.tag("psi-size")
    if ctx.party == MATCHER:
        for peer in sorted(targets - {MATCHER}):
            ctx.send(peer, tag, np.array([m], np.uint64))
        return m if MATCHER in targets else None
    if ctx.party in targets:
        return int(ctx.recv(MATCHER, tag, (1,))[0])
    return None


def private_join(ctx: MpcContext, inputs: Sequence[PsiShares], *, k: int = 1) -> Joined:
    """Inner join of all inputs on their ids; the joined rows stay secret-shared.

    Rows are in a pseudorandom order (by tag); ``m`` is public to the committee. A join of
    fewer than ``k`` rows is refused (PolicyViolation) by every member, after matching.
    """
    m, tables, pos = _shuffled_and_matched(ctx, inputs, need_positions=True)
    if pos is None:  # pragma: no cover - need_positions=True always yields positions
        raise ProtocolError("no positions")
    check_min_rows(m, k, "the join")
    payloads, indices = [], []
    fracs = {inp.frac_bits for inp in inputs if inp.payload_cols}
    if len(fracs) > 1:
        raise ShapeError("all payloads of a join must share one fixed-point scale")
    f = fracs.pop() if fracs else ctx.fxp.frac_bits
    for inp, t, p in zip(inputs, tables, pos, strict=True):
        rows = t[p]
        indices.append(rows[:, _TAG_COLS])
        if inp.payload_cols:
            pay = rows[:, _TAG_COLS + 1:]
            payloads.append(pay.like(pay.a, pay.b, frac_bits=f))
    if payloads:
        joined = mpc.concat(payloads, axis=1)
    else:
        joined = mpc.public(ctx, np.zeros((m, 0)), frac_bits=f)
    return Joined(m, joined, indices)


def intersection_to(ctx: MpcContext, inputs: Sequence[PsiShares], *, owner: int,
                    to: Receivers, k: int = 1) -> NDArray[np.int64] | None:
    """Input ``owner``'s original row indices that are in the intersection, sorted, opened to
    ``to`` only (typically the member that forwards them to that data node). The committee
    learns ``m``; the receivers learn which rows of ``owner`` matched."""
    joined = private_join(ctx, inputs, k=k)
    got = output(ctx, joined.indices[owner], to)
    return None if got is None else np.sort(got.astype(np.int64))
