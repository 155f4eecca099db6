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
mean       [sum x / N]                            4 * 2^-f
variance   [sum x^2 / N - mean^2]                 (8 max|x| + 8) 2^-f
=========  =====================================  =====================================

``sql`` (:mod:`metisnet.node.sql_task`): its ``params`` carry a query, the tables and their
public schema; each data node deals whole tables (one flattened input per dataset), and the
program cuts them back into tables and runs the query's compiled plan; its output is the
released table (a present flag and the query's aggregates per group).

Rounds per party (semi-honest): count, sum 0; mean 3 (a division by the public N,
:func:`~metisnet.algorithms.stats.div_public`); variance 12 (the sum of squares and the
square of the mean by :func:`~metisnet.algorithms.stats.cross_products`, which never
truncates a large value, so a truncation fails with probability about
``N max|x| 2^(3f/2 - 64)`` per task rather than ``x^2 2^(2f-64)`` per row). For the variance
the data nodes also deal each column's high parts (``split_inputs``), so its sum of
squares truncates no row; in malicious mode that removes a checked product and a carry
circuit per row (about 144 B per row and committee member, measured in
``tests/e2e/test_session.py``). In malicious mode the integrity check before the output
adds its own rounds (see :mod:`metisnet.mpc.malicious`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from metisnet.algorithms.stats import cross_products, div_public
from metisnet.errors import ValidationError
from metisnet.mpc import arith
from metisnet.mpc.context import MpcContext
from metisnet.mpc.shares import SharedArray

__all__ = ["PROGRAMS", "Program", "get_program"]


@dataclass(frozen=True)
class Program:
    """A named secure program with its plaintext reference and error bound."""

    name: str
    #: ``secure(ctx, columns, counts, n, highs)``: ``highs`` holds each column's high
    #: parts when the program has ``split_inputs`` (else it is empty)
    secure: Callable[[MpcContext, Sequence[SharedArray], Sequence[SharedArray], int,
                      Sequence[SharedArray]], SharedArray]
    plain: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    error_bound: Callable[[NDArray[np.float64], int], float]
    integer_output: bool = False
    #: the data nodes also deal each column's high parts
    #: (:func:`metisnet.crypto.fixedpoint.high_part`), so that a sum of squares needs no
    #: truncation per row
    split_inputs: bool = False


def _total(columns: Sequence[SharedArray]) -> SharedArray:
    """Sum of all rows of all columns (local)."""
    sums = [arith.sum(c) for c in columns]
    out = sums[0]
    for s in sums[1:]:
        out = out + s
    return out.reshape((1,))


def _count(ctx: MpcContext, columns: Sequence[SharedArray], counts: Sequence[SharedArray],
           n: int, highs: Sequence[SharedArray] = ()) -> SharedArray:
    return _total(counts)


def _sum(ctx: MpcContext, columns: Sequence[SharedArray], counts: Sequence[SharedArray],
         n: int, highs: Sequence[SharedArray] = ()) -> SharedArray:
    return _total(columns)


def _mean(ctx: MpcContext, columns: Sequence[SharedArray], counts: Sequence[SharedArray],
          n: int, highs: Sequence[SharedArray] = ()) -> SharedArray:
    if n <= 0:
        raise ValidationError("cannot divide by an empty input")
    return div_public(ctx, _total(columns), n)


def _variance(ctx: MpcContext, columns: Sequence[SharedArray], counts: Sequence[SharedArray],
              n: int, highs: Sequence[SharedArray] = ()) -> SharedArray:
    """``E[x^2] - mean^2`` with no truncation of a large value.

    Squaring each value at 2f fractional bits and truncating it (a plain fixed-point
    product) fails with probability ``x^2 2^(2f-64)`` per value, about 2^-19 for
    ``|x| = 100``: a few wrong values in every 10^6 rows. The sum of squares and the
    square of the mean use :func:`~metisnet.algorithms.stats.cross_products` (a hi/lo
    split, only small values truncated) and both moments
    :func:`~metisnet.algorithms.stats.div_public`. The data nodes deal each column's high
    parts too (``split_inputs``), so the sum of squares truncates no row: in malicious
    mode each truncation is a checked product and a carry circuit, most of the cost.
    """
    if n <= 0:
        raise ValidationError("cannot divide by an empty input")
    every = arith.concat(list(columns)) if len(columns) > 1 else columns[0]
    col = every.reshape((every.shape[0], 1))
    split = None
    if highs:  # dealt by the data nodes: no row is truncated
        if len(highs) != len(columns):
            raise ValidationError(f"{len(highs)} high parts for {len(columns)} columns")
        hi = (arith.concat(list(highs)) if len(highs) > 1 else highs[0]).reshape(col.shape)
        split = (hi, hi)
    sumsq = cross_products(ctx, col, col, columnwise=True, highs=split).reshape((1,))
    moments = div_public(ctx, arith.concat([_total([every]), sumsq]), n)  # [mean, E[x^2]]
    mean = moments[0:1].reshape((1, 1))
    return moments[1:2] - cross_products(ctx, mean, mean, columnwise=True).reshape((1,))


def _err_sum(x: NDArray[np.float64], f: int) -> float:
    return float(x.size) * 2.0 ** -(f + 1)


def _err_mean(x: NDArray[np.float64], f: int) -> float:
    return 4.0 * 2.0**-f  # encoding (half an ulp) and div_public (below 3 ulps)


def _err_variance(x: NDArray[np.float64], f: int) -> float:
    # E[x^2]: encoding max|x| u + division 3u; mean^2: 2 |mean| 3.5u + product 2u
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (8.0 * m + 8.0) * 2.0**-f


PROGRAMS: dict[str, Program] = {
    p.name: p
    for p in (
        Program("count", _count, lambda x: np.array([float(x.size)]), lambda x, f: 0.0,
                integer_output=True),
        Program("sum", _sum, lambda x: np.array([x.sum()]), _err_sum),
        Program("mean", _mean, lambda x: np.array([x.mean()]), _err_mean),
        Program("variance", _variance, lambda x: np.array([x.var()]), _err_variance,
                split_inputs=True),
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
