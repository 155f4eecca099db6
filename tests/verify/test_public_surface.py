"""The public surfaces of metisnet.he and metisnet.verify are the intended ones."""

from __future__ import annotations

import metisnet.he as he
import metisnet.verify as verify


def test_he_surface() -> None:
    assert set(he.__all__) == {
        "DEFAULT_KEY_BITS", "EncryptedVector", "PaillierCiphertext", "PaillierKeypair",
        "PaillierPrivateKey", "PaillierPublicKey", "PaillierScheme", "PaillierVector",
        "Scheme", "check_randomness_proof", "generate_keypair",
    }
    assert all(hasattr(he, n) for n in he.__all__)
    assert "tenseal" not in he.__dict__  # CKKS stays a lazy, optional import


def test_verify_surface() -> None:
    assert set(verify.__all__) == {
        "LinearProgram", "MacKey", "MerkleTree", "TaskKeys", "VerifiedResult",
        "check_evidence", "evaluate", "freivalds_check", "freivalds_error_bound", "prepare",
        "verify_inclusion", "verify_result",
    }
    assert all(hasattr(verify, n) for n in verify.__all__)
