"""Verified triples in stock and the Beaver products that use them (malicious mode).

A :class:`TripleStock` holds triples already verified by cut-and-choose and bucketing
(:meth:`metisnet.mpc.malicious.MaliciousVerifier.preprocess`; Araki et al., S&P 2017) and
spends one per product: Beaver's multiplication (CRYPTO 1991) opens ``rho = x - a`` and
``sigma = y - b`` and sets ``z = c + sigma*a + rho*b + rho*sigma``; over GF(2)^64 words
the same with XOR and AND. 1 round and 16 B per product (or AND word) and party, against
8 B for the semi-honest product.

An opening here sends each party's first share to the next party, which lacks it, with no
digest: the reconstructed values go into a running digest (BLAKE3) that the verifier
compares with both peers at its next check, before any output is released
(:meth:`~metisnet.mpc.malicious.MaliciousVerifier.check`). The honest parties'
reconstructions agree exactly when the cheater sent its honest co-holder's copy, so with a
valid triple the product is right or the check fails. No I/O beyond the context's channel.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import ValidationError
from metisnet.mpc.context import PARTIES, MpcContext
from metisnet.mpc.evidence import Hasher
from metisnet.mpc.shares import SharedArray

__all__ = ["Six", "TripleStock", "concat6", "head", "maj_operands", "tail"]

U64 = NDArray[np.uint64]
Pair = tuple[U64, U64]
#: a batch of shared triples, this party's pairs: (a_i, a_i+1, b_i, b_i+1, c_i, c_i+1)
Six = tuple[U64, U64, U64, U64, U64, U64]


def _flat(a: U64) -> U64:
    return np.ascontiguousarray(a, dtype=np.uint64).reshape(-1)


def maj_operands(party: int, sa: U64, sb: U64) -> tuple[Pair, Pair, Pair]:
    """For this party's planes ``(sa, sb) = (x_i, x_{i+1})``: the XOR-sharings of
    ``P = X0^X1``, ``Q = X1^X2`` and ``X1`` (``X_j``: share j alone), with
    ``maj(x0, x1, x2) = (P & Q) ^ X1``."""
    zero = np.zeros_like(sa)

    def comp(j: int) -> Pair:
        return (sa if party == j else zero, sb if (party + 1) % PARTIES == j else zero)

    x0, x1, x2 = comp(0), comp(1), comp(2)
    p = (x0[0] ^ x1[0], x0[1] ^ x1[1])
    q = (x1[0] ^ x2[0], x1[1] ^ x2[1])
    return p, q, x1


class TripleStock:
    """One party's verified triples, arithmetic (Z_2^64) and boolean (GF(2)^64 words)."""

    def __init__(self, party: int) -> None:
        self.party = party
        self._stock: dict[bool, list[Six]] = {False: [], True: []}
        self._opened = Hasher()

    def count(self, boolean: bool) -> int:
        """How many verified triples (arithmetic, or boolean words) are in stock."""
        return sum(t[0].size for t in self._stock[boolean])

    def add(self, boolean: bool, triples: Six) -> None:
        """Put verified triples in stock (after their check passed)."""
        self._stock[boolean].append(triples)

    def opened_digest(self) -> bytes:
        """The digest of every value opened by a Beaver product so far, in order."""
        return self._opened.digest()

    def take(self, boolean: bool, n: int) -> Six:
        """The next ``n`` verified triples, in stock order (each used once)."""
        if not 0 <= n <= self.count(boolean):
            raise ValidationError(f"{n} triples asked for, {self.count(boolean)} in stock")
        rows: list[Six] = []
        lst = self._stock[boolean]
        while n > 0:
            first = lst[0]
            if first[0].size <= n:
                rows.append(lst.pop(0))
                n -= first[0].size
            else:
                rows.append(head(first, n))
                lst[0] = tail(first, n)
                n = 0
        return concat6(rows)

    def mul(self, ctx: MpcContext, x: SharedArray, y: SharedArray) -> SharedArray:
        """``x * y`` with one verified triple per element (Beaver, CRYPTO 1991): open
        ``rho = x - a`` and ``sigma = y - b``; ``z = c + sigma*a + rho*b + rho*sigma``.
        1 round, 16 B per element and party; the opened values are compared (by digest)
        at the next check. The caller checks :meth:`count` first."""
        n = x.size
        trip = self.take(False, n)
        rho, sig = self._beaver_open(ctx, (_flat(x.a), _flat(x.b)), (_flat(y.a), _flat(y.b)),
                                     trip, boolean=False)
        a0, a1, b0, b1, c0, c1 = trip
        za = sig * a0
        za += c0
        t = rho * b0
        za += t
        zb = np.multiply(sig, a1)
        zb += c1
        np.multiply(rho, b1, out=t)
        zb += t
        if self.party in (0, 2):  # the public term goes into share 0
            np.multiply(rho, sig, out=t)
            if self.party == 0:
                za += t
            else:
                zb += t
        return SharedArray(za.reshape(x.shape), zb.reshape(x.shape), party=self.party,
                           frac_bits=x.frac_bits + y.frac_bits)

    def and_words(self, ctx: MpcContext, x: Pair, y: Pair) -> Pair:
        """``x & y`` on XOR-shared words with one verified boolean triple per word (the
        same over GF(2)^64): 1 round, 16 B per word and party."""
        shape = x[0].shape
        trip = self.take(True, x[0].size)
        rho, sig = self._beaver_open(ctx, (_flat(x[0]), _flat(x[1])),
                                     (_flat(y[0]), _flat(y[1])), trip, boolean=True)
        a0, a1, b0, b1, c0, c1 = trip
        za = sig & a0
        za ^= c0
        t = rho & b0
        za ^= t
        zb = np.bitwise_and(sig, a1)
        zb ^= c1
        np.bitwise_and(rho, b1, out=t)
        zb ^= t
        if self.party in (0, 2):
            np.bitwise_and(rho, sig, out=t)
            if self.party == 0:
                za ^= t
            else:
                zb ^= t
        return za.reshape(shape), zb.reshape(shape)

    def _beaver_open(self, ctx: MpcContext, x: Pair, y: Pair, trip: Six, *, boolean: bool
                     ) -> tuple[U64, U64]:
        """Open ``x - a`` and ``y - b`` (each party sends its first share to the next one,
        which lacks it) and fold the values into the running digest of openings."""
        n = x[0].size
        op = np.bitwise_xor if boolean else np.subtract
        sh_a = np.empty(2 * n, dtype=np.uint64)
        sh_b = np.empty(2 * n, dtype=np.uint64)
        op(x[0], trip[0], out=sh_a[:n])
        op(y[0], trip[2], out=sh_a[n:])
        op(x[1], trip[1], out=sh_b[:n])
        op(y[1], trip[3], out=sh_b[n:])
        step = ctx.tag("beaver-b" if boolean else "beaver-a")
        ctx.send(ctx.next, step, sh_a)
        got = ctx.recv(ctx.prev, step, (2 * n,))
        if boolean:
            sh_a ^= sh_b
            sh_a ^= got
        else:
            sh_a += sh_b
            sh_a += got
        self._opened.update(sh_a)
        return sh_a[:n], sh_a[n:]

    def carry_save(self, ctx: MpcContext, sa: U64, sb: U64) -> Pair:
        """``maj(x0, x1, x2)`` of the A2B carry-save step (this party's planes
        ``(sa, sb)``) as one Beaver AND: 1 round, 16 B per word and party."""
        p, q, x1 = maj_operands(self.party, sa, sb)
        za, zb = self.and_words(ctx, p, q)
        za ^= x1[0]
        zb ^= x1[1]
        return za, zb


def head(t: Six, n: int) -> Six:
    return t[0][:n], t[1][:n], t[2][:n], t[3][:n], t[4][:n], t[5][:n]


def tail(t: Six, n: int) -> Six:
    return t[0][n:], t[1][n:], t[2][n:], t[3][n:], t[4][n:], t[5][n:]


def concat6(rows: list[Six]) -> Six:
    if not rows:
        e = np.zeros(0, dtype=np.uint64)
        return e, e, e, e, e, e
    if len(rows) == 1:
        return rows[0]
    cols = [np.concatenate([r[i] for r in rows]) for i in range(6)]
    return cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
