"""Trust stores: which certificate each peer must present, and where to reach it.

A :class:`TrustStore` answers one question: what is the pinned certificate hash
(``sha256(DER)``) of node ``node_id``, if that node is trusted at all? The TLS endpoint asks
it for every connection, in both directions, before any payload frame is read. Today the
pins come from a file (:class:`FileTrustStore`) or memory (:class:`MemoryTrustStore`); the
chain layer implements the same protocol from on-chain node registrations.

A :class:`PeerDirectory` tells where a node listens. The file format holds both::

    {
      "0xAbC...": "9f2c...64 hex digits",                         # pin only
      "0xDeF...": {"cert_sha256": "77a0...", "address": "127.0.0.1:7001"}
    }
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from eth_utils.address import is_checksum_address

from metisnet.errors import ConfigError
from metisnet.types import NodeId

__all__ = [
    "FileTrustStore",
    "MemoryTrustStore",
    "PeerDirectory",
    "TrustStore",
    "parse_address",
]


@runtime_checkable
class TrustStore(Protocol):
    """Pinned certificate hashes of trusted nodes."""

    def pinned_hash(self, node_id: NodeId) -> bytes | None:
        """The 32-byte sha256 of ``node_id``'s certificate, or None if it is not trusted."""
        ...


@runtime_checkable
class PeerDirectory(Protocol):
    """Where nodes listen."""

    def address(self, node_id: NodeId) -> tuple[str, int] | None:
        """``(host, port)`` of ``node_id``, or None if unknown."""
        ...


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` (``[v6]:port`` for IPv6) into ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"address {text!r} is not host:port")
    return host.strip("[]"), int(port)


def _check_node_id(node_id: str) -> NodeId:
    if not isinstance(node_id, str) or not is_checksum_address(node_id):
        raise ConfigError(f"{node_id!r} is not a checksummed node id (Ethereum address)")
    return NodeId(node_id)


def _parse_hash(node_id: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"certificate hash of {node_id} must be a hex string")
    try:
        digest = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise ConfigError(f"certificate hash of {node_id} is not hex") from None
    if len(digest) != 32:
        raise ConfigError(f"certificate hash of {node_id} must be 32 bytes (sha256)")
    return digest


class MemoryTrustStore:
    """Pins and addresses held in memory; thread-safe."""

    def __init__(self, pins: Mapping[NodeId, bytes] | None = None,
                 addresses: Mapping[NodeId, tuple[str, int]] | None = None) -> None:
        self._lock = threading.Lock()
        self._pins: dict[NodeId, bytes] = {}
        self._addresses: dict[NodeId, tuple[str, int]] = dict(addresses or {})
        for node_id, digest in (pins or {}).items():
            self.pin(node_id, digest)

    def pin(self, node_id: NodeId, digest: bytes,
            address: tuple[str, int] | None = None) -> None:
        if len(digest) != 32:
            raise ConfigError("a certificate pin is a 32-byte sha256")
        with self._lock:
            self._pins[_check_node_id(node_id)] = bytes(digest)
            if address is not None:
                self._addresses[node_id] = address

    def unpin(self, node_id: NodeId) -> None:
        with self._lock:
            self._pins.pop(node_id, None)

    def pinned_hash(self, node_id: NodeId) -> bytes | None:
        with self._lock:
            return self._pins.get(node_id)

    def address(self, node_id: NodeId) -> tuple[str, int] | None:
        with self._lock:
            return self._addresses.get(node_id)


class FileTrustStore:
    """Pins (and optional addresses) from a JSON file, re-read when the file changes."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._mem = MemoryTrustStore()
        self._reload()

    @property
    def path(self) -> Path:
        return self._path

    def _reload(self) -> None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            raise ConfigError(f"trust store file not found: {self._path}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(f"trust store {self._path} is not valid JSON") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"trust store {self._path} must be a JSON object")
        mem = MemoryTrustStore()
        for node_id, entry in raw.items():
            nid = _check_node_id(node_id)
            if isinstance(entry, dict):
                unknown = set(entry) - {"cert_sha256", "address"}
                if unknown:
                    raise ConfigError(f"unknown trust store field(s) for {nid}: {unknown}")
                addr = entry.get("address")
                mem.pin(nid, _parse_hash(nid, entry.get("cert_sha256")),
                        parse_address(addr) if isinstance(addr, str) else None)
            else:
                mem.pin(nid, _parse_hash(nid, entry))
        self._mem, self._stamp = mem, stamp

    def pinned_hash(self, node_id: NodeId) -> bytes | None:
        with self._lock:
            self._reload()
            return self._mem.pinned_hash(node_id)

    def address(self, node_id: NodeId) -> tuple[str, int] | None:
        with self._lock:
            self._reload()
            return self._mem.address(node_id)

    @staticmethod
    def write(path: str | Path, entries: Mapping[NodeId, tuple[bytes, str | None]]) -> None:
        """Write a trust store file: node id -> (cert hash, "host:port" or None)."""
        out: dict[str, object] = {}
        for nid, (digest, addr) in entries.items():
            out[nid] = digest.hex() if addr is None else {"cert_sha256": digest.hex(),
                                                          "address": addr}
        Path(path).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
