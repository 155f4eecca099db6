"""Oblivious shuffle, and sorting by shuffle-then-quicksort with revealed comparisons.

Shuffle
-------
Three passes, one per pair of parties. In pass ``p`` the pair ``A = p``, ``B = p+1`` holds
the key ``k_{p+1}`` in common, and the third party ``C = p+2`` does not. From that key A
and B draw the same permutation ``pi`` and two masks ``r, t``. Together they hold a
2-out-of-2 sharing ``x = (x_p + x_{p+1}) + x_{p+2}`` (A knows the first summand, B the
second); each permutes its summand locally and the new replicated sharing of ``pi(x)`` is

* ``z_{p+1} = r``                               (A and B, no message),
* ``z_{p+2} = pi(x_{p+2}) + t``                  (B sends it to C),
* ``z_p     = pi(x_p + x_{p+1}) - r - t``        (A sends it to C).

C receives two values that are uniform and independent (masked by ``r`` and ``t``, which it
lacks); A and B receive nothing. Every party is C in one pass, so the composition of the
three permutations is uniform and unknown to each single party (semi-honest, one corrupt
party). This is the resharing pattern of the 3-party shuffles in Mohassel, Rindal and
Rosulek, "Fast database joins and PSI for secret shared data", CCS 2020, §4 (and Araki et
al., "Secure graph analysis at scale", CCS 2021), written here for replicated shares.
Cost: 3 rounds; 16 bytes per party per element and column (8 in each of the two passes
where the party permutes). A permutation is drawn as the order of ``n`` PRG words, which is
uniform up to the chance of a tie, below ``n^2 / 2^65``.

Sort
----
:func:`shuffle_sort` follows Hamada, Kikuchi, Ikarashi and Chida, "Practically efficient
multi-party sorting protocols from comparison sort algorithms", ICISC 2012: shuffle the rows,
then run any comparison sort whose comparison *results are revealed*. Here it is quicksort
with ``k`` pivots (default 3), all partitions of one level at once: every element of every
unfinished segment is compared with its segment's first ``k`` elements, and those with each
other (one batched sign-bit extraction, 8 rounds, then one reveal of the bits, 1 round),
and the segments are split into ``k + 1`` buckets in public. At the end the parties know a
public permutation of the shuffled rows and apply it locally. (Three pivots halve the
levels of one pivot for about 35% more bytes: fewer rounds matter more than bytes
between real hosts.)

Security: the keys are made distinct first (``key * 2^b + original index``, which also
makes the sort stable). The revealed bits are then a function of the relative order of the
shuffled rows only, which is a uniformly random permutation independent of the data, so a
simulator knowing only ``n`` produces them by sorting a random permutation; the shares
themselves are never opened. Keys must satisfy ``|key| < 2^(62 - b)`` in the ring, with
``b = bit_length(n - 1)`` (for f = 16 and n = 10^4: reals below 2^32).

Semi-honest mode only: the shuffle's messages are not covered by the malicious-security
checks of :mod:`metisnet.mpc.malicious`, so the functions here refuse a context in
``"malicious"`` mode (use the bitonic :func:`metisnet.mpc.sort.sort` there). A maliciously
secure shuffle (e.g. with verified resharing) is future work.

Cost for ``n`` rows and ``c`` columns (key and payloads): the shuffle (3 rounds, 16 B per
row per column, plus the composite key), then ``L`` levels of 9 rounds, where ``L`` is the
height of a random search tree: with one pivot about 2.5-3 log2 n (30-34 for n = 10^4) and
about ``1.2-1.4 n log2 n`` comparisons in all; with three pivots about log2 n (12-14 for
n = 10^4: 110-130 rounds) and about ``1.5-1.6 n log2 n`` comparisons (each 30.25 B and
1/8 B per party). Bitonic sorting (:mod:`metisnet.mpc.sort`) needs ``n/2 log2 n (log2 n + 1) / 2``
comparisons with bit injection and selection (70 B each from party 0) and 10 rounds per
layer.

Measured (``benchmarks/mpc_sort.py``: 3 OS processes over loopback, semi-honest, one
payload column, 2-core shared machine, medians of 3): with 3 pivots, 10^4 rows at 15,600
rows/s (at most 136 rounds; 701 B per row per party) beside the bitonic network's 6,600
rows/s (1,050 rounds; 6.7 KB per row) in the same session, and MPyC 0.11's ``np_sort`` at
11.6 rows/s (n = 256). With 1 pivot, two earlier sessions gave 16,900 and 35,100 rows/s
(271 rounds; 520-580 B per row), 2.4x the bitonic rate each time: the machine's load moves
every figure by up to 2x, the ratios much less.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from metisnet.crypto.prg import Prg
from metisnet.errors import ShapeError, ValidationError
from metisnet.mpc.boolean import ltz_bits, reveal_bits
from metisnet.mpc.context import PARTIES, MpcContext
from metisnet.mpc.shares import SharedArray

__all__ = ["quicksort_levels", "shuffle", "shuffle_sort"]

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


def _permutation(prg: Prg, n: int) -> I64:
    """A uniform permutation of ``range(n)``, the same at both holders of the PRG
    (:meth:`metisnet.crypto.prg.Prg.permutation`: exact, and independent of the numpy
    build's sort)."""
    return prg.permutation(n)


def _require_semi_honest(ctx: MpcContext, name: str) -> None:
    if ctx.security != "semi-honest":
        raise ValidationError(
            f"{name} is semi-honest only (its shuffle messages are not verified); set up the "
            "context with security='semi-honest', or use metisnet.mpc.sort.sort"
        )


def _check_columns(columns: Sequence[SharedArray]) -> int:
    if not columns:
        raise ValidationError("nothing to shuffle")
    first = columns[0]
    for c in columns:
        if not isinstance(c, SharedArray):
            raise ShapeError("shuffle takes SharedArray columns")
        if c.ndim == 0 or c.shape[0] != first.shape[0]:
            raise ShapeError("every column needs the same number of rows (first axis)")
        if c.party != first.party:
            raise ShapeError(f"shares of party {first.party} and party {c.party} mixed")
    return int(first.shape[0])


def shuffle(ctx: MpcContext, columns: Sequence[SharedArray]) -> list[SharedArray]:
    """Permute the rows (first axis) of all ``columns`` by one secret uniform permutation.

    3 rounds; 16 bytes per party per row element (module docstring). The columns may have
    any scales and trailing shapes; they travel together in one message per pass.
    """
    _require_semi_honest(ctx, "shuffle")
    n = _check_columns(columns)
    widths = [int(np.prod(c.shape[1:], dtype=np.int64)) for c in columns]
    xa = np.concatenate([c.a.reshape(n, -1) for c in columns], axis=1)
    xb = np.concatenate([c.b.reshape(n, -1) for c in columns], axis=1)
    me = ctx.party
    for p in range(PARTIES):
        a, b, c = p, (p + 1) % PARTIES, (p + 2) % PARTIES
        tag = ctx.tag("shuffle")
        if me == c:
            z_c = ctx.recv(b, tag, xa.shape)  # z_{p+2}
            z_p = ctx.recv(a, tag, xa.shape)
            xa, xb = z_c, z_p
            continue
        prg = ctx.prg_next if me == a else ctx.prg_own  # k_{p+1}, held by A and B only
        perm = _permutation(prg, n)
        r = prg.uint64(xa.shape)
        t = prg.uint64(xa.shape)
        if me == a:
            z_p = (xa + xb)[perm] - r - t
            ctx.send(c, tag, z_p)
            xa, xb = z_p, r
        else:
            z_c = xb[perm] + t
            ctx.send(c, tag, z_c)
            xa, xb = r, z_c
    out, pos = [], 0
    for col, w in zip(columns, widths, strict=True):
        out.append(col.like(np.ascontiguousarray(xa[:, pos:pos + w]).reshape(col.shape),
                            np.ascontiguousarray(xb[:, pos:pos + w]).reshape(col.shape)))
        pos += w
    return out


def _level(order: I64, starts: I64, lengths: I64, pivots: int,
           compare: Callable[[I64, I64], NDArray[np.uint8]]) -> tuple[I64, I64, I64]:
    """One public quicksort level with up to ``pivots`` pivots per segment.

    In each unfinished segment ``[s, s + len)`` of ``order`` the first ``p = min(pivots,
    len - 1)`` entries are the pivots; every other entry is compared with each of them and
    the pivots with each other, all in one call ``compare(u, v) = [order[u] < order[v]]``
    (positions in ``order``). The segment is then laid out as bucket 0, the smallest pivot,
    bucket 1, ..., in public. Returns the new order and the unfinished segments."""
    nseg = starts.size
    piv = np.minimum(pivots, lengths - 1)
    first = np.cumsum(lengths) - lengths  # entry index of each segment's first entry
    seg = np.repeat(np.arange(nseg), lengths)
    offs = np.arange(seg.size) - first[seg]
    where = starts[seg] + offs
    elem = np.flatnonzero(offs >= piv[seg])  # entry indices of the non-pivots
    reps = piv[seg[elem]]
    pair_e = np.repeat(elem, reps)  # element entry of each element-pivot pair
    pair_k = np.arange(pair_e.size) - np.repeat(np.cumsum(reps) - reps, reps)
    pi_list, pj_list = [], []
    for p in np.unique(piv[piv >= 2]):
        segs = np.flatnonzero(piv == p)
        ii, jj = np.triu_indices(int(p), 1)
        pi_list.append((first[segs][:, None] + ii[None, :]).ravel())
        pj_list.append((first[segs][:, None] + jj[None, :]).ravel())
    pp_i = np.concatenate(pi_list) if pi_list else np.zeros(0, dtype=np.int64)
    pp_j = np.concatenate(pj_list) if pj_list else np.zeros(0, dtype=np.int64)
    pair_p = first[seg[pair_e]] + pair_k  # pivot entry of each element-pivot pair
    less = compare(np.concatenate([where[pair_e], where[pp_i]]),
                   np.concatenate([where[pair_p], where[pp_j]])).astype(np.int64)
    less_ep, less_pp = less[: pair_e.size], less[pair_e.size:]
    # class within the segment: 2 * bucket for an element, 2 * rank + 1 for a pivot
    cls = np.bincount(pair_e, weights=1 - less_ep, minlength=seg.size).astype(np.int64) * 2
    rank = np.bincount(pp_j, weights=less_pp, minlength=seg.size)
    rank += np.bincount(pp_i, weights=1 - less_pp, minlength=seg.size)
    is_piv = offs < piv[seg]
    cls[is_piv] = rank.astype(np.int64)[is_piv] * 2 + 1
    ranks = np.lexsort((offs, cls, seg))
    new_order = order.copy()
    new_order[where] = order[where[ranks]]
    buckets = pivots + 1
    sizes = np.bincount(seg[elem] * buckets + cls[elem] // 2,
                        minlength=nseg * buckets).reshape(nseg, buckets)
    # bucket b of segment s starts after the buckets below it and their b pivots
    begin = starts[:, None] + np.cumsum(sizes + 1, axis=1) - (sizes + 1)
    keep = sizes >= 2
    return new_order, begin[keep], sizes[keep]


def quicksort_levels(ctx: MpcContext, keys: SharedArray, *,
                     pivots: int = 1) -> tuple[I64, int]:
    """The public order that sorts ``keys`` (1-D, integers, all distinct), by quicksort with
    revealed comparisons and up to ``pivots`` pivots per segment, and the number of levels
    it took (9 rounds each). Only safe on *shuffled* distinct keys (module docstring);
    :func:`shuffle_sort` arranges that."""
    _require_semi_honest(ctx, "quicksort_levels")
    if pivots < 1:
        raise ValidationError("quicksort needs at least one pivot per segment")
    n = keys.shape[0]
    order = np.arange(n, dtype=np.int64)
    starts = np.zeros(1, dtype=np.int64) if n >= 2 else np.zeros(0, dtype=np.int64)
    lengths = np.full(starts.size, n, dtype=np.int64)
    levels = 0

    def compare(u: I64, v: I64) -> NDArray[np.uint8]:
        diff = keys[order[u]] - keys[order[v]]  # < 0 exactly when u goes first
        bits: NDArray[np.uint8] = reveal_bits(ctx, ltz_bits(ctx, diff))[0]
        return bits

    while starts.size:
        order, starts, lengths = _level(order, starts, lengths, pivots, compare)
        levels += 1
    return order, levels


def shuffle_sort(
    ctx: MpcContext,
    keys: SharedArray,
    payload: Sequence[SharedArray] = (),
    *,
    descending: bool = False,
    pivots: int = 3,
) -> tuple[SharedArray, list[SharedArray]]:
    """Sort the 1-D ``keys`` (stable; ascending unless ``descending``) and permute every
    payload column (same number of rows, any scale and trailing shape) the same way.

    Hamada et al., ICISC 2012 (module docstring): shuffle, then quicksort with revealed
    comparisons on the distinct keys ``key * 2^b + index``, ``pivots`` pivots per segment.
    Requires ``|key| < 2^(62 - b)`` in the ring, ``b = bit_length(n - 1)``. Cost: 3 + 9 L
    rounds (L levels: about log2 n with 3 pivots, 2.5-3 log2 n with 1), about
    1.6 n log2 n comparisons (3 pivots) or 1.4 n log2 n (1).
    """
    if not isinstance(keys, SharedArray) or keys.ndim != 1:
        raise ShapeError("shuffle_sort takes a 1-D SharedArray key column")
    _require_semi_honest(ctx, "shuffle_sort")
    n = keys.shape[0]
    _check_columns([keys, *payload])
    if n <= 1:
        return keys, list(payload)
    bits = (n - 1).bit_length()
    signed = -keys if descending else keys
    composite = SharedArray(signed.a << np.uint64(bits), signed.b << np.uint64(bits),
                            party=keys.party, frac_bits=0)
    composite = composite.add_ring(np.arange(n, dtype=np.uint64))
    mixed = shuffle(ctx, [composite, keys, *payload])
    order, _ = quicksort_levels(ctx, mixed[0], pivots=pivots)
    return mixed[1][order], [col[order] for col in mixed[2:]]
