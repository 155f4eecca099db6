"""Oblivious shuffle and shuffle-then-quicksort on both channels, against numpy: rows move
together, the sort is stable, the shuffle is uniform, and the communication is asserted."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metisnet import mpc
from metisnet.crypto.bitslice import n_words
from metisnet.crypto.fixedpoint import FixedPoint
from metisnet.errors import ShapeError, ValidationError
from metisnet.mpc import MpcContext
from metisnet.mpc.shuffling import quicksort_levels, shuffle, shuffle_sort
from metisnet.net.channel import InMemoryNetwork

F = FixedPoint(16)
SETTINGS = settings(max_examples=12, deadline=None)
# keys * 2^b + index must stay below 2^62: b = bit_length(n - 1) <= 7 for n <= 128
KEY = 2**54 - 1


def _semi_honest(ctx: MpcContext) -> MpcContext:
    """The shuffle is semi-honest only: each program sets up its own semi-honest context
    on the runner's channel (1 round), whatever mode the base suite runs in."""
    if ctx.security == "semi-honest":
        return ctx
    return MpcContext.setup(ctx.channel, session=f"{ctx.session}:sh", security="semi-honest")


def _share(ctx: MpcContext, v: np.ndarray, owner: int, f: int) -> Any:
    return mpc.share(ctx, v if ctx.party == owner else None, owner=owner, shape=v.shape,
                     frac_bits=f)


def _sync(ctx: MpcContext) -> None:
    t = ctx.tag("sync")
    ctx.send(ctx.next, t, np.zeros(1, np.uint64))
    ctx.recv(ctx.prev, t, (1,))


# -- programs (module level: the OS-process leg imports them by name) ----------------------
def prog_shuffle(ctx: MpcContext, ints: np.ndarray, reals: np.ndarray) -> Any:
    ctx = _semi_honest(ctx)
    a = _share(ctx, ints, 0, 0)
    b = _share(ctx, reals, 1, 16)
    sa, sb = shuffle(ctx, [a, b])
    return mpc.reveal(ctx, sa), mpc.reveal(ctx, sb)


def prog_sort(ctx: MpcContext, keys: np.ndarray, payload: np.ndarray, f: int,
              descending: bool, pivots: int = 3) -> Any:
    ctx = _semi_honest(ctx)
    k = _share(ctx, keys, 0, f)
    p = _share(ctx, payload, 2, 16)
    sk, (sp,) = shuffle_sort(ctx, k, [p], descending=descending, pivots=pivots)
    return mpc.reveal(ctx, sk), mpc.reveal(ctx, sp)


def prog_uniform(ctx: MpcContext, trials: int) -> Any:
    ctx = _semi_honest(ctx)
    x = mpc.public(ctx, np.arange(3, dtype=np.int64), frac_bits=0)
    outs = [shuffle(ctx, [x])[0] for _ in range(trials)]
    return mpc.reveal(ctx, mpc.stack(outs))


def prog_costs(ctx: MpcContext, n: int, pivots: int) -> Any:
    ctx = _semi_honest(ctx)
    k = mpc.random(ctx, (n,))
    k = k.like(k.a >> np.uint64(8), k.b >> np.uint64(8))  # distinct with near certainty
    p = mpc.random(ctx, (n, 2))
    _sync(ctx)
    before = ctx.stats.snapshot()
    k2, _ = shuffle(ctx, [k, p])
    d_shuffle = ctx.stats - before
    _sync(ctx)
    before = ctx.stats.snapshot()
    _, levels = quicksort_levels(ctx, k2, pivots=pivots)
    d_sort = ctx.stats - before
    return (d_shuffle.rounds, d_shuffle.bytes_sent), (d_sort.rounds, d_sort.bytes_sent, levels)


def prog_bad(ctx: MpcContext) -> list[str]:
    ctx = _semi_honest(ctx)
    errors = []
    for fn in (lambda: shuffle_sort(ctx, mpc.public(ctx, np.zeros((2, 2)))),
               lambda: shuffle(ctx, []),
               lambda: shuffle(ctx, [mpc.public(ctx, np.zeros(3)), mpc.public(ctx, np.zeros(4))])):
        try:
            fn()
        except (ShapeError, ValidationError) as exc:
            errors.append(type(exc).__name__)
    return errors


class TestShuffleSort:
    """Shuffle and shuffle_sort on both channels (the conftest runs them semi-honest)."""

    @SETTINGS
    @given(n=st.integers(1, 80), data=st.data())
    def test_shuffle_moves_rows_together(self, channel: Any, n: int, data: Any) -> None:
        ints = np.arange(n, dtype=np.int64) * 7 - 100
        reals = F.decode(F.encode(data.draw(hnp.arrays(
            np.float64, (n, 2), elements=st.floats(-1e6, 1e6, allow_nan=False)))))
        got_i, got_r = channel.run(prog_shuffle, ints, reals)[2]
        assert sorted(got_i.tolist()) == ints.tolist()  # a permutation of the rows
        rows = (got_i + 100) // 7
        np.testing.assert_array_equal(got_r, reals[rows])  # the payload came along

    @SETTINGS
    @given(keys=hnp.arrays(np.int64, st.integers(0, 100),
                           elements=st.integers(-KEY, KEY) | st.integers(-3, 3)
                           | st.sampled_from([KEY, -KEY, 0])),
           descending=st.booleans(), pivots=st.sampled_from([1, 2, 3, 5]))
    def test_integer_keys_stable_with_payload(self, channel: Any, keys: np.ndarray,
                                              descending: bool, pivots: int) -> None:
        payload = np.arange(keys.size, dtype=np.float64) + 0.5
        sk, sp = channel.run(prog_sort, keys, payload, 0, descending, pivots)[1]
        order = np.argsort(-keys if descending else keys, kind="stable")
        np.testing.assert_array_equal(sk, keys[order])
        np.testing.assert_array_equal(sp, payload[order])  # stable: ties keep input order

    @SETTINGS
    @given(keys=hnp.arrays(np.float64, st.integers(1, 60),
                           elements=st.floats(-(2.0**37), 2.0**37, allow_nan=False)
                           | st.sampled_from([0.0, -1.5, 2.0**-16])))
    def test_fixed_point_keys(self, channel: Any, keys: np.ndarray) -> None:
        keys = F.decode(F.encode(keys))
        sk, sp = channel.run(prog_sort, keys, np.arange(keys.size, dtype=np.float64), 16,
                             False)[0]
        order = np.argsort(keys, kind="stable")
        np.testing.assert_array_equal(sk, keys[order])
        np.testing.assert_array_equal(sp, order)

    def test_thousands_of_rows_with_many_ties(self, channel: Any) -> None:
        keys = (np.arange(3000, dtype=np.int64) * 7919) % 101 - 50  # 101 distinct values
        payload = np.arange(3000, dtype=np.float64)
        sk, sp = channel.run(prog_sort, keys, payload, 0, True)[0]
        order = np.argsort(-keys, kind="stable")
        np.testing.assert_array_equal(sk, keys[order])
        np.testing.assert_array_equal(sp, payload[order])

    def test_shuffle_is_uniform(self, channel: Any) -> None:
        """All 6 orders of 3 rows are equally likely (chi-square, 5 degrees of freedom:
        a fixed or missing pass, or a biased permutation, fails; the bound 30 is exceeded
        by chance with probability below 2^-14)."""
        trials = 600
        got = channel.run(prog_uniform, trials)[0]
        codes = got[:, 0] * 3 + got[:, 1]
        counts = np.array([np.sum(codes == c) for c in (1, 2, 3, 5, 6, 7)])
        assert counts.sum() == trials
        expected = trials / 6
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 30.0, counts

    @pytest.mark.parametrize("pivots", [1, 3])
    def test_communication_costs(self, channel: Any, pivots: int) -> None:
        n = 640
        res = channel.run(prog_costs, n, pivots)
        # per level: a sign bit (242 planes) and one revealed plane per compared pair; the
        # first level compares n - k elements with k pivots and the pivots with each other
        first = (242 + 1) * 8 * n_words(pivots * (n - pivots) + pivots * (pivots - 1) // 2)
        most = (242 + 1) * 8 * n_words(pivots * n)
        for (sh_rounds, sh_bytes), (q_rounds, q_bytes, levels) in res:
            # 3 passes, each party permutes in two: 8 B per element of 3 columns per pass
            assert sh_bytes == 2 * 8 * 3 * n
            assert sh_rounds <= 3
            # quicksort: 8 rounds for the sign bits and 1 to reveal them, per level
            assert q_rounds == 9 * levels
            # a random search tree this tall has probability well below 2^-20
            assert levels <= (4 if pivots == 1 else 2.5) * np.log2(n)
            assert first <= q_bytes <= levels * most

    def test_bad_input_is_refused(self, channel: Any) -> None:
        assert channel.run(prog_bad)[0] == ["ShapeError", "ValidationError", "ShapeError"]


class _Recorder:
    """An in-memory channel that keeps what this party receives under shuffle tags."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.got: list[np.ndarray] = []

    party = property(lambda self: self.inner.party)
    parties = property(lambda self: self.inner.parties)
    stats = property(lambda self: self.inner.stats)

    def send(self, peer: int, tag: str, array: Any) -> None:
        self.inner.send(peer, tag, array)

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> Any:
        out = self.inner.recv(peer, tag, timeout)
        if ":shuffle:" in tag:
            self.got.append(np.array(out, copy=True))
        return out

    def close(self) -> None:
        self.inner.close()


def _byte_chi2(words: np.ndarray) -> float:
    counts = np.bincount(np.ascontiguousarray(words).view(np.uint8), minlength=256)
    expected = counts.sum() / 256
    return float(((counts - expected) ** 2 / expected).sum())


def test_what_a_party_receives_in_a_shuffle_looks_uniform() -> None:
    """A constant column is shuffled; each party's two incoming messages (it is the
    receiving party of one pass) pass a chi-square test on their byte values (255 degrees
    of freedom; 380 is exceeded by chance with probability below 1e-7). The unmasked
    values the protocol hides, a constant column, fail it by far."""
    n = 4096
    net = InMemoryNetwork(3, timeout=30.0)
    chans = [_Recorder(net.channel(i)) for i in range(3)]

    def party(i: int) -> None:
        ctx = MpcContext.setup(chans[i], session="rec", security="semi-honest")
        shuffle(ctx, [mpc.public(ctx, np.full(n, 12345, dtype=np.int64), frac_bits=0)])

    threads = [threading.Thread(target=party, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ch in chans:
        assert len(ch.got) == 2 and all(m.size == n for m in ch.got)
        assert _byte_chi2(np.concatenate(ch.got)) < 380.0
    assert _byte_chi2(np.full(2 * n, 12345, dtype=np.uint64)) > 10_000.0


def test_malicious_mode_is_refused() -> None:
    """The shuffle is semi-honest only: a context in malicious mode gets a clear error."""
    net = InMemoryNetwork(3, timeout=20.0)
    errors: list[str] = []

    def party(i: int) -> None:
        ctx = MpcContext.setup(net.channel(i), session="mal", security="malicious")
        x = mpc.public(ctx, np.arange(4, dtype=np.int64), frac_bits=0)
        with pytest.raises(ValidationError, match="semi-honest"):
            shuffle_sort(ctx, x)
        errors.append("refused")

    threads = [threading.Thread(target=party, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["refused"] * 3


def test_permutation_with_tied_keys_is_the_same_at_both_holders() -> None:
    """Regression: tied PRG words must give every holder the same order (the ties are
    broken by fresh words from the shared stream, not by the sort algorithm)."""
    from metisnet.crypto.prg import Prg
    from metisnet.mpc.shuffling import _permutation

    class TiedPrg(Prg):
        first = True

        def uint64(self, shape: int | tuple[int, ...]) -> np.ndarray:  # type: ignore[override]
            out = super().uint64(shape)
            if self.first:  # high parts 5, 3, 5, 1, 3, 5 (the low 3 bits carry the index)
                self.first = False
                out[...] = np.array([5, 3, 5, 1, 3, 5], dtype=np.uint64)[:out.size] << 3
            return out

    key = bytes(range(16))
    got = _permutation(TiedPrg(key), 6)
    assert got.tolist() == _permutation(TiedPrg(key), 6).tolist()
    assert got[0] == 3 and set(got[1:3]) == {1, 4} and set(got[3:]) == {0, 2, 5}
