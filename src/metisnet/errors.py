"""One exception root for metisnet, with builtin-compatible subclasses.

Every error metisnet raises on purpose derives from :class:`MetisError`, so a caller can
catch "anything metisnet refused" in one place. Each subclass also derives from the
builtin exception a Python user would expect (``ValueError`` for bad input, ``TimeoutError``
for a wait that ran out, ...), so code that already catches builtins keeps working.

Messages are written for the person who must act on them, and never contain a secret:
no share, key, plaintext row or password is ever formatted into an exception.

Hierarchy::

    MetisError
    ├── ConfigError (ValueError)          bad or missing configuration
    ├── ValidationError (ValueError)      malformed input from a user or peer
    │   ├── ShapeError                    array shape/dtype/ring/scale mismatch
    │   └── WireError                     a frame that fails to decode or validate
    ├── CryptoError                       a cryptographic check failed
    │   ├── IntegrityError                a MAC, tag, proof or commitment did not verify
    │   └── DecryptionError               wrong key or corrupted ciphertext
    ├── ProtocolError                     a peer deviated from a protocol
    │   └── CheatingDetected              a check caught a cheater (carries evidence)
    ├── NetworkError (ConnectionError)    transport failures
    │   ├── PeerRefused                   peer identity not pinned / not registered
    │   └── PeerTimeout (TimeoutError)    a wait on a peer ran out
    ├── ChainError                        a contract call or chain backend failed
    │   └── TransactionReverted           a transaction was mined with status 0
    ├── PolicyViolation (PermissionError) a request breaks a data owner's policy
    ├── StorageError                      a data node's store failed or is inconsistent
    └── DependencyMissing (ImportError)   an optional extra is not installed
"""

from __future__ import annotations

__all__ = [
    "ChainError",
    "CheatingDetected",
    "ConfigError",
    "CryptoError",
    "DecryptionError",
    "DependencyMissing",
    "IntegrityError",
    "MetisError",
    "NetworkError",
    "PeerRefused",
    "PeerTimeout",
    "PolicyViolation",
    "ProtocolError",
    "ShapeError",
    "StorageError",
    "TransactionReverted",
    "ValidationError",
    "WireError",
]


class MetisError(Exception):
    """Root of every error metisnet raises deliberately."""


class ConfigError(MetisError, ValueError):
    """A configuration file or setting is missing, malformed or inconsistent."""


class ValidationError(MetisError, ValueError):
    """Input from a user or a peer does not have the required form."""


class ShapeError(ValidationError, TypeError):
    """Arrays or shared values do not fit together (shape, dtype, ring, scale, party)."""


class WireError(ValidationError):
    """A frame on the wire failed to decode or validate; the connection is closed."""


class CryptoError(MetisError):
    """A cryptographic operation or check failed."""


class IntegrityError(CryptoError):
    """A MAC, tag, proof, signature or commitment did not verify."""


class DecryptionError(CryptoError):
    """A ciphertext could not be decrypted: wrong key or corrupted data."""


class ProtocolError(MetisError):
    """A peer deviated from a protocol (wrong step, wrong shape, out-of-order message)."""


class CheatingDetected(ProtocolError):
    """An integrity check caught a cheating party.

    ``suspects`` names the parties that may have cheated (possibly several when the protocol
    cannot single one out); ``evidence`` is a protocol-specific, verifiable record suitable
    for posting on chain. Neither contains secret values.
    """

    def __init__(
        self, message: str, *, suspects: tuple[int, ...] = (), evidence: bytes = b""
    ) -> None:
        super().__init__(message)
        self.suspects = suspects
        self.evidence = evidence


class NetworkError(MetisError, ConnectionError):
    """A transport-level failure."""


class PeerRefused(NetworkError):
    """A peer's identity is not pinned or not registered; refused before any payload."""


class PeerTimeout(NetworkError, TimeoutError):
    """A wait on a peer ran past its timeout."""


class ChainError(MetisError):
    """A contract call or a chain backend failed."""


class TransactionReverted(ChainError):
    """A transaction was mined with status 0 (reverted)."""

    def __init__(self, message: str, *, reason: str = "", tx_hash: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.tx_hash = tx_hash


class PolicyViolation(MetisError, PermissionError):
    """A request breaks a data owner's policy; ``rule`` names the rule it broke."""

    def __init__(self, message: str, *, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule


class StorageError(MetisError):
    """A data node's storage failed or is inconsistent."""


class DependencyMissing(MetisError, ImportError):
    """An optional dependency (an extra) is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'metisnet[{extra}]'"
        )
        self.package = package
        self.extra = extra
