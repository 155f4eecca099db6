"""The inner key joins of SQL: two or more tables on one key, unique in all but at most one.

The construction of :mod:`metisnet.algorithms.psi` (keyed tags under a key the data nodes
agree among themselves, a committee shuffle of each table, the tags opened to one member,
the *matcher*, which sends the matching positions; every member gathers its shares of the
matching rows locally), with one change: the keys need to be unique on one side only.

* Data nodes (:func:`prepare_rows`): as :func:`metisnet.algorithms.psi.prepare`, but a key
  may repeat (many rows of ``orders`` per ``people.id``); equal keys give equal tags.
* Matcher (:func:`match_all`, :func:`match_many`): in the clear on the shuffled tags of
  every table, the table whose tags repeat (at most one: the "many" side) drives; each of
  its rows is paired with the row of equal tag in every other table (distinct tags), so a
  one-side row is repeated once per matching many-side row. Two tables with repeated keys
  (many-to-many) are refused by every member. ``FROM a JOIN b ON .. JOIN c ON ..`` on one
  key is one such multiway match (the matcher sees all tags at once, as a multiway PSI).
* Every member gathers ``one[i]`` and ``many[j]`` for the pairs ``(i, j)``: the joined rows
  stay secret-shared, ``m`` (the number of pairs) is public to the committee.

**Semi-honest only**, as the PSI join. What the matcher learns beyond the key join's
(``m``, the sizes, the equality pattern of pseudorandom tags across tables after a shuffle
it does not know): the multiplicities on the many side, i.e. how many rows share a key (the
histogram of key frequencies, not which keys or rows); the others learn ``m`` only.
Cost as :func:`metisnet.algorithms.psi.private_join`: the shuffle (3 rounds, ``16 n w``
bytes per member), the tags to the matcher (1 round, ``16 n``), the positions (``16 m``
to each of the two others); the matcher's work is a sort of the one side and a binary
search per many-side row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from metisnet import mpc
from metisnet.algorithms.common import check_min_rows
from metisnet.algorithms.psi import MATCHER, Joined, PsiShares, tags
from metisnet.crypto.fixedpoint import FixedPoint
from metisnet.crypto.prg import Csprng
from metisnet.crypto.sharing import share
from metisnet.errors import ProtocolError, ShapeError, ValidationError
from metisnet.mpc import MpcContext, SharedArray

__all__ = ["join_many", "match_all", "match_many", "prepare_rows"]

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
_TAG_COLS = 2


def prepare_rows(ids: ArrayLike, key: bytes, rng: Csprng, *, payload: ArrayLike | None = None,
                 frac_bits: int = 16) -> list[PsiShares]:
    """A data node's join input, one :class:`PsiShares` per member: its rows permuted with
    ``rng``, each ``(tag_hi, tag_lo, index, payload...)``; keys may repeat."""
    t = tags(ids, key)
    n = t.shape[0]
    cols = [t, np.arange(n, dtype=np.int64).view(np.uint64).reshape(n, 1)]
    c = 0
    if payload is not None:
        p = np.asarray(payload, dtype=np.float64)
        p = p.reshape(n, -1) if p.ndim == 1 else p
        if p.shape[0] != n:
            raise ShapeError(f"payload has {p.shape[0]} rows for {n} ids")
        c = p.shape[1]
        cols.append(FixedPoint(frac_bits).encode(p))
    packed = np.ascontiguousarray(np.concatenate(cols, axis=1))
    perm = np.argsort(rng.uint64(n))
    return [PsiShares(pr, c, frac_bits) for pr in share(packed[perm], rng)]


def _distinct(t: U64) -> bool:
    if t.shape[0] < 2:
        return True
    order = np.lexsort((t[:, 1], t[:, 0]))
    s = t[order]
    return not bool(np.any(np.all(s[1:] == s[:-1], axis=1)))


def match_many(ta: U64, tb: U64) -> tuple[I64, I64]:
    """Pairs ``(i, j)`` of rows with equal 128-bit tags, one side's tags all distinct.

    Ordered by the many side's position (a pseudorandom order after the shuffle). Raises
    :class:`ValidationError` when neither side has distinct tags (many-to-many)."""
    if _distinct(ta):
        one, many, swap = ta, tb, False
    elif _distinct(tb):
        one, many, swap = tb, ta, True
    else:
        raise ValidationError("the JOIN keys repeat on both sides (many-to-many); a key "
                              "must be unique on one side")
    if one.shape[0] == 0 or many.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    order = np.lexsort((one[:, 1], one[:, 0]))
    hi, lo = one[order, 0], one[order, 1]
    # the first one-side row whose (hi, lo) is >= the many-side tag: search hi, then lo
    left = np.searchsorted(hi, many[:, 0], side="left")
    right = np.searchsorted(hi, many[:, 0], side="right")
    i = np.full(many.shape[0], -1, dtype=np.int64)
    single = right - left == 1  # the usual case: a distinct high word
    cand = np.minimum(left, len(hi) - 1)
    ok = single & (lo[cand] == many[:, 1])
    i[ok] = order[cand[ok]]
    for r in np.nonzero(right - left > 1)[0]:  # equal high words (probability ~ n^2 2^-64)
        span = np.arange(left[r], right[r])
        hit = span[lo[span] == many[r, 1]]
        if hit.size:
            i[r] = order[hit[0]]
    j = np.nonzero(i >= 0)[0].astype(np.int64)
    i = i[j]
    return (j, i) if swap else (i, j)


def match_all(opened: Sequence[U64]) -> list[I64]:
    """Positions, one array per table, of the rows joined on equal tags: every table's tags
    distinct but at most one's (the "many" side, which drives the order). Raises
    :class:`ValidationError` when two tables repeat keys (many-to-many)."""
    many = [i for i, t in enumerate(opened) if not _distinct(t)]
    if len(many) > 1:
        raise ValidationError("the JOIN keys repeat in more than one table (many-to-many); "
                              "a key must be unique in all tables but one")
    driver = many[0] if many else 0
    nd = opened[driver].shape[0]
    pos: dict[int, I64] = {driver: np.arange(nd, dtype=np.int64)}
    alive = np.ones(nd, dtype=bool)
    for o, t in enumerate(opened):
        if o == driver:
            continue
        i, j = match_many(t, opened[driver])  # t's tags are distinct: i in t, j in driver
        p = np.full(nd, -1, dtype=np.int64)
        p[j] = i
        pos[o] = p
        alive &= p >= 0
    rows = np.nonzero(alive)[0]
    return [pos[o][rows] for o in range(len(opened))]


def _as_shared(ctx: MpcContext, inp: PsiShares) -> SharedArray:
    a, b = inp.pair
    if a.ndim != 2 or a.shape[1] != _TAG_COLS + 1 + inp.payload_cols:
        raise ShapeError("a join input has the wrong number of columns")
    return mpc.share_pair(ctx, a, b, frac_bits=0)


def join_many(ctx: MpcContext, inputs: Sequence[PsiShares], *, k: int = 1) -> Joined:
    """Inner join of two or more inputs on one key, unique in all but at most one of them
    (module doc); the joined rows (the payloads side by side, in input order) stay
    secret-shared."""
    if len(inputs) < 2:
        raise ValidationError("a join takes two or more inputs")
    if ctx.security != "semi-honest":
        raise ValidationError("the committee's join is semi-honest only")
    tables = [mpc.shuffle(ctx, [_as_shared(ctx, inp)])[0] for inp in inputs]
    opened = [mpc.reveal_to(ctx, t[:, :_TAG_COLS], MATCHER) for t in tables]
    tag = ctx.tag("sql-join")
    nt = len(tables)
    if ctx.party == MATCHER:
        try:
            pos = match_all([np.asarray(o).view(np.uint64) for o in opened])
            m = int(pos[0].size)
        except ValidationError:
            pos, m = [], -1  # tell the others, then refuse
        msg = np.concatenate([np.array([m], np.int64), *pos]).view(np.uint64)
        for peer in (ctx.next, ctx.prev):
            ctx.send(peer, tag, np.array([msg.size], np.uint64))
            ctx.send(peer, tag + ":pos", msg)
    else:
        size = int(ctx.recv(MATCHER, tag, (1,))[0])
        if not 1 <= size <= 1 + nt * max(t.shape[0] for t in tables):
            raise ProtocolError("the matcher sent a malformed message")
        flat = np.asarray(ctx.recv(MATCHER, tag + ":pos", (size,)).view(np.int64))
        m = int(flat[0])
        if m >= 0:
            if size != 1 + nt * m:
                raise ProtocolError("the matcher sent malformed positions")
            pos = [flat[1 + i * m:1 + (i + 1) * m] for i in range(nt)]
            for p, t in zip(pos, tables, strict=True):
                if p.size and (p.min() < 0 or p.max() >= t.shape[0]):
                    raise ProtocolError("the matcher sent positions out of range")
    if m < 0:
        raise ValidationError("the JOIN keys repeat in more than one table (many-to-many); "
                              "a key must be unique in all tables but one")
    check_min_rows(m, k, "the join")
    fracs = {inp.frac_bits for inp in inputs if inp.payload_cols}
    if len(fracs) > 1:
        raise ShapeError("all payloads of a join must share one fixed-point scale")
    f = fracs.pop() if fracs else ctx.fxp.frac_bits
    payloads, indices = [], []
    for inp, t, p in zip(inputs, tables, pos, strict=True):
        rows = t[p]
        indices.append(rows[:, _TAG_COLS])
        if inp.payload_cols:
            pay = rows[:, _TAG_COLS + 1:]
            payloads.append(pay.like(pay.a, pay.b, frac_bits=f))
    joined = mpc.concat(payloads, axis=1) if payloads else \
        mpc.public(ctx, np.zeros((m, 0)), frac_bits=f)
    return Joined(m, joined, indices)
