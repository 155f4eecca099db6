"""The programs a task may name, run by the committee on secret-shared inputs.

Each data node contributes, per input of the task spec, one column (a fixed-point vector
of its rows) and its row count (an integer scalar); the committee sees only shares. A
program maps those shares to one shared output vector, which is released only to the
task's receivers. Every program also has a plaintext reference, used by tests and by
``metis demo`` to show the secure result beside the answer, and a stated error bound.

Programs (population statistics over the union of all inputs' rows):

=========  =====================================  =====================================
program    output                                 error bound (f fractional bits)
=========  =====================================  =====================================
count      [N]                                    exact
sum        [sum x]                                N * 2^-(f+1) (encoding of each value)
mean       [sum x / N]                            3 * 2^-f + |mean| * 2^-24
variance   [sum x^2 / N - mean^2]                 (6 max|x| + 8) 2^-f + 2 E[x^2] 2^-24
=========  =====================================  =====================================

``sql`` (:mod:`metisnet.node.sql_task`): its ``params`` carry a query, the tables and their
public schema; each data node deals whole tables (one flattened input per dataset), and the
program cuts them back into tables and runs the query's compiled plan; its output is the
released table (a present flag and the query's aggregates per group).

Rounds per party (semi-honest): count, sum 0; mean 2; variance 6 (square and truncate,
divide both moments by the public N, square the mean). Valid while the mean and the mean
of squares stay below 2^23 in magnitude. In malicious mode the integrity check before the
output adds its own rounds (see :mod:`metisnet.mpc.malicious`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import ValidationError
from metisnet.mpc import arith
from metisnet.mpc.context import MpcContext
from metisnet.mpc.shares import SharedArray

__all__ = ["PROGRAMS", "Program", "get_program"]


@dataclass(frozen=True)
class Program:
    """A named secure program with its plaintext reference and error bound."""

    name: str
    secure: Callable[[MpcContext, Sequence[SharedArray], Sequence[SharedArray], int],
                     SharedArray]
    plain: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    error_bound: Callable[[NDArray[np.float64], int], float]
    integer_output: bool = False


def _total(columns: Sequence[SharedArray]) -> SharedArray:
    """Sum of all rows of all columns (local)."""
    sums = [arith.sum(c) for c in columns]
    out = sums[0]
    for s in sums[1:]:
        out = out + s
    return out.reshape((1,))


def _count(ctx: MpcContext, columns: Sequence[SharedArray], counts: Sequence[SharedArray],
           n: int) -> SharedArray:
    return _total(counts)


def _sum(ctx: MpcContext, columns: Sequence[SharedArray], counts: Sequence[SharedArray],
         n: int) -> SharedArray:
    return _total(columns)


#: Fractional bits of the public factor 2^t / N in :func:`_divide_public`.
_K_BITS = 24


def _divide_public(ctx: MpcContext, total: SharedArray, n: int) -> SharedArray:
    """``total / n`` for a public count ``n``, accurate even for millions of rows.

    Encoding ``1/n`` at f bits would lose most of its digits (1/10^6 is 16 units at
    f = 16). Instead, with ``t = ceil(log2 n)``: truncate ``total`` by ``t`` bits (read it
    as carrying ``f + t`` fractional bits), multiply locally by the integer
    ``k = round(2^(K + t) / n)`` (so ``2^t / n`` in (1/2, 1] carries K = 24 bits), and
    truncate by K. Cost: 2 rounds (two truncations). Error: below
    ``2 * 2^-f + |total / n| * 2^-K``; valid while ``|total / n| < 2^(63 - f - K) = 2^23``.
    """
    if n <= 0:
        raise ValidationError("cannot divide by an empty input")
    t = max(1, (n - 1).bit_length())
    f = total.frac_bits
    shifted = arith.trunc(ctx, total.like(total.a, total.b, frac_bits=f + t), t)
    k = round(2.0 ** (_K_BITS + t) / n)
    scaled = shifted * k
    return arith.trunc(ctx, scaled.like(scaled.a, scaled.b, frac_bits=f + _K_BITS), _K_BITS)


def _mean(ctx: MpcContext, columns: Sequence[SharedArray], counts: Sequence[SharedArray],
          n: int) -> SharedArray:
    return _divide_public(ctx, _total(columns), n)


def _variance(ctx: MpcContext, columns: Sequence[SharedArray], counts: Sequence[SharedArray],
              n: int) -> SharedArray:
    every = arith.concat(list(columns)) if len(columns) > 1 else columns[0]
    squares = arith.mul(ctx, every, every)  # truncated per element: sum fits the ring
    pair = arith.concat([_total([every]), _total([squares])])
    scaled = _divide_public(ctx, pair, n)  # [mean, E[x^2]] together
    mean, second = scaled[0:1], scaled[1:2]
    return second - arith.mul(ctx, mean, mean)


def _err_sum(x: NDArray[np.float64], f: int) -> float:
    return float(x.size) * 2.0 ** -(f + 1)


def _err_mean(x: NDArray[np.float64], f: int) -> float:
    mean = abs(float(x.mean())) if x.size else 0.0
    return 3.0 * 2.0**-f + mean * 2.0**-_K_BITS


def _err_variance(x: NDArray[np.float64], f: int) -> float:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    second = float(np.mean(x * x)) if x.size else 0.0
    return (6.0 * m + 8.0) * 2.0**-f + 2.0 * second * 2.0**-_K_BITS


PROGRAMS: dict[str, Program] = {
    p.name: p
    for p in (
        Program("count", _count, lambda x: np.array([float(x.size)]), lambda x, f: 0.0,
                integer_output=True),
        Program("sum", _sum, lambda x: np.array([x.sum()]), _err_sum),
        Program("mean", _mean, lambda x: np.array([x.mean()]), _err_mean),
        Program("variance", _variance, lambda x: np.array([x.var()]), _err_variance),
    )
}


def get_program(name: str, params: dict[str, Any] | None = None) -> Program:
    """The program called ``name``; a clear error names the ones that exist.

    ``sql`` checks its params (the query is parsed and planned): an unsupported query or
    malformed params raise :class:`~metisnet.errors.ValidationError`."""
    if name == "sql":
        from metisnet.node.sql_task import program  # sql_task imports the session

        return program(params or {})
    prog = PROGRAMS.get(name)
    if prog is None:
        raise ValidationError(
            f"unknown program {name!r}; available: {', '.join(sorted([*PROGRAMS, 'sql']))}")
    if params:
        raise ValidationError(f"program {name!r} takes no parameters")
    return prog
