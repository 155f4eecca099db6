"""Boolean shares on bit-sliced words: AND, bit decomposition (A2B), sign bit, zero test, B2A.

XOR-replicated sharing as in Araki et al. (CCS 2016, §2): party i holds ``(b_i, b_{i+1})``
with ``b = b_0 ^ b_1 ^ b_2``. Values are bit-sliced (:mod:`metisnet.crypto.bitslice`): a
plane is one uint64 word per 64 elements, so one word-AND evaluates 64 gates and an AND
costs 1 bit per element per party on the wire.

Conversions follow ABY3 (Mohassel and Rindal, CCS 2018, §5.3): an arithmetic sharing
``x = x_0 + x_1 + x_2`` is three boolean values, each already replicated (share j is
``x_j``, the others zero). A carry-save step (one AND round: ``maj(x_0, x_1, x_2)``, whose
three terms ``x_i & x_{i+1}`` each party computes locally) reduces them to two, ``s`` and
``2c``; a parallel-prefix adder (Kogge-Stone for all bits, a Brent-Kung style reduction
tree when only the top carry is needed) adds those in ``log2(64) = 6`` AND rounds.

Costs per party per element (n a multiple of 64; counted by the tests):

=====================  ======  ===========================================================
operation              rounds  bytes sent per party per element
=====================  ======  ===========================================================
and_bits (k planes)    1       k/8
ltz_bits (sign bit)    8       242 planes = 30.25 (63 maj + 62 generate + 117 tree)
a2b (all 64 bits)      8       706 planes = 88.25 (63 maj + 64 generate + 579 prefix)
eq_zero_bits           7 (*)   party 0: 8 (input) + 63/8; parties 1, 2: 63/8
b2a (k planes)         1       party 0: 32k; parties 1, 2: 8k (3-party OT bit injection)
=====================  ======  ===========================================================

(*) 7 sequential messages; each party's :class:`ChannelStats` counts 6 rounds, because
party 0 sends its input and its first AND share together.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from metisnet.crypto.bitslice import planes_to_bits, to_planes
from metisnet.errors import ShapeError
from metisnet.mpc.context import MpcContext
from metisnet.mpc.shares import SharedArray, SharedBits

__all__ = ["a2b", "and_bits", "and_pairs", "b2a", "carry_out", "eq_zero_bits", "ltz_bits",
           "reveal_bits"]

U64 = NDArray[np.uint64]
Pair = tuple[U64, U64]


# -- the AND gate -------------------------------------------------------------------------
def and_pairs(ctx: MpcContext, x: Pair, y: Pair, op: str = "and") -> Pair:
    """AND of raw XOR-replicated pairs of any (equal) shape: 1 round, 1 bit per gate.

    ``z_i = x_i y_i ^ x_i y_{i+1} ^ x_{i+1} y_i ^ alpha_i`` (alpha an XOR zero-sharing),
    sent to the predecessor; the successor's ``z_{i+1}`` completes the pair (Araki et al.).
    """
    (xa, xb), (ya, yb) = x, y
    if xa.shape != ya.shape:
        raise ShapeError(f"AND of bit shares of shapes {xa.shape} and {ya.shape}")
    if ctx.verifier is not None and 0 < xa.size <= ctx.verifier.stock(True):
        return ctx.verifier.beaver_and(ctx, x, y)  # malicious mode, verified triples made
    z = (xa & (ya ^ yb)) ^ (xb & ya) ^ ctx.zero_share_xor(xa.shape)
    tag = ctx.tag(op)
    ctx.send(ctx.prev, tag, z)
    out = z, ctx.recv(ctx.next, tag, z.shape)
    if ctx.verifier is not None:  # malicious mode: the gate is checked later
        ctx.verifier.record_and(x, y, out)
    return out


def and_bits(ctx: MpcContext, x: SharedBits, y: SharedBits) -> SharedBits:
    """Planewise AND of two boolean-shared values (1 round, nbits/8 bytes per element)."""
    x.check_compatible(y)
    a, b = and_pairs(ctx, (x.a, x.b), (y.a, y.b))
    return x.like(a, b)


def reveal_bits(ctx: MpcContext, x: SharedBits) -> NDArray[np.uint8]:
    """Open boolean shares to all parties: a ``(nbits, *shape)`` array of 0/1 (1 round)."""
    if ctx.verifier is not None:  # malicious mode: checks first, then a checked opening
        return ctx.verifier.reveal_bits(ctx, x)
    tag = ctx.tag("reveal_bits")
    ctx.send(ctx.next, tag, x.a)
    planes = x.a ^ x.b ^ ctx.recv(ctx.prev, tag, x.a.shape)
    return planes_to_bits(planes, x.count).reshape((x.nbits, *x.shape))


# -- from arithmetic to boolean -----------------------------------------------------------
def _carry_save(ctx: MpcContext, x: SharedArray, nbits: int) -> tuple[Pair, Pair]:
    """Planes of ``s = x_0 ^ x_1 ^ x_2`` (all 64) and ``c = maj(x_0, x_1, x_2)`` (the low
    ``nbits``), with ``x = s + 2c``. One AND round of ``nbits`` planes."""
    sa = to_planes(x.a)
    sb = to_planes(x.b)
    if ctx.verifier is not None and 0 < sa[:nbits].size <= ctx.verifier.stock(True):
        # malicious mode with verified triples made: maj as one Beaver AND
        return (sa, sb), ctx.verifier.beaver_carry_save(ctx, sa[:nbits], sb[:nbits])
    t = sa[:nbits] & sb[:nbits]  # x_i & x_{i+1}: this party's term of maj, 3-out-of-3
    t ^= ctx.zero_share_xor(t.shape)
    tag = ctx.tag("a2b_maj")
    ctx.send(ctx.prev, tag, t)
    maj = (t, ctx.recv(ctx.next, tag, t.shape))
    if ctx.verifier is not None:  # malicious mode: maj is an AND gate, checked later
        ctx.verifier.record_carry_save(sa[:nbits], sb[:nbits], maj)
    return (sa, sb), maj


def _combine_levels(ctx: MpcContext, g: Pair, p: Pair) -> Pair:
    """Group generate of positions ``0..m-1`` (rows of ``g``/``p``, low to high): a
    reduction tree of ``ceil(log2 m)`` AND rounds; ``(G, P) o (G', P') = (G ^ P&G', P&P')``.
    The lowest group's propagate is never needed and never computed."""
    ga, gb = g
    pa, pb = p
    while ga.shape[0] > 1:
        m = ga.shape[0]
        keep = m % 2  # an odd lowest position waits a level
        lo = slice(keep, m, 2)
        hi = slice(keep + 1, m, 2)
        npairs = (m - keep) // 2
        # P of pair 0 is only needed when a kept position sits below it
        pfrom = 0 if keep else 1
        left = (np.concatenate([pa[hi], pa[hi][pfrom:]]), np.concatenate([pb[hi], pb[hi][pfrom:]]))
        right = (np.concatenate([ga[lo], pa[lo][pfrom:]]), np.concatenate([gb[lo], pb[lo][pfrom:]]))
        za, zb = and_pairs(ctx, left, right, "prefix")
        new_ga = ga[hi] ^ za[:npairs]
        new_gb = gb[hi] ^ zb[:npairs]
        pa_new, pb_new = za[npairs:], zb[npairs:]
        if not keep:  # placeholder propagate for the lowest group (unused)
            pa_new = np.concatenate([np.zeros_like(pa[:1]), pa_new])
            pb_new = np.concatenate([np.zeros_like(pb[:1]), pb_new])
        if keep:
            ga = np.concatenate([ga[:1], new_ga])
            gb = np.concatenate([gb[:1], new_gb])
            pa = np.concatenate([pa[:1], pa_new])
            pb = np.concatenate([pb[:1], pb_new])
        else:
            ga, gb, pa, pb = new_ga, new_gb, pa_new, pb_new
    return ga, gb


def carry_out(ctx: MpcContext, u: Pair, v: Pair) -> Pair:
    """The carry out of the top plane of ``u + v``, for two boolean-shared values given as
    raw pairs of ``m`` planes each (shape ``(m, words)``, plane 0 the lowest bit): one
    plane, boolean-shared. Generate ``u_j & v_j`` (1 AND round, ``m`` planes), propagate
    ``u_j ^ v_j`` (local), then the reduction tree of :func:`_combine_levels`
    (``ceil(log2 m)`` rounds, at most ``2m`` planes).
    """
    if u[0].shape != v[0].shape or u[0].ndim != 2 or u[0].shape[0] < 1:
        raise ShapeError(f"carry of planes of shapes {u[0].shape} and {v[0].shape}")
    g = and_pairs(ctx, u, v, "carry_gen")
    p = (u[0] ^ v[0], u[1] ^ v[1])
    ca, cb = _combine_levels(ctx, g, p)
    return ca, cb


def ltz_bits(ctx: MpcContext, x: SharedArray) -> SharedBits:
    """The sign bit of ``x`` (1 where ``x < 0`` as a signed 64-bit value), boolean-shared.

    ABY3 §5.3 bit extraction: carry-save to ``s + 2c`` (1 round), generate bits
    ``g_j = s_j & c_{j-1}`` for j = 1..62 (1 round), then the carry into bit 63 by a
    6-level reduction tree; ``msb = s_63 ^ c_62 ^ carry``. 8 rounds, 242 planes = 30.25
    bytes per element per party. Correct for every ring element (no range condition).
    """
    (sa, sb), (ca, cb) = _carry_save(ctx, x, 63)
    # positions 1..62 of the sum s + (c << 1): generate s_j & c_{j-1}, propagate s_j ^ c_{j-1}
    ga, gb = and_pairs(ctx, (sa[1:63], sb[1:63]), (ca[0:62], cb[0:62]), "ltz_gen")
    pa, pb = sa[1:63] ^ ca[0:62], sb[1:63] ^ cb[0:62]
    carry_a, carry_b = _combine_levels(ctx, (ga, gb), (pa, pb))
    msb_a = sa[63:64] ^ ca[62:63] ^ carry_a
    msb_b = sb[63:64] ^ cb[62:63] ^ carry_b
    return SharedBits(msb_a, msb_b, party=ctx.party, shape=x.shape)


def a2b(ctx: MpcContext, x: SharedArray) -> SharedBits:
    """All 64 bits of ``x`` as boolean shares (bit decomposition, ABY3 §5.3).

    Carry-save (1 round), generate/propagate (1 round), Kogge-Stone prefix over the 64
    planes (6 rounds): 8 rounds, 706 planes = 88.25 bytes per element per party.
    """
    (sa, sb), (ca, cb) = _carry_save(ctx, x, 63)
    z = np.zeros_like(sa[:1])
    ca = np.concatenate([z, ca])  # c << 1: plane j holds c_{j-1}
    cb = np.concatenate([z, cb])
    ga, gb = and_pairs(ctx, (sa, sb), (ca, cb), "a2b_gen")
    pa, pb = sa ^ ca, sb ^ cb
    qa, qb = pa, pb  # the propagate of each single position, for the sum bits
    k = 1
    while k < 64:
        # G_j <- G_j ^ P_j & G_{j-k}; P_j <- P_j & P_{j-k}, for j >= k
        need_p = 2 * k < 64
        la = np.concatenate([pa[k:], pa[2 * k:]]) if need_p else pa[k:]
        lb = np.concatenate([pb[k:], pb[2 * k:]]) if need_p else pb[k:]
        ra = np.concatenate([ga[:-k], pa[k:-k]]) if need_p else ga[:-k]
        rb = np.concatenate([gb[:-k], pb[k:-k]]) if need_p else gb[:-k]
        za, zb = and_pairs(ctx, (la, lb), (ra, rb), "a2b_prefix")
        m = 64 - k
        ga = np.concatenate([ga[:k], ga[k:] ^ za[:m]])
        gb = np.concatenate([gb[:k], gb[k:] ^ zb[:m]])
        if need_p:
            pa = np.concatenate([pa[:2 * k], za[m:]])
            pb = np.concatenate([pb[:2 * k], zb[m:]])
        k *= 2
    # sum bit j = p_j ^ carry_j, carry_j = G_{j-1} (prefix over 0..j-1), carry_0 = 0
    outa = qa ^ np.concatenate([z, ga[:-1]])
    outb = qb ^ np.concatenate([z, gb[:-1]])
    return SharedBits(outa, outb, party=ctx.party, shape=x.shape)


def eq_zero_bits(ctx: MpcContext, x: SharedArray) -> SharedBits:
    """1 where ``x == 0``, boolean-shared.

    Party 0 knows ``v = x_0 + x_1``; parties 1 and 2 know ``w = -x_2``; ``x = 0`` iff the
    bit strings of ``v`` and ``w`` agree. Party 0 inputs ``v`` as XOR shares
    ``(e_0, v ^ e_0, 0)`` with ``e_0`` from ``k_0`` (1 round, 8 bytes from party 0), the
    parties take ``~(v ^ w)`` locally and AND its 64 planes in a 6-level tree
    (63 planes). 7 sequential messages (6 rounds by each party's own count); party 0
    sends 15.9 bytes per element, parties 1 and 2 7.9.
    """
    if ctx.verifier is not None:  # malicious mode: party 0's input is not trusted
        return ctx.verifier.eq_zero_bits(ctx, x)
    tag = ctx.tag("eqz_input")
    nw = (x.size + 63) // 64
    if ctx.party == 0:
        e0 = ctx.prg_own.uint64((64, nw))
        e1 = to_planes(x.a + x.b) ^ e0
        ctx.send(1, tag, e1)
        a, b = e0, e1
    elif ctx.party == 1:
        e1 = ctx.recv(0, tag, (64, nw))
        a, b = e1, to_planes(np.negative(x.b))
    else:
        a, b = to_planes(np.negative(x.a)), ctx.prg_next.uint64((64, nw))
    bits = SharedBits(a, b, party=ctx.party, shape=x.shape)
    bits = ~bits
    ra, rb = bits.a, bits.b
    while ra.shape[0] > 1:
        h = ra.shape[0] // 2
        ra, rb = and_pairs(ctx, (ra[:h], rb[:h]), (ra[h:], rb[h:]), "eqz_tree")
    return SharedBits(ra, rb, party=ctx.party, shape=x.shape)


# -- from boolean to arithmetic -----------------------------------------------------------
def b2a(ctx: MpcContext, x: SharedBits) -> SharedArray:
    """The integer ``sum_j 2^j bit_j`` of boolean-shared planes, arithmetically shared.

    Bit injection with a 3-party OT per bit (ABY3 §5.4, semi-honest), in one round. Per
    bit ``b = u ^ c`` with ``u = b_0 ^ b_1`` known to party 0 and ``c = b_2`` known to
    parties 1 and 2. The output is ``y_0 = r_0`` (``k_0``: parties 0, 2), ``y_1 = r_1``
    (``k_1``: parties 0, 1) and ``y_2 = b - r_0 - r_1``, which parties 1 and 2 each learn by
    one OT: party 0 sends both candidates ``m_t = (u ^ t) - r_0 - r_1`` masked by pads
    that the receiver lacks and the helper (the other of parties 1, 2, who also knows
    ``c``) holds, and the helper sends the pad of the chosen ``t = c``. 1 round; party 0
    sends 32 bytes per bit, parties 1 and 2 send 8.
    """
    if ctx.verifier is not None:  # malicious mode: checked multiplications, not the OT
        return ctx.verifier.b2a(ctx, x)
    k, n = x.nbits, x.count
    shape = (k, n)
    tag = ctx.tag("b2a")
    one = np.uint64(1)
    if ctx.party == 0:
        u = planes_to_bits(x.a ^ x.b, n).astype(np.uint64)
        r0 = ctx.prg_own.uint64(shape)
        r1 = ctx.prg_next.uint64(shape)
        pad_to_1 = ctx.prg_own.uint64((2, k, n))   # k_0: party 2 helps party 1
        pad_to_2 = ctx.prg_next.uint64((2, k, n))  # k_1: party 1 helps party 2
        m0 = u - r0 - r1
        m1 = (u ^ one) - r0 - r1
        ctx.send(1, tag, np.stack([m0 + pad_to_1[0], m1 + pad_to_1[1]]))
        ctx.send(2, tag, np.stack([m0 + pad_to_2[0], m1 + pad_to_2[1]]))
        ya, yb = r0, r1
    elif ctx.party == 1:
        c = planes_to_bits(x.b, n).astype(bool)
        r1 = ctx.prg_own.uint64(shape)
        pads = ctx.prg_own.uint64((2, k, n))
        ctx.send(2, tag, np.where(c, pads[1], pads[0]))
        masked = ctx.recv(0, tag, (2, k, n))
        pad_c = ctx.recv(2, tag, shape)
        ya, yb = r1, np.where(c, masked[1], masked[0]) - pad_c
    else:
        c = planes_to_bits(x.a, n).astype(bool)
        r0 = ctx.prg_next.uint64(shape)
        pads = ctx.prg_next.uint64((2, k, n))
        ctx.send(1, tag, np.where(c, pads[1], pads[0]))
        masked = ctx.recv(0, tag, (2, k, n))
        pad_c = ctx.recv(1, tag, shape)
        ya, yb = np.where(c, masked[1], masked[0]) - pad_c, r0
    if k == 1:
        a, b = ya[0], yb[0]
    else:
        weights = np.left_shift(np.uint64(1), np.arange(k, dtype=np.uint64))[:, None]
        a = (ya * weights).sum(axis=0, dtype=np.uint64)
        b = (yb * weights).sum(axis=0, dtype=np.uint64)
    return SharedArray(a.reshape(x.shape), b.reshape(x.shape), party=ctx.party, frac_bits=0)

