"""A salted Merkle commitment over a dataset file's plaintext chunks, built streaming.

The tree is exactly that of :class:`metisnet.verify.merkle.MerkleTree` with the dataset's
32-byte random salt as its ``domain``: leaf ``i`` is
``SHA-256(0x00 || u16(len salt) || salt || u64(i) || chunk_i)``, inner nodes
``SHA-256(0x01 || L || R)`` (an odd last node moves up), and the root
``SHA-256(0x02 || u16(len salt) || salt || u64(count) || top)`` binds the chunk count. So an
opening of chunk ``i`` (the chunk, the salt and :func:`merkle_proof`) is checked with
``metisnet.verify.merkle.verify_inclusion(root, count, i, chunk, proof, domain=salt)``.

Unlike ``MerkleTree`` this module never holds the chunks: the sealing writer hashes each
chunk into its leaf as it passes, and the tree is built from the leaves. The salt, kept by
the node, makes the root hiding, so a published root says nothing about low-entropy data.

Cost: one hash per chunk and one per inner node; a proof is ``ceil(log2 n)`` hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["leaf_hash", "merkle_proof", "merkle_root"]


def _h(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def leaf_hash(salt: bytes, index: int, chunk: bytes | memoryview) -> bytes:
    h = hashlib.sha256(b"\x00")
    h.update(len(salt).to_bytes(2, "big"))
    h.update(salt)
    h.update(index.to_bytes(8, "big"))
    h.update(chunk)
    return h.digest()


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    level = list(leaves)
    levels = [level]
    while len(level) > 1:
        nxt = [_h(b"\x01", level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        levels.append(level)
    return levels


def merkle_root(leaves: Sequence[bytes], salt: bytes) -> bytes:
    """The root over ``leaves`` (made by :func:`leaf_hash` with the same ``salt``)."""
    top = _levels(leaves)[-1]
    return _h(b"\x02", len(salt).to_bytes(2, "big"), salt, len(leaves).to_bytes(8, "big"),
              top[0] if top else b"")


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from leaf ``index`` up, in ``verify_inclusion``'s order."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    out: list[bytes] = []
    i = index
    for level in _levels(leaves)[:-1]:
        if i ^ 1 < len(level):
            out.append(level[i ^ 1])
        i //= 2
    return out
