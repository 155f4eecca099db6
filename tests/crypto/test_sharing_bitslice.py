"""Replicated sharing for outside dealers, and bit-slicing, against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metisnet.crypto.bitslice import from_planes, n_words, planes_to_bits, to_planes
from metisnet.crypto.prg import Csprng
from metisnet.crypto.sharing import reconstruct, share
from metisnet.errors import ValidationError

U64 = hnp.arrays(np.uint64, st.integers(0, 300), elements=st.integers(0, 2**64 - 1))


@given(x=U64, boolean=st.booleans())
def test_share_reconstruct(x: np.ndarray, boolean: bool) -> None:
    pairs = share(x, Csprng(b"k" * 16), boolean=boolean)
    np.testing.assert_array_equal(reconstruct(pairs, boolean=boolean), x)


def test_one_pair_hides_the_secret_and_pairs_are_checked() -> None:
    rng = Csprng(b"s" * 16)
    a = share(np.zeros(4, np.uint64), rng)
    b = share(np.full(4, 7, np.uint64), Csprng(b"s" * 16))
    # party 0's pair for 0 and for 7 under the same randomness: only the dealt share differs
    np.testing.assert_array_equal(a[0][0], b[0][0])
    bad = [a[0], (a[1][0] + np.uint64(1), a[1][1]), a[2]]
    with pytest.raises(ValidationError, match="disagree"):
        reconstruct(bad)
    with pytest.raises(ValidationError):
        reconstruct(a[:2])


@given(x=U64, nbits=st.integers(1, 64))
def test_bitslice_roundtrip(x: np.ndarray, nbits: int) -> None:
    planes = to_planes(x, nbits)
    assert planes.shape == (nbits, n_words(x.size))
    mask = np.uint64((1 << nbits) - 1) if nbits < 64 else np.uint64(2**64 - 1)
    np.testing.assert_array_equal(from_planes(planes, x.size), x & mask)
    bits = planes_to_bits(planes, x.size)
    for j in (0, nbits - 1):
        np.testing.assert_array_equal(bits[j], (x >> np.uint64(j)) & np.uint64(1))


def test_bitslice_layout_known_answer() -> None:
    x = np.zeros(130, np.uint64)
    x[0] = 1          # bit 0 of element 0 -> plane 0, word 0, bit 0
    x[65] = 1 << 63   # bit 63 of element 65 -> plane 63, word 1, bit 1
    p = to_planes(x)
    assert p.shape == (64, 3)
    assert p[0, 0] == 1 and p[63, 1] == 2
    assert int(p.sum()) == 3
    with pytest.raises(ValidationError):
        to_planes(x, 65)
