"""Regressions on scikit-learn's bundled data split across 3 data nodes, against scikit-learn
on held-out rows: R^2 / accuracy within 1 point."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from metisnet.algorithms import regression, stats
from metisnet.algorithms.common import deal, receive
from metisnet.crypto.prg import Csprng
from metisnet.mpc import MpcContext


def deal_horizontal(x: np.ndarray, y: np.ndarray) -> list[Any]:
    """Three data nodes, each with a block of rows (features and label)."""
    xy = np.column_stack([x, y])
    return [deal(p, Csprng(bytes([3, i]) * 8)) for i, p in enumerate(np.array_split(xy, 3))]


def deal_vertical(x: np.ndarray, y: np.ndarray) -> list[Any]:
    """Three data nodes, each with some columns of the same (aligned) rows; node 2 has y."""
    cols = np.array_split(np.arange(x.shape[1]), 3)
    parts = [x[:, cols[0]], x[:, cols[1]], np.column_stack([x[:, cols[2]], y])]
    return [deal(p, Csprng(bytes([4, i]) * 8)) for i, p in enumerate(parts)]


def xy_horizontal(ctx: MpcContext, dealt: Any) -> Any:
    t = stats.stack_rows([receive(ctx, d[ctx.party]) for d in dealt])
    return t[:, :-1], t[:, -1]


def xy_vertical(ctx: MpcContext, dealt: Any) -> Any:
    t = stats.stack_columns([receive(ctx, d[ctx.party]) for d in dealt])
    return t[:, :-1], t[:, -1]


def prog_linear(ctx: MpcContext, dealt: Any, vertical: bool, method: str) -> Any:
    x, y = (xy_vertical if vertical else xy_horizontal)(ctx, dealt)
    return regression.linear_regression(ctx, x, y, method=method, to=0)


def prog_logistic(ctx: MpcContext, dealt: Any, vertical: bool, epochs: int,
                  sigmoid: str = "hard") -> Any:
    x, y = (xy_vertical if vertical else xy_horizontal)(ctx, dealt)
    return regression.logistic_regression(ctx, x, y, epochs=epochs, sigmoid=sigmoid, to=[0, 1])


def prog_shared_scoring(ctx: MpcContext, dealt: Any, test_dealt: Any) -> Any:
    x, y = xy_horizontal(ctx, dealt)
    model = regression.linear_regression(ctx, x, y, keep_shared=True)
    assert isinstance(model, regression.SharedModel)
    xt = receive(ctx, test_dealt[ctx.party])
    return stats.output(ctx, regression.predict(ctx, model, xt), 2)


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, ...]:
    x, y = load_diabetes(return_X_y=True)
    return tuple(train_test_split(x, y, test_size=0.25, random_state=0))


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, ...]:
    x, y = load_breast_cancer(return_X_y=True)
    return tuple(train_test_split(x, y, test_size=0.25, random_state=1, stratify=y))


@pytest.mark.parametrize(("vertical", "method"),
                         [(False, "newton"), (True, "newton"), (False, "gram"), (False, "sgd")])
def test_linear_regression_r2_within_one_point(threads: Any, diabetes: Any, vertical: bool,
                                                method: str) -> None:
    xtr, xte, ytr, yte = diabetes
    deal_fn = deal_vertical if vertical else deal_horizontal
    out = threads.run(prog_linear, deal_fn(xtr, ytr), vertical, method)
    assert out[1] is None and out[2] is None  # the model went to member 0 only
    model = out[0]
    ref = LinearRegression().fit(xtr, ytr)
    ours = r2_score(yte, model.predict(xte))
    theirs = ref.score(xte, yte)
    assert ours >= theirs - 0.01, (ours, theirs)
    if method != "sgd":
        np.testing.assert_allclose(model.coef, ref.coef_, rtol=0.02, atol=2.0)


@pytest.mark.parametrize(("vertical", "sigmoid"), [(False, "hard"), (True, "hard"),
                                                   (False, "exact")])
def test_logistic_regression_accuracy_within_one_point(threads: Any, cancer: Any,
                                                        vertical: bool, sigmoid: str) -> None:
    xtr, xte, ytr, yte = cancer
    deal_fn = deal_vertical if vertical else deal_horizontal
    out = threads.run(prog_logistic, deal_fn(xtr, ytr), vertical, 10, sigmoid)
    assert out[2] is None
    model = out[0]
    np.testing.assert_allclose(out[1].coef, model.coef)
    ref = make_pipeline(StandardScaler(), LogisticRegression()).fit(xtr, ytr)
    ours = float(np.mean(model.predict(xte) == yte))
    theirs = ref.score(xte, yte)
    assert ours >= theirs - 0.01, (ours, theirs)


def test_shared_model_scores_privately(threads: Any, diabetes: Any) -> None:
    xtr, xte, ytr, yte = diabetes
    test_dealt = deal(xte, Csprng(b"t" * 16))
    out = threads.run(prog_shared_scoring, deal_horizontal(xtr, ytr), test_dealt)
    assert out[0] is None and out[1] is None
    ref = LinearRegression().fit(xtr, ytr).predict(xte)
    assert r2_score(yte, out[2]) >= r2_score(yte, ref) - 0.01


def test_linear_regression_in_malicious_mode(malicious_threads: Any, diabetes: Any) -> None:
    xtr, xte, ytr, yte = diabetes
    model = malicious_threads.run(prog_linear, deal_horizontal(xtr, ytr), False, "newton")[0]
    ref = LinearRegression().fit(xtr, ytr)
    assert r2_score(yte, model.predict(xte)) >= ref.score(xte, yte) - 0.01


def prog_join_then_fit(ctx: MpcContext, inputs: Any) -> Any:
    from metisnet.algorithms import psi

    joined = psi.private_join(ctx, [node[ctx.party] for node in inputs])
    x, y = joined.rows[:, :-1], joined.rows[:, -1]
    return joined.size, regression.linear_regression(ctx, x, y, to=1)


def test_vertical_split_joined_by_private_set_intersection(threads: Any, diabetes: Any) -> None:
    from metisnet.algorithms import psi

    xtr, xte, ytr, yte = diabetes
    ids = np.arange(10_000, 10_000 + len(xtr)) * 7919  # a shared customer id
    keep0 = np.arange(len(xtr)) % 10 != 3  # each node misses some customers
    keep1 = np.arange(len(xtr)) % 10 != 6
    key = b"k" * 16
    inputs = [psi.prepare(ids[keep0], key, Csprng(b"0" * 16), payload=xtr[keep0, :5]),
              psi.prepare(ids[keep1][::-1], key, Csprng(b"1" * 16),
                          payload=np.column_stack([xtr[keep1, 5:], ytr[keep1]])[::-1])]
    out = threads.run(prog_join_then_fit, inputs)
    both = keep0 & keep1
    assert out[0][0] == both.sum()
    model = out[1][1]
    ref = LinearRegression().fit(xtr[both], ytr[both])
    assert r2_score(yte, model.predict(xte)) >= ref.score(xte, yte) - 0.01
    np.testing.assert_allclose(model.coef, ref.coef_, rtol=0.02, atol=2.0)


def prog_logistic_shared(ctx: MpcContext, dealt: Any, test_dealt: Any) -> Any:
    x, y = xy_horizontal(ctx, dealt)
    model = regression.logistic_regression(ctx, x, y, epochs=4, keep_shared=True)
    assert isinstance(model, regression.SharedModel)
    xt = receive(ctx, test_dealt[ctx.party])
    return stats.output(ctx, regression.predict(ctx, model, xt, probability=True), 0)


def test_logistic_model_kept_shared_scores_probabilities(threads: Any, cancer: Any) -> None:
    xtr, xte, ytr, yte = cancer
    out = threads.run(prog_logistic_shared, deal_horizontal(xtr, ytr),
                      deal(xte, Csprng(b"u" * 16)))
    p = out[0]
    assert out[1] is None and np.all((p >= 0) & (p <= 1))
    assert np.mean((p > 0.5) == yte) >= 0.93
