"""Verification of outsourced results: homomorphic MACs, Freivalds checks, commitments.

* :mod:`metisnet.verify.mac`: the one-time linear MAC carried in Paillier ciphertexts.
* :mod:`metisnet.verify.programs`: the linear programs and their (batched) MAC checks.
* :mod:`metisnet.verify.outsource`: prepare / evaluate / verify over plain messages.
* :mod:`metisnet.verify.freivalds`: Freivalds' check of matrix products.
* :mod:`metisnet.verify.merkle`: Merkle commitments with inclusion proofs.

The outsourcing flow, every message a msgpack-compatible dict::

    kp = generate_keypair()                                   # requester
    keys = TaskKeys()                                         # requester, secret
    mac_j = keys.owner_key(task_id, j, kp.public_key.n)       # -> owner j, privately
    batch_j, commit_j = prepare(kp.public_key, mac_j, task_id, j, column)   # owner j
    result = evaluate(program.to_dict(), [batch_0, batch_1])  # compute node
    verified = verify_result(kp.private_key, keys, task_id, program,
                             [commit_0, commit_1], result)    # requester
    verified.values(); verified.mean(); verified.variance()
    # on failure: CheatingDetected(evidence=...); check_evidence(evidence, pk, result)
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
