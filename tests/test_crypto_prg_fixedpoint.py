"""Known answers and properties of the PRG and the fixed-point encoding."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from metisnet.crypto.fixedpoint import FixedPoint, to_ring, to_signed
from metisnet.crypto.prg import Csprng, Prg, new_key
from metisnet.errors import ValidationError


def test_prg_known_answer_is_aes_ctr_keystream() -> None:
    # FIPS-197 key; the keystream with a zero counter block is AES_k(0^128), AES_k(1), ...
    key = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - known-answer reference
    blocks = enc.update(bytes(16) + (1).to_bytes(16, "big"))
    prg = Prg(key)
    assert prg.bytes(32) == blocks
    assert Prg(key).bytes(16).hex() == "c6a13b37878f5b826f4f8162a1c8d879"


def test_prg_is_deterministic_and_stateful() -> None:
    key = new_key()
    a, b = Prg(key), Prg(key)
    assert np.array_equal(a.uint64(100), b.uint64(100))
    assert not np.array_equal(a.uint64(100), Prg(key).uint64(100))


def test_below_is_in_range_and_unbiased_enough() -> None:
    prg = Prg(bytes(16))
    v = prg.below(3, 30_000)
    assert v.max() < 3
    counts = np.bincount(v.astype(np.int64), minlength=3)
    assert np.all(np.abs(counts - 10_000) < 400)  # ~ 4.9 sigma
    big = Csprng(bytes(16)).integer_below(2**2048 + 1)
    assert 0 <= big <= 2**2048


def test_csprng_seed_rules_and_no_key_in_repr() -> None:
    with pytest.raises(ValidationError):
        Csprng(b"short")
    with pytest.raises(ValidationError):
        Prg(b"x" * 15)
    s = Csprng(bytes(range(16)))
    assert "hidden" in repr(s) and "hidden" in repr(Prg(bytes(16)))
    assert np.array_equal(Csprng(bytes(range(16))).uint64(8), s.uint64(8))
    d1, d2 = s.derive(), s.derive()
    assert d1.bytes(16) != d2.bytes(16)


def test_uniform_bits() -> None:
    bits = np.unpackbits(np.frombuffer(Csprng().bytes(1 << 16), dtype=np.uint8))
    assert abs(bits.mean() - 0.5) < 0.01


@given(st.floats(min_value=-(2.0**46), max_value=2.0**46, allow_nan=False))
def test_fixed_point_roundtrip_within_half_lsb(x: float) -> None:
    fp = FixedPoint()
    got = fp.decode(fp.encode([x]))[0]
    assert abs(got - x) <= 2.0**-17 + abs(x) * 2**-52


def test_fixed_point_edges() -> None:
    fp = FixedPoint(16)
    assert fp.encode([0.0, -1.0, 1.5]).tolist() == [0, 2**64 - 2**16, 3 * 2**15]
    assert fp.max_abs == 2.0**47 and fp.mul_bound == 2.0**31
    with pytest.raises(ValidationError, match="out of fixed-point range"):
        fp.encode([2.0**47])
    with pytest.raises(ValidationError, match="NaN"):
        fp.encode([np.nan])
    with pytest.raises(ValidationError):
        FixedPoint(40)
    assert fp.encode_int(-2.5) == -163840 and fp.decode_int(-163840) == -2.5
    assert to_signed(to_ring([-5, 7])).tolist() == [-5, 7]


@given(st.lists(st.floats(-2.0**38, 2.0**38, allow_nan=False), min_size=1, max_size=50),
       st.sampled_from([2, 8, 16, 24]))
def test_high_part_splits_every_encoding_exactly(xs: list[float], f: int) -> None:
    """``x = hi 2^s + lo`` with ``0 <= lo < 2^s`` for every encoded value, sign included."""
    from metisnet.crypto.fixedpoint import high_part, split_bits

    fp = FixedPoint(f)
    enc = fp.encode(np.array(xs))
    s = split_bits(f)
    hi = high_part(enc, f).view(np.int64).astype(object)
    raw = enc.view(np.int64).astype(object)
    lo = raw - hi * (1 << s)
    assert all(0 <= v < (1 << s) for v in lo)
    assert s == f // 2


def test_high_part_known_answers() -> None:
    from metisnet.crypto.fixedpoint import high_part

    enc = FixedPoint(16).encode(np.array([1.0, -1.0, 1.5, -0.00390625, 0.0]))
    # raw 65536, -65536, 98304, -256, 0: floor division by 2^8
    assert list(high_part(enc, 16).view(np.int64)) == [256, -256, 384, -1, 0]


class _TiedPrg(Prg):
    """A Prg whose first ``forced`` draws of words are replaced by ``words(size)``."""

    def __init__(self, key: bytes, words: object, forced: int = 1) -> None:
        super().__init__(key)
        self._words, self._forced = words, forced
        self.draws = 0

    def uint64(self, shape: int | tuple[int, ...]) -> np.ndarray:  # type: ignore[override]
        out = super().uint64(shape)
        self.draws += 1
        if self.draws <= self._forced:
            out[...] = self._words(out.size)  # type: ignore[operator]
        return out


def test_permutation_matches_a_reference_and_is_deterministic() -> None:
    key = new_key()
    n = 1000
    words = Prg(key).uint64(n)
    b = (n - 1).bit_length()
    high = words >> np.uint64(b)
    assert np.unique(high).size == n  # no ties for this size (probability ~ 2^-35)
    expected = np.argsort(high, kind="stable")  # the order of the random high parts
    got = Prg(key).permutation(n)
    assert got.dtype == np.int64
    assert np.array_equal(got, expected)
    assert np.array_equal(np.sort(got), np.arange(n))
    assert not np.array_equal(got, Prg(new_key()).permutation(n))
    assert Prg(key).permutation(0).size == 0
    assert np.array_equal(Prg(key).permutation(1), [0])
    with pytest.raises(ValidationError):
        Prg(key).permutation(-1)


def test_permutation_is_uniform() -> None:
    prg = Prg(bytes(16))
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(24_000):
        p = tuple(int(v) for v in prg.permutation(4))
        counts[p] = counts.get(p, 0) + 1
    assert len(counts) == 24
    assert all(abs(c - 1000) < 160 for c in counts.values())  # ~ 5 sigma


def test_permutation_reorders_tied_keys_uniformly() -> None:
    # every random high part tied: the order comes from the fresh words alone, and without
    # them it would always be the identity
    counts: dict[tuple[int, ...], int] = {}
    for i in range(6000):
        prg = _TiedPrg(i.to_bytes(16, "little"), lambda size: 0)
        p = tuple(int(v) for v in prg.permutation(3))
        assert prg.draws == 2
        counts[p] = counts.get(p, 0) + 1
    assert len(counts) == 6
    assert all(abs(c - 1000) < 160 for c in counts.values())


def test_permutation_keeps_runs_in_place_and_retries_tied_fresh_words() -> None:
    n = 64
    b = (n - 1).bit_length()
    high = np.repeat(np.arange(8, dtype=np.uint64), 8)[::-1].copy()  # runs of 8, reversed
    prg = _TiedPrg(new_key(), lambda size: high << np.uint64(b))
    p = prg.permutation(n)
    assert np.array_equal(np.sort(p), np.arange(n))
    assert np.all(np.diff(high[p].astype(np.int64)) >= 0)  # sorted by high part
    assert prg.draws == 2
    # the fresh words tie too (all zero) on the first try: drawn again
    retry = _TiedPrg(new_key(), lambda size: 0, forced=2)
    q = retry.permutation(n)
    assert retry.draws == 3
    assert np.array_equal(np.sort(q), np.arange(n))
