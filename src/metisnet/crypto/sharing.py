"""2-out-of-3 replicated secret sharing over Z_2^64 (Araki et al., CCS 2016, §2).

A secret ``x`` is split into ``x = x_0 + x_1 + x_2 (mod 2^64)``; party ``i`` holds the pair
``(x_i, x_{i+1})`` (indices mod 3). Any two parties hold all three shares; one party's
pair is uniformly random and independent of ``x``. The boolean variant XORs instead.

These functions are for a dealer outside the committee (a data owner that secret-shares
its dataset before sending one pair to each compute node) and for tests; the committee's
own protocols live in :mod:`metisnet.mpc`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from metisnet.crypto.prg import Csprng
from metisnet.errors import ValidationError

__all__ = ["PARTIES", "reconstruct", "share"]

#: Replicated sharing here is for three parties.
PARTIES = 3

SharePair = tuple[NDArray[np.uint64], NDArray[np.uint64]]


def share(
    x: NDArray[np.uint64], rng: Csprng, *, boolean: bool = False
) -> list[SharePair]:
    """Split ring elements ``x`` into three pairs; pair ``i`` goes to party ``i``.

    ``boolean=True`` gives XOR shares (``x = x_0 ^ x_1 ^ x_2``) of the bit patterns.
    """
    v = np.asarray(x, dtype=np.uint64)
    x0 = rng.uint64(v.shape)
    x1 = rng.uint64(v.shape)
    x2 = (v ^ x0 ^ x1) if boolean else (v - x0 - x1)
    s = (x0, x1, x2)
    return [(s[i], s[(i + 1) % PARTIES]) for i in range(PARTIES)]


def reconstruct(pairs: list[SharePair], *, boolean: bool = False) -> NDArray[np.uint64]:
    """Recombine the pairs of all three parties; refuses inconsistent pairs."""
    if len(pairs) != PARTIES:
        raise ValidationError("replicated sharing needs the pairs of all three parties")
    for i in range(PARTIES):
        if not np.array_equal(pairs[i][1], pairs[(i + 1) % PARTIES][0]):
            raise ValidationError(f"pairs of parties {i} and {(i + 1) % PARTIES} disagree")
    a, b, c = (np.asarray(p[0], dtype=np.uint64) for p in pairs)
    return (a ^ b ^ c) if boolean else (a + b + c)
