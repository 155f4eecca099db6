"""Mutually pinned TLS 1.3 connections between nodes.

Both sides present self-signed certificates (:mod:`metisnet.net.identity`) and both pin
the other's ``sha256(DER)`` against a :class:`~metisnet.net.trust.TrustStore`.

Python's ``ssl`` has no certificate-verification callback, and a server whose
``verify_mode`` is ``CERT_NONE`` does not even ask for a client certificate. So the
connection is set up in three steps:

1. The dialer sends a cleartext hello carrying its certificate (public data: node ids and
   certificate hashes are published on chain). The acceptor checks the certificate's node
   binding and its pin, and refuses an unpinned peer before any TLS byte.
2. TLS 1.3 handshake (TLS 1.3 only, no session tickets). The dialer verifies nothing in
   ``ssl`` (``CERT_NONE``) and pins the acceptor's certificate itself, from
   ``getpeercert(binary_form=True)``; the acceptor requires a client certificate and trusts
   exactly the one announced in the hello (as a partial-chain trust anchor), so the
   handshake proves the dialer holds that certificate's key.
3. Both sides re-check the peer certificate from the TLS session against the pin (an
   unpinned or mismatching peer is refused here, before any payload frame is read), and
   each confirms with an ``accept`` message that the other waits for, so a refusal by
   either side is known to both at once instead of at a first send or receive. The
   accept message carries an ephemeral X25519 public value: from the pair, both sides
   derive the keys of the bulk record layer (:mod:`metisnet.net.bulk`), which carries
   the payloads of large frames.

Until the link is handed over, bytes are taken from the socket one whole TLS record at a
time, so that nothing the peer sends right after its accept message (possibly bulk
records, which are not TLS) is fed to TLS; what was read past it is handed over with
the link (:attr:`TlsLink.leftover`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import ssl
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from metisnet.errors import IntegrityError, NetworkError, PeerRefused, PeerTimeout
from metisnet.net.bulk import PUBLIC_SIZE, BulkKeys, derive_keys
from metisnet.net.identity import TlsIdentity, cert_hash, verify_certificate
from metisnet.net.trust import TrustStore
from metisnet.types import NodeId

__all__ = [
    "MAX_RECORD",
    "SOCKET_BUFFER",
    "RefusedByPeer",
    "TlsContexts",
    "TlsLink",
    "accept_tls",
    "dial_tls",
    "tune_socket",
]

log = logging.getLogger(__name__)

_HELLO_MAGIC: Final = b"MNHELLO2"
_HELLO = struct.Struct(">8sH")
_MAX_CERT: Final = 4096
_ACCEPT: Final = b"\x02"  # followed by an X25519 public value
_ACCEPT_SIZE: Final = 1 + PUBLIC_SIZE
#: Largest TLS record on the wire: 5 header bytes and at most 2**14 + 256 (RFC 8446 5.2).
MAX_RECORD: Final = 5 + (1 << 14) + 256
#: Kernel socket buffer size requested for node connections.
SOCKET_BUFFER: Final = 4 << 20


def tune_socket(sock: socket.socket) -> None:
    """No Nagle delay, large buffers: small messages leave at once, large ones stream."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):  # the kernel may cap it; that is fine
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)


class TlsContexts:
    """The two SSL contexts of one node: dialer (client) and acceptor (server)."""

    def __init__(self, identity: TlsIdentity) -> None:
        self.identity = identity
        self._lock = threading.Lock()
        self._trusted: set[bytes] = set()
        with tempfile.TemporaryDirectory(prefix="metis-tls-") as tmp:
            # ssl loads keys only from files: write the key encrypted under a one-time
            # password into a private temporary directory, load it, delete it.
            password = secrets.token_bytes(32).hex()
            cert_path = Path(tmp) / "cert.pem"
            key_path = Path(tmp) / "key.pem"
            cert_path.write_bytes(identity.cert_pem())
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(identity.key_pem(password.encode()))
            self.client = self._base(ssl.PROTOCOL_TLS_CLIENT, cert_path, key_path, password)
            self.client.check_hostname = False
            self.client.verify_mode = ssl.CERT_NONE
            self.server = self._base(ssl.PROTOCOL_TLS_SERVER, cert_path, key_path, password)
            self.server.verify_mode = ssl.CERT_REQUIRED
            self.server.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            self.server.num_tickets = 0

    @staticmethod
    def _base(proto: ssl._SSLMethod, cert: Path, key: Path, password: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(proto)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert, key, password=password)
        return ctx

    def trust_client_cert(self, der: bytes) -> None:
        """Let the acceptor context accept ``der`` (already pinned) as a client cert."""
        with self._lock:
            if der not in self._trusted:
                self.server.load_verify_locations(cadata=der)
                self._trusted.add(der)


@dataclass
class TlsLink:
    """An authenticated TLS 1.3 link: a raw socket and the TLS state driven over it.

    TLS runs in memory (``ssl.SSLObject`` with two memory BIOs) so that the owner
    controls every socket call: large writes leave in one system call rather than one per
    16 KiB record, and reading and writing can share the link under the owner's locks.
    """

    sock: socket.socket
    tls: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO
    peer: NodeId
    #: keys of the bulk record layer (:mod:`metisnet.net.bulk`)
    bulk: BulkKeys
    #: bytes read from the socket past the last TLS record fed to ``tls``
    leftover: bytes = b""


def _flush(link_sock: socket.socket, out: ssl.MemoryBIO) -> None:
    data = out.read()
    if data:
        link_sock.sendall(data)


class _RecordReader:
    """Feeds TLS from a socket one whole record at a time, never reading past it into TLS."""

    def __init__(self, sock: socket.socket, inc: ssl.MemoryBIO) -> None:
        self._sock = sock
        self._inc = inc
        self._buf = bytearray()

    def feed_one(self) -> bool:
        """Move the next whole TLS record into ``inc``; False at end of stream."""
        while True:
            if len(self._buf) >= 5:
                size = 5 + int.from_bytes(self._buf[3:5], "big")
                if size > MAX_RECORD:
                    raise NetworkError("peer sent something that is not a TLS record")
                if len(self._buf) >= size:
                    self._inc.write(bytes(self._buf[:size]))
                    del self._buf[:size]
                    return True
            data = self._sock.recv(65536)
            if not data:
                return False
            self._buf += data

    @property
    def leftover(self) -> bytes:
        return bytes(self._buf)


def _handshake(sock: socket.socket, obj: ssl.SSLObject, reader: _RecordReader,
               out: ssl.MemoryBIO) -> None:
    """Drive the TLS handshake over a blocking socket (its timeout bounds each wait)."""
    while True:
        try:
            obj.do_handshake()
            _flush(sock, out)
            return
        except ssl.SSLWantReadError:
            _flush(sock, out)
            if not reader.feed_one():
                raise ssl.SSLEOFError("peer closed the connection during the handshake") from None


def _read_plain(obj: ssl.SSLObject, reader: _RecordReader, n: int) -> bytes:
    """Read ``n`` application bytes during connection set-up (blocking, with timeout)."""
    got = b""
    while len(got) < n:
        try:
            chunk = obj.read(n - len(got))
            if not chunk:
                return got
            got += chunk
        except ssl.SSLWantReadError:
            if not reader.feed_one():
                return got
        except ssl.SSLZeroReturnError:
            return got
    return got


def _exchange(raw: socket.socket, obj: ssl.SSLObject, reader: _RecordReader,
              out: ssl.MemoryBIO, *, dialer: bool, own_hash: bytes,
              peer_hash: bytes) -> BulkKeys | None:
    """Send our accept message, read the peer's; None if the peer refused us (hung up)."""
    secret = X25519PrivateKey.generate()
    obj.write(_ACCEPT + secret.public_key().public_bytes_raw())
    _flush(raw, out)
    msg = _read_plain(obj, reader, _ACCEPT_SIZE)
    if not msg:
        return None
    if len(msg) != _ACCEPT_SIZE or msg[:1] != _ACCEPT:
        raise NetworkError("peer sent a malformed accept message (an older metisnet?)")
    d_hash, a_hash = (own_hash, peer_hash) if dialer else (peer_hash, own_hash)
    return derive_keys(secret, msg[1:], dialer=dialer, dialer_cert_hash=d_hash,
                       acceptor_cert_hash=a_hash)


class RefusedByPeer(PeerRefused):
    """A pinned peer hung up after the handshake: it does not trust this node."""

    def __init__(self, node_id: NodeId) -> None:
        super().__init__(f"{node_id} closed the connection after the handshake "
                         "(is this node in its trust store?)")
        self.node_id = node_id


def _close(raw: socket.socket) -> None:
    with contextlib.suppress(OSError):
        raw.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            raise NetworkError("peer closed the connection during the handshake")
        got += k
    return bytes(buf)


def _check_pin(trust: TrustStore, der: bytes, who: str) -> NodeId:
    try:
        node_id = verify_certificate(der)
    except IntegrityError as exc:
        raise PeerRefused(f"{who}: {exc}") from None
    pin = trust.pinned_hash(node_id)
    if pin is None:
        raise PeerRefused(f"{who}: node {node_id} is not in the trust store")
    if not secrets.compare_digest(pin, cert_hash(der)):
        raise PeerRefused(f"{who}: node {node_id} presented a certificate that does not "
                          "match its pinned hash")
    return node_id


def dial_tls(
    ctx: TlsContexts, trust: TrustStore, address: tuple[str, int], expected: NodeId,
    timeout: float,
) -> TlsLink:
    """Connect to ``expected`` at ``address``; return a pinned, accepted TLS link."""
    try:
        raw = socket.create_connection(address, timeout=timeout)
    except TimeoutError:
        raise PeerTimeout(f"connecting to {expected} at {address} timed out") from None
    except OSError as exc:
        raise NetworkError(f"cannot connect to {expected} at {address}: {exc}") from None
    try:
        tune_socket(raw)
        raw.settimeout(timeout)
        der = ctx.identity.cert_der
        raw.sendall(_HELLO.pack(_HELLO_MAGIC, len(der)) + der)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        reader = _RecordReader(raw, inc)
        obj = ctx.client.wrap_bio(inc, out, server_side=False)
        _handshake(raw, obj, reader, out)
        peer_der = obj.getpeercert(binary_form=True)
        if peer_der is None:
            raise PeerRefused(f"{expected} presented no certificate")
        got = _check_pin(trust, peer_der, "dialled peer")
        if got != expected:
            raise PeerRefused(f"dialled {expected} at {address} but {got} answered")
        keys = _exchange(raw, obj, reader, out, dialer=True, own_hash=ctx.identity.cert_hash,
                         peer_hash=cert_hash(peer_der))
        if keys is None:  # the acceptor hung up: it refused us
            raise PeerRefused(f"{expected} refused us after the TLS handshake "
                              "(is this node in its trust store?)")
        return TlsLink(raw, obj, inc, out, got, keys, reader.leftover)
    except TimeoutError:
        _close(raw)
        raise PeerTimeout(f"TLS handshake with {expected} at {address} timed out") from None
    except (ssl.SSLError, OSError) as exc:
        _close(raw)
        if isinstance(exc, NetworkError):
            raise
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)):
            raise PeerRefused(f"{expected} at {address} closed the connection during the "
                              "handshake (is this node in its trust store?)") from None
        raise NetworkError(f"TLS handshake with {expected} at {address} failed: "
                           f"{exc.__class__.__name__}: {exc}") from None
    except BaseException:
        _close(raw)
        raise


def accept_tls(
    ctx: TlsContexts, trust: TrustStore, raw: socket.socket, timeout: float
) -> TlsLink:
    """Authenticate an accepted socket; return the TLS link (its ``peer`` is pinned).

    Raises PeerRefused (the caller logs it and drops the socket) for an unpinned peer,
    and :class:`RefusedByPeer` when a pinned peer hangs up on us after the handshake.
    """
    node_id: NodeId | None = None
    try:
        tune_socket(raw)
        raw.settimeout(timeout)
        magic, length = _HELLO.unpack(_recv_exact(raw, _HELLO.size))
        if magic != _HELLO_MAGIC or not 0 < length <= _MAX_CERT:
            raise PeerRefused("connection did not start with a metisnet hello")
        der = _recv_exact(raw, length)
        node_id = _check_pin(trust, der, "incoming peer")
        ctx.trust_client_cert(der)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        reader = _RecordReader(raw, inc)
        obj = ctx.server.wrap_bio(inc, out, server_side=True)
        _handshake(raw, obj, reader, out)
        if obj.getpeercert(binary_form=True) != der:
            raise PeerRefused(f"incoming peer {node_id} switched certificates in the handshake")
        _check_pin(trust, der, "incoming peer")
        keys = _exchange(raw, obj, reader, out, dialer=False, own_hash=ctx.identity.cert_hash,
                         peer_hash=cert_hash(der))
        if keys is None:
            raise RefusedByPeer(node_id)
        return TlsLink(raw, obj, inc, out, node_id, keys, reader.leftover)
    except TimeoutError:
        _close(raw)
        raise PeerTimeout("incoming peer did not complete its hello and handshake") from None
    except (ssl.SSLError, OSError) as exc:
        _close(raw)
        if isinstance(exc, NetworkError):
            raise
        if node_id is not None and isinstance(
                exc, (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)):
            raise RefusedByPeer(node_id) from None
        raise NetworkError(f"TLS handshake with incoming peer failed: {exc}") from None
    except BaseException:
        _close(raw)
        raise
