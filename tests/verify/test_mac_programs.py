"""The linear MAC and the programs: algebra, PRF sums, properties against plaintext."""

from __future__ import annotations

import gmpy2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metisnet.crypto.prg import Csprng
from metisnet.errors import ShapeError, ValidationError
from metisnet.he.paillier import PaillierKeypair
from metisnet.verify.mac import MacKey, TaskKeys, soundness_bits
from metisnet.verify.programs import LinearProgram


def test_tags_are_linear_and_bound_to_task_owner_and_index(vkp: PaillierKeypair) -> None:
    n = vkp.public_key.n
    keys = TaskKeys(b"m" * 32)
    k = keys.owner_key(b"task", 0, n)
    xs = [3, -5, 7, 0]
    ts = k.tags(0, xs)
    ws = [2, -1, 5, 9]
    y = sum(w * x for w, x in zip(ws, xs, strict=True))
    tau = sum(w * t for w, t in zip(ws, ts, strict=True)) % n
    assert k.check(y, tau, k.b_weighted(0, ws))
    assert not k.check(y + 1, tau, k.b_weighted(0, ws))
    assert k.check(sum(xs), sum(ts) % n, k.b_sum(0, 4))
    # other owners, tasks and indices give other tags
    assert keys.owner_key(b"task", 1, n).tags(0, xs) != ts
    assert keys.owner_key(b"task2", 0, n).tags(0, xs) != ts
    assert k.tags(0, xs[1:]) != ts[1:]  # the same values at other indices
    assert k.tags(1, xs[1:]) == ts[1:]


def test_prf_sums_match_the_definition(vkp: PaillierKeypair) -> None:
    n = vkp.public_key.n
    k = MacKey(bytes(range(32)), n)
    bs = k.b_raw(0, 60)
    assert k.b_raw(10, 5) == bs[10:15]  # random access into the PRF stream
    assert k.b_sum(0, 60) == sum(bs) % n
    assert k.b_strided_sums(0, 60, 3) == [sum(bs[c::3]) % n for c in range(3)]
    assert k.b_weighted(0, list(range(60))) == sum(i * b for i, b in enumerate(bs)) % n
    assert all(b < 2 ** (8 * k.block_bytes) for b in bs)
    assert k.block_bytes * 8 >= gmpy2.bit_length(n) + 64
    with pytest.raises(ValidationError):
        k.b_strided_sums(0, 10, 3)


def test_keys_hide_their_secrets(vkp: PaillierKeypair) -> None:
    keys = TaskKeys()
    k = keys.owner_key(b"t", 0, vkp.public_key.n)
    assert "hidden" in repr(k) and "hidden" in repr(keys)
    assert k.seed.hex() not in repr(k)
    with pytest.raises(ValidationError):
        MacKey(b"short", 7)
    with pytest.raises(ValidationError):
        keys.owner_key(b"", 0, 7)


def test_soundness_bound_is_at_most_2_to_minus_40() -> None:
    assert soundness_bits(512) == 255 and soundness_bits(2048) == 1023
    assert soundness_bits(512) >= 40


def test_combined_residuals_accept_zeros_only(vkp: PaillierKeypair) -> None:
    k = MacKey(bytes(32), vkp.public_key.n)
    rng = Csprng(b"combine-residual")
    assert k.combine_residuals([0, 0, 0], rng)
    assert not k.combine_residuals([0, 5, 0], rng)


def test_program_validation() -> None:
    with pytest.raises(ValidationError):
        LinearProgram("max")
    with pytest.raises(ValidationError):
        LinearProgram("weighted_sum")
    with pytest.raises(ValidationError):
        LinearProgram("matvec", matrix=((1, 2), (3,)))
    with pytest.raises(ValidationError):
        LinearProgram("sum", offset=3)
    with pytest.raises(ValidationError):
        LinearProgram("weighted_sum", weights=(1.5,))  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        LinearProgram("weighted_sum", weights=(1, 2)).output_count(3, 1)
    p = LinearProgram.from_reals("score", weights=[0.5, 2**70], offset=1.0)
    assert LinearProgram.from_dict(p.to_dict()) == p
    assert LinearProgram.from_dict(p.to_dict()).digest == p.digest
    assert LinearProgram.sum().digest != LinearProgram.colsum().digest


small = st.integers(min_value=-(2**40), max_value=2**40)


@settings(max_examples=25)
@given(data=st.data(), rows=st.integers(1, 4), cols=st.integers(1, 3))
def test_programs_on_ciphertexts_match_plaintext(vkp: PaillierKeypair, data: st.DataObject,
                                                 rows: int, cols: int) -> None:
    pk, sk = vkp.public_key, vkp.private_key
    n_in = rows * cols
    xs = data.draw(st.lists(small, min_size=n_in, max_size=n_in))
    kind = data.draw(st.sampled_from(["sum", "colsum", "weighted_sum", "matvec", "score"]))
    w = st.integers(min_value=-(2**20), max_value=2**20)
    if kind == "weighted_sum":
        prog = LinearProgram(kind, weights=tuple(data.draw(st.lists(w, min_size=n_in,
                                                                    max_size=n_in))))
    elif kind == "matvec":
        m = data.draw(st.integers(1, 3))
        prog = LinearProgram(kind, matrix=tuple(tuple(data.draw(
            st.lists(w, min_size=n_in, max_size=n_in))) for _ in range(m)))
    elif kind == "score":
        prog = LinearProgram(kind, weights=tuple(data.draw(st.lists(w, min_size=cols,
                                                                    max_size=cols))),
                             offset=data.draw(small))
    else:
        prog = LinearProgram(kind)
    mac = MacKey(bytes(32), pk.n)
    cts = pk.raw_encrypt_many(xs)
    tcts = pk.raw_encrypt_many(mac.tags(0, xs))
    ys = [sk.raw_decrypt_signed(c)
          for c in prog.evaluate(pk, cts, rows, cols, with_offset=True)]
    taus = [int(sk.raw_decrypt(c))
            for c in prog.evaluate(pk, tcts, rows, cols, with_offset=False)]
    assert ys == prog.plain(xs, rows, cols)
    assert prog.check(mac, ys, taus, rows, cols)
    assert prog.failing_outputs(mac, ys, taus, rows, cols) == []
    bad = list(ys)
    bad[-1] += 1
    assert not prog.check(mac, bad, taus, rows, cols)
    assert prog.failing_outputs(mac, bad, taus, rows, cols) == [len(ys) - 1]
