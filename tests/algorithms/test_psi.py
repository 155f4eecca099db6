"""Committee-assisted PSI and private join: 2 or 3 data nodes, 3 committee members."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from metisnet.algorithms import psi, stats
from metisnet.crypto.prg import Csprng
from metisnet.errors import ValidationError
from metisnet.mpc import MpcContext

KEY = bytes(range(16))  # the data nodes' tag key (the committee never gets it)
GEN = np.random.default_rng(11)


def node_inputs(ids: Any, payload: Any = None, seed: int = 0) -> list[psi.PsiShares]:
    return psi.prepare(ids, KEY, Csprng(bytes([seed + 1]) * 16), payload=payload)


def mine(ctx: MpcContext, inputs: Any) -> list[psi.PsiShares]:
    return [node[ctx.party] for node in inputs]


def prog_size(ctx: MpcContext, inputs: Any, to: Any, k: int = 1) -> Any:
    return psi.intersection_size(ctx, mine(ctx, inputs), to=to, k=k)


def prog_join_k(ctx: MpcContext, inputs: Any, k: int) -> Any:
    return psi.private_join(ctx, mine(ctx, inputs), k=k).size


def prog_to(ctx: MpcContext, inputs: Any, owner: int) -> Any:
    return psi.intersection_to(ctx, mine(ctx, inputs), owner=owner, to=2)


def prog_join_stats(ctx: MpcContext, inputs: Any) -> Any:
    j = psi.private_join(ctx, mine(ctx, inputs))
    idx = [stats.output(ctx, i, None) for i in j.indices]
    return j.size, idx, stats.output(ctx, j.rows, None), stats.covariance(ctx, j.rows, to=0)


def test_size_of_two_and_three_sets(threads: Any) -> None:
    a = GEN.choice(10**6, 700, replace=False)
    b = np.concatenate([a[:250], GEN.choice(np.arange(10**6, 2 * 10**6), 300, replace=False)])
    c = np.concatenate([a[100:400], b[-10:]])
    out = threads.run(prog_size, [node_inputs(a, seed=0), node_inputs(b, seed=1)], 1)
    assert out == [None, 250, None]
    out = threads.run(prog_size, [node_inputs(a), node_inputs(b, seed=1),
                                  node_inputs(c, seed=2)], None)
    assert out == [150, 150, 150]


def test_string_ids_and_receiver(threads: Any) -> None:
    a = [f"acct-{i}" for i in range(0, 400, 2)]
    b = [f"acct-{i}" for i in range(0, 400, 7)]
    out = threads.run(prog_to, [node_inputs(a), node_inputs(b, seed=1)], 1)
    assert out[0] is None and out[1] is None
    want = sorted(i for i, v in enumerate(b) if v in set(a))
    np.testing.assert_array_equal(out[2], want)


def test_private_join_then_vertical_statistics(threads: Any) -> None:
    n = 300
    ids = GEN.choice(10**9, n, replace=False)
    feat = GEN.normal(size=(n, 3))
    # node 0 has column 0 for 250 of the ids, node 1 columns 1, 2 for another 250
    sel0 = GEN.permutation(n)[:250]
    sel1 = GEN.permutation(n)[:250]
    inputs = [node_inputs(ids[sel0], feat[sel0, :1]), node_inputs(ids[sel1], feat[sel1, 1:], 1)]
    out = threads.run(prog_join_stats, inputs)
    m, idx, rows, cov = out[0]
    common = np.intersect1d(sel0, sel1)
    assert m == common.size and out[1][0] == m
    # rows line up: the same id on both sides
    np.testing.assert_array_equal(ids[sel0][idx[0].astype(int)], ids[sel1][idx[1].astype(int)])
    got = rows[np.argsort(ids[sel0][idx[0].astype(int)])]
    want = feat[np.sort(common)][np.argsort(ids[np.sort(common)])]
    np.testing.assert_allclose(got, want, atol=2**-16)
    np.testing.assert_allclose(cov, np.cov(feat[common], rowvar=False), atol=1e-3)


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValidationError):
        node_inputs(np.array([1, 2, 2]))


def test_psi_refuses_a_malicious_committee(malicious_threads: Any) -> None:
    with pytest.raises(ValidationError, match="semi-honest"):
        malicious_threads.run(prog_size, [node_inputs([1, 2]), node_inputs([2, 3], seed=1)],
                              None)


@pytest.mark.integration
def test_private_join_over_three_processes(processes: Any) -> None:
    a = np.arange(0, 3000, 3)
    b = np.arange(0, 3000, 4)
    inputs = [node_inputs(a, a.astype(float) / 100), node_inputs(b, -b.astype(float) / 100, 1)]
    m, idx, rows, _ = processes.run(prog_join_stats, inputs)[1]
    assert m == np.intersect1d(a, b).size
    np.testing.assert_array_equal(a[idx[0].astype(int)], b[idx[1].astype(int)])
    np.testing.assert_allclose(rows[:, 0], -rows[:, 1], atol=2**-15)


def test_small_intersections_obey_k(threads: Any) -> None:
    from metisnet.errors import PolicyViolation

    inputs = [node_inputs(np.arange(100)), node_inputs(np.arange(95, 300), seed=1)]
    assert threads.run(prog_size, inputs, None, 10) == [0, 0, 0]
    assert threads.run(prog_size, inputs, None, 5) == [5, 5, 5]
    assert threads.run(prog_join_k, inputs, 5) == [5, 5, 5]
    with pytest.raises(PolicyViolation):
        threads.run(prog_join_k, inputs, 6)


def test_matching_fast_and_fallback_paths_agree() -> None:
    gen = np.random.default_rng(5)
    pool = gen.integers(0, 2**63, size=(5000, 2), dtype=np.int64).view(np.uint64)
    ta, tb, tc = pool[:3000], pool[2000:], pool[np.r_[0:100, 2500:2600, 4000:4100]]
    want = {tuple(r) for r in ta} & {tuple(r) for r in tb} & {tuple(r) for r in tc}
    pos = psi._match([ta, tb, tc])
    assert len(pos[0]) == len(want) == 100
    for p, t in zip(pos, (ta, tb, tc), strict=True):
        assert {tuple(r) for r in t[p]} == want
    np.testing.assert_array_equal(ta[pos[0]], tc[pos[2]])
    # equal high words with different low words: the exact (slow) path
    tb2 = tb.copy()
    tb2[-1, 0] = tb2[-2, 0]
    i, j = psi._match_two(ta, tb2)
    np.testing.assert_array_equal(ta[i], tb2[j])
    assert len(i) == 1000
