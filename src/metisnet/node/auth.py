"""Signed requests: every call to a data node is signed by its caller's secp256k1 key.

The caller signs, with EIP-191 ``personal_sign`` (version ``0x45``), the canonical request::

    metisnet-request/1 \\n METHOD \\n PATH[?QUERY] \\n SHA256(body) hex \\n TIMESTAMP \\n NONCE

and sends it in headers (:data:`HEADERS`). The node recovers the signer's address from the
signature and compares it with the claimed one, refuses timestamps further than the allowed
skew from its clock, and refuses a nonce the address used before (nonces are kept in SQLite
for the skew window, so replays fail across restarts too). The path and query are signed
exactly as sent. The body hash is checked against the bytes actually received; for an
upload that happens as the body streams in, and nothing is stored if it differs.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct

from metisnet.errors import IntegrityError, ValidationError
from metisnet.node.identity import NodeKey, normalize_address
from metisnet.types import Address

__all__ = [
    "EMPTY_SHA256",
    "HEADERS",
    "SignedRequest",
    "canonical_request",
    "parse_signed_headers",
    "sign_request",
    "verify_signature",
]

H_ADDRESS = "x-metis-address"
H_SIGNATURE = "x-metis-signature"
H_TIMESTAMP = "x-metis-timestamp"
H_NONCE = "x-metis-nonce"
H_BODY = "x-metis-content-sha256"
HEADERS = (H_ADDRESS, H_SIGNATURE, H_TIMESTAMP, H_NONCE, H_BODY)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SIG = re.compile(r"^(0x)?[0-9a-fA-F]{130}$")


def canonical_request(method: str, target: str, body_sha256: str, timestamp: int,
                      nonce: str) -> bytes:
    """The exact bytes a caller signs (see module docstring)."""
    return "\n".join(
        ["metisnet-request/1", method.upper(), target, body_sha256, str(timestamp), nonce]
    ).encode("utf-8")


def sign_request(key: NodeKey, method: str, target: str, body_sha256: str = EMPTY_SHA256,
                 *, timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """Headers that authenticate one request (``target`` is the path plus ``?query``)."""
    ts = int(time.time()) if timestamp is None else timestamp
    n = nonce or secrets.token_urlsafe(18)
    msg = encode_defunct(primitive=canonical_request(method, target, body_sha256, ts, n))
    sig = Account.sign_message(msg, key.private).signature
    return {
        H_ADDRESS: key.address,
        H_SIGNATURE: "0x" + bytes(sig).hex(),
        H_TIMESTAMP: str(ts),
        H_NONCE: n,
        H_BODY: body_sha256,
    }


@dataclass(frozen=True)
class SignedRequest:
    address: Address
    signature: bytes
    timestamp: int
    nonce: str
    body_sha256: str


def parse_signed_headers(headers: Mapping[str, str]) -> SignedRequest:
    """Validate the form of the auth headers (not the signature); ``ValidationError`` else."""
    missing = [h for h in HEADERS if not headers.get(h)]
    if missing:
        raise ValidationError(f"unsigned request: missing header(s) {', '.join(missing)}")
    address = normalize_address(headers[H_ADDRESS])
    sig = headers[H_SIGNATURE]
    if not _SIG.match(sig):
        raise ValidationError("x-metis-signature must be 65 bytes of hex")
    ts_raw = headers[H_TIMESTAMP]
    if not ts_raw.isdigit() or len(ts_raw) > 12:
        raise ValidationError("x-metis-timestamp must be unix seconds")
    nonce = headers[H_NONCE]
    if not _NONCE.match(nonce):
        raise ValidationError("x-metis-nonce must be 16-64 characters of [A-Za-z0-9_-]")
    body = headers[H_BODY].lower()
    if not _HEX64.match(body):
        raise ValidationError("x-metis-content-sha256 must be 64 hex digits")
    return SignedRequest(address, bytes.fromhex(sig.removeprefix("0x")), int(ts_raw), nonce,
                         body)


def verify_signature(req: SignedRequest, method: str, target: str) -> Address:
    """Recover the signer; :class:`IntegrityError` unless it is the claimed address."""
    msg = encode_defunct(
        primitive=canonical_request(method, target, req.body_sha256, req.timestamp, req.nonce)
    )
    try:
        signer = Account.recover_message(msg, signature=req.signature)
    except Exception:  # malformed v/r/s of any kind: the signature is simply bad
        raise IntegrityError("bad request signature") from None
    if signer != req.address:
        raise IntegrityError("bad request signature: it was not made by x-metis-address")
    return req.address
