"""Freivalds' check that ``A @ B == C`` in O(n^2) per repetition instead of O(n^3).

R. Freivalds, "Probabilistic machines can use less running time" (IFIP 1977): draw a random
vector ``r`` and compare ``A @ (B @ r)`` with ``C @ r``.

* Over the integers (``modulus=None``) with ``r`` uniform in ``[0, 2^r_bits)^k``: if
  ``D = A @ B - C`` has a non-zero row, fixing all coordinates of ``r`` but one leaves at
  most one bad value, so one repetition errs with probability at most ``2^-r_bits``, and
  ``reps`` independent ones with ``2^-(r_bits * reps)``. The default (``r_bits=1``, i.e.
  ``r`` in {0,1}^k, 40 repetitions) is the textbook 2^-40; ``r_bits=20, reps=2`` gives the
  same bound with 20x less work.
* Modulo ``2^64`` (the MPC ring): zero divisors make a single repetition err with
  probability up to 1/2 whatever ``r_bits`` is (``D = 2^63 * E`` vanishes for every even
  ``r``); use ``r_bits=1`` reasoning: error ``2^-reps``.
* Modulo a prime ``p``: ``r`` uniform in Z_p errs with probability ``1/p`` per repetition.

Arithmetic is exact: numpy ``int64`` when a bound on every intermediate fits, Python
integers (object arrays) otherwise. Cost per repetition: three matrix-vector products.
"""

from __future__ import annotations

import math

import gmpy2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from metisnet.crypto.prg import Csprng
from metisnet.errors import ShapeError, ValidationError

__all__ = ["freivalds_check", "freivalds_error_bound"]


def freivalds_error_bound(reps: int, r_bits: int = 1, modulus: int | None = None) -> float:
    """An upper bound on the probability that a wrong product passes."""
    if modulus is None:
        return 2.0 ** (-(r_bits * reps))
    _check_modulus(modulus)
    if modulus & (modulus - 1) == 0:  # power of two: zero divisors
        return 2.0 ** (-reps)
    # prime: at most one bad value of a coordinate among min(2^r_bits, p) distinct ones
    return max(2.0 ** (-r_bits), 1.0 / modulus) ** reps


def _check_modulus(m: int) -> None:
    if m < 2 or not (m & (m - 1) == 0 or gmpy2.is_prime(m, 32)):
        raise ValidationError("Freivalds modulus must be a prime or a power of two")


def _as_matrix(x: ArrayLike, name: str) -> NDArray[np.object_]:
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be a matrix")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8:
        arr = arr.astype(object)
    elif arr.dtype.kind not in "iuO":
        raise ValidationError(f"{name} must hold integers")
    return arr


def _max_abs(a: NDArray[np.object_]) -> int:
    return max((abs(int(v)) for v in a.flat), default=0)


def freivalds_check(a: ArrayLike, b: ArrayLike, c: ArrayLike, *, reps: int = 40,
                    r_bits: int = 1, modulus: int | None = None,
                    rng: Csprng | None = None) -> bool:
    """Whether ``a @ b == c`` (modulo ``modulus`` if given), with one-sided error
    :func:`freivalds_error_bound` ``(reps, r_bits, modulus)``: a true product always passes."""
    A, B, C = _as_matrix(a, "a"), _as_matrix(b, "b"), _as_matrix(c, "c")
    if A.shape[1] != B.shape[0] or C.shape != (A.shape[0], B.shape[1]):
        raise ShapeError(f"shapes {A.shape} @ {B.shape} != {C.shape}")
    if reps < 1 or not 1 <= r_bits <= 62:
        raise ValidationError("reps >= 1 and 1 <= r_bits <= 62 required")
    if modulus is not None:
        _check_modulus(modulus)
    rng = rng or Csprng()
    k = B.shape[1]
    bound_r = (1 << r_bits) - 1
    ma, mb, mc = _max_abs(A), _max_abs(B), _max_abs(C)
    br = mb * bound_r * k
    fits = max(ma * br * A.shape[1], mc * bound_r * k, br) < 2**62
    dtype: type = np.int64 if fits and modulus is None else object
    if dtype is np.int64:
        A, B, C = A.astype(np.int64), B.astype(np.int64), C.astype(np.int64)
    else:
        A, B, C = A.astype(object), B.astype(object), C.astype(object)
    for _ in range(reps):
        r = rng.below(bound_r + 1, k).astype(np.int64)
        if dtype is not np.int64:
            r = r.astype(object)
        left = A.dot(B.dot(r))
        right = C.dot(r)
        if modulus is not None:
            left = np.mod(left, modulus)
            right = np.mod(right, modulus)
        if not np.array_equal(left, right):
            return False
    return True


def reps_for(bits: int, r_bits: int = 1) -> int:
    """Repetitions for an error of at most ``2^-bits`` over the integers."""
    return math.ceil(bits / r_bits)
