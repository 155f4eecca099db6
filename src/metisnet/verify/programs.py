"""The linear programs a compute node runs on Paillier ciphertexts, and their MAC checks.

An owner's input is a row-major ``rows x cols`` block of integers (fixed-point encodings),
value ``x[r*cols + c]`` at index ``r*cols + c``. Every program is linear,
``y_k = sum_i W[k, i] * x_i + offset_k``, so the compute node evaluates it twice, on the
value ciphertexts and on the tag ciphertexts (without the offset), and the verifier checks
``tau_k = a*(y_k - offset_k) + sum_i W[k, i] b_i`` (see :mod:`metisnet.verify.mac`).

=============  =====================================  ==================================
kind           outputs                                verifier's work besides decryption
=============  =====================================  ==================================
sum            ``sum(x)``                             word sums of the PRF stream
colsum         ``cols`` column sums                   word sums per column
weighted_sum   ``sum(w_i x_i)``, ``len(w) = N``       N small-by-big products
matvec         ``M @ x``, ``M`` of shape ``(m, N)``   ``M^T rho`` and N products
score          ``X @ w + offset`` per row             one product per input
=============  =====================================  ==================================

For ``matvec`` and ``score`` the ``m`` output checks are batched Freivalds-style: with
``rho`` uniform in ``[0, 2^64)^m`` the verifier tests
``sum_k rho_k (tau_k - a (y_k - offset_k)) = sum_i (W^T rho)_i b_i (mod n)``; a non-zero
residual survives with probability at most 2^-64 (each ``rho_k`` is below both primes of
``n``), so the total soundness error stays below 2^-63. Mean and variance are ``sum`` /
``colsum`` over ``[x, x^2]`` with post-processing by the receiver.

Evaluation cost (ciphertext operations, values and tags together): ``2N`` multiplications
mod ``n^2`` for sums; ``2N`` exponentiations by the weights otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
from gmpy2 import mpz

from metisnet.crypto.prg import Csprng
from metisnet.errors import ShapeError, ValidationError
from metisnet.he.paillier import PaillierPublicKey
from metisnet.verify.mac import MacKey

__all__ = ["KINDS", "LinearProgram"]

KINDS = ("sum", "colsum", "weighted_sum", "matvec", "score")


def _ints(xs: Sequence[Any]) -> tuple[int, ...]:
    out = []
    for x in xs:
        if isinstance(x, bool) or not isinstance(x, int):
            try:
                v = int(x)
            except (TypeError, ValueError) as exc:
                raise ValidationError("program weights must be integers") from exc
            if v != x:
                raise ValidationError("program weights must be integers (encode reals first)")
            x = v
        out.append(int(x))
    return tuple(out)


@dataclass(frozen=True)
class LinearProgram:
    """A public linear program. Weights are integers with ``weight_scale`` fractional bits
    (use :meth:`from_reals` for real weights); ``offset`` is in the output's scale."""

    kind: str
    weights: tuple[int, ...] = ()
    matrix: tuple[tuple[int, ...], ...] = ()
    offset: int = 0
    weight_scale: int = 0
    _digest: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValidationError(f"unknown program kind {self.kind!r}; one of {KINDS}")
        object.__setattr__(self, "weights", _ints(self.weights))
        object.__setattr__(self, "matrix", tuple(_ints(r) for r in self.matrix))
        if isinstance(self.offset, bool) or not isinstance(self.offset, int):
            raise ValidationError("offset must be an integer")
        if self.kind in ("weighted_sum", "score") and not self.weights:
            raise ValidationError(f"{self.kind} needs weights")
        if self.kind == "matvec" and (not self.matrix
                                      or len({len(r) for r in self.matrix}) != 1):
            raise ValidationError("matvec needs a non-empty rectangular matrix")
        if self.offset and self.kind != "score":
            raise ValidationError("only score takes an offset")
        if not 0 <= self.weight_scale <= 64:
            raise ValidationError("weight_scale must be in [0, 64]")
        object.__setattr__(self, "_digest", hashlib.sha256(
            b"metisnet/program/v1" + msgpack.packb(self.to_dict(), use_bin_type=True)
        ).digest())

    @classmethod
    def sum(cls) -> LinearProgram:
        return cls("sum")

    @classmethod
    def colsum(cls) -> LinearProgram:
        return cls("colsum")

    @classmethod
    def from_reals(cls, kind: str, *, weights: Sequence[float] = (),
                   matrix: Sequence[Sequence[float]] = (), offset: float = 0.0,
                   weight_frac_bits: int = 16, data_frac_bits: int = 16) -> LinearProgram:
        """Real weights in fixed point with ``weight_frac_bits``; the offset is encoded in
        the output scale ``data_frac_bits + weight_frac_bits``."""
        s = 1 << weight_frac_bits
        return cls(kind, weights=tuple(round(w * s) for w in weights),
                   matrix=tuple(tuple(round(v * s) for v in row) for row in matrix),
                   offset=round(offset * float(1 << (weight_frac_bits + data_frac_bits))),
                   weight_scale=weight_frac_bits)

    # -- identity --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """msgpack-compatible; weights that do not fit 64 bits go as decimal strings."""
        def enc(v: int) -> int | str:
            return v if -(2**63) <= v < 2**63 else str(v)
        return {"kind": self.kind, "weights": [enc(w) for w in self.weights],
                "matrix": [[enc(v) for v in r] for r in self.matrix],
                "offset": enc(self.offset), "weight_scale": self.weight_scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinearProgram:
        try:
            return cls(str(d["kind"]), weights=tuple(int(w) for w in d["weights"]),
                       matrix=tuple(tuple(int(v) for v in r) for r in d["matrix"]),
                       offset=int(d["offset"]), weight_scale=int(d["weight_scale"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError("malformed program message") from exc

    @property
    def digest(self) -> bytes:
        return self._digest

    # -- shape ---------------------------------------------------------------------------
    def output_count(self, rows: int, cols: int) -> int:
        self.check_layout(rows, cols)
        return {"sum": 1, "colsum": cols, "weighted_sum": 1, "matvec": len(self.matrix),
                "score": rows}[self.kind]

    def check_layout(self, rows: int, cols: int) -> None:
        n = rows * cols
        if rows < 1 or cols < 1:
            raise ShapeError("an input block needs at least one row and one column")
        if self.kind == "weighted_sum" and len(self.weights) != n:
            raise ShapeError(f"weighted_sum has {len(self.weights)} weights for {n} values")
        if self.kind == "matvec" and len(self.matrix[0]) != n:
            raise ShapeError(f"matvec matrix has {len(self.matrix[0])} columns for {n} values")
        if self.kind == "score" and len(self.weights) != cols:
            raise ShapeError(f"score has {len(self.weights)} weights for {cols} columns")

    def output_scales(self, scales: Sequence[int], rows: int, cols: int) -> list[int]:
        """Fractional bits of each output, given the input columns' scales."""
        m = self.output_count(rows, cols)
        if self.kind == "colsum":
            return list(scales)
        if len(set(scales)) != 1:
            raise ShapeError(f"{self.kind} needs all input columns in one scale")
        return [scales[0] + self.weight_scale] * m

    # -- the compute node's side --------------------------------------------------------
    def evaluate(self, key: PaillierPublicKey, cts: Sequence[mpz], rows: int, cols: int,
                 *, with_offset: bool) -> list[mpz]:
        """The program on raw ciphertexts (``with_offset=False`` for the tag ciphertexts)."""
        self.check_layout(rows, cols)
        if len(cts) != rows * cols:
            raise ShapeError("ciphertext count does not match the layout")
        k = self.kind
        if k == "sum":
            return [key.raw_sum(cts)]
        if k == "colsum":
            return [key.raw_sum(cts[c::cols]) for c in range(cols)]
        if k == "weighted_sum":
            return [key.raw_weighted_sum(cts, self.weights)]
        if k == "matvec":
            return [key.raw_weighted_sum(cts, row) for row in self.matrix]
        out = []
        for r in range(rows):
            c = key.raw_weighted_sum(cts[r * cols:(r + 1) * cols], self.weights)
            if with_offset and self.offset:
                c = key.raw_add_plain(c, self.offset)
            out.append(c)
        return out

    def plain(self, xs: Sequence[int], rows: int, cols: int) -> list[int]:
        """The same program on plaintext integers (the reference)."""
        self.check_layout(rows, cols)
        k = self.kind
        if k == "sum":
            return [sum(xs)]
        if k == "colsum":
            return [sum(xs[c::cols]) for c in range(cols)]
        if k == "weighted_sum":
            return [sum(w * x for w, x in zip(self.weights, xs, strict=True))]
        if k == "matvec":
            return [sum(w * x for w, x in zip(row, xs, strict=True)) for row in self.matrix]
        return [sum(w * x for w, x in zip(self.weights, xs[r * cols:(r + 1) * cols],
                                          strict=True)) + self.offset for r in range(rows)]

    # -- the verifier's side ----------------------------------------------------------
    def offsets(self, rows: int, cols: int) -> list[int]:
        return [self.offset if self.kind == "score" else 0] * self.output_count(rows, cols)

    def b_single(self, mac: MacKey, k: int, rows: int, cols: int) -> mpz:
        """``sum_i W[k, i] b_i mod n`` for output ``k`` alone (used for evidence)."""
        kind = self.kind
        if kind == "sum":
            return mac.b_sum(0, rows * cols)
        if kind == "colsum":
            return mac.b_strided_sums(0, rows * cols, cols)[k]
        if kind == "weighted_sum":
            return mac.b_weighted(0, self.weights)
        if kind == "matvec":
            return mac.b_weighted(0, self.matrix[k])
        return mac.b_weighted(k * cols, self.weights)

    def check(self, mac: MacKey, ys: Sequence[int], taus: Sequence[int], rows: int, cols: int,
              *, rng: Csprng | None = None) -> bool:
        """Whether every output passes its MAC check (batched for matvec and score)."""
        m = self.output_count(rows, cols)
        if len(ys) != m or len(taus) != m:
            return False
        offs = self.offsets(rows, cols)
        kind = self.kind
        if kind == "sum" or kind == "weighted_sum":
            return mac.check(ys[0], taus[0], self.b_single(mac, 0, rows, cols), offs[0])
        if kind == "colsum":
            bs = mac.b_strided_sums(0, rows * cols, cols)
            return all(mac.check(y, t, b) for y, t, b in zip(ys, taus, bs, strict=True))
        rho = (rng or Csprng()).uint64(m).tolist()
        lhs = mpz(0)
        for r, y, t, o in zip(rho, ys, taus, offs, strict=True):
            lhs += r * mac.residual(y, t, 0, o)
        # v = W^T rho, then sum_i v_i B_i
        if kind == "matvec":
            v = [sum(r * row[i] for r, row in zip(rho, self.matrix, strict=True))
                 for i in range(rows * cols)]
        else:
            v = [r * w for r in rho for w in self.weights]
        bs = mac.b_raw(0, rows * cols)
        rhs = mpz(0)
        for vi, bi in zip(v, bs, strict=True):
            if vi:
                rhs += vi * bi
        return bool((lhs - rhs) % mac.n == 0)

    def failing_outputs(self, mac: MacKey, ys: Sequence[int], taus: Sequence[int],
                        rows: int, cols: int) -> list[int]:
        """The outputs whose own check fails (slow path, after :meth:`check` failed)."""
        offs = self.offsets(rows, cols)
        return [k for k, (y, t) in enumerate(zip(ys, taus, strict=True))
                if not mac.check(y, t, self.b_single(mac, k, rows, cols), offs[k])]
