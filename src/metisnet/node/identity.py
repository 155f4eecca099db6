"""Node and owner keys: a secp256k1 signing key (its Ethereum address is the id) and the
node's master key that wraps every dataset's data key.

A node key comes either from the network layer's encrypted keystore
(``metisnet.net.identity``, config ``node_keystore``, password in ``METIS_KEY_PASSWORD``),
which is what a node registered on chain uses, or from a plain hex key file created on
first start (config ``node_key_file``; tests, local runs). Owners' keys for hosting use the
same plain format (``metis dataset keygen``). :class:`NodeKey` adds what the data node needs
on top of a raw key: the compressed public key that owners encrypt to, ECDH, the address.

Key files hold 32 random bytes (hex for the secp256k1 key, raw for the master key), are
created with mode 0600 via an atomic rename, and their contents are never logged or
formatted into an error.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from coincurve import PrivateKey, PublicKey
from eth_account import Account

from metisnet.errors import ConfigError, ValidationError
from metisnet.types import Address

__all__ = [
    "NodeKey",
    "load_keystore_key",
    "load_or_create_master_key",
    "load_or_create_node_key",
    "load_signing_key",
    "normalize_address",
    "write_signing_key",
]


@dataclass(frozen=True)
class NodeKey:
    """A secp256k1 key pair; ``repr`` never shows the private half."""

    private: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.private) != 32:
            raise ValidationError("a secp256k1 private key is 32 bytes")
        PrivateKey(self.private)  # raises on 0 or >= n

    @classmethod
    def generate(cls) -> NodeKey:
        return cls(PrivateKey().secret)

    @property
    def public_key(self) -> bytes:
        """33-byte compressed public key (what owners encrypt hosted datasets to)."""
        return bytes(PrivateKey(self.private).public_key.format(compressed=True))

    @property
    def address(self) -> Address:
        return Address(Account.from_key(self.private).address)

    def ecdh(self, peer_public: bytes) -> bytes:
        """SHA-256 of the compressed shared point (libsecp256k1's default ECDH hash)."""
        return bytes(PrivateKey(self.private).ecdh(PublicKey(peer_public).format()))


def normalize_address(value: str) -> Address:
    """Checksum an ``0x`` address; a malformed one is a :class:`ValidationError`."""
    from eth_utils.address import is_address, to_checksum_address

    if not isinstance(value, str) or not is_address(value):
        raise ValidationError("not an Ethereum address (0x followed by 40 hex digits)")
    return Address(to_checksum_address(value))


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + f".tmp{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_signing_key(path: Path, key: NodeKey) -> None:
    """Write ``key`` as hex to a new 0600 file (refuses to overwrite)."""
    if path.exists():
        raise ConfigError(f"key file {path} already exists; refusing to overwrite it")
    _write_secret(path, key.private.hex().encode() + b"\n")


def load_signing_key(path: Path) -> NodeKey:
    """Read a hex secp256k1 key file written by :func:`write_signing_key`."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"key file not found: {path}") from None
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"key file {path} is unreadable or not hex") from None
    text = text.removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
        return NodeKey(raw)
    except (ValueError, ValidationError):
        raise ConfigError(f"key file {path} does not hold a 32-byte secp256k1 key") from None


def load_or_create_node_key(path: Path) -> NodeKey:
    if not path.exists():
        _write_secret(path, NodeKey.generate().private.hex().encode() + b"\n")
    return load_signing_key(path)


def load_keystore_key(path: Path) -> NodeKey:
    """The node key from an encrypted keystore of the network layer (``metisnet.net``)."""
    from metisnet.net.identity import load_keystore, resolve_password

    return NodeKey(load_keystore(path, resolve_password(None)).secret_bytes())


def load_or_create_master_key(path: Path) -> bytes:
    """The node's 256-bit master key (AES-256-GCM key-wrapping key)."""
    if not path.exists():
        _write_secret(path, secrets.token_bytes(32))
    data = path.read_bytes()
    if len(data) != 32:
        raise ConfigError(f"master key file {path} must hold exactly 32 bytes")
    return data
