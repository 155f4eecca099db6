"""A salted Merkle commitment over a file's plaintext chunks.

Leaf ``i`` is ``SHA-256(0x00 || salt || u64be(i) || chunk_i)``; an inner node is
``SHA-256(0x01 || left || right)``; an odd node at the end of a level moves up unchanged.
The domain bytes keep leaves and inner nodes apart (second-preimage safety); the 32-byte
random salt, kept by the node, makes the root hiding, so a published root says nothing
about low-entropy data (a chunk cannot be guessed and checked against the root).

Cost: one hash per chunk and one per inner node; an opening of chunk ``i`` is the chunk,
the salt and ``ceil(log2 n)`` sibling hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["EMPTY_ROOT", "leaf_hash", "merkle_proof", "merkle_root", "verify_proof"]

#: Root of a file with no chunks.
EMPTY_ROOT = hashlib.sha256(b"\x02metisnet-empty").digest()


def leaf_hash(salt: bytes, index: int, chunk: bytes | memoryview) -> bytes:
    h = hashlib.sha256(b"\x00")
    h.update(salt)
    h.update(index.to_bytes(8, "big"))
    h.update(chunk)
    return h.digest()


def _parent(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        nxt = [_parent(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[tuple[bool, bytes]]:
    """Siblings from leaf to root; ``True`` marks a sibling on the right."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    proof: list[tuple[bool, bytes]] = []
    level, i = list(leaves), index
    while len(level) > 1:
        sib = i ^ 1
        if sib < len(level):
            proof.append((sib > i, level[sib]))
        nxt = [_parent(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, i = nxt, i // 2
    return proof


def verify_proof(root: bytes, leaf: bytes, proof: Sequence[tuple[bool, bytes]]) -> bool:
    node = leaf
    for right, sibling in proof:
        node = _parent(node, sibling) if right else _parent(sibling, node)
    return node == root
