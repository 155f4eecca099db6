"""What ``net.py`` and ``net_asyncio.py`` share: the raw-socket peer and the bare-ssl floor.

A length-prefixed frame (8-byte big-endian size, then the bytes) over a plain socket, the
socket tuning both scripts use, and a plain TLS 1.3 server context from a node's
certificate (no pinning, no framing). Not a benchmark itself (the leading underscore keeps
``metis bench`` from running it).
"""

from __future__ import annotations

import socket
import ssl
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20
PASSWORD = "bench-only-password"  # noqa: S105 - throwaway keys in a temporary directory
LEN = struct.Struct(">Q")


def recv_exact_into(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        k = sock.recv_into(view[got:])
        if k == 0:
            raise ConnectionError("raw peer closed")
        got += k


def raw_send(sock: socket.socket, arr: np.ndarray) -> None:
    sock.sendall(LEN.pack(arr.nbytes))
    sock.sendall(memoryview(arr.reshape(-1).view(np.uint8)))


def raw_recv(sock: socket.socket, buf: np.ndarray | None = None) -> np.ndarray:
    """One frame, into ``buf`` when it has the frame's size (else a new array)."""
    head = bytearray(LEN.size)
    recv_exact_into(sock, memoryview(head))
    (n,) = LEN.unpack(head)
    out = buf if buf is not None and buf.nbytes == n else np.empty(n, dtype=np.uint8)
    recv_exact_into(sock, memoryview(out.reshape(-1).view(np.uint8)))
    return out


def tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, opt, 4 * MIB)


def bare_server_context(tls: Any) -> ssl.SSLContext:
    """A plain TLS 1.3 server context from the node's certificate (no pinning, no framing)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c.pem").write_bytes(tls.cert_pem())
        (Path(tmp) / "k.pem").write_bytes(tls.key_pem(PASSWORD.encode()))
        ctx.load_cert_chain(Path(tmp) / "c.pem", Path(tmp) / "k.pem", password=PASSWORD)
    return ctx
