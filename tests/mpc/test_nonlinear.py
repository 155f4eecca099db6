"""Fixed-point nonlinear functions on both channels, against float64 with stated bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metisnet import mpc
from metisnet.crypto.fixedpoint import FixedPoint
from metisnet.mpc import MpcContext, nonlinear

F = FixedPoint(16)
ULP = F.resolution
SETTINGS = settings(max_examples=15, deadline=None)


def _enc(v: np.ndarray) -> np.ndarray:
    return F.decode(F.encode(v))


def prog_unary(ctx: MpcContext, v: np.ndarray, name: str) -> Any:
    x = mpc.share(ctx, v if ctx.party == 0 else None, owner=0, shape=v.shape)
    return mpc.reveal(ctx, getattr(nonlinear, name)(ctx, x))


def prog_divide(ctx: MpcContext, u: np.ndarray, v: np.ndarray) -> Any:
    x = mpc.share(ctx, u if ctx.party == 1 else None, owner=1, shape=u.shape)
    y = mpc.share(ctx, v if ctx.party == 2 else None, owner=2, shape=v.shape)
    return mpc.reveal(ctx, nonlinear.divide(ctx, x, y))


def log_uniform(lo: float, hi: float) -> Any:
    return st.floats(np.log2(lo), np.log2(hi)).map(lambda e: float(2.0**e))


SIZES = st.integers(1, 40)


def arrays(elements: Any, n: Any = SIZES) -> Any:
    return n.flatmap(lambda k: hnp.arrays(np.float64, k, elements=elements))


EDGE_RECIP = np.array([ULP, -ULP, 1.0, -1.0, 2.0**16 - ULP, -(2.0**16 - ULP), 0.5, 3.0])


class TestNonlinear:
    """Each function on both channels; Hypothesis inputs across the whole stated domain."""

    @SETTINGS
    @given(v=arrays(log_uniform(ULP, 2.0**16 - 1).flatmap(
        lambda a: st.sampled_from([a, -a]))))
    def test_reciprocal(self, channel: Any, v: np.ndarray) -> None:
        v = np.concatenate([_enc(v), EDGE_RECIP])
        v = v[v != 0]
        r = channel.run(prog_unary, v, "reciprocal")[0]
        assert np.all(np.abs(r - 1 / v) <= 4 * ULP * np.maximum(1, np.abs(1 / v)))

    @SETTINGS
    @given(u=arrays(st.floats(-1000, 1000), st.just(12)),
           v=arrays(log_uniform(2.0**-4, 2.0**12), st.just(12)))
    def test_divide(self, channel: Any, u: np.ndarray, v: np.ndarray) -> None:
        u, v = _enc(u), _enc(v)
        r = channel.run(prog_divide, u, v)[1]
        bound = np.abs(u) * 4 * ULP * np.maximum(1, 1 / v) + 2 * ULP
        assert np.all(np.abs(r - u / v) <= bound)

    @SETTINGS
    @given(v=arrays(st.just(0.0) | log_uniform(ULP, 2.0**21 - 1)))
    def test_sqrt(self, channel: Any, v: np.ndarray) -> None:
        v = np.concatenate([_enc(v), [0.0, ULP, 1.0, 2.0**21 - 1]])
        r = channel.run(prog_unary, v, "sqrt")[2]
        assert np.all(np.abs(r - np.sqrt(v)) <= 4 * ULP * np.maximum(1, np.sqrt(v)))

    @SETTINGS
    @given(v=arrays(st.floats(-40.0, 17.25)))
    def test_exp(self, channel: Any, v: np.ndarray) -> None:
        v = np.concatenate([_enc(v), [0.0, -11.8, -1e6, 17.25, ULP, -ULP]])
        r = channel.run(prog_unary, v, "exp")[0]
        assert np.all(np.abs(r - np.exp(v)) <= 8 * ULP * np.maximum(1, np.exp(v)))

    @SETTINGS
    @given(v=arrays(log_uniform(ULP, 2.0**21 - 1)))
    def test_log(self, channel: Any, v: np.ndarray) -> None:
        v = np.concatenate([_enc(v), [ULP, 1.0, 2.0**21 - 1]])
        r = channel.run(prog_unary, v, "log")[1]
        assert np.all(np.abs(r - np.log(v)) <= 4 * ULP)

    @SETTINGS
    @given(v=arrays(st.floats(-(2.0**40), 2.0**40) | st.floats(-20, 20)))
    def test_sigmoid(self, channel: Any, v: np.ndarray) -> None:
        v = np.concatenate([_enc(v), [0.0, ULP, -ULP, 2.0**46, -(2.0**46)]])
        r = channel.run(prog_unary, v, "sigmoid")[2]
        want = 1 / (1 + np.exp(-np.clip(v, -700, 700)))
        assert np.all(np.abs(r - want) <= 2 * ULP)
