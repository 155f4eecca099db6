"""Secure multi-party computation: 3-party replicated secret sharing over Z_2^64.

No I/O of its own: every operation takes an explicit :class:`MpcContext` whose channel
moves the bytes, and all randomness comes from :mod:`metisnet.crypto.prg`. Semi-honest
security with an honest majority (one corrupt party of three); the malicious-security layer
builds on these functions. References: Araki et al., CCS 2016 (sharing, multiplication);
Mohassel and Rindal, ABY3, CCS 2018 (fixed point, truncation, conversions); Mohassel and
Zhang, SecureML, S&P 2017 (truncation).

API summary (costs per party per element; rounds as counted by ``ChannelStats``)
---------------------------------------------------------------------------------
Context (:mod:`metisnet.mpc.context`)::

    ctx = MpcContext.setup(channel, fxp=FixedPoint(16), rng=Csprng(seed))  # 1 round
    ctx.party, ctx.next, ctx.prev, ctx.fxp, ctx.stats, ctx.tag("op")
    ctx.zero_share(shape) / ctx.zero_share_xor(shape) / ctx.random_pair(shape)  # no comm
    ctx.prg_own (k_i, shared with prev), ctx.prg_next (k_{i+1}, with next), ctx.prg_all
    ctx.send(peer, tag, u64_array); ctx.recv(peer, tag, shape) -> u64_array (validated)

Types (:mod:`metisnet.mpc.shares`)::

    SharedArray(a, b, party=, frac_bits=)   # pair (x_i, x_{i+1}); .shape .frac_bits
        x + y, x - y, -x, x + public, x * int_public, x[idx], x.reshape(...), x.T
    SharedBits(a, b, party=, shape=)        # XOR shares of bit planes (nbits, words)
        b ^ c, ~b, b.planes(idx), b.xor_public(planes)
    both refuse bool(); mixing party/scale/shape raises ShapeError

Arithmetic (:mod:`metisnet.mpc.arith`)::

    share(ctx, value|None, owner=j, shape=, frac_bits=None) -> SharedArray  1 rnd, 8 B (owner)
    share_pair(ctx, a, b, frac_bits=)  (pairs from an outside dealer: crypto.sharing.share)
    public(ctx, value, frac_bits=None); random(ctx, shape)                   0 rnd
    reveal(ctx, x) -> float64|int64 ; reveal_raw(ctx, x) -> uint64          1 rnd, 8 B
    reveal_to(ctx, x, parties) -> array | None                               1 rnd, 8 B
    mul_raw(ctx, x, y)  (scale f_x + f_y)                                    1 rnd, 8 B
    mul(ctx, x, y)      (fixed x fixed: mul_raw + trunc)                     2 rnd, <=16 B
    mul_public(ctx, x, real_c)                                               1 rnd
    dot(ctx, x, y, truncate=True)  (last axis)   matmul(ctx, X, Y)           1 rnd, 8 B/output
    trunc(ctx, x, bits=None)  (probabilistic, |err| < 1 ulp; fails w.p. |x|/2^64)
    sum(x, axis), concat(xs), stack(xs)                                      local
"""

from metisnet.mpc.arith import (
    concat,
    dot,
    matmul,
    mul,
    mul_public,
    mul_raw,
    public,
    random,
    reveal,
    reveal_raw,
    reveal_to,
    share,
    share_pair,
    stack,
    trunc,
    trunc_error_probability,
)
from metisnet.mpc.context import PARTIES, MpcContext
from metisnet.mpc.shares import RING_BITS, SharedArray, SharedBits

__all__ = [
    "PARTIES",
    "RING_BITS",
    "MpcContext",
    "SharedArray",
    "SharedBits",
    "concat",
    "dot",
    "matmul",
    "mul",
    "mul_public",
    "mul_raw",
    "public",
    "random",
    "reveal",
    "reveal_raw",
    "reveal_to",
    "share",
    "share_pair",
    "stack",
    "trunc",
    "trunc_error_probability",
]
