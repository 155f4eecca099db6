"""The compressed check of dot and matrix products (metisnet.mpc.ipcheck) in malicious mode:
honest results and costs, every kind of error caught at every level, and the two values it
opens looking uniformly random."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tests.mpc.test_malicious import _run_cheater

from metisnet.mpc import MpcContext, arith, ipcheck, reveal, share
from metisnet.mpc.malicious import MaliciousVerifier, verify

_SESSIONS = itertools.count()

RNG = np.random.default_rng(5)
N = 3000
XV = RNG.integers(-1000, 1000, N)
YV = RNG.integers(-1000, 1000, N)
AV = RNG.integers(-50, 50, (3, 700))
BV = RNG.integers(-50, 50, (700, 4))


def _run(prog: Callable[[MpcContext], Any], cls: type[MpcContext] = MpcContext,
         cheater: int = -1) -> list[tuple[str, Any]]:
    return _run_cheater(cls, cheater, prog, f"ip{next(_SESSIONS)}")


def _inputs(ctx: MpcContext) -> tuple[Any, Any, Any, Any]:
    x = share(ctx, XV if ctx.party == 0 else None, owner=0, shape=(N,), frac_bits=0)
    y = share(ctx, YV if ctx.party == 1 else None, owner=1, shape=(N,), frac_bits=0)
    a = share(ctx, AV if ctx.party == 2 else None, owner=2, shape=AV.shape, frac_bits=0)
    b = share(ctx, BV if ctx.party == 0 else None, owner=0, shape=BV.shape, frac_bits=0)
    verify(ctx)
    return x, y, a, b


def _prog(ctx: MpcContext) -> Any:
    x, y, a, b = _inputs(ctx)
    before = ctx.stats.bytes_sent
    z = arith.dot(ctx, x, y, truncate=False)
    m = arith.matmul(ctx, a, b, truncate=False)
    z2 = arith.dot(ctx, x.reshape((3, 1000)), y.reshape((3, 1000)), truncate=False)
    verify(ctx)
    sent = ctx.stats.bytes_sent - before
    if ctx.verifier is None:
        raise RuntimeError("malicious mode expected")
    return reveal(ctx, z), reveal(ctx, m), reveal(ctx, z2), sent, dict(ctx.verifier.checked)


def test_honest_dot_and_matrix_products_pass_with_few_bytes() -> None:
    out = _run(_prog)
    assert [o[0] for o in out] == ["ok"] * 3, out
    z, m, z2, _sent, checked = out[0][1]
    assert z == int(np.dot(XV, YV))
    assert np.array_equal(m, AV @ BV)
    assert np.array_equal(z2, (XV.reshape(3, 1000) * YV.reshape(3, 1000)).sum(axis=1))
    assert checked["arith"] == 0 and checked["inner"] == 2 * N + 3 * 700 * 4
    # 14,400 product terms: about 1 MB per party by bucketing (72 B each); here the level-1
    # coefficients (126 extension elements, 48 KB) and a few KB more
    assert max(o[1][3] for o in out) < 70_000, [o[1][3] for o in out]


def test_the_check_costs_the_same_bytes_whatever_the_length() -> None:
    def prog(n: int) -> Callable[[MpcContext], Any]:
        def run(ctx: MpcContext) -> Any:
            x = arith.public(ctx, np.ones(n, dtype=np.int64), frac_bits=0)
            before = ctx.stats.bytes_sent
            arith.dot(ctx, x, x, truncate=False)
            verify(ctx)
            return ctx.stats.bytes_sent - before
        return run

    short = max(o[1] for o in _run(prog(300)))
    long = max(o[1] for o in _run(prog(300 * 1024)))
    assert long < short + 12 * 800  # ten more halvings, 2 elements (768 B) each and coins


class ErrOn(MpcContext):
    """Adds ``ERR`` to the first element of the ``HIT``-th message whose tag holds
    ``NEEDLE`` (an inner product's output, or a coefficient of one level)."""

    NEEDLE = ":dot:"
    HIT = 1
    ERR = 1 << 63
    #: the check of _prog has 7 halving levels (lengths 47 + 11 + 3 * 16 = 106 down to 1)

    def send(self, peer: int, tag: str, array: np.ndarray) -> None:
        if self.NEEDLE in tag:
            self.seen = getattr(self, "seen", 0) + 1
            if self.seen == self.HIT:
                array = array.copy()
                array.reshape(-1)[:1] += np.uint64(self.ERR)
        super().send(peer, tag, array)


@pytest.mark.parametrize("needle, hit, err", [
    (":dot:", 1, 1 << 63), (":dot:", 2, 1), (":matmul:", 1, 1 << 40),
    (":ipc_h1:", 1, 1 << 63), (":ipc_h1:", 1, 12345),
    (":ipc_h:", 1, 1 << 63), (":ipc_h:", 4, 7), (":ipc_h:", 7, 1 << 32),
    (":ipc_last:", 1, 1 << 63), (":ipc_last:", 1, 3),
])
@pytest.mark.parametrize("cheater", [0, 1, 2])
def test_an_error_anywhere_aborts_before_release(needle: str, hit: int, err: int,
                                                 cheater: int) -> None:
    cls = type("Cheat", (ErrOn,), {"NEEDLE": needle, "HIT": hit, "ERR": err})
    out = _run(_prog, cls, cheater)
    honest = [p for p in range(3) if p != cheater]
    for p in honest:
        assert out[p][0] == "cheating", (needle, hit, cheater, out)
        sus = out[p][1]
        assert cheater in sus and not (len(sus) == 1 and sus[0] != cheater), out


def test_the_opened_values_look_uniform(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same inputs, ten sessions: the two extension elements opened at the end differ every
    time and their bits are balanced (they are masked by a fresh random pair)."""
    seen: list[np.ndarray] = []
    lock = threading.Lock()
    orig = MaliciousVerifier._open_all

    def spy(self: MaliciousVerifier, ctx: MpcContext, a: Any, b: Any, item: str) -> Any:
        got = orig(self, ctx, a, b, item)
        if item == "inner" and self.party == 0:
            with lock:
                seen.append(got.copy())
        return got

    monkeypatch.setattr(MaliciousVerifier, "_open_all", spy)

    def prog(ctx: MpcContext) -> Any:
        x = arith.public(ctx, np.arange(500, dtype=np.int64), frac_bits=0)
        arith.dot(ctx, x, x, truncate=False)
        verify(ctx)
        return True

    for _ in range(10):
        assert all(o[0] == "ok" for o in _run(prog))
    assert len(seen) == 10
    assert len({s.tobytes() for s in seen}) == 10
    bits = np.unpackbits(np.stack(seen).view(np.uint8))
    assert abs(bits.mean() - 0.5) < 0.02, bits.mean()  # 61,440 bits: 6 sigma is 0.012


def test_short_or_many_dots_stay_on_the_product_path() -> None:
    def prog(ctx: MpcContext) -> Any:
        x = arith.public(ctx, np.ones((2, ipcheck.MIN_LENGTH - 1), dtype=np.int64), frac_bits=0)
        arith.dot(ctx, x, x, truncate=False)
        verify(ctx)
        assert ctx.verifier is not None
        return dict(ctx.verifier.checked)

    out = _run(prog)
    assert out[0][1]["inner"] == 0 and out[0][1]["arith"] == 2 * (ipcheck.MIN_LENGTH - 1)
    assert ipcheck.soundness_bound(2**60) < 2.0**-40


class CancellingErrors(MpcContext):
    """Adds +1 to one output of the batched dot and -1 to another, in its 3-out-of-3 share
    before the reshare (so its own copies stay consistent): a check that merely summed
    the claims would see nothing; the random combination must catch it."""

    def zero_share(self, shape: int | tuple[int, ...]) -> np.ndarray:
        z = super().zero_share(shape)
        if z.shape == (3,):  # only the batched dot of _prog has this shape
            z[:1] += np.uint64(1)
            z[1:2] -= np.uint64(1)
        return z


@pytest.mark.parametrize("cheater", [0, 1, 2])
def test_errors_that_cancel_in_a_plain_sum_still_abort(cheater: int) -> None:
    out = _run(_prog, CancellingErrors, cheater)
    for p in range(3):
        if p != cheater:
            assert out[p][0] == "cheating" and cheater in out[p][1], out


BATCH = (600, 256)  # two batch claims: 512 dots and 88
BX = RNG.integers(-100, 100, BATCH)
BY = RNG.integers(-100, 100, BATCH)


def _batch_prog(ctx: MpcContext) -> Any:
    x = share(ctx, BX if ctx.party == 1 else None, owner=1, shape=BATCH, frac_bits=0)
    y = share(ctx, BY if ctx.party == 2 else None, owner=2, shape=BATCH, frac_bits=0)
    verify(ctx)
    before = ctx.stats.bytes_sent
    z = arith.dot(ctx, x, y, truncate=False)
    verify(ctx)
    return reveal(ctx, z), ctx.stats.bytes_sent - before


class ErrOnOneDot(MpcContext):
    """Adds 2^63 to dot number 550 (in the second batch) before the reshare."""

    def zero_share(self, shape: int | tuple[int, ...]) -> np.ndarray:
        z = super().zero_share(shape)
        if z.shape == (BATCH[0],):
            z[550:551] += np.uint64(1 << 63)
        return z


def test_a_large_batch_of_dots_is_right_and_a_wrong_one_aborts() -> None:
    out = _run(_batch_prog)
    assert all(o[0] == "ok" for o in out), out
    assert np.array_equal(out[0][1][0], (BX * BY).sum(axis=1))
    assert max(o[1][1] for o in out) < 200_000  # term by term: about 11 MB
    for cheater in (0, 2):
        bad = _run(_batch_prog, ErrOnOneDot, cheater)
        for p in range(3):
            if p != cheater:
                assert bad[p][0] == "cheating" and cheater in bad[p][1], bad
