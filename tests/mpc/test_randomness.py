"""What one party receives in a multiplication and in a comparison looks uniformly random.

Party 1's incoming messages are recorded and put through two tests: a chi-square test on
the byte values (256 bins) and a frequency test on each of the 64 bit positions of the
words. The same tests fail on a deliberately broken engine whose zero-sharing masks are
switched off (the reshare then sends ``x_i y_i + x_i y_{i+1} + x_{i+1} y_i`` in the clear),
which shows that they have the power to catch a leak.

In malicious mode the same tests run on what party 1 reconstructs when the check buckets
the recorded products (``rho = x - a``, ``sigma = y - b``, the left-over triples' ``a`` and
``b``), and fail on an engine whose triples have zero operands (it opens ``x`` and ``y``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from tests.mpc.threads import run_parties

from metisnet import mpc
from metisnet.mpc import MpcContext
from metisnet.mpc.malicious import verify
from metisnet.net.channel import ChannelStats, InMemoryChannel, InMemoryNetwork

P_FAIL = 1e-6  # a sound engine fails a test with about this probability


class RecordingChannel:
    """Delegates to an in-memory channel and keeps what this party receives."""

    def __init__(self, inner: InMemoryChannel) -> None:
        self.inner = inner
        self.received: list[tuple[str, np.ndarray]] = []
        self.recording = False

    @property
    def party(self) -> int:
        return self.inner.party

    @property
    def parties(self) -> int:
        return self.inner.parties

    @property
    def stats(self) -> ChannelStats:
        return self.inner.stats

    def send(self, peer: int, tag: str, array: Any) -> None:
        self.inner.send(peer, tag, array)

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> Any:
        got = self.inner.recv(peer, tag, timeout)
        if self.recording:
            self.received.append((tag, got.copy()))
        return got

    def close(self) -> None:
        self.inner.close()


class NoMaskContext(MpcContext):
    """A broken engine: every zero-sharing is all zeros (no masking of reshared terms)."""

    def zero_share(self, shape: Any) -> Any:
        return np.zeros(shape, dtype=np.uint64)

    def zero_share_xor(self, shape: Any) -> Any:
        return np.zeros(shape, dtype=np.uint64)


def _upper_tail_chi2(stat: float, df: int) -> float:
    """P[chi2_df >= stat] by the Wilson-Hilferty normal approximation."""
    z = ((stat / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 0.5 * math.erfc(z / math.sqrt(2))


def uniformity_p_values(data: np.ndarray) -> tuple[float, float]:
    """(chi-square p-value of byte values, smallest two-sided p-value of the 64 bit
    frequencies, Bonferroni-corrected)."""
    words = np.ascontiguousarray(data, dtype=np.uint64).reshape(-1)
    counts = np.bincount(words.view(np.uint8), minlength=256).astype(np.float64)
    expected = counts.sum() / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    p_bytes = _upper_tail_chi2(chi2, 255)
    ones = ((words[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).sum(axis=0)
    n = words.size
    z = np.abs(ones - n / 2) / math.sqrt(n / 4)
    p_bits = min(1.0, 64 * math.erfc(float(z.max()) / math.sqrt(2)))
    return p_bytes, p_bits


def _run_recorded(program: Any, broken: bool, *args: Any) -> list[tuple[str, np.ndarray]]:
    net = InMemoryNetwork(3, timeout=30.0)
    chans = [RecordingChannel(net.channel(i)) for i in range(3)]
    cls = NoMaskContext if broken else MpcContext

    def party(i: int) -> None:
        program(cls.setup(chans[i], security="semi-honest"), chans[i], *args)

    run_parties(party)
    return chans[1].received


def prog_mul(ctx: MpcContext, chan: RecordingChannel, v: np.ndarray) -> None:
    # inputs as a data owner shares them (one share is zero): the worst case for a leak
    x = mpc.share(ctx, v if ctx.party == 0 else None, owner=0, shape=v.shape, frac_bits=0)
    y = mpc.share(ctx, v[::-1].copy() if ctx.party == 2 else None, owner=2, shape=v.shape,
                  frac_bits=0)
    chan.recording = True
    mpc.mul(ctx, x, y)
    chan.recording = False


def prog_less_than(ctx: MpcContext, chan: RecordingChannel, v: np.ndarray) -> None:
    x = mpc.share(ctx, v if ctx.party == 0 else None, owner=0, shape=v.shape, frac_bits=0)
    y = mpc.share(ctx, v[::-1].copy() if ctx.party == 2 else None, owner=2, shape=v.shape,
                  frac_bits=0)
    chan.recording = True
    mpc.less_than(ctx, x, y)
    chan.recording = False


def _payload(received: list[tuple[str, np.ndarray]]) -> np.ndarray:
    assert received, "party 1 received nothing"
    return np.concatenate([a.reshape(-1).view(np.uint64) for _, a in received])


N = 64 * 400
VALUES = (np.arange(N, dtype=np.int64) % 1000) - 500  # small, structured inputs


@pytest.mark.parametrize("program", [prog_mul, prog_less_than], ids=["mul", "less-than"])
def test_received_messages_look_uniform(program: Any) -> None:
    data = _payload(_run_recorded(program, False, VALUES))
    assert data.size >= N
    p_bytes, p_bits = uniformity_p_values(data)
    assert p_bytes > P_FAIL and p_bits > P_FAIL, (p_bytes, p_bits)


@pytest.mark.parametrize("program", [prog_mul, prog_less_than], ids=["mul", "less-than"])
def test_broken_engine_without_masks_is_caught(program: Any) -> None:
    data = _payload(_run_recorded(program, True, VALUES))
    p_bytes, p_bits = uniformity_p_values(data)
    assert p_bytes < P_FAIL or p_bits < P_FAIL, (p_bytes, p_bits)


def test_the_statistics_accept_uniform_and_reject_biased_words() -> None:
    from metisnet.crypto.prg import Prg

    good = Prg(b"u" * 16).uint64(50_000)
    assert min(uniformity_p_values(good)) > P_FAIL
    biased = good & Prg(b"v" * 16).uint64(50_000)  # each bit is 1 with probability 1/4
    assert max(uniformity_p_values(biased)) < P_FAIL


class ZeroPoolContext(MpcContext):
    """A broken malicious engine: the triples' random operands are all zero, so the
    bucketing opens ``rho = x - 0`` and ``sigma = y - 0``, the checked products' inputs."""

    def random_pair(self, shape: Any) -> Any:
        z = np.zeros(shape, dtype=np.uint64)
        return z, z.copy()


def _opened_in_bucketing(broken: bool, v: np.ndarray) -> np.ndarray:
    """Party 1's reconstructed values of every bucketing opening (``rho``, ``sigma`` and
    the left-over triples' ``a``, ``b``) when a malicious-mode product of structured
    inputs is checked with no triples in stock."""
    net = InMemoryNetwork(3, timeout=30.0)
    opened: list[np.ndarray] = []
    cls = ZeroPoolContext if broken else MpcContext

    def party(i: int) -> None:
        ctx = cls.setup(net.channel(i), security="malicious")
        x = mpc.share(ctx, v if i == 0 else None, owner=0, shape=v.shape, frac_bits=0)
        y = mpc.share(ctx, v[::-1].copy() if i == 2 else None, owner=2, shape=v.shape,
                      frac_bits=0)
        verify(ctx)
        z = mpc.mul(ctx, x, y)
        ver = ctx.verifier
        assert ver is not None and ver.stock(False) == 0
        if i == 1:
            inner = ver.open

            def recording_open(c: MpcContext, a: Any, b: Any, **kw: Any) -> Any:
                got = inner(c, a, b, **kw)
                if kw.get("item", "").startswith("sacrifice") and got is not None:
                    opened.append(got.copy())
                return got

            ver.open = recording_open  # type: ignore[method-assign]
        verify(ctx)
        assert np.array_equal(mpc.reveal(ctx, z), v * v[::-1])

    run_parties(party)
    assert opened, "party 1 opened nothing in the bucketing"
    return np.concatenate(opened)


def test_malicious_bucketing_openings_look_uniform() -> None:
    data = _opened_in_bucketing(False, VALUES)
    assert data.size >= 2 * 2 * N  # rho and sigma for every (product, pool triple) pair
    p_bytes, p_bits = uniformity_p_values(data)
    assert p_bytes > P_FAIL and p_bits > P_FAIL, (p_bytes, p_bits)


def test_malicious_bucketing_without_random_operands_is_caught() -> None:
    data = _opened_in_bucketing(True, VALUES)
    p_bytes, p_bits = uniformity_p_values(data)
    assert p_bytes < P_FAIL or p_bits < P_FAIL, (p_bytes, p_bits)
