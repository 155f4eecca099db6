"""Known answers and properties of the digest the malicious-mode checks compare."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from metisnet.mpc.evidence import DIGEST_BYTES, Hasher, digest


def test_digest_known_answers_are_blake3() -> None:
    # the BLAKE3 reference vectors for "" and "abc"
    assert digest(b"").hex() == ("af1349b9f5f9a1a6a0404dea36dcc949"
                                 "9bcb25c9adc112b7cc9a93cae41f3262")
    assert digest(b"abc").hex() == ("6437b3ac38465133ffb63b75273a8db5"
                                    "48c558465d79db03fd359c6cd5bd9d85")
    assert len(digest(b"")) == DIGEST_BYTES


def test_digest_of_an_array_is_its_little_endian_bytes() -> None:
    a = np.array([1, 2**64 - 1, 0], dtype=np.uint64)
    raw = b"".join(int(v).to_bytes(8, "little") for v in (1, 2**64 - 1, 0))
    assert digest(a) == digest(raw)
    assert digest(a[::-1].copy()) != digest(a)
    assert digest(np.arange(6, dtype=np.uint64).reshape(2, 3)[:, ::2]) == \
        digest(np.array([0, 2, 3, 5], dtype=np.uint64))  # a strided view: its values


@given(st.lists(st.integers(0, 2**64 - 1), max_size=40), st.integers(0, 40))
def test_running_hasher_equals_one_shot_digest(values: list[int], cut: int) -> None:
    a = np.array(values, dtype=np.uint64)
    h = Hasher()
    h.update(a[:cut])
    h.update(a[cut:])
    assert h.digest() == digest(a)
    if values:
        b = a.copy()
        b[len(values) // 2] ^= np.uint64(1)
        assert digest(b) != digest(a)
