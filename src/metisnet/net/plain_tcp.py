"""A plain framed TCP :class:`~metisnet.net.channel.Channel` (no TLS), for local processes.

Use it for tests, benchmarks and single-machine simulations where every party is on
loopback; production nodes use the pinned TLS channel of :mod:`metisnet.net.endpoint`,
which has the same interface.

Wire: one TCP connection per pair of parties; each message is one frame::

    magic "MN" | version u8 | dtype u8 | ndim u8 | reserved u8 | tag length u16 |
    payload bytes u64 | ndim x u64 shape | tag (utf-8) | payload (raw little-endian array)

The header is validated before the payload is read (known dtype, ndim <= 8, tag <= 256
bytes, payload equal to the shape's size and below ``max_frame``); a bad frame closes the
connection. Never pickle.

Design: blocking sockets with one reader thread per connection that receives payloads
straight into freshly allocated numpy arrays (``recv_into``, no copy) and files them in an
inbox keyed by (peer, tag); ``send`` writes from the caller's thread with ``sendall`` on a
memoryview of the array, so a send never deadlocks against a peer that is sending too.
``send`` returns once the bytes are in the kernel, so the caller may reuse the array.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import NetworkError, PeerTimeout, ValidationError, WireError
from metisnet.net.channel import DEFAULT_TIMEOUT, ChannelStats, _RoundCounter

__all__ = ["DEFAULT_MAX_FRAME", "PlainTcpChannel", "connect_mesh", "listen"]

_MAGIC: Final = b"MN"
_VERSION: Final = 1
_HEAD: Final = struct.Struct("<2sBBBBHQ")
_HELLO: Final = struct.Struct("<2sBB")  # magic, version, party index
_MAX_NDIM: Final = 8
_MAX_TAG: Final = 256
#: Largest payload a frame may carry (8 GiB).
DEFAULT_MAX_FRAME: Final = 1 << 33
_SMALL: Final = 64 << 10

_DTYPES: Final[dict[int, np.dtype[Any]]] = {
    1: np.dtype(np.uint8), 2: np.dtype(np.uint64), 3: np.dtype(np.int64),
    4: np.dtype(np.float64), 5: np.dtype(np.bool_), 6: np.dtype(np.uint32),
    7: np.dtype(np.int32),
}
_CODES: Final[dict[np.dtype[Any], int]] = {v: k for k, v in _DTYPES.items()}


def _recv_exact_into(sock: socket.socket, view: memoryview) -> bool:
    """Fill ``view`` from ``sock``; False on a clean EOF before the first byte."""
    pos, n = 0, len(view)
    while pos < n:
        got = sock.recv_into(view[pos:], n - pos)
        if got == 0:
            if pos == 0:
                return False
            raise NetworkError("connection closed in the middle of a frame")
        pos += got
    return True


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):  # the kernel may refuse; keep its default
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)


class PlainTcpChannel:
    """One party's end of a full mesh of TCP connections (see the module docstring)."""

    def __init__(
        self,
        party: int,
        parties: int,
        socks: dict[int, socket.socket],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        if set(socks) != set(range(parties)) - {party}:
            raise ValidationError("need exactly one socket per peer")
        self._party = party
        self._parties = parties
        self._socks = socks
        self._timeout = timeout
        self._max_frame = max_frame
        self._stats = ChannelStats()
        self._rounds = _RoundCounter(self._stats)
        self._cond = threading.Condition()
        self._inbox: dict[tuple[int, str], deque[NDArray[Any]]] = {}
        self._failed: dict[int, BaseException] = {}
        self._send_locks = {p: threading.Lock() for p in socks}
        self._closed = False
        self._readers = [
            threading.Thread(target=self._read_loop, args=(p, s), daemon=True,
                             name=f"tcp-reader-{party}-{p}")
            for p, s in socks.items()
        ]
        for t in self._readers:
            t.start()

    @property
    def party(self) -> int:
        return self._party

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def stats(self) -> ChannelStats:
        return self._stats

    def _check_peer(self, peer: int) -> None:
        if self._closed:
            raise NetworkError("channel is closed")
        if peer not in self._socks:
            raise ValidationError(f"invalid peer index {peer} for party {self._party}")

    # -- sending ----------------------------------------------------------------------------
    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        self._check_peer(peer)
        arr = np.ascontiguousarray(array)
        code = _CODES.get(arr.dtype)
        if code is None:
            raise ValidationError(f"cannot send arrays of dtype {arr.dtype}")
        tag_b = tag.encode("utf-8")
        if len(tag_b) > _MAX_TAG or arr.ndim > _MAX_NDIM:
            raise ValidationError("tag too long or too many dimensions for a frame")
        if arr.nbytes > self._max_frame:
            raise ValidationError(f"array of {arr.nbytes} bytes exceeds the frame cap")
        head = (_HEAD.pack(_MAGIC, _VERSION, code, arr.ndim, 0, len(tag_b), arr.nbytes)
                + struct.pack(f"<{arr.ndim}Q", *arr.shape) + tag_b)
        payload = arr.reshape(-1).data.cast("B") if arr.nbytes else memoryview(b"")
        sock = self._socks[peer]
        with self._send_locks[peer]:
            try:
                if arr.nbytes <= _SMALL:
                    sock.sendall(head + payload.tobytes())
                else:
                    sock.sendall(head)
                    sock.sendall(payload)
            except OSError as exc:
                raise NetworkError(f"party {self._party}: sending to {peer} failed: {exc}") \
                    from exc
        self._rounds.on_send(arr.nbytes)

    # -- receiving --------------------------------------------------------------------------
    def _read_loop(self, peer: int, sock: socket.socket) -> None:
        head = bytearray(_HEAD.size)
        try:
            while True:
                if not _recv_exact_into(sock, memoryview(head)):
                    raise NetworkError(f"party {peer} closed the connection")
                magic, ver, code, ndim, _, tag_len, nbytes = _HEAD.unpack(head)
                if magic != _MAGIC or ver != _VERSION:
                    raise WireError(f"bad frame magic/version from party {peer}")
                dtype = _DTYPES.get(code)
                if dtype is None or ndim > _MAX_NDIM or tag_len > _MAX_TAG:
                    raise WireError(f"malformed frame header from party {peer}")
                rest = bytearray(8 * ndim + tag_len)
                if rest and not _recv_exact_into(sock, memoryview(rest)):
                    raise NetworkError("connection closed in the middle of a frame")
                shape = struct.unpack_from(f"<{ndim}Q", rest)
                tag = bytes(rest[8 * ndim:]).decode("utf-8", errors="strict")
                if nbytes > self._max_frame or nbytes != int(np.prod(shape)) * dtype.itemsize:
                    raise WireError(f"frame size does not match its shape from party {peer}")
                arr = np.empty(shape, dtype=dtype)
                if nbytes and not _recv_exact_into(sock, arr.reshape(-1).data.cast("B")):
                    raise NetworkError("connection closed in the middle of a frame")
                with self._cond:
                    self._inbox.setdefault((peer, tag), deque()).append(arr)
                    self._cond.notify_all()
        except (OSError, NetworkError, WireError, UnicodeDecodeError, struct.error) as exc:
            with self._cond:
                self._failed[peer] = exc
                self._cond.notify_all()

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        self._check_peer(peer)
        wait = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        key = (peer, tag)
        with self._cond:
            while True:
                q = self._inbox.get(key)
                if q:
                    arr = q.popleft()
                    if not q:
                        del self._inbox[key]
                    break
                if peer in self._failed:
                    err = self._failed[peer]
                    raise NetworkError(f"party {self._party}: link to party {peer} failed: "
                                       f"{err}") from err
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerTimeout(f"party {self._party}: no message {tag!r} from party "
                                      f"{peer} within {wait:g} s")
                self._cond.wait(left)
        self._rounds.on_recv(arr.nbytes)
        return arr

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for s in self._socks.values():
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def listen(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0 picks a free port; read it from ``getsockname()``)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(16)
    return srv


def connect_mesh(
    party: int,
    addresses: Sequence[tuple[str, int]],
    *,
    listener: socket.socket | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = 30.0,
) -> PlainTcpChannel:
    """Connect party ``party`` to every other party of ``addresses`` and return its channel.

    Party i accepts from every j > i on its own address (or on ``listener``) and dials
    every j < i, retrying until ``connect_timeout``; a one-frame hello names the dialler.
    """
    n = len(addresses)
    if not 0 <= party < n or n < 2:
        raise ValidationError(f"invalid party {party} of {n}")
    socks: dict[int, socket.socket] = {}
    srv = listener
    if srv is None and party < n - 1:
        srv = listen(*addresses[party])
    deadline = time.monotonic() + connect_timeout
    try:
        for j in range(party):
            while True:
                try:
                    s = socket.create_connection(addresses[j], timeout=5.0)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise PeerTimeout(f"party {party}: cannot reach party {j} at "
                                          f"{addresses[j]}") from None
                    time.sleep(0.02)
            s.settimeout(None)
            _tune(s)
            s.sendall(_HELLO.pack(_MAGIC, _VERSION, party))
            socks[j] = s
        if srv is not None:
            srv.settimeout(max(0.1, deadline - time.monotonic()))
            while len(socks) < n - 1:
                try:
                    s, _ = srv.accept()
                except TimeoutError:
                    raise PeerTimeout(f"party {party}: peers did not connect in time") from None
                s.settimeout(5.0)
                hello = bytearray(_HELLO.size)
                if not _recv_exact_into(s, memoryview(hello)):
                    s.close()
                    continue
                magic, ver, who = _HELLO.unpack(hello)
                if magic != _MAGIC or ver != _VERSION or not party < who < n or who in socks:
                    s.close()
                    raise WireError(f"party {party}: bad hello from a peer")
                s.settimeout(None)
                _tune(s)
                socks[who] = s
    except BaseException:
        for s in socks.values():
            s.close()
        raise
    finally:
        if srv is not None and listener is None:
            srv.close()
    return PlainTcpChannel(party, n, socks, timeout=timeout)
