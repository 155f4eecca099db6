"""Linear and logistic regression on a secret-shared table (horizontal or vertical split).

The committee holds ``x`` (n, d) and ``y`` (n,) as fixed-point shares: rows of several data
nodes stacked (:func:`metisnet.algorithms.stats.stack_rows`) or columns aligned on a key
(:func:`~metisnet.algorithms.stats.stack_columns` / :func:`metisnet.algorithms.psi.private_join`).

Every fit first **standardises in MPC**: column means, sample variances and their inverse
square roots (:func:`metisnet.algorithms.numeric.inv_sqrt`) stay secret; ``z = (x - mu) / sd``
is well scaled for fixed point whatever the data's units. Coefficients are mapped back to the
original units in MPC before anything is opened.

Linear regression (least squares, optional ridge ``lam``):

* ``method="newton"`` (default) - exact solve in MPC. ``R = z^T z / (n-1)`` is the feature
  correlation matrix (trace ``d``, so ``X_0 = I/d`` is a safe public start) and Newton-Schulz
  ``X <- X (2I - R X)`` (Schulz 1933; Pan and Schreiber 1991) converges quadratically to
  ``R^-1`` after about ``log2(kappa d)`` iterations (default 18: kappa up to ~10^4).
  Only the model is opened. Cost: 4 rounds and ``3 d^2`` bytes per iteration per member.
* ``method="gram"`` - the receivers get the standardised normal equations (the feature
  correlation matrix, the feature-target correlations, means and standard deviations) and
  solve them in the clear: faster, but it releases those statistics besides the model.
* ``method="sgd"`` - mini-batch gradient descent on the standardised data, returning the
  average of the iterates of the second half of the epochs (Polyak and Juditsky 1992).

Logistic regression: mini-batch SGD on the standardised data with the **hard sigmoid**
``s(t) = clip(t/4 + 1/2, 0, 1)`` (the logistic function's tangent at 0, clipped; SecureML,
Mohassel and Zhang, S&P 2017, §4.3, use the same piecewise-linear idea with slope 1). It
costs one batched comparison (9 rounds) and 2 multiplication rounds per mini-batch; a batch
step is about 16 rounds. Batches follow a public order drawn from the committee's public
coins.

The model goes to the receivers ``to`` (:class:`Model`) or stays shared
(:class:`SharedModel`, ``keep_shared=True``) for private scoring with :func:`predict`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from metisnet import mpc
from metisnet.algorithms.common import Receivers, check_min_rows, output
from metisnet.algorithms.numeric import inv_sqrt
from metisnet.algorithms.stats import cross_products, div_public, shared_mean
from metisnet.errors import ShapeError, ValidationError
from metisnet.mpc import MpcContext, SharedArray

__all__ = [
    "Model",
    "SharedModel",
    "hard_sigmoid",
    "linear_regression",
    "logistic_regression",
    "predict",
]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Model:
    """An opened model: ``score = x @ coef + intercept`` (logistic: probability of 1)."""

    coef: F64
    intercept: float
    kind: str

    def decision_function(self, x: NDArray[np.float64]) -> F64:
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept

    def predict(self, x: NDArray[np.float64]) -> F64:
        s = self.decision_function(x)
        return (s > 0).astype(np.float64) if self.kind == "logistic" else s


@dataclass(frozen=True)
class SharedModel:
    """A model that stays secret-shared on the committee (for :func:`predict`)."""

    coef: SharedArray
    intercept: SharedArray
    kind: str


# -- helpers ---------------------------------------------------------------------------------
def _rows(v: SharedArray, n: int) -> SharedArray:
    """A (d,) shared vector broadcast to (n, d)."""
    return v.like(np.ascontiguousarray(np.broadcast_to(v.a, (n, *v.shape))),
                  np.ascontiguousarray(np.broadcast_to(v.b, (n, *v.shape))))


def _check(x: SharedArray, y: SharedArray) -> tuple[int, int]:
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ShapeError(f"need x (n, d) and y (n,), got {x.shape} and {y.shape}")
    if x.frac_bits == 0 or y.frac_bits != x.frac_bits:
        raise ShapeError("x and y must be fixed point at the same scale")
    if x.shape[0] < 3:
        raise ValidationError("regression needs at least 3 rows")
    return x.shape[0], x.shape[1]


@dataclass
class _Scaled:
    z: SharedArray  # (n, d) standardised
    mu: SharedArray  # (d,)
    r: SharedArray  # (d,) 1/sd
    var: SharedArray  # (d,)


def _standardise(ctx: MpcContext, x: SharedArray, var_bits: int) -> _Scaled:
    n = x.shape[0]
    mu = shared_mean(ctx, x)
    dev = x - _rows(mu, n)
    var = div_public(ctx, cross_products(ctx, dev, dev, columnwise=True), n - 1)
    r = inv_sqrt(ctx, var, hi=var_bits)
    return _Scaled(mpc.mul(ctx, dev, _rows(r, n)), mu, r, var)


def _finish(ctx: MpcContext, w_z: SharedArray, scale: SharedArray | None, sx: _Scaled,
            offset: SharedArray, kind: str, to: Receivers, keep_shared: bool
            ) -> Model | SharedModel | None:
    """Map standardised coefficients back: ``w = w_z * scale * r``, ``b = offset - w . mu``."""
    w = mpc.mul(ctx, w_z if scale is None else mpc.mul(ctx, w_z, scale), sx.r)
    b = offset - mpc.dot(ctx, w, sx.mu)
    if keep_shared:
        return SharedModel(w, b, kind)
    opened = output(ctx, mpc.concat([w, b.reshape(1)]), to)
    if opened is None:
        return None
    return Model(opened[:-1].copy(), float(opened[-1]), kind)


def _public_batches(ctx: MpcContext, n: int, batch_size: int) -> list[NDArray[np.int64]]:
    """A public random order of the rows (committee coins), cut into mini-batches."""
    order = np.argsort(ctx.prg_all.uint64(n), kind="stable")
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


# -- linear regression -------------------------------------------------------------------------
def _newton_inverse(ctx: MpcContext, r: SharedArray, iterations: int) -> SharedArray:
    d = r.shape[0]
    eye2 = 2.0 * np.eye(d)
    inv = mpc.public(ctx, np.eye(d) / d)
    for _ in range(iterations):
        inv = mpc.matmul(ctx, inv, (-mpc.matmul(ctx, r, inv)) + eye2)
    return inv


def linear_regression(
    ctx: MpcContext, x: SharedArray, y: SharedArray, *, method: str = "newton",
    lam: float = 0.0, iterations: int = 18, epochs: int = 60, lr: float = 0.1,
    batch_size: int = 32, k: int = 1, var_bits: int = 24, to: Receivers = None,
    keep_shared: bool = False,
) -> Model | SharedModel | None:
    """Least-squares fit ``y ~ x @ coef + intercept`` (see the module doc for ``method``).

    ``lam`` adds ``lam * I`` to the standardised normal equations (ridge). Variances of the
    columns and of ``y`` must lie in ``[2^-f, 2^var_bits)``.
    """
    n, d = _check(x, y)
    check_min_rows(n, k)
    sx = _standardise(ctx, x, var_bits)
    sy = _standardise(ctx, y.reshape(n, 1), var_bits)
    yz = sy.z
    sd_y = mpc.mul(ctx, sy.var, sy.r)  # var / sd, shape (1,)
    if method in ("newton", "gram"):
        corr = div_public(ctx, mpc.matmul(ctx, sx.z.T, sx.z), n - 1)
        if lam:
            corr = corr + lam * np.eye(d)
        c = div_public(ctx, mpc.matmul(ctx, sx.z.T, yz), n - 1)  # (d, 1)
        if method == "gram":
            return _gram_at_receivers(ctx, corr, c, sx, sy, sd_y, to)
        w_z = mpc.matmul(ctx, _newton_inverse(ctx, corr, iterations), c).reshape(d)
    elif method == "sgd":
        w_z = mpc.public(ctx, np.zeros(d))
        total, count = w_z, 0
        for epoch in range(epochs):
            for idx in _public_batches(ctx, n, batch_size):
                zb = sx.z[idx]
                err = mpc.matmul(ctx, zb, w_z.reshape(d, 1)) - yz[idx]
                step = mpc.mul_public(ctx, err, lr / len(idx))
                w_z = w_z - mpc.matmul(ctx, zb.T, step).reshape(d)
                if epoch >= epochs // 2:  # Polyak-Ruppert averaging of the second half
                    total, count = total + w_z, count + 1
        w_z = div_public(ctx, total, count)
    else:
        raise ValidationError(f"unknown method {method!r}: newton, gram or sgd")
    sd = sd_y.like(np.broadcast_to(sd_y.a, (d,)).copy(), np.broadcast_to(sd_y.b, (d,)).copy())
    return _finish(ctx, w_z, sd, sx, sy.mu.reshape(()), "linear", to, keep_shared)


def _gram_at_receivers(ctx: MpcContext, corr: SharedArray, c: SharedArray, sx: _Scaled,
                       sy: _Scaled, sd_y: SharedArray, to: Receivers) -> Model | None:
    d = corr.shape[0]
    parts = mpc.concat([corr.reshape(-1), c.reshape(-1), sx.mu, sx.r, sy.mu, sd_y])
    opened = output(ctx, parts, to)
    if opened is None:
        return None
    r_mat = opened[:d * d].reshape(d, d)
    cv = opened[d * d:d * d + d]
    mu, rx = opened[d * d + d:d * d + 2 * d], opened[d * d + 2 * d:d * d + 3 * d]
    mu_y, sdy = opened[-2], opened[-1]
    w_z = np.linalg.lstsq(r_mat, cv, rcond=None)[0]
    w = w_z * sdy * rx
    return Model(w, float(mu_y - w @ mu), "linear")


# -- logistic regression -----------------------------------------------------------------------
def hard_sigmoid(ctx: MpcContext, t: SharedArray) -> SharedArray:
    """``clip(t/4 + 1/2, 0, 1)`` elementwise: 1 + 9 + 1 rounds."""
    u = mpc.mul_public(ctx, t, 0.25) + 0.5
    flat = u.flatten()
    both = mpc.less_than(ctx, mpc.concat([flat, 1.0 - flat]), 0)  # [u < 0], [u > 1]
    m = flat.size
    lo, hi = both[:m], both[m:]
    # s = u - [u<0] u + [u>1] (1 - u): both products in one round
    prod = mpc.mul_raw(ctx, mpc.concat([lo, hi]), mpc.concat([flat, 1.0 - flat]))
    s = flat - prod[:m] + prod[m:]
    return s.reshape(t.shape)


def logistic_regression(
    ctx: MpcContext, x: SharedArray, y: SharedArray, *, epochs: int = 10,
    batch_size: int = 32, lr: float = 1.0, l2: float = 0.0, k: int = 1,
    var_bits: int = 24, sigmoid: str = "hard", to: Receivers = None,
    keep_shared: bool = False,
) -> Model | SharedModel | None:
    """Mini-batch SGD for ``P(y=1) = s(x @ coef + intercept)``.

    ``sigmoid="hard"`` (default) uses :func:`hard_sigmoid` (about 16 rounds per
    mini-batch); ``"exact"`` uses the engine's logistic function
    :func:`metisnet.mpc.sigmoid` (about 50 rounds more, ~2 KB per element). ``y`` holds 0/1
    (fixed point). ``l2`` adds ``l2 * w`` to the gradient (the standardised weights). Per
    epoch ``ceil(n / batch_size)`` batches. The model is the average of the iterates of the
    second half of the epochs (Polyak and Juditsky 1992), which makes the result far less
    sensitive to the batch order.
    """
    if sigmoid not in ("hard", "exact"):
        raise ValidationError(f"unknown sigmoid {sigmoid!r}: hard or exact")
    act = hard_sigmoid if sigmoid == "hard" else mpc.sigmoid
    n, d = _check(x, y)
    check_min_rows(n, k)
    sx = _standardise(ctx, x, var_bits)
    w = mpc.public(ctx, np.zeros(d))
    b = mpc.public(ctx, np.zeros(1))
    w_sum, b_sum, count = w, b, 0
    for epoch in range(epochs):
        for idx in _public_batches(ctx, n, batch_size):
            zb = sx.z[idx]
            m = len(idx)
            logit = mpc.matmul(ctx, zb, w.reshape(d, 1)).reshape(m) + _rows(b, m).reshape(m)
            err = act(ctx, logit) - y[idx]
            step = mpc.mul_public(ctx, err, lr / m)
            gw = mpc.matmul(ctx, zb.T, step.reshape(m, 1)).reshape(d)
            if l2:
                gw = gw + mpc.mul_public(ctx, w, lr * l2)
            w = w - gw
            b = b - mpc.arith.sum(step).reshape(1)
            if epoch >= epochs // 2:
                w_sum, b_sum, count = w_sum + w, b_sum + b, count + 1
    avg = div_public(ctx, mpc.concat([w_sum, b_sum]), count)
    return _finish(ctx, avg[:d], None, sx, avg[d], "logistic", to, keep_shared)


# -- private scoring ---------------------------------------------------------------------------
def predict(ctx: MpcContext, model: SharedModel, x: SharedArray, *,
            probability: bool = False) -> SharedArray:
    """Scores ``x @ coef + intercept`` under a shared model, kept shared (2 rounds); for a
    logistic model ``probability=True`` applies the hard sigmoid (11 more rounds)."""
    if x.ndim != 2 or x.shape[1] != model.coef.shape[0]:
        raise ShapeError(f"x of shape {x.shape} does not fit {model.coef.shape[0]} coefficients")
    n = x.shape[0]
    s = mpc.matmul(ctx, x, model.coef.reshape(-1, 1)).reshape(n) + _rows(
        model.intercept.reshape(()), n).reshape(n)
    if probability and model.kind == "logistic":
        return hard_sigmoid(ctx, s)
    return s
