"""The inner key joins of SQL: one after the other, each on a key unique on one side.

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
* More JOINs (:func:`join_chain`): a table carries the tags of every column it is joined
  on; the rows joined so far are shuffled again and joined with the next table on the
  columns its ON names, so ``FROM a JOIN b ON a.x = b.x JOIN c ON b.y = c.y`` works; the
  matcher learns each join's size and pattern, not how one join's rows continue in the next.

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
from metisnet.algorithms.psi import MATCHER, Joined, PsiShares, deal_rows, tags
from metisnet.crypto.prg import Csprng
from metisnet.errors import ProtocolError, ShapeError, ValidationError
from metisnet.mpc import MpcContext, SharedArray

__all__ = ["join_chain", "match_all", "match_many", "prepare_rows"]

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
_TAG_COLS = 2


def prepare_rows(keys: Sequence[ArrayLike], key: bytes, rng: Csprng, *,
                 payload: ArrayLike | None = None, frac_bits: int = 16) -> list[PsiShares]:
    """A data node's join input, one :class:`PsiShares` per member: its rows permuted with
    ``rng``, each ``(tag_hi, tag_lo per join key column, index, payload...)``; keys may
    repeat. ``keys`` holds the table's join key columns (one per JOIN it takes part in)."""
    if not keys:
        raise ValidationError("a join input needs a key column")
    ts = [tags(ids, key) for ids in keys]
    n = ts[0].shape[0]
    if any(t.shape[0] != n for t in ts):
        raise ShapeError("the join key columns differ in length")
    return deal_rows(ts, rng, payload=payload, frac_bits=frac_bits)


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


def _as_shared(ctx: MpcContext, inp: PsiShares) -> tuple[SharedArray, int]:
    """The input shared, and its number of key columns."""
    a, b = inp.pair
    rest = a.shape[1] - 1 - inp.payload_cols if a.ndim == 2 else -1
    if a.ndim != 2 or b.shape != a.shape or rest < _TAG_COLS or rest % _TAG_COLS:
        raise ShapeError("a join input has the wrong number of columns")
    return mpc.share_pair(ctx, a, b, frac_bits=0), rest // _TAG_COLS


def _contiguous(x: SharedArray) -> SharedArray:
    return x.like(np.ascontiguousarray(x.a), np.ascontiguousarray(x.b))


def _matched(ctx: MpcContext, left: SharedArray, right: SharedArray, tag: str) -> list[I64]:
    """Open two tag columns to the matcher; every member gets the pairs' positions."""
    opened = [mpc.reveal_to(ctx, _contiguous(t), MATCHER) for t in (left, right)]
    sizes = (left.shape[0], right.shape[0])
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
        if not 1 <= size <= 1 + 2 * max(sizes):
            raise ProtocolError("the matcher sent a malformed message")
        flat = np.asarray(ctx.recv(MATCHER, tag + ":pos", (size,)).view(np.int64))
        m = int(flat[0])
        if m >= 0:
            if size != 1 + 2 * m:
                raise ProtocolError("the matcher sent malformed positions")
            pos = [flat[1:1 + m], flat[1 + m:1 + 2 * m]]
            for p, n in zip(pos, sizes, strict=True):
                if p.size and (p.min() < 0 or p.max() >= n):
                    raise ProtocolError("the matcher sent positions out of range")
    if m < 0:
        raise ValidationError("the JOIN keys repeat on both sides of a join (many-to-many); "
                              "a key must be unique on one side")
    return pos


def join_chain(ctx: MpcContext, inputs: Sequence[PsiShares],
               on: Sequence[tuple[int, int, int, int]], *, k: int = 1) -> Joined:
    """Inner joins of the inputs, one after the other: JOIN ``i`` joins the rows so far with
    input ``i + 1`` on ``on[i] = (earlier input, its key column, i + 1, its key column)``,
    the key unique on one side (module doc). The joined rows (the payloads side by side, in
    input order) stay secret-shared; every intermediate is shuffled again before its tags
    are opened, so the matcher cannot link one join's positions to the next's."""
    if len(inputs) < 2 or len(on) != len(inputs) - 1:
        raise ValidationError("a join chain takes n inputs and n - 1 conditions")
    if ctx.security != "semi-honest":
        raise ValidationError("the committee's join is semi-honest only")
    shared = [_as_shared(ctx, inp) for inp in inputs]
    cur = mpc.shuffle(ctx, [shared[0][0]])[0]
    offs = {0: 0}
    for step, (ls, lk, rs, rk) in enumerate(on):
        if rs != step + 1 or ls not in offs or lk >= shared[ls][1] or rk >= shared[rs][1]:
            raise ValidationError("malformed join conditions")
        right = mpc.shuffle(ctx, [shared[rs][0]])[0]
        if step:
            cur = mpc.shuffle(ctx, [cur])[0]
        at = offs[ls] + _TAG_COLS * lk
        pos = _matched(ctx, cur[:, at:at + _TAG_COLS],
                       right[:, _TAG_COLS * rk:_TAG_COLS * (rk + 1)], ctx.tag("sql-join"))
        offs[rs] = cur.shape[1]
        cur = mpc.concat([cur[pos[0]], right[pos[1]]], axis=1)
    m = cur.shape[0]
    check_min_rows(m, k, "the join")
    fracs = {inp.frac_bits for inp in inputs if inp.payload_cols}
    if len(fracs) > 1:
        raise ShapeError("all payloads of a join must share one fixed-point scale")
    f = fracs.pop() if fracs else ctx.fxp.frac_bits
    payloads, indices = [], []
    for s, (inp, (_, nk)) in enumerate(zip(inputs, shared, strict=True)):
        at = offs[s] + _TAG_COLS * nk
        indices.append(cur[:, at])
        if inp.payload_cols:
            pay = _contiguous(cur[:, at + 1:at + 1 + inp.payload_cols])
            payloads.append(pay.like(pay.a, pay.b, frac_bits=f))
    joined = mpc.concat(payloads, axis=1) if payloads else \
        mpc.public(ctx, np.zeros((m, 0)), frac_bits=f)
    return Joined(m, joined, indices)
