"""The context: key agreement, seeded known answers, correlated randomness, validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tests.mpc.threads import run_parties

from metisnet import mpc
from metisnet.crypto.prg import Csprng
from metisnet.errors import ProtocolError, ShapeError, ValidationError
from metisnet.mpc import MpcContext
from metisnet.net.channel import InMemoryNetwork


def run_seeded(fn: Callable[[MpcContext], Any], seeds: list[bytes] | None = None) -> list[Any]:
    net = InMemoryNetwork(3, timeout=10.0)
    out: list[Any] = [None] * 3

    def party(i: int) -> None:
        rng = Csprng(seeds[i]) if seeds else None
        out[i] = fn(MpcContext.setup(net.channel(i), rng=rng, security="semi-honest"))

    run_parties(party)
    return out


SEEDS = [bytes([i]) * 16 for i in range(3)]


def _shares_of_a_product(ctx: MpcContext) -> tuple[np.ndarray, np.ndarray]:
    x = mpc.share(ctx, np.arange(5.0) if ctx.party == 0 else None, owner=0, shape=(5,))
    z = mpc.mul(ctx, x, x)
    return z.a, z.b


def test_seeded_contexts_give_known_answers() -> None:
    first = run_seeded(_shares_of_a_product, SEEDS)
    again = run_seeded(_shares_of_a_product, SEEDS)
    fresh = run_seeded(_shares_of_a_product)
    for p in range(3):
        np.testing.assert_array_equal(first[p][0], again[p][0])
        np.testing.assert_array_equal(first[p][1], again[p][1])
        assert not np.array_equal(first[p][0], fresh[p][0])
        np.testing.assert_array_equal(first[p][1], first[(p + 1) % 3][0])  # replicated


def test_correlated_randomness_without_messages() -> None:
    def draw(ctx: MpcContext) -> tuple[Any, ...]:
        before = ctx.stats.snapshot()
        z = ctx.zero_share(100)
        zx = ctx.zero_share_xor(100)
        pair = ctx.random_pair(100)
        coin = ctx.prg_all.uint64(4)
        assert (ctx.stats - before).messages_sent == 0
        return z, zx, pair, coin

    (z0, x0, p0, c0), (z1, x1, p1, c1), (z2, x2, p2, c2) = run_seeded(draw)
    assert not (z0 + z1 + z2).any()
    assert not (x0 ^ x1 ^ x2).any()
    np.testing.assert_array_equal(p0[1], p1[0])
    np.testing.assert_array_equal(p1[1], p2[0])
    np.testing.assert_array_equal(p2[1], p0[0])
    np.testing.assert_array_equal(c0, c1)
    np.testing.assert_array_equal(c1, c2)


def test_key_agreement_costs_one_round() -> None:
    stats = run_seeded(lambda ctx: (ctx.stats.rounds, ctx.stats.bytes_sent, repr(ctx)))
    assert [s[:2] for s in stats] == [(1, 48), (1, 16), (1, 16)]
    assert "key" not in stats[0][2].lower()


def test_wrong_message_shape_is_a_protocol_error() -> None:
    def prog(ctx: MpcContext) -> None:
        tag = ctx.tag("t")
        ctx.send(ctx.next, tag, np.zeros(3, np.uint64))
        ctx.recv(ctx.prev, tag, (4,))

    with pytest.raises(ProtocolError, match="expected 4 uint64"):
        run_seeded(prog)


def test_setup_refuses_two_parties_and_types_refuse_misuse() -> None:
    net = InMemoryNetwork(2)
    with pytest.raises(ValidationError):
        MpcContext.setup(net.channel(0))
    with pytest.raises(ShapeError):
        mpc.SharedArray(np.zeros(2, np.uint64), np.zeros(3, np.uint64), party=0)
    with pytest.raises(ShapeError):
        mpc.SharedArray(np.zeros(2, np.int64), np.zeros(2, np.int64), party=0)  # type: ignore[arg-type]
    x = mpc.SharedArray(np.zeros(2, np.uint64), np.zeros(2, np.uint64), party=0, frac_bits=16)
    assert "shape=(2,)" in repr(x) and "0, 0" not in repr(x)
    with pytest.raises(TypeError):
        bool(x)
    with pytest.raises(TypeError):
        _ = x * x
    bits = mpc.SharedBits(np.zeros((1, 1), np.uint64), np.zeros((1, 1), np.uint64), party=0,
                          shape=(3,))
    with pytest.raises(TypeError):
        bool(bits)
    with pytest.raises(ShapeError):
        _ = x + bits
