"""Security with abort against one actively cheating party: the default ``"malicious"`` mode.

Protocol: replicated sharing over Z_2^64 (Araki et al., CCS 2016) with products computed
from *verified triples* made ahead, the honest-majority protocol of Araki, Barak, Furukawa,
Lichter, Lindell, Nof, Ohara, Watzman and Weinstein ("Optimized honest-majority MPC for
malicious adversaries", S&P 2017) and Furukawa, Lindell, Nof and Weinstein (EUROCRYPT
2017), over Z_2^64 and GF(2)^64 words with no lift (the sacrifice needs no division;
Eerikson et al., ITC 2020):

* **offline** (:func:`preprocess`): random triples (a, b from the PRGs, c by one
  semi-honest product) are verified by cut-and-choose and bucketing: each is sacrificed
  against ``k`` others drawn by a random permutation chosen after every error is committed
  (:mod:`metisnet.mpc.triples`: a spoiled triple survives with probability below 2^-40);
* **online**: ``mul_raw`` (hence ``mul``, ``dot``, ``matmul``, bit injection) and every
  AND gate, including the A2B carry-save step, are Beaver products with one verified
  triple each (Beaver, CRYPTO 1991): open ``x - a`` and ``y - b``. A wrong share sent in
  an opening cannot make a wrong product pass unnoticed: every party folds the opened
  values into a running digest (BLAKE3), compared with both peers at the check before any
  output is released ("compare views", as in Furukawa et al. 2017). The two honest
  parties' reconstructions differ exactly when the cheater sent a share other than its
  honest co-holder's copy; they cannot tell which of the other two lied, so a mismatch
  names a pair;
* **no stock**: products made while no verified triples are in stock (none made ahead,
  or too few) run semi-honestly and are *recorded*; the check verifies them against
  verified triples left in stock (one each, 2 openings), and sacrifices the rest directly
  against a fresh bucketed pool (Lindell and Nof, CCS 2017, checking each multiplication
  with a triple). ``select`` is always recorded and checked this way.

Statistical security: each bucketing (one per :func:`preprocess` call, and one per slice
of up to ``POOL_SLICE`` = 2^20 products or AND words of a check that runs out of stock)
lets a cheat through with probability below 2^-40 (s = 40, the default of
:func:`metisnet.mpc.triples.plan`); the Beaver products and digest comparisons add only
BLAKE3 collisions. A session with B bucketings is secure up to B x 2^-40.

Memory: a check range-checks pending truncations ``RANGE_SLICE`` (2^17) at a time, each
slice followed by a check of the products recorded so far, and buckets in slices of
``POOL_SLICE``, so its working set stays at a few hundred MB per party whatever the
session's size (one check over 3 x 10^5 truncations and 1.2 x 10^6 products: 2.2 GB for
the three parties of one process, was 4.1 GB; 8 s, was 15 s).

What else is checked (``ctx.verifier`` is a :class:`MaliciousVerifier`):

* **conversions** whose semi-honest form trusts one party are replaced: bit injection
  (``b2a``) by two checked multiplications per bit (``u ^ v = u + v - 2uv``; ABY3 §5.4);
  the zero test by two sign bits; truncation keeps the one-message SecureML split, and
  party 0's part of it is pinned by a carry bit (:meth:`MaliciousVerifier.trunc`). The
  remainder party 0 drops is ``a_lo = u + v - 2^d c``, where ``u`` and ``v`` are the low
  ``d`` bits of values each also held by one other party (``x_0 + s`` and ``x_1``) and
  ``c`` is their carry. Party 0 inputs ``gamma = c``, and the parties check
  ``x - 2^d y = u + v - 2^d gamma - b_hi`` exactly (``b_hi`` is known to parties 1 and 2).
  At the next check ``gamma`` must be a bit (one checked product, ``gamma^2 = gamma``) and
  equal to the carry out of ``u + v``. That carry comes from a ``d``-bit carry circuit on
  the bits of ``u`` and ``v``, shared for free since two parties know each. It is compared
  with the lowest bit of ``gamma``, which is the XOR of the lowest bits of its arithmetic
  shares: no carries reach bit 0. The truncation then has exactly the semi-honest error
  distribution, and a cheat is caught whatever the data (no selective abort). Per
  truncation, one checked product and about ``3d`` AND gates (``3d/64`` words; d = 16:
  0.75). The range check this replaces used two 64-bit sign bits (484 AND gates, 7.6
  words): a joint variance over 3 x 10^5 rows needed 2.27 x 10^6 checked AND words and
  9 x 10^5 products, and now needs 1.1 x 10^5 words and 1.2 x 10^6 products (189 MB
  sent per party, now 85 MB).
* **dot and matrix products** with an inner dimension of at least
  :data:`~metisnet.mpc.ipcheck.MIN_LENGTH` (256), dot products in batches of 512 and
  matrix products of at most ``MAX_INNER_CLAIMS`` = 4096 outputs: computed as in
  semi-honest mode (8 B per output) and recorded as claims, which a check verifies
  together by recursive compression over the Galois ring GR(2^64, 48)
  (:mod:`metisnet.mpc.ipcheck`; Boyle et al., CCS 2019; Goyal and Song, 2020). Its
  communication does not depend on their length: 48 KB at the first level, under 1 KB
  per halving, and about ``2 log2(k/64) + 6`` rounds. Shorter inner products (and larger
  matrix products) are checked product by product, like ``mul``. A joint variance over
  3 x 10^5 rows (three parties in one machine) sent 85 MB per party in 3.0 s with every
  dot product checked term by term, and sends 38 MB in 1.1 s now (semi-honest: 2.4 MB,
  0.03 s). 1,000 dot products of length 300: 72 KB against 24 MB, about the same time.
* **inputs, dealt pairs and keys**: each share of an input (or of a pair from an outside
  dealer) and each PRG key is held by two parties; their digests are compared first thing
  at the next check, before anything is opened, and are never sent to a party lacking them.
* **openings** (outputs, and inside checks): each missing share is sent by one holder and
  its digest by the other; both holders' signed digests are compared (1 round, as
  semi-honest, plus 2 small claims).

A check (:meth:`MaliciousVerifier.check`) runs before every reveal, or on demand via
:func:`verify`: 1 round of digests when every product since the last check was a Beaver
product; +2 (openings against stock, zero digests) for recorded products checked against
stock; +2 more (coin toss, sacrifice openings) when it must bucket; up to +8 for the
batched carry checks if truncations are pending (1 product round, 1 generate round and
``ceil(log2 d)`` tree rounds). Nothing is opened before every earlier product is
verified, and a failed check raises :class:`~metisnet.errors.CheatingDetected`, after which
the context refuses to go on.

Overhead per party against semi-honest (8 B per product or AND word, 1 round).
``benchmarks/mpc_malicious.py``, three full runs on this shared 2-core machine (ratios to the
semi-honest row of the same run; the runs before this code's last change in brackets):

* online, with triples made ahead: 16 B per product (**2x the bytes**), 1 round (the
  same), plus the check's digests; a less-than 93 B against 62 B (1.5x; its other steps are
  local or unchanged). Rows "(malicious, online)": mul 10^5 1.05-1.87x the semi-honest
  time [0.93-1.86x], mul 10^6 1.76-1.99x [1.47-2.65x], less-than 10^4 0.80-1.59x
  [1.09-1.22x], 10^5 0.85-1.52x [0.97-1.33x].
* making a verified triple: ``8 + 8M/n + 16k`` B (:func:`preprocess`; ``k = 2`` from about
  7 x 10^5 triples per call: 56 B; ``k = 3`` from about 10^4: 80 B), so online plus
  offline is 9x (``k = 2``) to 12x (``k = 3``) the bytes. The time is the CPU of three
  parties on two cores: per party and 10^6 triples, 0.30 s (random gathers 0.07, AES
  keystream 0.045, the triples' products 0.03, digests 0.03, the sort of the permutation
  0.02; was 0.45 s with an ``argsort``, gathers from the pool and SHA-256 digests). Rows
  "(malicious, total)": mul 10-21x (10^5) [15-30x] and 16-21x (10^6) [19-32x]; less-than
  4.2-6.3x [7-8x] and 10-12x [15-19x].
* without triples made ahead the check buckets the recorded products themselves: 7x
  (``k = 2``) to 10x (``k = 3``) the bytes, all at the check (rows "(malicious, no
  stock)": mul 12-23x [17-29x] and 16-21x [19-40x], less-than 4.3-7.4x [7-9x] and 13-15x
  [18-28x]).
* a dot product of length 10^6 (checked by compression, :mod:`metisnet.mpc.ipcheck`):
  64 KB and 37 rounds against 8 B and 1 round, 31-44x the time of a semi-honest dot
  (which takes 14-20 ms); checked term by term, as before, it cost what 10^6 products
  cost.

**The issue's 3x target holds for the online phase only**; with the making of the triples
counted it does not (9-12x the bytes), and no protocol open to this engine reaches it:

* bucketing cannot: a verified triple costs at least ``8 + 8M/n + 16k`` = 56 B per party
  (``k = 2`` needs ``n`` near 10^6; ``k = 1`` would need a pool of 2^40), 7x the
  semi-honest product's 8 B before the online 16 B;
* the compression (:mod:`metisnet.mpc.ipcheck`) cannot be made cheap for elementwise
  products. Their ``m`` separate claims need extension-ring weights: a plain sum lets
  errors cancel, and a weight in Z_2^64 itself misses an error of ``2^63`` whenever it is
  even (probability 1/2). Each product's weight must be non-zero mod 2 except with
  probability 2^-40, so it lives in an extension of degree at least 40 (or is 40 separate
  weights), and the first fold's cross products then cost ``48 L`` multiply-adds per
  product for ``L`` chunks; every later fold multiplies extension elements. Measured on
  this machine with numpy (one core; ``scripts/gr_cost.py``), for 10^6 products: the
  weighted cross products alone take 0.79-0.84 s (``L`` = 8), 1.12-1.15 s (16) and
  3.41-3.44 s (64), and an extension product about 8 us (``galois_ring.mul_many``), so
  the folds of the ``10^6 / L`` extension elements add seconds more. The semi-honest
  product of 10^6 takes 17-61 ms over loopback (its local arithmetic 5 ms), so the
  first fold alone is 13-46x that. Compiled code would have to do this arithmetic more than
  ten times faster than numpy to come near 3x;
* SPDZ2k-style MACs in Z_2^(64+s) (Chida et al., CRYPTO 2018, lifted as in Abspoel,
  Dalskov, Escudero and Nof, ACNS 2021) compute every product twice on 128-bit words:
  about 4x the bytes, and numpy has no 64 x 64 -> 128-bit product;
* lifting only the compression does not help either. Products sent as 128-bit words
  (2x the bytes) would let weights in Z_2^64 combine the ``m`` claims soundly (the
  lemma of SPDZ2k, Cramer et al., CRYPTO 2018), and the first fold's cross products would
  then cost about ``L`` base multiply-adds per product. But the fold's challenge must
  still come from an extension GR(2^128, d), d >= 40 (Z_2^128 has no three points with
  invertible differences), so the folded vector, ``m / L`` extension elements, costs
  ``d`` multiply-adds per product to form, for the prover and both verifiers: over
  10^8 128-bit multiply-adds per party for 10^6 products, several times the whole
  semi-honest product even in compiled code.

Cheater identification: see :mod:`metisnet.mpc.evidence`. ``CheatingDetected.suspects`` is
the raising party's own view: a single party when that party sent something the raiser
holds itself and can compare (certain, since channels are authenticated), else the two
others. ``evidence`` is an :class:`~metisnet.mpc.evidence.Evidence` record in bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from metisnet.crypto.bitslice import n_words, planes_to_bits, to_planes
from metisnet.crypto.prg import KEY_BYTES, Prg
from metisnet.errors import CheatingDetected, ShapeError, ValidationError
from metisnet.mpc import arith, boolean, ipcheck
from metisnet.mpc.beaver import Six, TripleStock, concat6, head, maj_operands, tail
from metisnet.mpc.context import PARTIES, MpcContext
from metisnet.mpc.evidence import (
    Claim,
    Evidence,
    Hasher,
    Signer,
    UnsignedSigner,
    decode_claims,
    digest,
    encode_claims,
)
from metisnet.mpc.shares import SharedArray, SharedBits
from metisnet.mpc.triples import STATISTICAL_BITS, plan, sacrifice_arith, sacrifice_bool

__all__ = ["SECURITY_MODES", "MaliciousVerifier", "preprocess", "verify"]

U64 = NDArray[np.uint64]
Pair = tuple[U64, U64]
ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
#: A pending truncation check: this party's pairs of gamma, u and v, and d.
_TruncItem = tuple[U64, U64, U64, U64, U64, U64, int]

#: Truncations whose carry bits are checked per slice of a check (2^17 products and, at
#: d = 16, about 10^5 AND words: a slice's bucketing stays within a few hundred MB).
RANGE_SLICE = 1 << 17

#: Products (or AND words) bucketed per pool when a check runs out of verified triples.
POOL_SLICE = 1 << 20

#: At most this many inner products in one dot or matrix product are checked by
#: compression (each is a claim group); more are checked product by product.
MAX_INNER_CLAIMS = 4096

#: The two modes a context can run in.
SECURITY_MODES = ("malicious", "semi-honest")


def verify(ctx: MpcContext) -> None:
    """Run the pending integrity checks now (no-op in semi-honest mode)."""
    if ctx.verifier is not None:
        ctx.verifier.check(ctx)


def preprocess(ctx: MpcContext, n_arith: int = 0, n_bool: int = 0) -> None:
    """Make and verify triples ahead for ``n_arith`` products and ``n_bool`` AND words
    (:meth:`MaliciousVerifier.preprocess`; no-op in semi-honest mode)."""
    if ctx.verifier is not None:
        ctx.verifier.preprocess(ctx, n_arith, n_bool)


def _flat(a: U64) -> U64:
    return np.ascontiguousarray(a, dtype=np.uint64).reshape(-1)


class MaliciousVerifier:
    """Records what must be checked and runs the checks; one per context (party)."""

    security = "malicious"

    def __init__(self, party: int, session: str, *, signer: Signer | None = None,
                 statistical_bits: int = STATISTICAL_BITS) -> None:
        self.party = party
        self.session = session
        self.signer: Signer = signer if signer is not None else UnsignedSigner()
        self.bits = statistical_bits
        self._mul: list[tuple[U64, U64, U64, U64, U64, U64]] = []
        self._and: list[tuple[U64, U64, U64, U64, U64, U64]] = []
        self._zero_arith: list[Pair] = []
        self._zero_bool: list[Pair] = []
        self._range: list[_TruncItem] = []
        self._groups: list[ipcheck.Group] = []
        self._dots: list[ipcheck.Dots] = []
        me, nx = party, (party + 1) % PARTIES
        self._streams = {me: Hasher(), nx: Hasher()}
        self._dealt = {me: Hasher(), nx: Hasher()}
        self._keys: dict[str, bytes] = {}
        self._dirty = True
        self.aborted = False
        self.checks = 0
        #: verified triples made ahead, and the Beaver products that use them
        self.triples = TripleStock(party)
        #: products and AND words checked so far (online or by bucketing), for planning
        self.checked = {"arith": 0, "bool": 0, "inner": 0}

    # -- recording (called from the operations) -------------------------------------------
    def bind_keys(self, key_own: bytes, key_next: bytes, key_all: bytes) -> None:
        """Remember digests of the session keys, compared with their other holders."""
        me, nx = self.party, (self.party + 1) % PARTIES
        self._keys = {f"share:key/k{me}": digest(key_own), f"share:key/k{nx}": digest(key_next),
                      "dealt:key/all": digest(key_all)}

    def record_mul(self, x: SharedArray, y: SharedArray, z: SharedArray) -> None:
        """``z = x * y`` elementwise (any equal shapes)."""
        self._mul.append((_flat(x.a), _flat(x.b), _flat(y.a), _flat(y.b), _flat(z.a),
                          _flat(z.b)))
        self._dirty = True

    def checks_inner(self, length: int, count: int) -> bool:
        """Whether ``count`` inner products of ``length`` are checked by compression
        (:mod:`metisnet.mpc.ipcheck`) rather than product by product."""
        return length >= ipcheck.MIN_LENGTH and count > 0

    def record_dot(self, x: SharedArray, y: SharedArray, z: SharedArray) -> None:
        """``z = sum(x * y, axis=-1)`` (any leading shape): batches of up to
        :data:`~metisnet.mpc.ipcheck.MAX_BATCH` dot products, one claim each."""
        k = x.shape[-1]
        xa, xb = x.a.reshape(-1, k), x.b.reshape(-1, k)
        ya, yb = y.a.reshape(-1, k), y.b.reshape(-1, k)
        za, zb = z.a.reshape(-1), z.b.reshape(-1)
        step = ipcheck.MAX_BATCH
        for i in range(0, xa.shape[0], step):
            sl = slice(i, i + step)
            self._dots.append(((xa[sl], xb[sl]), (ya[sl], yb[sl]), (za[sl], zb[sl])))
        self.checked["inner"] += x.size
        self._dirty = True

    def checks_matmul(self, length: int, outputs: int) -> bool:
        """The same for a matrix product with ``outputs`` entries (one claim group)."""
        return length >= ipcheck.MIN_LENGTH and 0 < outputs <= MAX_INNER_CLAIMS

    def record_matmul(self, x: SharedArray, y: SharedArray, z: SharedArray) -> None:
        """``z = x @ y`` (2-D): one claim group."""
        self._groups.append(((x.a, x.b), (y.a, y.b), (z.a, z.b)))
        self.checked["inner"] += x.shape[0] * x.shape[1] * y.shape[1]
        self._dirty = True

    def record_select(self, c: SharedArray, ds: Sequence[SharedArray], z: SharedArray) -> None:
        """``z = concat(c * d for d in ds)`` (one batched selection, any scales)."""
        reps = len(ds)
        self._mul.append((np.tile(_flat(c.a), reps), np.tile(_flat(c.b), reps),
                          np.concatenate([_flat(d.a) for d in ds]),
                          np.concatenate([_flat(d.b) for d in ds]), _flat(z.a), _flat(z.b)))
        self._dirty = True

    def record_and(self, x: Pair, y: Pair, z: Pair) -> None:
        """``z = x & y`` on XOR-shared words."""
        self._and.append((_flat(x[0]), _flat(x[1]), _flat(y[0]), _flat(y[1]), _flat(z[0]),
                          _flat(z[1])))
        self._dirty = True

    # -- verified triples (:class:`~metisnet.mpc.beaver.TripleStock`) ----------------------
    def stock(self, boolean: bool) -> int:
        """How many verified triples (arithmetic, or boolean words) are in stock."""
        return self.triples.count(boolean)

    def beaver_mul(self, ctx: MpcContext, x: SharedArray, y: SharedArray) -> SharedArray:
        """``x * y`` with verified triples (the caller checks :meth:`stock`)."""
        self._dirty = True
        return self.triples.mul(ctx, x, y)

    def beaver_and(self, ctx: MpcContext, x: Pair, y: Pair) -> Pair:
        """``x & y`` on XOR-shared words with verified triples."""
        self._dirty = True
        return self.triples.and_words(ctx, x, y)

    def record_carry_save(self, sa: U64, sb: U64, t: Pair) -> None:
        """The A2B carry-save message: ``t = maj(x0, x1, x2)`` for this party's planes
        ``(sa, sb) = (x_i, x_{i+1})``. Since ``maj = ((x0^x1) & (x1^x2)) ^ x1``, record the
        AND ``P & Q = t ^ X1`` with ``P = X0^X1``, ``Q = X1^X2`` (``X_j``: share j alone)."""
        p, q, x1 = maj_operands(self.party, sa, sb)
        self.record_and(p, q, (t[0] ^ x1[0], t[1] ^ x1[1]))

    def beaver_carry_save(self, ctx: MpcContext, sa: U64, sb: U64) -> Pair:
        """``maj(x0, x1, x2)`` of the A2B carry-save step as one Beaver AND (1 round, 16 B
        per word and party; :meth:`stock` checked by the caller)."""
        self._dirty = True
        return self.triples.carry_save(ctx, sa, sb)

    def on_input(self, x: SharedArray, owner: int) -> None:
        """Fold the message-borne share ``x_{owner+1}`` of an input into its holders'
        digest streams (the owner holds it second, party ``owner+1`` first)."""
        me = self.party
        if me == owner:
            self._streams[(owner + 1) % PARTIES].update(_flat(x.b))
        elif me == (owner + 1) % PARTIES:
            self._streams[me].update(_flat(x.a))
        self._dirty = True

    def on_dealt(self, x: SharedArray) -> None:
        """A pair handed out by an outside dealer (a data node): both of its shares are
        compared with their other holders at the next check."""
        self._dealt[self.party].update(_flat(x.a))
        self._dealt[(self.party + 1) % PARTIES].update(_flat(x.b))
        self._dirty = True

    # -- failures ---------------------------------------------------------------------------
    def _fail(self, message: str, kind: str, step: str, suspects: Sequence[int],
              claims: Sequence[Claim] = ()) -> CheatingDetected:
        self.aborted = True
        sus = tuple(sorted(set(suspects)))
        ev = Evidence(kind, self.session, step, self.party, sus, tuple(claims), message)
        return CheatingDetected(f"party {self.party}: {message}; session aborted",
                                suspects=sus, evidence=ev.to_bytes())

    def _others(self) -> tuple[int, int]:
        return ((self.party + 1) % PARTIES, (self.party + 2) % PARTIES)

    # -- signed claims on the wire ----------------------------------------------------------
    def _claim(self, step: str, item: str, dig: bytes) -> Claim:
        return Claim(self.session, step, item, self.party, dig).signed(self.signer)

    def _recv_claims(self, ctx: MpcContext, peer: int, tag: str, step: str,
                     items: Sequence[str]) -> list[Claim]:
        raw: NDArray[np.uint8] = ctx.channel.recv(peer, tag)
        heads = [Claim(self.session, step, it, peer, b"") for it in items]
        got = decode_claims(np.asarray(raw), heads) if raw.dtype == np.uint8 else None
        if got is None:
            raise self._fail(f"party {peer} sent malformed claims at {tag}", "bad-message",
                             step, (peer,))
        for c in got:
            if not self.signer.verify(peer, c.message(), c.signature):
                raise self._fail(f"party {peer} sent a claim with a bad signature at {tag}",
                                 "bad-message", step, (peer,))
        return got

    # -- robust opening ---------------------------------------------------------------------
    def open(self, ctx: MpcContext, a: U64, b: U64, *, boolean: bool = False,
             item: str = "open", to: Sequence[int] = (0, 1, 2)) -> U64 | None:
        """Open a flat sharing ``(a, b)`` to the parties in ``to``; 1 round.

        Party ``r`` lacks share ``x_{r+2}``: its predecessor sends the value and a signed
        digest; its successor, the other holder, sends its signed digest. Each party also
        tells each receiving peer the digest of the share that peer holds too.
        """
        me, nx, pv = self.party, ctx.next, ctx.prev
        step = ctx.tag(item)
        ca = self._claim(step, f"share:{item}/x{me}", digest(a))
        cb = self._claim(step, f"share:{item}/x{nx}", digest(b))
        enc = encode_claims([ca, cb])
        if nx in to:
            ctx.send(nx, step, a)
            ctx.channel.send(nx, step + ":c", enc)
        if pv in to:
            ctx.channel.send(pv, step + ":c", enc)
        if me not in to:
            return None
        value = ctx.recv(pv, step, a.shape)
        from_prev = self._recv_claims(ctx, pv, step + ":c", step,
                                      [f"share:{item}/x{pv}", f"share:{item}/x{me}"])
        from_next = self._recv_claims(ctx, nx, step + ":c", step,
                                      [f"share:{item}/x{nx}", f"share:{item}/x{pv}"])
        if from_prev[1].digest != ca.digest:
            raise self._fail(f"party {pv} disagrees about share {me}, which both hold",
                             "disagreement", step, (pv,), (ca, from_prev[1]))
        if from_next[0].digest != cb.digest:
            raise self._fail(f"party {nx} disagrees about share {nx}, which both hold",
                             "disagreement", step, (nx,), (cb, from_next[0]))
        if from_prev[0].digest != from_next[1].digest:
            raise self._fail(f"parties {pv} and {nx} disagree about share {pv}; one of them "
                             "cheated, the protocol cannot tell which", "disagreement", step,
                             (pv, nx), (from_prev[0], from_next[1]))
        if digest(value) != from_prev[0].digest:
            raise self._fail(f"party {pv} sent a share that does not match its own digest",
                             "bad-message", step, (pv,), (from_prev[0],))
        return (a ^ b ^ value) if boolean else (a + b + value)

    # -- the check ----------------------------------------------------------------------------
    def check(self, ctx: MpcContext) -> None:
        """Verify every recorded product, range and input since the last check (4 rounds)."""
        if self.aborted:
            raise CheatingDetected("the session was aborted by a failed check",
                                   suspects=())
        if not self._dirty:
            return
        # range checks in slices of RANGE_SLICE truncations, each followed by the check of
        # the products recorded so far: a session's memory stays bounded whatever its size
        # (every slice is one more bucketing, see the module notes)
        while self._range:
            self._run_range_checks(ctx, RANGE_SLICE)
            if self._range:
                self._check_products(ctx)
        self._check_products(ctx)

    def _check_products(self, ctx: MpcContext) -> None:
        """The check proper: inputs, recorded products and zero values (4 rounds)."""
        muls, ands = self._mul, self._and
        self._mul, self._and = [], []
        ma = concat6(muls)
        mb = concat6(ands)
        step = ctx.tag("verify")
        na, nb = ma[0].size, mb[0].size
        self.checked["arith"] += na
        self.checked["bool"] += nb
        # the first products go against verified triples from stock, the rest (if the
        # stock runs short) by bucketing against a fresh pool
        ha, hb = min(na, self.stock(False)), min(nb, self.stock(True))
        # round 1: digests of inputs, dealt pairs and keys (before anything is opened, so
        # that two honest holders of a share always agree afterwards); pool triples
        # (random a, b from the PRGs; c by the semi-honest product)
        self._stream_claims(ctx, step)
        inner: list[Pair] = []
        if self._groups or self._dots:  # dot and matrix products, by compression
            groups, self._groups = self._groups, []
            dots, self._dots = self._dots, []
            inner.append(ipcheck.check_groups(
                ctx, groups, lambda n: self._coins(ctx).uint64(n),
                lambda a, b: self._open_all(ctx, a, b, "inner"), dots))
        rest_a, rest_b = tail(ma, ha), tail(mb, hb)
        # the rest is bucketed in slices of at most POOL_SLICE products (a pool each, with
        # its own coins: memory stays bounded; every slice is one more bucketing)
        slices = max(-(-(na - ha) // POOL_SLICE), -(-(nb - hb) // POOL_SLICE))
        part_a = head(rest_a, POOL_SLICE)
        part_b = head(rest_b, POOL_SLICE)
        pa = self._pool(ctx, step + ":ta", part_a[0].size, boolean=False)
        pb = self._pool(ctx, step + ":tb", part_b[0].size, boolean=True)
        zero_a = list(self._zero_arith) + inner
        zero_b = list(self._zero_bool)
        self._zero_arith, self._zero_bool = [], []
        # round 2: open rho, sigma against the verified triples (no coins needed)
        if ha:
            zero_a.append(self._verified_open(ctx, head(ma, ha), self.triples.take(False, ha),
                                              boolean=False))
        if hb:
            zero_b.append(self._verified_open(ctx, head(mb, hb), self.triples.take(True, hb),
                                              boolean=True))
        for i in range(slices):
            if i:  # the next slice's pool
                part_a = head(tail(rest_a, i * POOL_SLICE), POOL_SLICE)
                part_b = head(tail(rest_b, i * POOL_SLICE), POOL_SLICE)
                pa = self._pool(ctx, f"{step}:ta{i}", part_a[0].size, boolean=False)
                pb = self._pool(ctx, f"{step}:tb{i}", part_b[0].size, boolean=True)
            # round 2': public coins, opened only now that this slice's errors are committed
            prg = self._coins(ctx)
            # round 3: open rho, sigma and the left-over triples
            opened_a = self._sacrifice_open(ctx, part_a, pa, prg, boolean=False)
            opened_b = self._sacrifice_open(ctx, part_b, pb, prg, boolean=True)
            pa = pb = None
            if opened_a is not None:
                zero_a.append(opened_a)
            if opened_b is not None:
                zero_b.append(opened_b)
        # last round: digests of everything that must be zero
        if zero_a or zero_b:
            self._zero_claims(ctx, step, zero_a, zero_b)
        self._dirty = False
        self.checks += 1

    def _open_all(self, ctx: MpcContext, a: U64, b: U64, item: str) -> U64:
        got = self.open(ctx, a, b, item=item)
        if got is None:  # pragma: no cover - every party is a receiver
            raise ValidationError(f"{item} not opened")
        return got

    def _coins(self, ctx: MpcContext) -> Prg:
        """Public coins from a random sharing opened now (1 round): the bucket permutation."""
        ra, rb = ctx.random_pair(2)
        coins = self.open(ctx, ra, rb, item="coin")
        if coins is None:  # pragma: no cover - every party is a receiver
            raise ValidationError("coins not opened")
        return Prg(coins.tobytes()[:KEY_BYTES])

    def preprocess(self, ctx: MpcContext, n_arith: int = 0, n_bool: int = 0) -> None:
        """Make ``n_arith`` arithmetic and ``n_bool`` boolean-word triples and verify them
        by cut-and-choose and bucketing (Araki et al., S&P 2017, §3; Furukawa et al.,
        EUROCRYPT 2017): each candidate is sacrificed against ``k`` triples of a pool of
        ``M`` (:func:`~metisnet.mpc.triples.plan`, 2^-40). 4 rounds; per triple and party
        ``8 + 8M/n + 16k`` bytes (56 B at ``k = 2``). Later checks use one each."""
        if self.aborted:
            raise CheatingDetected("the session was aborted by a failed check", suspects=())
        if n_arith < 0 or n_bool < 0:
            raise ValidationError("triple counts must be non-negative")
        if n_arith == 0 and n_bool == 0:
            return
        step = ctx.tag("prep")
        made: dict[bool, tuple[Six, tuple[int, int, Pair, Pair, Pair]]] = {}
        # round 1: candidates and pool in one product message per kind
        for is_bool, n in ((False, n_arith), (True, n_bool)):
            if n == 0:
                continue
            k, m = plan(n, self.bits)
            a, b, c = self._raw_triples(ctx, step + (":tb" if is_bool else ":ta"), n + m,
                                        boolean=is_bool)
            cand = (a[0][:n], a[1][:n], b[0][:n], b[1][:n], c[0][:n], c[1][:n])
            pool = (k, m, (a[0][n:], a[1][n:]), (b[0][n:], b[1][n:]), (c[0][n:], c[1][n:]))
            made[is_bool] = (cand, pool)
        # round 2: coins; round 3: sacrifice openings; round 4: zero digests
        prg = self._coins(ctx)
        zero: dict[bool, list[Pair]] = {False: [], True: []}
        for is_bool, (cand, pool) in made.items():
            v = self._sacrifice_open(ctx, cand, pool, prg, boolean=is_bool)
            if v is not None:
                zero[is_bool].append(v)
        self._zero_claims(ctx, step, zero[False], zero[True])
        for is_bool, (cand, _) in made.items():
            self.triples.add(is_bool, cand)

    def _verified_open(self, ctx: MpcContext, rec: Six, trip: Six, *, boolean: bool) -> Pair:
        """Check products against verified triples, one each (Furukawa et al. 2017, §2.3):
        open ``rho = x - a`` and ``sigma = y - b`` (1 round, 16 B per product and party)
        and return this party's pair of ``v``, zero iff every product is right."""
        xa, xb, ya, yb, za, zb = rec
        a0, a1, b0, b1, c0, c1 = trip
        n = xa.size
        op = np.bitwise_xor if boolean else np.subtract
        sh_a = np.empty(2 * n, dtype=np.uint64)
        sh_b = np.empty(2 * n, dtype=np.uint64)
        op(xa, a0, out=sh_a[:n])
        op(ya, b0, out=sh_a[n:])
        op(xb, a1, out=sh_b[:n])
        op(yb, b1, out=sh_b[n:])
        opened = self.open(ctx, sh_a, sh_b, boolean=boolean,
                           item="verify-b" if boolean else "verify-a")
        if opened is None:  # pragma: no cover - every party is a receiver
            raise ValidationError("check not opened")
        fn = sacrifice_bool if boolean else sacrifice_arith
        return fn(self.party, (za, zb), (c0, c1), (a0, a1), (b0, b1), opened[:n], opened[n:])

    def _raw_triples(self, ctx: MpcContext, tag: str, m: int, *, boolean: bool
                     ) -> tuple[Pair, Pair, Pair]:
        """``m`` unverified triples: random ``a``, ``b`` from the PRGs, ``c`` by the
        semi-honest product (1 round, 8 B each)."""
        aa, ab = ctx.random_pair(m)
        ba, bb = ctx.random_pair(m)
        if boolean:  # z = aa & (ba ^ bb) ^ ab & ba ^ alpha, with few temporaries
            z = ba ^ bb
            z &= aa
            t = ab & ba
            z ^= t
            z ^= ctx.zero_share_xor(m)
        else:
            z = ba + bb
            z *= aa
            t = ab * ba
            z += t
            z += ctx.zero_share(m)
        ctx.send(ctx.prev, tag, z)
        return (aa, ab), (ba, bb), (z, ctx.recv(ctx.next, tag, (m,)))

    def _pool(self, ctx: MpcContext, tag: str, n: int, *, boolean: bool
              ) -> tuple[int, int, Pair, Pair, Pair] | None:
        if n == 0:
            return None
        k, m = plan(n, self.bits)
        a, b, c = self._raw_triples(ctx, tag, m, boolean=boolean)
        return k, m, a, b, c

    def _sacrifice_open(self, ctx: MpcContext, rec: Six,
                        pool: tuple[int, int, Pair, Pair, Pair] | None, prg: Prg, *,
                        boolean: bool) -> Pair | None:
        """Open the bucketing's ``rho`` and ``sigma`` (1 round) and return this party's pair
        of the ``v`` that must all be zero.

        A uniform permutation from the coins maps each pool position ``p`` to a slot:
        slots ``j*n + i`` (``j < k``) sacrifice the pool triple against checked product
        ``i``; the ``M - k*n`` left over are checked against the public zero triple
        ``(0, 0, 0)``, which opens their ``a`` and ``b`` and leaves ``v = a*b - c``, zero
        iff the triple is a product (cut-and-choose, with 16 B rather than 24). The pool
        is walked in order and the checked products are gathered: their arrays are the
        smaller, and the gathers run about a quarter faster than gathering the pool.
        """
        if pool is None:
            return None
        k, m, a, b, c = pool
        n = rec[0].size
        slot = prg.permutation(m)
        left = np.flatnonzero(slot >= k * n)
        cand = np.remainder(slot, n, out=slot)
        xa, xb, ya, yb, za, zb = rec
        # the shares to open, written in place: rho (m), then sigma (m)
        sh_a = np.empty(2 * m, dtype=np.uint64)
        sh_b = np.empty(2 * m, dtype=np.uint64)
        op = np.bitwise_xor if boolean else np.subtract
        for sh, side in ((sh_a, 0), (sh_b, 1)):
            rho, sig = sh[:m], sh[m:]
            np.take((xa, xb)[side], cand, out=rho)
            np.take((ya, yb)[side], cand, out=sig)
            rho[left] = 0
            sig[left] = 0
            op(rho, a[side], out=rho)
            op(sig, b[side], out=sig)
        zt = (np.take(za, cand), np.take(zb, cand))
        zt[0][left] = 0
        zt[1][left] = 0
        opened = self.open(ctx, sh_a, sh_b, boolean=boolean,
                           item="sacrifice-b" if boolean else "sacrifice-a")
        if opened is None:  # pragma: no cover - every party is a receiver
            raise ValidationError("sacrifice not opened")
        fn = sacrifice_bool if boolean else sacrifice_arith
        # the pool's arrays are this call's own (nothing reads them after): the result
        # overwrites c (a received share only if its channel lent it writable), and a[0]
        # is scratch
        own_c = tuple(x if x.flags.writeable else x.copy() for x in c)
        return fn(self.party, zt, (own_c[0], own_c[1]), a, b, opened[:m], opened[m:],
                  overwrite=True)

    def _exchange(self, ctx: MpcContext, step: str, mine: dict[str, bytes],
                  items_for: Callable[[int, int], list[str]]) -> list[tuple[int, Claim, Claim]]:
        """Send each peer signed claims on ``items_for(me, peer)``; return the received
        claims that disagree with mine as (peer, mine, theirs)."""
        me = self.party
        for peer in (ctx.next, ctx.prev):
            claims = [self._claim(step, it, mine[it]) for it in items_for(me, peer)]
            ctx.channel.send(peer, step, encode_claims(claims))
        bad = []
        for peer in (ctx.next, ctx.prev):
            for c in self._recv_claims(ctx, peer, step, step, items_for(peer, me)):
                if c.digest != mine[c.item]:
                    bad.append((peer, self._claim(step, c.item, mine[c.item]), c))
        return bad

    def _stream_claims(self, ctx: MpcContext, step: str) -> None:
        """Input shares, dealt pairs and keys: each digest goes only to the other holder."""
        mine: dict[str, bytes] = {}
        for j, h in self._streams.items():
            mine[f"share:input/x{j}"] = h.digest()
        for j, h in self._dealt.items():
            mine[f"dealt:pair/x{j}"] = h.digest()
        mine.update(self._keys)
        mine["opened:beaver"] = self.triples.opened_digest()

        def items_for(sender: int, receiver: int) -> list[str]:
            shared = sender if (sender - 1) % PARTIES == receiver else receiver
            keys = [f"share:key/k{shared}", "dealt:key/all"] if self._keys else []
            return [f"share:input/x{shared}", f"dealt:pair/x{shared}", *keys,
                    "opened:beaver"]

        bad = self._exchange(ctx, step + ":s", mine, items_for)
        if not bad:
            return
        # Beaver openings first: a wrong share sent to one honest party makes its later
        # shares differ from the other honest party's, so no share item may be blamed then
        # (two honest parties' openings may differ too: a pair, never one party)
        opened = [t for t in bad if t[2].item == "opened:beaver"]
        if opened:
            peer, own, theirs = opened[0]
            raise self._fail(f"party {peer} saw other values opened in Beaver "
                             "multiplications: a party sent a wrong share (not attributable)",
                             "failed-check", step, self._others(), (own, theirs))
        # a dealer's equivocation also shows in the input stream if the caller folded the
        # dealt pair there too: a peer's share item is a certain lie only if its dealt
        # pairs agree with mine
        dealt_peers = {p for p, _, c in bad if c.item.startswith("dealt:pair")}
        for peer, own, theirs in bad:
            if theirs.item.startswith("share:") and peer not in dealt_peers:
                raise self._fail(f"party {peer} disagrees about {theirs.item[6:]}, which "
                                 "both hold", "disagreement", step, (peer,), (own, theirs))
        peer, own, theirs = next(t for t in bad if t[2].item.startswith("dealt:"))
        sus: tuple[int, ...] = ()  # a pair from an outside dealer, who may have equivocated
        if theirs.item == "dealt:key/all":  # dealt by party 0 to both others
            sus = (peer,) if self.party == 0 else self._others()
        raise self._fail(f"party {peer} disagrees about {theirs.item[6:]}, which a dealer "
                         "handed out (the dealer or that party cheated)", "disagreement",
                         step, sus, (own, theirs))

    def _zero_claims(self, ctx: MpcContext, step: str, zero_a: list[Pair],
                     zero_b: list[Pair]) -> None:
        """Each party's digest of ``-v_j`` (arithmetic) and ``v_j`` (boolean) for every
        share j of everything that must be zero; equal everywhere iff all are zero."""
        me, nx, pv = self.party, ctx.next, ctx.prev
        za = _concat2(zero_a)
        zb = _concat2(zero_b)
        zdig = {me: (digest(-za[0]), digest(zb[0])),
                nx: (digest(-za[1]), digest(zb[1])),
                pv: (digest(za[0] + za[1]), digest(zb[0] ^ zb[1]))}
        mine: dict[str, bytes] = {}
        for j in range(PARTIES):
            mine[f"zero:arith/x{j}"] = zdig[j][0]
            mine[f"zero:bool/x{j}"] = zdig[j][1]
        items = sorted(mine)
        bad = self._exchange(ctx, step + ":z", mine, lambda s, r: items)
        if bad:
            _, own, theirs = bad[0]
            raise self._fail("a multiplication, AND or range check failed: a party cheated "
                             "(not attributable to one party)", "failed-check", step,
                             self._others(), (own, theirs))

    # -- range checks for truncation (batched at the check) ---------------------------------
    def _run_range_checks(self, ctx: MpcContext, limit: int) -> None:
        """Check the carry bits of the next ``limit`` pending truncations (see
        :meth:`trunc`): each ``gamma`` must be a bit (one recorded product,
        ``gamma * (gamma - 1) = 0``) equal to the carry out of ``u + v`` on ``d`` bits (a
        carry circuit on the bits of ``u`` and ``v``, ANDs recorded; compared through the
        lowest bit of ``gamma``, the XOR of its shares' lowest bits). Both go to the zero
        values of the next check."""
        items: list[_TruncItem] = []
        room = limit
        while self._range and room > 0:
            first = self._range[0]
            size = first[0].size
            if size <= room:
                items.append(self._range.pop(0))
                room -= size
            else:
                ga0, gb0, ua0, ub0, va0, vb0, d0 = first
                items.append((ga0[:room], gb0[:room], ua0[:room], ub0[:room], va0[:room],
                              vb0[:room], d0))
                self._range[0] = (ga0[room:], gb0[room:], ua0[room:], ub0[room:], va0[room:],
                                  vb0[room:], d0)
                room = 0
        top = max(it[6] for it in items)
        cols = [np.concatenate([it[j] for it in items]) for j in range(6)]
        ga, gb, ua, ub, va, vb = cols
        # bits d..top-1 of u set (propagate only): the carry out of top bits is that of d
        fill = np.concatenate([np.full(it[0].size, _fill_bits(it[6], top), dtype=np.uint64)
                               for it in items])
        holds = _slot_holds(self.party)
        if holds[0] is not None:  # this party holds slot 0, where u lives
            if holds[0] == 0:
                ua = ua | fill
            else:
                ub = ub | fill
        gamma = SharedArray(ga, gb, party=self.party)
        sq = arith.mul_raw(ctx, gamma, gamma.add_ring(np.full(ga.shape, ONES, dtype=np.uint64)))
        self._zero_arith.append((sq.a, sq.b))
        u = (to_planes(ua, top), to_planes(ub, top))
        v = (to_planes(va, top), to_planes(vb, top))
        ca, cb = boolean.carry_out(ctx, u, v)
        la, lb = to_planes(ga, 1), to_planes(gb, 1)
        self._zero_bool.append(((ca ^ la).reshape(-1), (cb ^ lb).reshape(-1)))

    # -- replacements for the semi-honest steps that trust one party ------------------------
    def trunc(self, ctx: MpcContext, x: SharedArray, d: int) -> SharedArray:
        """Truncation by ``2^d`` with party 0's part checked (see the module notes).

        The one-message split of the semi-honest protocol: party 0 holds
        ``A = x_0 + x_1 + s`` and sends its share of ``A >> d``; parties 1 and 2 both know
        ``B = x_2 - s`` and take ``-((-B) >> d)``, with ``b_hi`` the part they drop. The
        remainder party 0 drops is ``a_lo = A mod 2^d = u + v - 2^d c`` with
        ``u = (x_0 + s) mod 2^d`` (known to parties 0 and 2), ``v = x_1 mod 2^d`` (known to
        parties 0 and 1) and ``c`` the carry of ``u + v``. Party 0 inputs ``gamma = c``
        alongside; the parties check ``x - 2^d y = u + v - 2^d gamma - b_hi`` exactly and,
        at the next check, that ``gamma`` is the carry (:meth:`_run_range_checks`). So a
        wrong ``y`` needs a wrong ``gamma``, which is caught. 1 round; 16 B per element
        from party 0."""
        if not 1 <= d <= 63:
            raise ValidationError(f"cannot truncate by {d} bits")
        tag = ctx.tag("trunc")
        out_shape = x.shape
        x = x.reshape(-1)  # 1-D inside: no numpy scalars, whose overflow warns
        shape = x.shape
        s = ctx.prg_all.uint64(shape)
        f = x.frac_bits - d
        dd = np.int64(d)
        sh = np.uint64(d)
        mask = np.uint64((1 << d) - 1)
        zero = np.zeros(shape, dtype=np.uint64)
        if ctx.party == 0:
            t_a, carry = self._own_split(x.a, x.b, s, d)
            r = ctx.prg_own.uint64(shape)
            r2 = ctx.prg_own.uint64(shape)
            y1, g1 = t_a - r, carry - r2
            ctx.send(1, tag, np.stack([y1, g1]))
            y, gam, bh = (r, y1), (r2, g1), (zero, zero)
            uv = ((x.a + s) & mask, x.b & mask)  # slots 0 (u) and 1 (v)
            us, vs = (uv[0], zero), (zero, uv[1])
        else:
            b = x.b if ctx.party == 1 else x.a
            b_prime = b - s
            t_b = np.negative((np.negative(b_prime).view(np.int64) >> dd).view(np.uint64))
            b_hi = (t_b << sh) - b_prime
            if ctx.party == 1:  # slots 1 (v = x_1 mod 2^d) and 2
                got = ctx.recv(0, tag, (2, *shape))
                y, gam, bh = (got[0], t_b), (got[1], zero), (zero, b_hi)
                us, vs = (zero, zero), (x.a & mask, zero)
            else:  # slots 2 and 0 (u = (x_0 + s) mod 2^d)
                r = ctx.prg_next.uint64(shape)
                r2 = ctx.prg_next.uint64(shape)
                y, gam, bh = (t_b, r), (zero, r2), (b_hi, zero)
                us, vs = (zero, (x.b + s) & mask), (zero, zero)
        # x - 2^d y - (u + v - 2^d gamma) + b_hi must be zero
        lo = [us[i] + vs[i] - (gam[i] << sh) for i in (0, 1)]
        self._zero_arith.append((_flat(x.a - (y[0] << sh) - lo[0] + bh[0]),
                                 _flat(x.b - (y[1] << sh) - lo[1] + bh[1])))
        self._range.append((_flat(gam[0]), _flat(gam[1]), _flat(us[0]), _flat(us[1]),
                            _flat(vs[0]), _flat(vs[1]), d))
        self._dirty = True
        return SharedArray(y[0], y[1], party=ctx.party, frac_bits=f).reshape(out_shape)

    def _own_split(self, x0: U64, x1: U64, s: U64, d: int) -> Pair:
        """Party 0's part of a truncation: ``(A >> d, carry of u + v)`` for
        ``A = x_0 + x_1 + s`` (a method of its own so that tests can make party 0 cheat)."""
        mask = np.uint64((1 << d) - 1)
        a_prime = x0 + x1 + s
        t_a = (a_prime.view(np.int64) >> np.int64(d)).view(np.uint64)
        carry = (((x0 + s) & mask) + (x1 & mask)) >> np.uint64(d)
        return t_a, carry

    def b2a(self, ctx: MpcContext, x: SharedBits) -> SharedArray:
        """Bit injection with checked multiplications: ``b = (u0 ^ u1) ^ u2`` with
        ``u ^ v = u + v - 2uv`` over the ring (2 rounds, 16 B per bit per party)."""
        k, n = x.nbits, x.count
        bits_a = planes_to_bits(x.a, n).reshape(k, n).astype(np.uint64)
        bits_b = planes_to_bits(x.b, n).reshape(k, n).astype(np.uint64)
        zero = np.zeros((k, n), dtype=np.uint64)

        def comp(j: int) -> SharedArray:
            return SharedArray(bits_a if ctx.party == j else zero,
                               bits_b if ctx.next == j else zero, party=ctx.party)

        u0, u1, u2 = comp(0), comp(1), comp(2)
        t = u0 + u1 - arith.mul_raw(ctx, u0, u1) * 2
        v = t + u2 - arith.mul_raw(ctx, t, u2) * 2
        if k == 1:
            a, b = v.a[0], v.b[0]
        else:
            weights = np.left_shift(np.uint64(1), np.arange(k, dtype=np.uint64))[:, None]
            a = (v.a * weights).sum(axis=0, dtype=np.uint64)
            b = (v.b * weights).sum(axis=0, dtype=np.uint64)
        return SharedArray(a.reshape(x.shape), b.reshape(x.shape), party=ctx.party)

    def eq_zero_bits(self, ctx: MpcContext, x: SharedArray) -> SharedBits:
        """``x == 0`` as ``not (x < 0) and not (-x < 0)``: two sign bits in one batch and
        one AND (9 rounds), every gate checked."""
        n = x.size
        pad = (-n) % 64
        flat = x.flatten()
        zp = flat.like(np.zeros(pad, dtype=np.uint64), np.zeros(pad, dtype=np.uint64))
        both = arith.concat([flat, zp, -flat, zp])
        bits = ~boolean.ltz_bits(ctx, both)
        w = (n + pad) // 64
        pa, pb = bits.a.reshape(-1), bits.b.reshape(-1)
        za, zb = boolean.and_pairs(ctx, (pa[:w], pb[:w]), (pa[w:], pb[w:]), "eqz_and")
        nw = n_words(n)
        return SharedBits(za[:nw].reshape(1, nw), zb[:nw].reshape(1, nw), party=ctx.party,
                          shape=x.shape)

    def dot(self, ctx: MpcContext, x: SharedArray, y: SharedArray, truncate: bool
            ) -> SharedArray:
        """Inner product over the last axis as checked elementwise products and a sum (for
        inner products too short, or too many, for :mod:`metisnet.mpc.ipcheck`)."""
        out = arith.sum(arith.mul_raw(ctx, x, y), axis=-1)
        if truncate:
            out = arith.trunc(ctx, out, min(x.frac_bits, y.frac_bits))
        return out

    def matmul(self, ctx: MpcContext, x: SharedArray, y: SharedArray, truncate: bool
               ) -> SharedArray:
        """``x @ y`` as checked elementwise products of shape (m, k, n) and a sum (when the
        inner dimension is too short, or the output too large, for
        :mod:`metisnet.mpc.ipcheck`)."""
        m, k = x.shape
        n = y.shape[1]

        def spread(s: SharedArray, shape: tuple[int, ...], axis: int) -> SharedArray:
            a = np.ascontiguousarray(np.broadcast_to(np.expand_dims(s.a, axis), shape))
            b = np.ascontiguousarray(np.broadcast_to(np.expand_dims(s.b, axis), shape))
            return s.like(a, b)

        xs = spread(x, (m, k, n), 2)
        ys = spread(y, (m, k, n), 0)
        out = arith.sum(arith.mul_raw(ctx, xs, ys), axis=1)
        if truncate:
            out = arith.trunc(ctx, out, min(x.frac_bits, y.frac_bits))
        return out

    # -- outputs ----------------------------------------------------------------------------
    def reveal_raw(self, ctx: MpcContext, x: SharedArray, to: Sequence[int] = (0, 1, 2)
                   ) -> U64 | None:
        """Check everything pending, then open ``x`` to ``to`` (robustly)."""
        self.check(ctx)
        got = self.open(ctx, _flat(x.a), _flat(x.b), item="reveal", to=to)
        if got is None:
            return None
        out: U64 = got.reshape(x.shape)[()] if x.ndim == 0 else got.reshape(x.shape)
        return out

    def reveal_bits(self, ctx: MpcContext, x: SharedBits) -> NDArray[np.uint8]:
        self.check(ctx)
        got = self.open(ctx, _flat(x.a), _flat(x.b), boolean=True, item="reveal_bits")
        if got is None:  # pragma: no cover - every party is a receiver
            raise ShapeError("bits not opened")
        planes = got.reshape(x.a.shape)
        return planes_to_bits(planes, x.count).reshape((x.nbits, *x.shape))


def _slot_holds(party: int) -> tuple[int | None, int | None]:
    """Where slots 0 and 1 sit in ``party``'s pair (0 = first, 1 = second, None = absent)."""
    return {0: (0, 1), 1: (None, 0), 2: (1, None)}[party]


def _fill_bits(d: int, top: int) -> np.uint64:
    """Bits ``d..top-1`` set: propagate-only positions above a ``d``-bit carry."""
    return np.uint64(((1 << top) - 1) ^ ((1 << d) - 1))


def _concat2(rows: list[Pair]) -> Pair:
    if not rows:
        e = np.zeros(0, dtype=np.uint64)
        return e, e
    return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])
