"""Secure multi-party computation: 3-party replicated secret sharing over Z_2^64.

No I/O of its own: every operation takes an explicit :class:`MpcContext` whose channel
moves the bytes, and all randomness comes from :mod:`metisnet.crypto.prg`. Honest majority
(one corrupt party of three), in one of two modes chosen at set-up: ``"malicious"`` (the
default: security with abort, :mod:`metisnet.mpc.malicious`) or ``"semi-honest"``; the
costs below are the semi-honest protocols. References: Araki et al., CCS 2016 (sharing,
multiplication); Mohassel and Rindal, ABY3, CCS 2018 (fixed point, truncation,
conversions); Mohassel and Zhang, SecureML, S&P 2017 (truncation).

API summary (costs per party per element; rounds as counted by ``ChannelStats``)
---------------------------------------------------------------------------------
Context (:mod:`metisnet.mpc.context`)::

    ctx = MpcContext.setup(channel, fxp=FixedPoint(16), rng=Csprng(seed))  # 1 round
    ctx.party, ctx.next, ctx.prev, ctx.fxp, ctx.stats, ctx.tag("op")
    ctx.zero_share(shape) / ctx.zero_share_xor(shape) / ctx.random_pair(shape)  # no comm
    ctx.prg_own (k_i, shared with prev), ctx.prg_next (k_{i+1}, with next), ctx.prg_all
    ctx.send(peer, tag, u64_array); ctx.recv(peer, tag, shape) -> u64_array (validated)

Security modes (:mod:`metisnet.mpc.malicious`, :mod:`metisnet.mpc.evidence`)::

    MpcContext.setup(channel, security="malicious", signer=None)   # the default
    MpcContext.setup(channel, security="semi-honest")              # no checks, faster
    ctx.security; ctx.verifier (None when semi-honest); malicious.verify(ctx)
    every product/AND is checked (sacrifice with bucketing, 2^-40) before any reveal;
    dot/matmul with inner dimension >= 256 by compression instead (mpc.ipcheck: a few
    KB and ~2 log2(k/64) + 6 rounds per check, whatever k); truncation by a carry bit;
    a failed check raises CheatingDetected(suspects=, evidence=Evidence bytes)

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

Boolean shares and conversions (:mod:`metisnet.mpc.boolean`; bit-sliced planes)::

    and_bits(ctx, b, c) -> SharedBits                                 1 rnd, nbits/8 B
    a2b(ctx, x) -> SharedBits (64 planes)                             8 rnd, 88.25 B
    ltz_bits(ctx, x) -> SharedBits (sign bit, 1 plane)                8 rnd, 30.25 B
    eq_zero_bits(ctx, x) -> SharedBits (1 plane)                      7 rnd, ~8 B (+8 P0)
    b2a(ctx, bits) -> SharedArray (sum 2^j bit_j; 3-party OT)         1 rnd, 32k B P0, 8k others
    reveal_bits(ctx, bits) -> uint8 array (nbits, *shape)             1 rnd

Comparisons (:mod:`metisnet.mpc.compare`; results are shared integers 0/1; y may be public)::

    less_than(ctx, x, y), greater_than, less_equal                    9 rnd
    less_than_bits(ctx, x, y), equal_bits(ctx, x, y) -> SharedBits    8 / 7 rnd
    equal(ctx, x, y) (8 rnd), sign(ctx, x) -> -1/0/1 (9 rnd)
    select(ctx, c, x, y) = c ? x : y (1 rnd), select_many(ctx, c, [(x, y), ...]) (1 rnd)
    minimum / maximum(ctx, x, y) (10 rnd), argmax / argmin(ctx, x) -> (index, value)
    Differences must not wrap: |x - y| < 2^63 in the ring.

Fixed-point functions (:mod:`metisnet.mpc.nonlinear`; domains and error bounds there)::

    reciprocal(ctx, x), divide(ctx, x, y), sqrt(ctx, x), rsqrt(ctx, x), exp(ctx, x),
    log(ctx, x), sigmoid(ctx, x)      about 16-34 rounds each, ~2 KB per element

Sorting (:mod:`metisnet.mpc.sort`; bitonic network, 10 rounds per layer)::

    sort(ctx, keys, payload=(), descending=False) -> (sorted keys, [payload columns])
    argsort(ctx, keys) -> shared permutation

Shuffling and fast sorting (:mod:`metisnet.mpc.shuffling`; semi-honest mode only)::

    shuffle(ctx, [columns]) -> columns, rows permuted together       3 rnd, 16 B per element
    shuffle_sort(ctx, keys, payload=(), descending=False, pivots=3) -> (keys, [payload])
        stable; shuffle, then quicksort with revealed comparisons on distinct keys (Hamada et al.,
        ICISC 2012), 3 pivots: 3 + 9 L rounds (L ~ log2 n), ~1.6 n log2 n comparisons
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
from metisnet.mpc.boolean import a2b, and_bits, b2a, eq_zero_bits, ltz_bits, reveal_bits
from metisnet.mpc.compare import (
    argmax,
    argmin,
    equal,
    equal_bits,
    greater_than,
    less_equal,
    less_than,
    less_than_bits,
    maximum,
    minimum,
    select,
    select_many,
    sign,
)
from metisnet.mpc.context import PARTIES, MpcContext
from metisnet.mpc.nonlinear import divide, exp, log, reciprocal, rsqrt, sigmoid, sqrt
from metisnet.mpc.shares import RING_BITS, SharedArray, SharedBits
from metisnet.mpc.shuffling import shuffle, shuffle_sort

__all__ = [
    "PARTIES",
    "RING_BITS",
    "MpcContext",
    "SharedArray",
    "SharedBits",
    "a2b",
    "and_bits",
    "argmax",
    "argmin",
    "b2a",
    "concat",
    "divide",
    "dot",
    "eq_zero_bits",
    "equal",
    "equal_bits",
    "exp",
    "greater_than",
    "less_equal",
    "less_than",
    "less_than_bits",
    "log",
    "ltz_bits",
    "matmul",
    "maximum",
    "minimum",
    "mul",
    "mul_public",
    "mul_raw",
    "public",
    "random",
    "reciprocal",
    "reveal",
    "reveal_bits",
    "reveal_raw",
    "reveal_to",
    "rsqrt",
    "select",
    "select_many",
    "share",
    "share_pair",
    "shuffle",
    "shuffle_sort",
    "sigmoid",
    "sign",
    "sqrt",
    "stack",
    "trunc",
    "trunc_error_probability",
]
