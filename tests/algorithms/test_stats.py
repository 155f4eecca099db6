"""Statistics on data split across 3 data nodes, against numpy, within the stated error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metisnet import mpc
from metisnet.algorithms import stats
from metisnet.algorithms.common import deal, deal_ints, receive
from metisnet.crypto.prg import Csprng
from metisnet.errors import PolicyViolation
from metisnet.mpc import MpcContext

RES = 2.0**-16
GEN = np.random.default_rng(7)  # plaintext test data only


def split_rows(x: np.ndarray, seed: int = 1) -> list[list[Any]]:
    """Three data nodes hold consecutive row blocks; each deals its block."""
    parts = np.array_split(x, 3)
    return [deal(p, Csprng(bytes([seed, i]) * 8)) for i, p in enumerate(parts)]


def table(ctx: MpcContext, dealt: list[list[Any]]) -> Any:
    return stats.stack_rows([receive(ctx, d[ctx.party]) for d in dealt])


def prog_moments(ctx: MpcContext, dealt: Any) -> Any:
    x = table(ctx, dealt)
    return (stats.column_sums(ctx, x), stats.mean(ctx, x), stats.variance(ctx, x),
            stats.std(ctx, x, ddof=0), stats.covariance(ctx, x), stats.correlation(ctx, x))


def prog_order(ctx: MpcContext, dealt: Any) -> Any:
    x = table(ctx, dealt)
    return (stats.minimum(ctx, x), stats.maximum(ctx, x), stats.median(ctx, x),
            stats.quantiles(ctx, x, [0.0, 0.1, 0.25, 0.9, 1.0]))


def prog_hist(ctx: MpcContext, dealt: Any, edges: Any, k: int) -> Any:
    return stats.histogram(ctx, table(ctx, dealt), edges, k=k, to=1)


def prog_groups(ctx: MpcContext, dealt: Any, hot: Any, k: int) -> Any:
    x = table(ctx, dealt)
    oh = stats.stack_rows([receive(ctx, h[ctx.party], frac_bits=0) for h in hot])
    oh = oh.like(oh.a, oh.b, frac_bits=0)
    return stats.group_stats(ctx, oh, x, k=k, to=[0, 2])


def prog_refuse(ctx: MpcContext, dealt: Any) -> Any:
    return stats.mean(ctx, table(ctx, dealt), k=1000)


def data(n: int = 120, d: int = 3) -> np.ndarray:
    base = GEN.normal(size=(n, d)) * np.array([1.0, 5.0, 0.3])[:d] + np.array([2.0, -7.0, 0.0])[:d]
    base[:, 2] += 0.6 * base[:, 0]  # some correlation
    return np.round(base, 3)


def test_moments_match_numpy(threads: Any) -> None:
    x = data()
    out = threads.run(prog_moments, split_rows(x))
    s, m, v, sd, cov, corr = out[0]
    for other in out[1:]:
        np.testing.assert_array_equal(other[0], s)  # every member opened the same
    n = len(x)
    np.testing.assert_allclose(s, x.sum(0), atol=n * RES)
    np.testing.assert_allclose(m, x.mean(0), atol=4 * RES)
    np.testing.assert_allclose(v, x.var(0, ddof=1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(sd, x.std(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(corr, np.corrcoef(x, rowvar=False), atol=2e-3)


def test_moments_in_malicious_mode(malicious_threads: Any) -> None:
    x = data(40)
    _, m, _, _, cov, corr = malicious_threads.run(prog_moments, split_rows(x))[1]
    np.testing.assert_allclose(m, x.mean(0), atol=4 * RES)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(corr, np.corrcoef(x, rowvar=False), atol=2e-3)


def test_order_statistics_and_histogram_in_malicious_mode(malicious_threads: Any) -> None:
    x = data(24)
    mn, mx, med, qs = malicious_threads.run(prog_order, split_rows(x))[0]
    np.testing.assert_allclose(mn, x.min(0), atol=RES)
    np.testing.assert_allclose(mx, x.max(0), atol=RES)
    np.testing.assert_allclose(med, np.median(x, axis=0), atol=2 * RES)
    np.testing.assert_allclose(qs, np.quantile(x, [0.0, 0.1, 0.25, 0.9, 1.0], axis=0),
                               atol=2 * RES)
    edges = [-20.0, 0.0, 2.0, 20.0]
    got = malicious_threads.run(prog_hist, split_rows(x), edges, 3)[1]
    want = np.stack([np.histogram(x[:, j], edges)[0] for j in range(3)], axis=1)
    np.testing.assert_array_equal(got, np.where(want >= 3, want, 0))


def test_order_statistics_match_numpy(threads: Any) -> None:
    x = data(90)
    mn, mx, med, qs = threads.run(prog_order, split_rows(x))[2]
    np.testing.assert_allclose(mn, x.min(0), atol=RES)
    np.testing.assert_allclose(mx, x.max(0), atol=RES)
    np.testing.assert_allclose(med, np.median(x, axis=0), atol=2 * RES)
    np.testing.assert_allclose(qs, np.quantile(x, [0.0, 0.1, 0.25, 0.9, 1.0], axis=0),
                               atol=2 * RES)


def test_histogram_with_oblivious_suppression(threads: Any) -> None:
    x = data(150)
    edges = [-10.0, -5.0, 0.0, 2.0, 3.0, 10.0]
    out = threads.run(prog_hist, split_rows(x), edges, 10)
    assert out[0] is None and out[2] is None  # only member 1 receives
    want = np.stack([np.histogram(x[:, j], edges)[0] for j in range(3)], axis=1)
    np.testing.assert_array_equal(out[1], np.where(want >= 10, want, 0))
    assert (want < 10).any() and (want >= 10).any()  # both branches exercised


def test_group_stats_suppress_small_groups(threads: Any) -> None:
    x = data(60)
    g = np.r_[np.zeros(40, int), np.ones(17, int), np.full(3, 2)]  # group 2 has 3 rows
    hot = np.eye(3, dtype=np.int64)[g]
    hot_dealt = [deal_ints(p, Csprng(bytes([9, i]) * 8)) for i, p in
                 enumerate(np.array_split(hot, 3))]
    out = threads.run(prog_groups, split_rows(x), hot_dealt, 5)
    assert out[1] is None
    counts, sums, means = out[0]
    np.testing.assert_array_equal(counts, [40, 17, 0])
    for j in range(2):
        np.testing.assert_allclose(sums[j], x[g == j].sum(0), atol=60 * RES)
        np.testing.assert_allclose(means[j], x[g == j].mean(0), atol=1e-3)
    assert np.all(sums[2] == 0) and np.all(np.isnan(means[2]))


def test_public_count_below_k_is_refused(threads: Any) -> None:
    with pytest.raises(PolicyViolation):
        threads.run(prog_refuse, split_rows(data(30)))


@pytest.mark.integration
def test_statistics_over_three_processes(processes: Any) -> None:
    x = data(60)
    _, m, v, _, cov, _ = processes.run(prog_moments, split_rows(x))[0]
    np.testing.assert_allclose(m, x.mean(0), atol=4 * RES)
    np.testing.assert_allclose(v, x.var(0, ddof=1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-4, atol=1e-3)


def prog_count_and_outside(ctx: MpcContext, dealt: Any, mask: Any) -> Any:
    x = table(ctx, dealt)
    mk = receive(ctx, mask[ctx.party], frac_bits=0)
    from metisnet.algorithms.common import pairs_for_outside

    total = mpc.arith.sum(x, axis=0)
    return (stats.count(ctx, x), stats.count(ctx, x, mask=mk, k=5, to=0),
            stats.count(ctx, x, mask=mk, k=500, to=0), pairs_for_outside(total))


def test_counts_and_an_outside_receiver(threads: Any) -> None:
    from metisnet.algorithms.common import open_outside

    x = data(50)
    mask = (x[:, 0] > 2.0).astype(np.int64)
    out = threads.run(prog_count_and_outside, split_rows(x), deal_ints(mask, Csprng(b"m" * 16)))
    assert [o[0] for o in out] == [50, 50, 50]
    assert out[0][1] == mask.sum() and out[1][1] is None
    assert out[0][2] == 0  # below k = 500: suppressed
    pairs = [o[3] for o in out]
    np.testing.assert_allclose(open_outside(pairs, frac_bits=16), x.sum(0), atol=50 * RES)
    bad = [pairs[0], (pairs[1][0] + np.uint64(1), pairs[1][1]), pairs[2]]
    with pytest.raises(ValueError):
        open_outside(bad, frac_bits=16)


def prog_tampered(ctx: MpcContext, dealt: Any) -> Any:
    pairs = [d[ctx.party] for d in dealt]
    if ctx.party == 1:  # a cheating member alters one of its dealt shares
        pairs[0] = (pairs[0][0] + np.uint64(1 << 20), pairs[0][1])
    x = stats.stack_rows([receive(ctx, p) for p in pairs])
    return stats.mean(ctx, x)


def test_a_tampered_dealt_share_is_caught_in_malicious_mode(cheating_threads: Any) -> None:
    from metisnet.errors import CheatingDetected

    with pytest.raises(CheatingDetected):
        cheating_threads.run(prog_tampered, split_rows(data(30)))


def prog_selection(ctx: MpcContext, dealt: Any, qs: Any, edges: Any) -> Any:
    x = table(ctx, dealt)
    return (stats.quantiles(ctx, x, qs, bound_bits=12, radix=16), stats.variance(ctx, x),
            stats.histogram(ctx, x, edges))


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(3, 40), st.integers(1, 2)),
                 elements=st.floats(-2000, 2000, allow_nan=False).map(lambda v: round(v, 2))),
    qs=st.lists(st.floats(0, 1), min_size=1, max_size=3),
)
def test_selection_and_moments_property(threads: Any, x: np.ndarray, qs: list[float]) -> None:
    """Hypothesis: quantiles, variance and histogram against numpy on arbitrary tables
    (ties, negative values, a single row per node)."""
    edges = [-2000.0, -10.0, 0.0, 10.0, 2000.0]
    got_q, got_v, got_h = threads.run(prog_selection, split_rows(x), qs, edges)[0]
    np.testing.assert_allclose(got_q, np.quantile(x, qs, axis=0), atol=4 * RES)
    np.testing.assert_allclose(got_v, x.var(0, ddof=1), rtol=1e-4, atol=1e-3)
    want = np.stack([np.histogram(x[:, j], edges)[0] for j in range(x.shape[1])], axis=1)
    np.testing.assert_array_equal(got_h, want)
