"""Typed identifiers and units shared across layers.

``NewType`` keeps ids that are all ``str``/``int``/``bytes`` at run time apart for the type
checker: a :data:`TaskId` cannot be passed where a :data:`DatasetId` is expected.
"""

from __future__ import annotations

from typing import NewType

__all__ = [
    "Address",
    "DatasetId",
    "NodeId",
    "PartyIndex",
    "SessionId",
    "SpecHash",
    "TaskId",
    "Wei",
]

#: A checksummed Ethereum address, ``0x`` followed by 40 hex digits.
Address = NewType("Address", str)
#: A node's id: the Ethereum address of its secp256k1 key.
NodeId = NewType("NodeId", str)
#: A dataset's id on the dataset registry (32 bytes).
DatasetId = NewType("DatasetId", bytes)
#: A task's id on the task manager.
TaskId = NewType("TaskId", int)
#: keccak256 of a canonical task spec (32 bytes).
SpecHash = NewType("SpecHash", bytes)
#: A secure-computation session id (16 random bytes).
SessionId = NewType("SessionId", bytes)
#: A party's index in a committee, 0-based.
PartyIndex = NewType("PartyIndex", int)
#: An amount of the chain's native currency in wei.
Wei = NewType("Wei", int)
