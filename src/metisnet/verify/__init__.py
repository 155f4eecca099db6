"""Verification of outsourced results: homomorphic MACs, Freivalds checks, commitments.

* :mod:`metisnet.verify.mac`: the one-time linear MAC carried in Paillier ciphertexts.
* :mod:`metisnet.verify.programs`: the linear programs and their (batched) MAC checks.
* :mod:`metisnet.verify.outsource`: prepare / evaluate / verify over plain messages.
* :mod:`metisnet.verify.freivalds`: Freivalds' check of matrix products.
* :mod:`metisnet.verify.merkle`: Merkle commitments with inclusion proofs.
"""

from __future__ import annotations

from metisnet.verify.freivalds import freivalds_check, freivalds_error_bound
from metisnet.verify.mac import MacKey, TaskKeys
from metisnet.verify.merkle import MerkleTree, verify_inclusion
from metisnet.verify.outsource import (
    VerifiedResult,
    check_evidence,
    evaluate,
    prepare,
    verify_result,
)
from metisnet.verify.programs import LinearProgram

__all__ = [
    "LinearProgram",
    "MacKey",
    "MerkleTree",
    "TaskKeys",
    "VerifiedResult",
    "check_evidence",
    "evaluate",
    "freivalds_check",
    "freivalds_error_bound",
    "prepare",
    "verify_inclusion",
    "verify_result",
]
