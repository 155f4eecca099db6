"""Node identities: a secp256k1 key whose Ethereum address is the node id, and a TLS cert.

* :class:`NodeKey` is the node's secp256k1 key. Its checksummed Ethereum address is the
  :data:`~metisnet.types.NodeId` the chain registers. It is stored in an encrypted keystore
  file (Ethereum keystore JSON v3, scrypt by default; :func:`save_keystore`,
  :func:`load_keystore`); the password comes from an argument or ``METIS_KEY_PASSWORD``.
* :class:`TlsIdentity` is the node's TLS credential: a fresh ECDSA P-256 key and a
  self-signed certificate whose subject common name and SAN URI name the node id. The
  certificate also carries a non-critical extension holding a recoverable secp256k1
  signature, by the node key, over the certificate's public key, so a peer can check that
  whoever holds the TLS key was authorised by the holder of the node key
  (:func:`verify_certificate`). Peers pin ``sha256(DER)`` of the certificate
  (:func:`cert_hash`), which the chain publishes with the node's registration.

The TLS private key is stored next to the keystore (``<keystore>.tls``), encrypted with the
same password (PKCS#8, best available encryption).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import coincurve
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from metisnet.errors import ConfigError, CryptoError, DecryptionError, IntegrityError
from metisnet.types import NodeId

__all__ = [
    "BINDING_OID",
    "PASSWORD_ENV",
    "NodeIdentity",
    "NodeKey",
    "TlsIdentity",
    "cert_hash",
    "create_node_files",
    "load_keystore",
    "load_node_identity",
    "new_node_identity",
    "resolve_password",
    "save_keystore",
    "verify_certificate",
]

#: Environment variable a keystore password is read from when none is given.
PASSWORD_ENV: Final = "METIS_KEY_PASSWORD"  # noqa: S105 - a variable name
#: Object identifier of the certificate extension binding the TLS key to the node key
#: (an OID under the UUID arc 2.25, which needs no registration).
BINDING_OID: Final = x509.ObjectIdentifier("2.25.223841571961380541409871206151786375081")
_BINDING_DOMAIN: Final = b"metisnet/tls-binding/v1"
_URI_PREFIX: Final = "metis:node:"


def resolve_password(password: str | None) -> str:
    """``password`` if given, else ``$METIS_KEY_PASSWORD``; refuses an empty password."""
    pw = password if password is not None else os.environ.get(PASSWORD_ENV)
    if not pw:
        raise ConfigError(f"no keystore password: pass one or set {PASSWORD_ENV}")
    return pw


def _address_of(pub: coincurve.PublicKey) -> NodeId:
    digest = keccak(pub.format(compressed=False)[1:])
    return NodeId(to_checksum_address(digest[-20:]))


class NodeKey:
    """A node's secp256k1 key. ``repr`` never shows the secret."""

    __slots__ = ("_key", "_node_id")

    def __init__(self, secret: bytes) -> None:
        try:
            self._key = coincurve.PrivateKey(secret)
        except Exception:
            raise CryptoError("invalid secp256k1 private key") from None
        self._node_id = _address_of(self._key.public_key)

    @classmethod
    def generate(cls) -> NodeKey:
        return cls(coincurve.PrivateKey().secret)

    @property
    def node_id(self) -> NodeId:
        """The checksummed Ethereum address of this key."""
        return self._node_id

    def secret_bytes(self) -> bytes:
        """The raw 32-byte secret (only for writing an encrypted keystore)."""
        return bytes(self._key.secret)

    def sign_recoverable(self, digest: bytes) -> bytes:
        """A 65-byte recoverable signature over a 32-byte digest."""
        if len(digest) != 32:
            raise CryptoError("sign a 32-byte digest")
        return bytes(self._key.sign_recoverable(digest, hasher=None))

    def __repr__(self) -> str:
        return f"NodeKey({self._node_id}, <secret hidden>)"


def save_keystore(key: NodeKey, path: str | Path, password: str, *,
                  scrypt_n: int | None = None) -> None:
    """Write ``key`` to ``path`` as an encrypted keystore JSON v3 (mode 0600).

    ``scrypt_n`` lowers the scrypt cost for tests; the default is eth-account's (2**18).
    """
    from eth_account import Account

    blob = Account.encrypt(key.secret_bytes(), password, kdf="scrypt", iterations=scrypt_n)
    _write_private(Path(path), json.dumps(blob).encode())


def load_keystore(path: str | Path, password: str) -> NodeKey:
    """Read and decrypt a keystore file; wrong password raises DecryptionError."""
    from eth_account import Account

    p = Path(path)
    try:
        blob = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"keystore file not found: {p}") from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"keystore file {p} is not JSON") from None
    try:
        secret = bytes(Account.decrypt(blob, password))
    except ValueError:
        raise DecryptionError(
            f"cannot decrypt keystore {p}: wrong password or corrupt file") from None
    return NodeKey(secret)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def cert_hash(cert_der: bytes) -> bytes:
    """The pin of a certificate: sha256 of its DER encoding (32 bytes)."""
    return hashlib.sha256(cert_der).digest()


def _binding_digest(spki_der: bytes) -> bytes:
    return bytes(keccak(_BINDING_DOMAIN + spki_der))


@dataclass(frozen=True)
class TlsIdentity:
    """A node's TLS key and self-signed certificate (DER)."""

    node_id: NodeId
    key: ec.EllipticCurvePrivateKey
    cert_der: bytes

    @classmethod
    def create(cls, node_key: NodeKey, *, days: int = 3650) -> TlsIdentity:
        """A fresh P-256 key and a certificate binding it to ``node_key``."""
        tls_key = ec.generate_private_key(ec.SECP256R1())
        spki = tls_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        binding = node_key.sign_recoverable(_binding_digest(spki))
        name = x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, node_key.node_id),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "metisnet node"),
        ])
        now = _dt.datetime.now(_dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(tls_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(_URI_PREFIX + node_key.node_id)]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.UnrecognizedExtension(BINDING_OID, binding), critical=False)
            .sign(tls_key, hashes.SHA256())
        )
        return cls(node_key.node_id, tls_key, cert.public_bytes(serialization.Encoding.DER))

    @property
    def cert_hash(self) -> bytes:
        return cert_hash(self.cert_der)

    def cert_pem(self) -> bytes:
        return x509.load_der_x509_certificate(self.cert_der).public_bytes(
            serialization.Encoding.PEM)

    def key_pem(self, password: bytes) -> bytes:
        """The TLS key as encrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password))

    def save(self, path: str | Path, password: str) -> None:
        _write_private(Path(path), self.cert_pem() + self.key_pem(password.encode()))

    @classmethod
    def load(cls, path: str | Path, password: str) -> TlsIdentity:
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"TLS credential file not found: {p}") from None
        try:
            cert = x509.load_pem_x509_certificate(data)
            key = serialization.load_pem_private_key(data, password.encode())
        except ValueError:
            raise DecryptionError(
                f"cannot load TLS credentials {p}: wrong password or corrupt") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"TLS key in {p} is not an EC key")
        der = cert.public_bytes(serialization.Encoding.DER)
        node_id = verify_certificate(der)
        return cls(node_id, key, der)


def verify_certificate(cert_der: bytes) -> NodeId:
    """Check a peer certificate's self-consistency; return the node id it is bound to.

    The common name and the SAN URI must name the same node id, and the binding extension
    must hold a signature over the certificate's public key that recovers to that node id.
    Pinning (is this the registered certificate?) is the trust store's job, not this one.
    """
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        ext: Any = cert.extensions.get_extension_for_oid(BINDING_OID).value
        binding = bytes(ext.value)
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, x509.ExtensionNotFound, TypeError):
        raise IntegrityError("peer certificate is malformed or lacks the node binding") from None
    if len(cns) != 1 or not isinstance(cns[0].value, str):
        raise IntegrityError("peer certificate must name exactly one node id")
    node_id = cns[0].value
    if [_URI_PREFIX + node_id] != uris:
        raise IntegrityError("peer certificate's SAN does not match its common name")
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            binding, _binding_digest(spki), hasher=None)
    except Exception:
        raise IntegrityError("peer certificate's node binding signature is invalid") from None
    if _address_of(pub) != node_id:
        raise IntegrityError("peer certificate's TLS key is not signed by its node key")
    return NodeId(node_id)


@dataclass(frozen=True)
class NodeIdentity:
    """What a node needs to take part in the network: its node key and TLS identity."""

    key: NodeKey
    tls: TlsIdentity

    @property
    def node_id(self) -> NodeId:
        return self.key.node_id

    @property
    def cert_hash(self) -> bytes:
        return self.tls.cert_hash


def new_node_identity() -> NodeIdentity:
    """A fresh in-memory identity (tests, ephemeral nodes)."""
    key = NodeKey.generate()
    return NodeIdentity(key, TlsIdentity.create(key))


def _tls_path(keystore: Path) -> Path:
    return keystore.with_name(keystore.name + ".tls")


def load_node_identity(keystore: str | Path, password: str | None = None, *,
                       create_tls: bool = True) -> NodeIdentity:
    """Load the keystore and its ``<keystore>.tls`` credentials (created if missing)."""
    pw = resolve_password(password)
    path = Path(keystore)
    key = load_keystore(path, pw)
    tls_path = _tls_path(path)
    if tls_path.exists():
        tls = TlsIdentity.load(tls_path, pw)
        if tls.node_id != key.node_id:
            raise IntegrityError(f"{tls_path} belongs to another node than {path}")
    elif create_tls:
        tls = TlsIdentity.create(key)
        tls.save(tls_path, pw)
    else:
        raise ConfigError(f"TLS credential file not found: {tls_path}")
    return NodeIdentity(key, tls)


def create_node_files(keystore: str | Path, password: str | None = None, *,
                      scrypt_n: int | None = None, overwrite: bool = False) -> NodeIdentity:
    """Create a new node key and TLS identity; write ``keystore`` and ``<keystore>.tls``."""
    pw = resolve_password(password)
    path = Path(keystore)
    if not overwrite and (path.exists() or _tls_path(path).exists()):
        raise ConfigError(f"{path} already exists; refusing to overwrite a node key")
    ident = new_node_identity()
    save_keystore(ident.key, path, pw, scrypt_n=scrypt_n)
    ident.tls.save(_tls_path(path), pw)
    return ident

