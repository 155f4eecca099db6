"""Arithmetic protocols on replicated shares over Z_2^64: input, output, mul, dot, truncation.

References: Araki, Furukawa, Lindell, Nof and Ohara, "High-throughput semi-honest secure
three-party computation with an honest majority", CCS 2016 (§2: sharing, §2.2:
multiplication with a zero-sharing and a reshare to one neighbour); Mohassel and Rindal,
"ABY3", CCS 2018 (§4: fixed point, dot products; §5.1: truncation); Mohassel and Zhang,
"SecureML", S&P 2017 (§4.1, Theorem 1: local truncation of a 2-out-of-2 sharing).

Semi-honest security, honest majority (one corrupt party of three). Costs are stated per
party per output element; "rounds" are counted from a party's own view as in
:class:`~metisnet.net.channel.ChannelStats`.

=====================  ======  ==================================================
operation              rounds  bytes sent per party per element
=====================  ======  ==================================================
share (owner j)        1       8 from the owner, 0 from the others
reveal (to all)        1       8
reveal_to (one party)  1       8 from one party (its predecessor), 0 otherwise
add/sub/neg/public     0       0
mul_raw, dot, matmul   1       8 (per *output* element; dot/matmul need no more)
trunc                  1       8 from party 0, 0 from parties 1 and 2
mul (fixed x fixed)    2       16 from party 0, 8 from parties 1 and 2
=====================  ======  ==================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from metisnet.crypto.fixedpoint import FixedPoint, to_ring
from metisnet.errors import ShapeError, ValidationError
from metisnet.mpc.context import PARTIES, MpcContext
from metisnet.mpc.shares import SharedArray, encode_public

__all__ = [
    "concat",
    "dot",
    "matmul",
    "mul",
    "mul_public",
    "mul_raw",
    "public",
    "random",
    "reshare",
    "reveal",
    "reveal_raw",
    "reveal_to",
    "share",
    "share_pair",
    "stack",
    "sum",
    "trunc",
    "trunc_error_probability",
]

U64 = NDArray[np.uint64]


# -- input --------------------------------------------------------------------------------
def share(
    ctx: MpcContext,
    value: ArrayLike | None,
    *,
    owner: int,
    shape: tuple[int, ...] | None = None,
    frac_bits: int | None = None,
) -> SharedArray:
    """Secret-share ``value`` held by committee member ``owner`` (1 round, 8 B from the owner).

    The owner passes ``value``; the others pass ``value=None`` and the public ``shape``.
    ``frac_bits`` defaults to the context's fixed-point setting; 0 shares integers.

    Protocol (Araki et al. §2, a dealer's sharing with the pairwise PRGs): with ``j = owner``,
    ``x_j = F(k_j)`` (known to j and j-1 with no message), ``x_{j+1} = v - x_j`` (sent by the
    owner to j+1), ``x_{j+2} = 0``. Each non-owner sees one uniform share.
    """
    if not 0 <= owner < PARTIES:
        raise ValidationError(f"invalid owner {owner}")
    f = ctx.fxp.frac_bits if frac_bits is None else frac_bits
    me = ctx.party
    tag = ctx.tag("share")
    if me == owner:
        if value is None:
            raise ValidationError("the owner must pass the value it shares")
        v = FixedPoint(f).encode(value) if f > 0 else encode_public(value, 0)
        if shape is not None and tuple(shape) != v.shape:
            raise ShapeError(f"value has shape {v.shape}, not the announced {tuple(shape)}")
        xj = ctx.prg_own.uint64(v.shape)
        xj1 = v - xj
        ctx.send(ctx.next, tag, xj1)
        out = SharedArray(xj, xj1, party=me, frac_bits=f)
    else:
        if shape is None:
            raise ValidationError("parties other than the owner must pass the public shape")
        shp = tuple(shape)
        if me == (owner + 1) % PARTIES:
            got = ctx.recv(owner, tag, shp)
            out = SharedArray(got, np.zeros(shp, dtype=np.uint64), party=me, frac_bits=f)
        else:
            out = SharedArray(np.zeros(shp, dtype=np.uint64), ctx.prg_next.uint64(shp),
                              party=me, frac_bits=f)
    if ctx.verifier is not None:  # malicious mode: input shares cross-checked later
        ctx.verifier.on_input(out, owner)
    return out


def share_pair(ctx: MpcContext, a: U64, b: U64, *, frac_bits: int = 0) -> SharedArray:
    """Wrap a pair received from an outside dealer (:func:`metisnet.crypto.sharing.share`)."""
    out = SharedArray(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64),
                      party=ctx.party, frac_bits=frac_bits)
    if ctx.verifier is not None:  # malicious mode: holders' copies cross-checked later
        ctx.verifier.on_dealt(out)
    return out


def public(ctx: MpcContext, value: ArrayLike, *, frac_bits: int | None = None) -> SharedArray:
    """A public constant as a (trivial) sharing: the value sits in share x_0. No messages."""
    f = ctx.fxp.frac_bits if frac_bits is None else frac_bits
    c = np.ascontiguousarray(encode_public(value, f))
    z = np.zeros(c.shape, dtype=np.uint64)
    if ctx.party == 0:
        return SharedArray(c, z, party=0, frac_bits=f)
    if ctx.party == 2:
        return SharedArray(z, c, party=2, frac_bits=f)
    return SharedArray(z, z.copy(), party=1, frac_bits=f)


def random(ctx: MpcContext, shape: tuple[int, ...], *, frac_bits: int = 0) -> SharedArray:
    """A uniformly random secret over Z_2^64, from the pairwise PRGs (no messages)."""
    a, b = ctx.random_pair(shape)
    return SharedArray(a, b, party=ctx.party, frac_bits=frac_bits)


# -- output -------------------------------------------------------------------------------
def _decode(raw: U64, frac_bits: int) -> NDArray[np.float64] | NDArray[np.int64]:
    if frac_bits > 0:
        return FixedPoint(frac_bits).decode(raw) if frac_bits <= 30 else (
            raw.view(np.int64).astype(np.float64) / float(1 << frac_bits))
    return raw.view(np.int64)


def reveal_raw(ctx: MpcContext, x: SharedArray) -> U64:
    """Open ``x`` to all three parties as ring elements (1 round, 8 B per party)."""
    if ctx.verifier is not None:  # malicious mode: checks first, then a checked opening
        got = ctx.verifier.reveal_raw(ctx, x)
        if got is None:  # pragma: no cover - every party receives
            raise ValidationError("reveal returned nothing")
        return got
    tag = ctx.tag("reveal")
    ctx.send(ctx.next, tag, x.a)
    missing = ctx.recv(ctx.prev, tag, x.shape)
    return x.a + x.b + missing


def reveal(ctx: MpcContext, x: SharedArray) -> NDArray[np.float64] | NDArray[np.int64]:
    """Open ``x`` to all parties: float64 for fixed point, int64 for integers (1 round, 8 B)."""
    return _decode(reveal_raw(ctx, x), x.frac_bits)


def reveal_to(
    ctx: MpcContext, x: SharedArray, parties: int | Sequence[int]
) -> NDArray[np.float64] | NDArray[np.int64] | None:
    """Open ``x`` to the chosen ``parties`` only; the others get ``None``.

    Party j lacks only ``x_{j+2}``, which its predecessor holds as its first share: each
    chosen party receives one message (1 round, 8 B from each chosen party's predecessor).
    """
    targets = {parties} if isinstance(parties, int) else set(parties)
    if not targets or not targets <= set(range(PARTIES)):
        raise ValidationError(f"invalid result receivers {sorted(targets)}")
    if ctx.verifier is not None:  # malicious mode: checks first, then a checked opening
        opened = ctx.verifier.reveal_raw(ctx, x, sorted(targets))
        return None if opened is None else _decode(opened, x.frac_bits)
    tag = ctx.tag("reveal_to")
    if ctx.next in targets:
        ctx.send(ctx.next, tag, x.a)
    if ctx.party not in targets:
        return None
    missing = ctx.recv(ctx.prev, tag, x.shape)
    return _decode(x.a + x.b + missing, x.frac_bits)


# -- multiplication -----------------------------------------------------------------------
def reshare(ctx: MpcContext, z: U64, tag: str, frac_bits: int) -> SharedArray:
    """Turn a masked 3-out-of-3 share ``z_i`` into a replicated pair: send ``z_i`` to the
    predecessor, receive ``z_{i+1}`` from the successor (1 round, 8 B per element)."""
    ctx.send(ctx.prev, tag, z)
    return SharedArray(z, ctx.recv(ctx.next, tag, z.shape), party=ctx.party,
                       frac_bits=frac_bits)


def _check_pair(x: SharedArray, y: SharedArray) -> None:
    if not isinstance(x, SharedArray) or not isinstance(y, SharedArray):
        raise ShapeError("expected two SharedArray values")
    if x.party != y.party:
        raise ShapeError(f"shares of party {x.party} and party {y.party} mixed")
    if x.frac_bits + y.frac_bits > 62:
        raise ShapeError("the product's scale would exceed the ring")


def mul_raw(ctx: MpcContext, x: SharedArray, y: SharedArray) -> SharedArray:
    """Elementwise product without truncation; its scale is ``x.f + y.f``.

    Araki et al. §2.2: ``z_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i + alpha_i`` (alpha a
    zero-sharing), then a reshare. 1 round, 8 bytes per party per element.
    """
    _check_pair(x, y)
    if x.shape != y.shape:
        raise ShapeError(f"shapes differ: {x.shape} and {y.shape}")
    if ctx.verifier is not None and 0 < x.size <= ctx.verifier.stock(False):
        return ctx.verifier.beaver_mul(ctx, x, y)  # malicious mode, verified triples made
    z = np.add(y.a, y.b)  # x_i (y_i + y_{i+1}) + x_{i+1} y_i, with few temporaries
    np.multiply(z, x.a, out=z)
    z += x.b * y.a
    z += ctx.zero_share(z.shape)
    out = reshare(ctx, z, ctx.tag("mul"), x.frac_bits + y.frac_bits)
    if ctx.verifier is not None:  # malicious mode: the product is checked later
        ctx.verifier.record_mul(x, y, out)
    return out


def trunc_error_probability(magnitude: float) -> float:
    """Chance that :func:`trunc` of a value with ``|raw| <= magnitude`` fails badly.

    ``magnitude`` is the raw ring integer before truncation (e.g. ``|x*y| * 2^(2f)`` for a
    fixed-point product). The failure (an error of about ``2^(64-d)``) has probability
    ``magnitude / 2^64`` per element; otherwise the error is below one unit of the result.
    """
    return min(1.0, float(magnitude) / 2.0**64)


def trunc(ctx: MpcContext, x: SharedArray, bits: int | None = None) -> SharedArray:
    """Divide by ``2^bits`` (default: ``x``'s extra fractional bits), probabilistically.

    Protocol: SecureML's local truncation of a 2-out-of-2 sharing (Mohassel-Zhang, S&P 2017,
    Thm. 1), adapted to replicated shares like ABY3 §5.1.1 (Pi_trunc1) but with one message:
    party 0 knows ``A = x_0 + x_1``, parties 1 and 2 both know ``B = x_2``. With a public
    uniform ``s`` (from ``k_all``) the split is re-randomised to ``A' = A + s``,
    ``B' = B - s``; party 0 computes ``floor(A'/2^d)``, parties 1 and 2 ``ceil(B'/2^d)``.
    The new sharing is ``y_0 = r`` (from ``k_0``, parties 0 and 2), ``y_1 = floor(A'/2^d) - r``
    (sent by party 0 to party 1), ``y_2 = ceil(B'/2^d)`` (parties 1 and 2 locally).

    Cost: 1 round; 8 bytes per element from party 0, nothing from parties 1 and 2.
    Error: ``|y - x/2^d| < 1`` (one unit in the last place) except with probability
    ``|x| / 2^64`` per element (see :func:`trunc_error_probability`), when it is off by about
    ``2^(64-d)``. For an f = 16 fixed-point product that is ``|x*y| * 2^-32``.
    """
    d = x.frac_bits // 2 if bits is None else bits
    if not 0 <= d < 64:
        raise ValidationError("truncation needs 0 <= bits < 64")
    if d > x.frac_bits:
        raise ShapeError(f"cannot drop {d} fractional bits from a value with {x.frac_bits}")
    if d == 0:
        return x
    if ctx.verifier is not None:  # malicious mode: party 0's split is checked
        return ctx.verifier.trunc(ctx, x, d)
    tag = ctx.tag("trunc")
    s = ctx.prg_all.uint64(x.shape)
    f = x.frac_bits - d
    if ctx.party == 0:
        a_prime = (x.a + x.b + s).view(np.int64)
        t_a = (a_prime >> np.int64(d)).view(np.uint64)
        r = ctx.prg_own.uint64(x.shape)
        y1 = t_a - r
        ctx.send(1, tag, y1)
        return SharedArray(r, y1, party=0, frac_bits=f)
    b = x.b if ctx.party == 1 else x.a
    t_b = np.negative((np.negative(b - s).view(np.int64) >> np.int64(d)).view(np.uint64))
    if ctx.party == 1:
        y1 = ctx.recv(0, tag, x.shape)
        return SharedArray(y1, t_b, party=1, frac_bits=f)
    r = ctx.prg_next.uint64(x.shape)
    return SharedArray(t_b, r, party=2, frac_bits=f)


def mul(ctx: MpcContext, x: SharedArray, y: SharedArray) -> SharedArray:
    """Elementwise product at the larger of the two scales.

    Integer x integer or integer x fixed: :func:`mul_raw` only (1 round, 8 B). Fixed x
    fixed: :func:`mul_raw` then :func:`trunc` by ``min(f_x, f_y)`` (2 rounds; 16 B from
    party 0, 8 B from the others; truncation error as stated in :func:`trunc`).
    """
    z = mul_raw(ctx, x, y)
    return trunc(ctx, z, min(x.frac_bits, y.frac_bits))


def mul_public(ctx: MpcContext, x: SharedArray, c: ArrayLike) -> SharedArray:
    """``x * c`` for a public real ``c``: local product with ``c``'s encoding, then trunc.

    For an integer ``x`` or an integral ``c`` prefer ``x * c`` (local, exact).
    """
    f = x.frac_bits if x.frac_bits > 0 else ctx.fxp.frac_bits
    k = FixedPoint(f).encode(c)
    if np.broadcast_shapes(k.shape, x.shape) != x.shape:
        raise ShapeError(f"a constant of shape {k.shape} does not fit {x.shape}")
    z = SharedArray(x.a * k, x.b * k, party=x.party, frac_bits=x.frac_bits + f)
    return trunc(ctx, z, f)


def dot(ctx: MpcContext, x: SharedArray, y: SharedArray, *, truncate: bool = True) -> SharedArray:
    """Inner product over the last axis (ABY3 §4: local sum of the cross terms first).

    1 round and 8 bytes per party per *output* element, whatever the vector length
    (plus one truncation round if both are fixed point and ``truncate``).
    """
    _check_pair(x, y)
    if x.shape != y.shape or x.ndim == 0:
        raise ShapeError(f"dot needs equal shapes of at least one axis: {x.shape}, {y.shape}")
    if ctx.verifier is not None and not ctx.verifier.checks_inner(x.shape[-1], x.size // max(
            1, x.shape[-1])):  # malicious mode, short or many: checked elementwise products
        return ctx.verifier.dot(ctx, x, y, truncate)
    z = np.atleast_1d(np.asarray(np.einsum("...i,...i->...", x.a, y.a + y.b), np.uint64))
    z = z + np.atleast_1d(np.asarray(np.einsum("...i,...i->...", x.b, y.a), np.uint64))
    z += ctx.zero_share(z.shape)
    out = reshare(ctx, z, ctx.tag("dot"), x.frac_bits + y.frac_bits)
    if ctx.verifier is not None:  # malicious mode: the inner products are checked later
        ctx.verifier.record_dot(x, y, out)
    if x.ndim == 1:
        out = out.reshape(())
    if truncate:
        out = trunc(ctx, out, min(x.frac_bits, y.frac_bits))
    return out


def matmul(
    ctx: MpcContext, x: SharedArray, y: SharedArray, *, truncate: bool = True
) -> SharedArray:
    """Matrix product ``x @ y`` (2-D), 1 round and 8 bytes per party per output element
    (plus one truncation round if both are fixed point and ``truncate``)."""
    _check_pair(x, y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[0]:
        raise ShapeError(f"matmul needs (m,k) @ (k,n), got {x.shape} @ {y.shape}")
    if ctx.verifier is not None and not ctx.verifier.checks_matmul(x.shape[1],
                                                                   x.shape[0] * y.shape[1]):
        return ctx.verifier.matmul(ctx, x, y, truncate)  # checked elementwise products
    z = np.matmul(x.a, y.a + y.b)
    z += np.matmul(x.b, y.a)
    z += ctx.zero_share(z.shape)
    out = reshare(ctx, z, ctx.tag("matmul"), x.frac_bits + y.frac_bits)
    if ctx.verifier is not None:  # malicious mode: the inner products are checked later
        ctx.verifier.record_matmul(x, y, out)
    if truncate:
        out = trunc(ctx, out, min(x.frac_bits, y.frac_bits))
    return out


# -- local structure ----------------------------------------------------------------------
def sum(x: SharedArray, axis: int | None = None) -> SharedArray:
    """Sum of elements (local, exact in the ring)."""
    a = np.asarray(x.a.sum(axis=axis, dtype=np.uint64))
    b = np.asarray(x.b.sum(axis=axis, dtype=np.uint64))
    return x.like(a, b)


def concat(xs: Sequence[SharedArray], axis: int = 0) -> SharedArray:
    """Concatenate shared arrays of one party and scale (local)."""
    if not xs:
        raise ValidationError("nothing to concatenate")
    first = xs[0]
    for x in xs[1:]:
        if x.party != first.party or x.frac_bits != first.frac_bits:
            raise ShapeError("concatenated values must share party and scale")
    return first.like(np.concatenate([x.a for x in xs], axis=axis),
                      np.concatenate([x.b for x in xs], axis=axis))


def stack(xs: Sequence[SharedArray], axis: int = 0) -> SharedArray:
    """Stack shared arrays of one party, scale and shape along a new axis (local)."""
    if not xs:
        raise ValidationError("nothing to stack")
    for x in xs[1:]:
        xs[0].check_compatible(x)
    return xs[0].like(np.stack([x.a for x in xs], axis=axis),
                      np.stack([x.b for x in xs], axis=axis))


def from_ints(ctx: MpcContext, value: ArrayLike) -> SharedArray:
    """A public integer array as a trivial sharing (alias of ``public(..., frac_bits=0)``)."""
    return public(ctx, to_ring(value), frac_bits=0)
