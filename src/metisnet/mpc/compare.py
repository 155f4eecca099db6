"""Comparisons and what is built on them: less-than, sign, equality, select, min/max, argmax.

All comparisons reduce to the sign bit of a difference (:func:`metisnet.mpc.boolean.ltz_bits`,
ABY3 §5.3) or to a zero test (:func:`metisnet.mpc.boolean.eq_zero_bits`), then inject the bit
into the arithmetic ring (:func:`metisnet.mpc.boolean.b2a`, 1 round). A difference must not
wrap: ``|x - y| < 2^63`` in the ring (for f = 16 fixed point, reals below 2^46 in magnitude
always qualify).

Costs per party per element (n a multiple of 64):

==========================  ======  ===================================================
operation                   rounds  bytes sent per party per element
==========================  ======  ===================================================
less_than / greater_than    9       30.25 + b2a (party 0: 32, parties 1, 2: 8)
less_than_bits              8       30.25
sign (-1, 0, 1)             9       2 x less_than, batched
equal                       8 (*)   7.9 (+8 from party 0) + b2a
select(c, x, y)             1       8 (one multiplication)
minimum / maximum           10      less_than + select
argmax over m candidates    10 x ceil(log2 m)  a tournament of less_than + select
==========================  ======  ===================================================

Rounds are sequential message latencies. (*) By each party's own ChannelStats count,
``equal`` is 7 rounds (see :func:`metisnet.mpc.boolean.eq_zero_bits`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from metisnet.errors import ShapeError
from metisnet.mpc.arith import concat, public, reshare
from metisnet.mpc.boolean import b2a, eq_zero_bits, ltz_bits
from metisnet.mpc.context import MpcContext
from metisnet.mpc.shares import SharedArray, SharedBits

__all__ = [
    "argmax",
    "argmin",
    "equal",
    "equal_bits",
    "greater_than",
    "less_equal",
    "less_than",
    "less_than_bits",
    "maximum",
    "minimum",
    "select",
    "select_many",
    "sign",
]

Operand = SharedArray | ArrayLike


def _diff(x: SharedArray, y: Operand) -> SharedArray:
    if isinstance(y, SharedArray):
        x.check_compatible(y)
    return x - y


def less_than_bits(ctx: MpcContext, x: SharedArray, y: Operand) -> SharedBits:
    """``x < y`` as one boolean-shared plane (8 rounds, 30.25 B per element)."""
    return ltz_bits(ctx, _diff(x, y))


def less_than(ctx: MpcContext, x: SharedArray, y: Operand) -> SharedArray:
    """``x < y`` as a shared integer 0/1 (9 rounds). ``y`` may be a public constant."""
    return b2a(ctx, less_than_bits(ctx, x, y))


def greater_than(ctx: MpcContext, x: SharedArray, y: Operand) -> SharedArray:
    """``x > y`` as a shared integer 0/1 (9 rounds)."""
    return b2a(ctx, ltz_bits(ctx, -_diff(x, y)))


def less_equal(ctx: MpcContext, x: SharedArray, y: Operand) -> SharedArray:
    """``x <= y`` as a shared integer 0/1 (9 rounds)."""
    return 1 - greater_than(ctx, x, y)


def sign(ctx: MpcContext, x: SharedArray) -> SharedArray:
    """-1, 0 or 1 by the sign of ``x``, as a shared integer (9 rounds; both comparisons
    ``x < 0`` and ``-x < 0`` share their rounds)."""
    both = concat([x.flatten(), (-x).flatten()])
    bits = b2a(ctx, ltz_bits(ctx, both))
    n = x.size
    neg, pos = bits[:n], bits[n:]
    return (pos - neg).reshape(x.shape)


def equal_bits(ctx: MpcContext, x: SharedArray, y: Operand) -> SharedBits:
    """``x == y`` as one boolean-shared plane (7 rounds)."""
    return eq_zero_bits(ctx, _diff(x, y))


def equal(ctx: MpcContext, x: SharedArray, y: Operand) -> SharedArray:
    """``x == y`` as a shared integer 0/1 (8 rounds)."""
    return b2a(ctx, equal_bits(ctx, x, y))


def _as_choice(ctx: MpcContext, c: SharedArray | SharedBits) -> SharedArray:
    if isinstance(c, SharedBits):
        if c.nbits != 1:
            raise ShapeError("a choice must be a single bit plane")
        return b2a(ctx, c)
    if c.frac_bits != 0:
        raise ShapeError("a choice must be an integer 0/1, not a fixed-point value")
    return c


def select(ctx: MpcContext, c: SharedArray | SharedBits, x: SharedArray,
           y: SharedArray) -> SharedArray:
    """``c ? x : y`` elementwise for a shared bit ``c`` (0/1 integer, or one plane of
    SharedBits, which costs a b2a round first): ``y + c * (x - y)``, 1 round, 8 B."""
    return select_many(ctx, c, [(x, y)])[0]


def select_many(ctx: MpcContext, c: SharedArray | SharedBits,
                pairs: list[tuple[SharedArray, SharedArray]]) -> list[SharedArray]:
    """Several selections by the same choice ``c`` in one round (one message)."""
    ch = _as_choice(ctx, c)
    zs, metas, ds = [], [], []
    for x, y in pairs:
        x.check_compatible(y)
        if x.shape != ch.shape:
            raise ShapeError(f"choice of shape {ch.shape} for values of shape {x.shape}")
        d = x - y
        z = ch.a * (d.a + d.b) + ch.b * d.a
        zs.append(z.reshape(-1))
        metas.append((y, x.shape))
        ds.append(d)
    flat = np.concatenate(zs)
    flat += ctx.zero_share(flat.shape)
    prod = reshare(ctx, flat, ctx.tag("select"), 0)
    if ctx.verifier is not None:  # malicious mode: the products are checked later
        ctx.verifier.record_select(ch, ds, prod)
    out, pos = [], 0
    for y, shape in metas:
        size = int(np.prod(shape, dtype=np.int64))
        part = prod[pos:pos + size].reshape(shape)
        pos += size
        out.append(y + y.like(part.a, part.b))
    return out


def minimum(ctx: MpcContext, x: SharedArray, y: SharedArray) -> SharedArray:
    """Elementwise minimum (10 rounds)."""
    return select(ctx, less_than(ctx, x, y), x, y)


def maximum(ctx: MpcContext, x: SharedArray, y: SharedArray) -> SharedArray:
    """Elementwise maximum (10 rounds)."""
    return select(ctx, less_than(ctx, x, y), y, x)


def argmax(ctx: MpcContext, x: SharedArray) -> tuple[SharedArray, SharedArray]:
    """Index (shared integer) and value of the maximum along the last axis.

    A tournament: each level compares neighbours (``less_than``) and keeps the larger value
    and its index with one batched selection; ties keep the lower index, like numpy.
    ``ceil(log2 m)`` levels of 10 rounds for ``m`` candidates.
    """
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ShapeError("argmax needs a non-empty last axis")
    m = x.shape[-1]
    idx = public(ctx, np.broadcast_to(np.arange(m, dtype=np.int64), x.shape), frac_bits=0)
    vals = x
    while vals.shape[-1] > 1:
        m = vals.shape[-1]
        half = m // 2
        a, b = vals[..., 0:2 * half:2], vals[..., 1:2 * half:2]
        ia, ib = idx[..., 0:2 * half:2], idx[..., 1:2 * half:2]
        c = less_than(ctx, a, b)
        new_v, new_i = select_many(ctx, c, [(b, a), (ib, ia)])
        if m % 2:
            new_v = concat([new_v, vals[..., m - 1:]], axis=-1)
            new_i = concat([new_i, idx[..., m - 1:]], axis=-1)
        vals, idx = new_v, new_i
    return idx[..., 0], vals[..., 0]


def argmin(ctx: MpcContext, x: SharedArray) -> tuple[SharedArray, SharedArray]:
    """Index and value of the minimum along the last axis (ties keep the lower index)."""
    i, v = argmax(ctx, -x)
    return i, -v


