"""Paillier: hand-checkable known answers, properties against plain integers, key mixing."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metisnet.crypto.prg import Csprng
from metisnet.errors import DecryptionError, ShapeError, ValidationError
from metisnet.he.paillier import (
    PaillierCiphertext,
    PaillierKeypair,
    PaillierPublicKey,
    check_randomness_proof,
    generate_keypair,
    keypair_from_parameters,
)

# n = 31 * 43 = 1333; p - 1 = 2*5*3, q - 1 = 2*7*3 (alpha_p = 5, alpha_q = 7);
# h = -2^(2*3*3) mod 1333 = 457, of order 2*5*7; h_s = 457^1333 mod 1333^2 = 109166.
TINY = (31, 43, 5, 7, 457)


@pytest.fixture(scope="module")
def tiny() -> PaillierKeypair:
    return keypair_from_parameters(*TINY)


def test_tiny_key_known_answers(tiny: PaillierKeypair) -> None:
    pk, sk = tiny.public_key, tiny.private_key
    assert (pk.n, pk.nsquare, pk.h_s) == (1333, 1776889, 109166)
    assert pk.h_s == pow(457, 1333, 1333**2)
    # c = (1 + m*n) * h_s^a mod n^2 = g^m * h_s^a with g = n + 1
    vectors = [(5, 3, 1753542), (0, 1, 109166), (1332, 2, 147568), (100, 65535, 1381235)]
    for m, a, c in vectors:
        assert pk.raw_encrypt_with_exponent(m, a) == c
        assert c == pow(1334, m, 1333**2) * pow(109166, a, 1333**2) % 1333**2
        assert sk.raw_decrypt(c) == m


def test_tiny_key_decryption_by_hand(tiny: PaillierKeypair) -> None:
    # m mod p = L_p(c^(2*alpha_p) mod p^2) * (2*alpha_p*q)^-1 mod p, and the same for q.
    c, p, q = 1753542, 31, 43
    lp = (pow(c % p**2, 10, p**2) - 1) // p
    lq = (pow(c % q**2, 14, q**2) - 1) // q
    mp = lp * pow(10 * q, -1, p) % p
    mq = lq * pow(14 * p, -1, q) % q
    assert (mp, mq) == (5, 5)
    assert tiny.private_key.raw_decrypt(c) == 5


def test_tiny_key_homomorphic_known_answers(tiny: PaillierKeypair) -> None:
    pk, sk = tiny.public_key, tiny.private_key
    c1 = pk.raw_encrypt_with_exponent(5, 3)
    c2 = pk.raw_encrypt_with_exponent(100, 7)
    assert pk.raw_add(c1, c2) == c1 * c2 % pk.nsquare
    assert sk.raw_decrypt(pk.raw_add(c1, c2)) == 105
    assert sk.raw_decrypt(pk.raw_mul(c1, 7)) == 35
    assert sk.raw_decrypt(pk.raw_mul(c1, -1)) == 1333 - 5
    assert sk.raw_decrypt_signed(pk.raw_mul(c1, -1)) == -5
    assert sk.raw_decrypt(pk.raw_add_plain(c1, 10)) == 15
    assert sk.raw_decrypt(pk.raw_weighted_sum([c1, c2], [2, -1])) == (10 - 100) % 1333


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValidationError):
        keypair_from_parameters(31, 43, 3, 7, 457)  # 457 has order 10 mod 31, not 2*3
    with pytest.raises(ValidationError):
        keypair_from_parameters(31, 43, 5, 7, 3)  # 3 has order 30 mod 31: outside
    with pytest.raises(ValidationError):
        keypair_from_parameters(31, 43, 4, 7, 457)  # 2*4 does not divide 30
    with pytest.raises(ValidationError):
        keypair_from_parameters(31, 41, 5, 7, 457)  # primes do not match n
    with pytest.raises(ValidationError):
        generate_keypair(255)


@pytest.mark.parametrize("bits", [512, 1024])
def test_generated_keys_have_the_promised_shape(bits: int) -> None:
    kp = generate_keypair(bits)
    assert kp.public_key.bits == bits
    cts = kp.public_key.raw_encrypt_many([0, 1, 2**100, -7])
    assert [kp.private_key.raw_decrypt_signed(c) for c in cts] == [0, 1, 2**100, -7]


def test_2048_bit_default_key(kp2048: PaillierKeypair) -> None:
    pk, sk = kp2048.public_key, kp2048.private_key
    assert pk.bits == 2048
    assert pk.r_bits == 2 * 224 + 64
    a, b = pk.encrypt(12.5), pk.encrypt(-0.25)
    assert sk.decrypt(a + b) == 12.25
    assert sk.decrypt(a * 3 - b) == 37.75
    assert sk.decrypt_int(pk.encrypt(-(2**1000))) == -(2**1000)


def test_same_seed_same_ciphertexts(kp512: PaillierKeypair) -> None:
    pk = kp512.public_key
    a = pk.raw_encrypt_many([1, 2, 3], rng=Csprng(b"0123456789abcdef"))
    b = pk.raw_encrypt_many([1, 2, 3], rng=Csprng(b"0123456789abcdef"))
    c = pk.raw_encrypt_many([1, 2, 3])
    assert a == b and a != c


ints = st.integers(min_value=-(2**120), max_value=2**120)
reals = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@settings(max_examples=60)
@given(x=ints, y=ints, k=st.integers(min_value=-(2**40), max_value=2**40))
def test_integer_arithmetic_matches_plaintext(kp512: PaillierKeypair, x: int, y: int,
                                              k: int) -> None:
    pk, sk = kp512.public_key, kp512.private_key
    cx, cy = pk.encrypt(x), pk.encrypt(y)
    assert sk.decrypt(cx) == x
    assert sk.decrypt(cx + cy) == x + y
    assert sk.decrypt(cx - cy) == x - y
    assert sk.decrypt(cx + k) == x + k
    assert sk.decrypt(cx * k) == x * k
    assert sk.decrypt(-cx) == -x


@settings(max_examples=60)
@given(x=reals, y=reals, w=st.floats(min_value=-1e3, max_value=1e3, allow_nan=False))
def test_fixed_point_arithmetic_matches_the_shared_encoding(kp512: PaillierKeypair,
                                                            x: float, y: float,
                                                            w: float) -> None:
    pk, sk = kp512.public_key, kp512.private_key
    fp = pk.fixed_point
    ex, ey, ew = fp.encode_int(x), fp.encode_int(y), fp.encode_int(w)
    cx, cy = pk.encrypt(x), pk.encrypt(y)
    assert sk.decrypt_int(cx + cy) == ex + ey
    prod = cx * w
    assert prod.scale == 2 * fp.frac_bits
    assert sk.decrypt_int(prod) == ex * ew
    assert sk.decrypt(cx + cy) == pytest.approx(x + y, abs=2 * fp.resolution)


def test_batch_encryption_uses_one_scale(kp512: PaillierKeypair) -> None:
    pk, sk = kp512.public_key, kp512.private_key
    cts = pk.encrypt_many([1, 2.5, -3])
    assert {c.scale for c in cts} == {16}
    assert sk.decrypt_many(cts) == [1.0, 2.5, -3.0]
    assert sk.decrypt_many(pk.encrypt_many([1, 2, -3])) == [1, 2, -3]


def test_ciphertexts_under_different_keys_do_not_mix(kp512: PaillierKeypair,
                                                     kp512b: PaillierKeypair) -> None:
    a = kp512.public_key.encrypt(1)
    b = kp512b.public_key.encrypt(1)
    with pytest.raises(ShapeError):
        _ = a + b
    with pytest.raises(TypeError):  # ShapeError is a TypeError too
        _ = b - a
    with pytest.raises(ShapeError):
        _ = a + kp512.public_key.encrypt(1.0)  # scales differ
    with pytest.raises(ShapeError):
        _ = a * a  # type: ignore[operator]


def test_decryption_with_the_wrong_key_fails_clearly(kp512: PaillierKeypair,
                                                     kp512b: PaillierKeypair) -> None:
    other_ct = kp512b.public_key.encrypt(42)
    with pytest.raises(DecryptionError, match="different key"):
        kp512.private_key.decrypt(other_ct)
    # The raw value of a foreign ciphertext fails the subgroup check of decryption.
    for m in range(20):
        c = kp512b.public_key.raw_encrypt(m) % kp512.public_key.nsquare
        with pytest.raises(DecryptionError):
            kp512.private_key.raw_decrypt(c)
    with pytest.raises(DecryptionError):
        kp512.private_key.raw_decrypt(0)


def test_secrets_stay_out_of_reprs_and_truth_values(kp512: PaillierKeypair) -> None:
    sk = kp512.private_key
    secret_p = str(int(sk._s.p))
    for obj in (sk, kp512, kp512.public_key, kp512.public_key.encrypt(5)):
        assert secret_p not in repr(obj)
        assert "hidden" in repr(sk)
    with pytest.raises(TypeError):
        bool(kp512.public_key.encrypt(0))


def test_serialisation_round_trips_through_msgpack(kp512: PaillierKeypair) -> None:
    pk, sk = kp512.public_key, kp512.private_key
    wire = msgpack.packb(pk.to_dict(), use_bin_type=True)
    pk2 = PaillierPublicKey.from_dict(msgpack.unpackb(wire, raw=False))
    assert pk2 == pk and pk2.key_id == pk.key_id
    c = pk2.encrypt(-5)
    c2 = PaillierCiphertext.from_bytes(pk, c.to_bytes(), c.scale)
    assert sk.decrypt(c2) == -5
    with pytest.raises(ValidationError):
        PaillierCiphertext.from_bytes(pk, b"\x00" * 3)
    with pytest.raises(ValidationError):
        PaillierPublicKey.from_dict({"scheme": "rsa"})


def test_randomness_proof_lets_anyone_check_a_decryption(kp512: PaillierKeypair) -> None:
    pk, sk = kp512.public_key, kp512.private_key
    c = pk.raw_encrypt(1234)
    m, r = sk.randomness_proof(c)
    assert m == 1234 and check_randomness_proof(pk, c, m, r)
    assert not check_randomness_proof(pk, c, m + 1, r)


def test_bad_inputs_are_refused(kp512: PaillierKeypair) -> None:
    pk = kp512.public_key
    with pytest.raises(ValidationError):
        pk.encrypt(True)
    with pytest.raises(ValidationError):
        pk.encrypt(float("nan"))
    with pytest.raises(ValidationError):
        pk.encrypt(pk.n)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        pk.encrypt("1")  # type: ignore[arg-type]


def test_private_key_export_round_trips(kp512: PaillierKeypair) -> None:
    from metisnet.he.paillier import PaillierPrivateKey

    rec = msgpack.unpackb(msgpack.packb(kp512.private_key.export_secret(),
                                        use_bin_type=True), raw=False)
    sk = PaillierPrivateKey.import_secret(rec)
    assert sk.decrypt(kp512.public_key.encrypt(-77)) == -77
    with pytest.raises(ValidationError):
        PaillierPrivateKey.import_secret({"scheme": "paillier-djn-secret"})
    rec["p"] = (int.from_bytes(rec["p"], "big") + 2).to_bytes(40, "big")
    with pytest.raises(ValidationError):
        PaillierPrivateKey.import_secret(rec)
