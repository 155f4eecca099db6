"""A linearly homomorphic MAC for values encrypted under Paillier, with keys per task.

For the ``i``-th value ``x_i`` (an integer: a fixed-point encoding) of owner ``j`` in task
``T`` the tag is

    t_i = a * x_i + b_i  (mod n),

where ``n`` is the Paillier modulus, ``a`` is uniform in Z_n and ``b_i = F_k(i)`` is drawn
from a PRF (AES-128-CTR at block offset ``i``) keyed with ``k``; ``a`` and ``k`` are derived
from a 256-bit seed that is itself ``HMAC-SHA256(master, T || j)``, so every (task, owner)
pair has fresh, one-time key material and a tag binds its value to task, owner and index.
The compute node receives ``Enc(x_i)`` and ``Enc(t_i)`` and, for a linear function
``y = sum(w_i x_i) + c``, returns ``Enc(y')`` and ``Enc(tau')``; the verifier accepts iff

    tau' = a * (y' - c) + sum(w_i b_i)  (mod n).

This is the one-time linear MAC of the homomorphic-MAC literature (Catalano and Fiore,
"Practical homomorphic MACs for arithmetic circuits", EUROCRYPT 2013, restricted to degree
1; Gennaro and Wichs, ASIACRYPT 2013, for MACs carried inside ciphertexts), with the
"closed-form efficient" verification of Backes, Fiore and Reischuk (CCS 2013): for a sum the
verifier needs ``sum(b_i)``, which is a few column sums of the PRF output, not a
recomputation on ciphertexts.

**Why modulo n and not modulo a small prime.** Paillier adds modulo ``n``, so tags kept
modulo ``n`` compose exactly, with no wrap-around to reason about. Tags modulo a public
prime ``p`` would authenticate ``y`` only modulo ``p``: a node that uses ``w_i + p`` instead
of ``w_i`` changes ``y`` by ``p * x_i`` and still passes. Modulo ``n`` that attack needs a
multiple of ``n``, which changes nothing.

**Soundness.** Let the adversary even know every ``x_i`` and ``t_i`` in the clear (a
stronger adversary than one holding ciphertexts). Each ``b_i`` is uniform and used once, so
the ``t_i`` are independent of ``a``, and so is everything the adversary computes. An
answer differs from the honest one ``(y, tau)`` by ``(dy, dtau)``; it passes iff
``dtau = a * dy (mod n)``. If ``dy = 0`` and ``dtau != 0`` it fails always; if ``dy != 0``,
over uniform ``a`` it passes with probability ``gcd(dy, n) / n <= 1 / min(p, q)``, about
2^-1023 for 2048-bit keys and 2^-255 for the 512-bit keys of the fast tests. Add the PRF's
distinguishing advantage (AES) and the 2^-64 statistical distance of reducing ``k + 64``
PRF bits modulo ``n``: the soundness error is far below the required 2^-40. Dropping,
duplicating, reordering or replacing inputs, changing weights and replaying old answers
all change ``sum(w_i b_i)`` or ``dy`` and are caught (a deterministic ``dtau != 0`` when
``dy = 0``). A task id must never be reused with the same master secret.

Costs: tagging is one multiplication mod ``n`` per value, plus one encryption; evaluation
doubles (values and tags); verifying a sum of ``N`` values is two decryptions and the
column sums of ``N * (k/8 + 8)`` PRF bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import gmpy2
import numpy as np
from gmpy2 import mpz

from metisnet.crypto.prg import Csprng, Prg
from metisnet.errors import ValidationError

__all__ = ["SEED_BYTES", "MacKey", "TaskKeys", "soundness_bits"]

SEED_BYTES = 32
_BLOCK = 16


def soundness_bits(modulus_bits: int) -> int:
    """-log2 of the forgery probability of one check, ``min(p, q) >= 2^(bits/2 - 1)``."""
    return modulus_bits // 2 - 1


class MacKey:
    """The one-time MAC key of one owner in one task: ``a`` and the PRF key for ``b_i``.

    Built from a 32-byte seed (see :class:`TaskKeys`) and the Paillier modulus ``n``.
    Never printed; :meth:`commitment` is the hash an owner publishes in advance so that a
    later reveal (as slashing evidence) is binding.
    """

    __slots__ = ("_a", "_bkey", "_seed", "block_bytes", "n")

    def __init__(self, seed: bytes, n: int) -> None:
        if len(seed) != SEED_BYTES:
            raise ValidationError(f"a MAC seed has {SEED_BYTES} bytes")
        self.n = mpz(n)
        self._seed = bytes(seed)
        nbytes = (gmpy2.bit_length(self.n) + 7) // 8
        self.block_bytes = -(-(nbytes + 8) // _BLOCK) * _BLOCK
        a_key = hmac.digest(seed, b"metisnet/mac/a", "sha256")[:16]
        a_raw = int.from_bytes(Prg(a_key).bytes(self.block_bytes), "big")
        self._a = mpz(a_raw) % self.n
        self._bkey = hmac.digest(seed, b"metisnet/mac/b", "sha256")[:16]

    def __repr__(self) -> str:
        return "MacKey(<secret hidden>)"

    @property
    def seed(self) -> bytes:
        """The secret seed (to hand to an owner over a private channel, or to reveal as
        evidence once the task is over)."""
        return self._seed

    def commitment(self) -> bytes:
        return hashlib.sha256(b"metisnet/mac/commit" + self._seed).digest()

    # -- the PRF -------------------------------------------------------------------------
    def _stream(self, start: int, count: int) -> bytes:
        blocks_per = self.block_bytes // _BLOCK
        nonce = (start * blocks_per).to_bytes(_BLOCK, "big")
        return Prg(self._bkey, nonce=nonce).bytes(count * self.block_bytes)

    def b_raw(self, start: int, count: int) -> list[mpz]:
        """The PRF values ``B_i`` for ``i`` in ``[start, start + count)`` (``b_i = B_i mod n``),
        each ``block_bytes`` of AES-CTR output read as a little-endian integer."""
        if start < 0 or count < 0:
            raise ValidationError("negative index")
        buf = self._stream(start, count)
        bb = self.block_bytes
        return [mpz.from_bytes(buf[i * bb:(i + 1) * bb], "little") for i in range(count)]

    def b_sum(self, start: int, count: int) -> mpz:
        """``sum(b_i) mod n`` over a contiguous range, by column sums of the PRF output."""
        return self.b_strided_sums(start, count, 1)[0]

    def b_strided_sums(self, start: int, count: int, stride: int) -> list[mpz]:
        """``[sum(b_{start+i} for i = c mod stride) mod n for c in range(stride)]``:
        the per-column sums of a row-major ``(count/stride, stride)`` block, computed from
        32-bit word sums of the PRF output (exact while ``count < 2^32``)."""
        if stride < 1 or count % stride:
            raise ValidationError("count must be a multiple of the stride")
        if count == 0:
            return [mpz(0)] * stride
        if count >= 2**32:
            raise ValidationError("too many values for one sum")
        buf = self._stream(start, count)
        words = np.frombuffer(buf, dtype="<u4").reshape(count // stride, stride,
                                                        self.block_bytes // 4)
        cols = words.sum(axis=0, dtype=np.uint64)
        out: list[mpz] = []
        for col in cols.tolist():
            total = mpz(0)
            for c in reversed(col):  # little-endian words: most significant last
                total = (total << 32) + c
            out.append(total % self.n)
        return out

    def b_weighted(self, start: int, weights: Sequence[int]) -> mpz:
        """``sum(w_i b_{start+i}) mod n`` for integer weights."""
        n = self.n
        acc = mpz(0)
        for w, b in zip(weights, self.b_raw(start, len(weights)), strict=True):
            if w:
                acc += w * b
        return acc % n

    # -- tagging and checking ---------------------------------------------------------
    def tags(self, start: int, values: Sequence[int]) -> list[mpz]:
        """``t_i = a * x_i + b_i mod n`` for ``x`` at indices ``start, start+1, ...``."""
        a, n = self._a, self.n
        return [(a * x + b) % n for x, b in zip(values, self.b_raw(start, len(values)),
                                                 strict=True)]

    def residual(self, y: int, tau: int, b_combined: int, offset: int = 0) -> mpz:
        """``tau - a*(y - offset) - B mod n``: zero exactly when the check passes."""
        return (mpz(tau) - self._a * (mpz(y) - offset) - b_combined) % self.n

    def check(self, y: int, tau: int, b_combined: int, offset: int = 0) -> bool:
        return bool(self.residual(y, tau, b_combined, offset) == 0)

    def combine_residuals(self, residuals: Sequence[int], rng: Csprng | None = None) -> bool:
        """True iff all residuals are zero, tested as one random combination: with
        coefficients uniform in ``[0, 2^64)`` a non-zero residual survives with probability
        at most 2^-64 (each coefficient is below both prime factors of ``n``)."""
        rng = rng or Csprng()
        coeffs = rng.uint64(len(residuals)).tolist()
        acc = mpz(0)
        for r, c in zip(residuals, coeffs, strict=True):
            acc += r * c
        return bool(acc % self.n == 0)


class TaskKeys:
    """The verifier's master secret for one or more tasks; derives each owner's key.

    ``TaskKeys()`` draws a 256-bit master from the CSPRNG. ``owner_key(task, j, n)`` is the
    :class:`MacKey` owner ``j`` tags with in task ``task``; give it to that owner privately.
    """

    __slots__ = ("_master",)

    def __init__(self, master: bytes | None = None, *, rng: Csprng | None = None) -> None:
        if master is None:
            master = (rng or Csprng()).bytes(SEED_BYTES)
        if len(master) != SEED_BYTES:
            raise ValidationError(f"a master MAC secret has {SEED_BYTES} bytes")
        self._master = bytes(master)

    def __repr__(self) -> str:
        return "TaskKeys(<secret hidden>)"

    def export_secret(self) -> bytes:
        """The master secret, for the requester's encrypted store only."""
        return self._master

    def owner_seed(self, task_id: bytes, owner: int) -> bytes:
        if not task_id:
            raise ValidationError("a task id is required")
        msg = b"metisnet/mac/owner" + len(task_id).to_bytes(2, "big") + task_id \
            + owner.to_bytes(4, "big")
        return hmac.digest(self._master, msg, "sha256")

    def owner_key(self, task_id: bytes, owner: int, n: int) -> MacKey:
        return MacKey(self.owner_seed(task_id, owner), n)
