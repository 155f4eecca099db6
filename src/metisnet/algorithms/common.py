"""What every algorithm shares: data-node dealing, result receivers, the k policy, shuffles.

The parties
-----------
* **Data nodes** hold plaintext tables. A data node is a *dealer* outside the committee:
  :func:`deal` splits its table into the three replicated pairs of
  :func:`metisnet.crypto.sharing.share` (fixed point at ``frac_bits``), one pair per
  committee member, drawn from the node's own :class:`~metisnet.crypto.prg.Csprng`.
* The **committee** (3 compute nodes, one :class:`~metisnet.mpc.MpcContext` each) runs every
  function in this package in SPMD style: all three call the same functions in the same
  order. :func:`receive` wraps the pair a member got from a data node.
* **Receivers** get results. ``to=None`` opens a result to the whole committee; ``to=j``
  (or a list) uses :func:`metisnet.mpc.reveal_to`, so only committee member ``j`` learns it.
  A receiver outside the committee gets each member's pair (:func:`pairs_for_outside`) and
  recombines them with :func:`open_outside`, which also checks that the pairs agree.

Minimum group size ``k``
------------------------
Whole-table statistics use **public** row counts (a dataset's row count is registered on
chain): fewer than ``k`` rows is refused with :class:`~metisnet.errors.PolicyViolation`
before anything is computed. Per-bin and per-group counts are secret: the committee compares
them with ``k`` **obliviously** (:func:`suppress_small`) and releases ``count * [count >= k]``
(and the same mask times every per-group value), so a suppressed group and an empty one look
alike and nothing about a small group is released by that output itself. Not done:
complementary suppression - when ``n`` is public and a single group of a partition is
suppressed, its count is ``n`` minus the others; a caller releasing a full partition should
also ask for a second group to be withheld (or add noise) where that matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from metisnet import mpc
from metisnet.crypto.fixedpoint import FixedPoint, to_ring
from metisnet.crypto.prg import Csprng
from metisnet.crypto.sharing import reconstruct, share
from metisnet.errors import PolicyViolation, ShapeError, ValidationError
from metisnet.mpc import MpcContext, SharedArray

__all__ = [
    "Receivers",
    "SharePair",
    "check_min_rows",
    "deal",
    "deal_ints",
    "open_outside",
    "output",
    "pairs_for_outside",
    "receive",
    "suppress_small",
]

U64 = NDArray[np.uint64]
SharePair = tuple[U64, U64]
#: ``None`` opens a result to all three members; an index or list opens it to those only.
Receivers = int | Sequence[int] | None


# -- data nodes (dealers outside the committee) ------------------------------------------------
def deal(values: ArrayLike, rng: Csprng, *, frac_bits: int = 16) -> list[SharePair]:
    """Fixed-point encode ``values`` and split them into 3 replicated pairs (pair i -> member i).

    Encoding error at most ``2^-(frac_bits+1)`` per value; values must satisfy
    ``|v| < 2^(63 - frac_bits)``.
    """
    enc = FixedPoint(frac_bits).encode(np.asarray(values, dtype=np.float64))
    return share(enc, rng)


def deal_ints(values: ArrayLike, rng: Csprng) -> list[SharePair]:
    """Split integers (ids, indices, one-hot 0/1) into 3 replicated pairs (exact)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iub":
        raise ValidationError(f"deal_ints needs integers, got {arr.dtype}")
    return share(to_ring(arr.astype(np.int64)) if arr.dtype != np.uint64 else arr, rng)


def receive(ctx: MpcContext, pair: SharePair, *, frac_bits: int | None = None) -> SharedArray:
    """A committee member's view of a dealt table (``frac_bits=0`` for :func:`deal_ints`).

    In malicious mode both shares are folded into the verifier's dealt-pair digests
    (:meth:`~metisnet.mpc.malicious.MaliciousVerifier.on_dealt`) and compared with their
    other holders at the next check, before any output: a member that alters a dealt share
    is caught (and a dealer that hands out inconsistent pairs blames no member).
    """
    f = ctx.fxp.frac_bits if frac_bits is None else frac_bits
    x = mpc.share_pair(ctx, pair[0], pair[1], frac_bits=f)
    if ctx.verifier is not None:
        ctx.verifier.on_dealt(x)
    return x


# -- results ---------------------------------------------------------------------------------
def output(ctx: MpcContext, x: SharedArray, to: Receivers) -> NDArray[np.float64] | None:
    """Open ``x`` to ``to`` (all members if ``None``) as float64; others get ``None``.

    1 round, 8 bytes per element from each receiver's predecessor.
    """
    if to is None:
        return np.asarray(mpc.reveal(ctx, x), dtype=np.float64)
    got = mpc.reveal_to(ctx, x, to)
    return None if got is None else np.asarray(got, dtype=np.float64)


def pairs_for_outside(x: SharedArray) -> SharePair:
    """This member's pair of ``x``, to send to a receiver outside the committee."""
    return x.a.copy(), x.b.copy()


def open_outside(pairs: Sequence[SharePair], *, frac_bits: int) -> NDArray[np.float64]:
    """Recombine the three members' pairs at an outside receiver.

    Each share is held by two members, so the receiver checks the copies agree
    (:func:`~metisnet.crypto.sharing.reconstruct` raises ``ValidationError`` otherwise): one
    corrupt member cannot change the result without being noticed.
    """
    raw = reconstruct(list(pairs))
    if frac_bits == 0:
        return raw.view(np.int64).astype(np.float64)
    return FixedPoint(min(frac_bits, 30)).decode(raw) if frac_bits <= 30 else (
        raw.view(np.int64).astype(np.float64) / float(1 << frac_bits))


# -- minimum group size --------------------------------------------------------------------------
def check_min_rows(n_rows: int, k: int, what: str = "the table") -> None:
    """Refuse (PolicyViolation, rule ``min_group_size``) when a public count is below ``k``."""
    if k < 1:
        raise ValidationError("the minimum group size k must be at least 1")
    if n_rows < k:
        raise PolicyViolation(
            f"{what} has {n_rows} rows, fewer than the minimum group size {k}; nothing computed",
            rule="min_group_size",
        )


def suppress_small(ctx: MpcContext, counts: SharedArray, k: int,
                   values: Sequence[SharedArray] = ()) -> tuple[SharedArray, list[SharedArray]]:
    """Obliviously zero every group whose secret count is below ``k``.

    ``counts`` are shared integers (frac_bits 0); each of ``values`` has ``counts``' shape as
    its leading axes (or equal shape). Returns ``(count * keep, [v * keep, ...])`` with
    ``keep = [count >= k]``, computed without revealing ``keep``: 9 rounds for the
    comparison plus 1 round for all the products together.
    """
    if counts.frac_bits != 0:
        raise ShapeError("group counts must be shared integers")
    if k <= 1:
        return counts, list(values)
    keep = 1 - mpc.less_than(ctx, counts, k)
    items = [counts, *values]
    choices, flats = [], []
    for v in items:
        if v.shape[:counts.ndim] != counts.shape:
            raise ShapeError(f"values of shape {v.shape} do not follow counts {counts.shape}")
        reps = v.size // max(counts.size, 1)
        kk = keep.flatten()
        choices.append(kk.like(np.repeat(kk.a, reps), np.repeat(kk.b, reps)))
        fv = v.flatten()
        flats.append(fv.like(fv.a, fv.b, frac_bits=0))
    prod = mpc.mul_raw(ctx, mpc.concat(choices), mpc.concat(flats))
    res, pos = [], 0
    for v in items:
        part = prod[pos:pos + v.size]
        pos += v.size
        res.append(v.like(part.a.reshape(v.shape), part.b.reshape(v.shape)))
    return res[0], res[1:]
