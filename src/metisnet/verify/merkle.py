"""A Merkle tree commitment (SHA-256) to a list of chunks, with inclusion proofs.

Leaves are ``H(0x00 || domain || index || chunk)`` and inner nodes ``H(0x01 || L || R)``;
an odd node at the end of a level moves up unchanged (no duplicated last leaf, so no second
preimage by duplication, the pitfall behind CVE-2012-2459). The root is
``H(0x02 || domain || count || top)``: it binds the number of chunks and the domain (for
outsourcing: task id and owner), so a dropped, duplicated, reordered or foreign chunk
changes it. A proof for leaf ``i`` is ``ceil(log2(count))`` hashes at most.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from metisnet.errors import ValidationError

__all__ = ["MerkleTree", "verify_inclusion"]


def _h(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def _leaf(domain: bytes, index: int, chunk: bytes) -> bytes:
    return _h(b"\x00", len(domain).to_bytes(2, "big"), domain, index.to_bytes(8, "big"), chunk)


def _root(domain: bytes, count: int, top: bytes) -> bytes:
    return _h(b"\x02", len(domain).to_bytes(2, "big"), domain, count.to_bytes(8, "big"), top)


class MerkleTree:
    """The tree over ``chunks``; :attr:`root` is the commitment."""

    __slots__ = ("count", "domain", "levels", "root")

    def __init__(self, chunks: Sequence[bytes], domain: bytes = b"") -> None:
        self.domain = bytes(domain)
        self.count = len(chunks)
        level = [_leaf(self.domain, i, c) for i, c in enumerate(chunks)]
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            nxt = [_h(b"\x01", level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
            self.levels.append(level)
        self.root = _root(self.domain, self.count, level[0] if level else b"")

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf up (levels where the node has none are skipped)."""
        if not 0 <= index < self.count:
            raise ValidationError("leaf index out of range")
        out: list[bytes] = []
        i = index
        for level in self.levels[:-1]:
            sib = i ^ 1
            if sib < len(level):
                out.append(level[sib])
            i //= 2
        return out


def verify_inclusion(root: bytes, count: int, index: int, chunk: bytes,
                     proof: Sequence[bytes], domain: bytes = b"") -> bool:
    """Whether ``chunk`` is leaf ``index`` of the ``count``-leaf tree with ``root``."""
    if not 0 <= index < count:
        return False
    node = _leaf(domain, index, chunk)
    i, width, k = index, count, 0
    while width > 1:
        sib = i ^ 1
        if sib < width:
            if k >= len(proof):
                return False
            node = _h(b"\x01", proof[k], node) if i % 2 else _h(b"\x01", node, proof[k])
            k += 1
        i //= 2
        width = (width + 1) // 2
    return k == len(proof) and _root(domain, count, node) == root
