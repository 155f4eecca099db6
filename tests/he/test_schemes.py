"""One base suite for every :class:`Scheme`, subclassed per backend (Paillier, CKKS)."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import numpy as np
import pytest

from metisnet.errors import DecryptionError, DependencyMissing, ShapeError, ValidationError
from metisnet.he import PaillierScheme, Scheme
from metisnet.he.paillier import PaillierKeypair

X = np.array([1.5, -2.25, 3.0, 0.125])
Y = np.array([0.5, 4.0, -1.0, 2.0])
W = np.array([2.0, -0.5, 0.25, 1.0])
M = np.array([[1.0, 0.0, 2.0, -1.0], [0.5, 0.5, 0.5, 0.5]])


class SchemeSuite:
    """Subclasses provide ``scheme`` (with a secret key) and ``compute`` (without)."""

    tol: ClassVar[float] = 1e-9

    @pytest.fixture
    def schemes(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def test_is_a_scheme(self, schemes: tuple[Any, Any]) -> None:
        s, _ = schemes
        assert isinstance(s, Scheme)
        assert isinstance(s.name, str) and isinstance(s.exact, bool)

    def test_round_trip(self, schemes: tuple[Any, Any]) -> None:
        s, _ = schemes
        ct = s.encrypt(X)
        assert len(ct) == 4
        np.testing.assert_allclose(s.decrypt(ct)[:4], X, atol=self.tol)

    def test_linear_operations_on_the_compute_side(self, schemes: tuple[Any, Any]) -> None:
        s, c = schemes
        a = c.deserialize(s.serialize(s.encrypt(X)))
        b = c.deserialize(s.serialize(s.encrypt(Y)))
        results = {
            "add": (c.add(a, b), X + Y),
            "add_plain": (c.add_plain(a, Y), X + Y),
            "mul_plain": (c.mul_plain(a, W), X * W),
            "mul_scalar": (c.mul_plain(a, 3.0), X * 3.0),
            "sum": (c.sum(a), np.array([X.sum()])),
            "dot": (c.dot_plain(a, W), np.array([X @ W])),
            "matvec": (c.matvec_plain(M, a), M @ X),
        }
        for name, (ct, want) in results.items():
            got = s.decrypt(s.deserialize(c.serialize(ct)))[: len(want)]
            np.testing.assert_allclose(got, want, atol=self.tol * 10, err_msg=name)

    def test_shape_mismatches_are_refused(self, schemes: tuple[Any, Any]) -> None:
        s, _ = schemes
        a, b = s.encrypt(X), s.encrypt(X[:3])
        with pytest.raises(ShapeError):
            s.add(a, b)
        with pytest.raises(ShapeError):
            s.matvec_plain(np.ones((2, 3)), a)
        with pytest.raises(ValidationError):
            s.encrypt([float("nan")])

    def test_decrypting_needs_the_secret(self, schemes: tuple[Any, Any]) -> None:
        s, c = schemes
        with pytest.raises(DecryptionError):
            c.decrypt(s.encrypt(X))


class TestPaillierScheme(SchemeSuite):
    tol = 2.0**-15

    @pytest.fixture
    def schemes(self, kp512: PaillierKeypair) -> tuple[Any, Any]:
        return (PaillierScheme(kp512.public_key, kp512.private_key),
                PaillierScheme(kp512.public_key))

    def test_paillier_is_exact_in_fixed_point(self, kp512: PaillierKeypair) -> None:
        s = PaillierScheme(kp512.public_key, kp512.private_key)
        got = s.decrypt(s.dot_plain(s.encrypt(X), W))
        assert got[0] == X @ W  # every value here is a multiple of 2^-16

    def test_vectors_under_other_keys_are_refused(self, kp512: PaillierKeypair,
                                                  kp512b: PaillierKeypair) -> None:
        s = PaillierScheme(kp512.public_key, kp512.private_key)
        t = PaillierScheme(kp512b.public_key, kp512b.private_key)
        with pytest.raises(ShapeError):
            s.add(s.encrypt(X), t.encrypt(X))
        with pytest.raises(ShapeError):
            s.deserialize(t.serialize(t.encrypt(X)))
        with pytest.raises(ValidationError):
            PaillierScheme(kp512.public_key, kp512b.private_key)


@pytest.fixture(scope="module")
def ckks_pair() -> tuple[Any, Any]:
    from metisnet.he.ckks import CkksScheme

    s = CkksScheme()
    return s, CkksScheme.from_context_bytes(s.serialize_context())


class TestCkksScheme(SchemeSuite):
    tol = 1e-4

    @pytest.fixture
    def schemes(self, ckks_pair: tuple[Any, Any]) -> tuple[Any, Any]:
        return ckks_pair

    def test_public_copy_holds_no_secret(self, schemes: tuple[Any, Any]) -> None:
        s, _ = schemes
        assert not s.public().context.is_private()


def test_missing_tenseal_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from metisnet.he import ckks

    monkeypatch.setitem(sys.modules, "tenseal", None)
    with pytest.raises(DependencyMissing, match=r"metisnet\[he\]"):
        ckks.load_tenseal()
    with pytest.raises(DependencyMissing):
        ckks.CkksScheme()
