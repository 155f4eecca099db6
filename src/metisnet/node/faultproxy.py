"""A TCP fault proxy in front of devnet nodes: delay, drop and corrupt real traffic.

Each node of a proxied devnet listens on a private port; the address it registers on
chain (the one its peers dial) belongs to a :class:`FaultProxy`, which forwards every
connection to the private port. The proxy is a real socket in the path: two pump threads
per connection move the bytes, and the :class:`FaultFabric` holding all proxies can bend
them for the connections of one *victim* node:

``delay``    every chunk waits ``delay_s`` before it is forwarded (order kept);
``drop``     every open connection of the victim is cut (both sockets shut), and for
             ``partition_s`` seconds new connections to or from it are held after their
             hello, nothing forwarded (a black hole): the victim is partitioned; dialers
             time out and re-dial with backoff, or go through once the partition ends;
``corrupt``  one byte of one chunk is flipped, on a connection that has already carried
             ``after_bytes`` bytes, i.e. inside TLS records after the handshake: TLS's
             AEAD tag must catch it (the link fails, its sessions fail, the task restarts).

The proxy learns who dials from the cleartext hello that opens every metisnet connection
(:mod:`metisnet.net.tls`: magic, length, the dialer's certificate, which names its node
id), so a fault applies to the victim's connections whichever side dialled. The proxy
never decrypts anything; a chunk is what one ``recv`` returned. A dialer whose node is
down is held the same way until the node listens again or the dialer gives up, as with a
host that does not answer (closing it would read as a refusal, see :meth:`FaultProxy._reach`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Final

from metisnet.errors import ConfigError, IntegrityError
from metisnet.net.identity import verify_certificate

__all__ = ["FAULT_KINDS", "Fault", "FaultFabric", "FaultProxy"]

log = logging.getLogger("metisnet.faultproxy")

FAULT_KINDS: Final = ("delay", "drop", "corrupt")
_HELLO = struct.Struct(">8sH")
_MAX_CERT = 4096
_CHUNK = 1 << 16
#: longest a dialer is held while its node is down or partitioned (its own connect
#: timeout, 10 s by default, normally ends it first)
_HOLD_S = 30.0


@dataclass(frozen=True)
class Fault:
    """What to do to the traffic of ``victim`` (a node id, any case)."""

    kind: str
    victim: str
    delay_s: float = 0.05
    partition_s: float = 3.0
    after_bytes: int = 8192
    #: how many chunks to corrupt (``corrupt``)
    count: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"unknown fault {self.kind!r}; known: {', '.join(FAULT_KINDS)}")
        if min(self.delay_s, self.partition_s) < 0 or self.after_bytes < 0 or self.count < 1:
            raise ConfigError("fault delays, byte offsets and counts must be non-negative")


@dataclass
class _Conn:
    """One proxied connection: dialer -> node, and its two sockets."""

    dialer: str
    node: str
    client: socket.socket
    server: socket.socket | None = None
    carried: int = 0
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def involves(self, who: str) -> bool:
        return who in (self.dialer, self.node)

    def cut(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.server):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()


class FaultProxy:
    """Forwards ``listen`` to ``target``, the private address of node ``node``."""

    def __init__(self, fabric: FaultFabric, node: str, target: tuple[str, int],
                 listen: tuple[str, int]) -> None:
        self.fabric = fabric
        self.node = node.lower()
        self.target = target
        self._sock = socket.create_server(listen)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name=f"proxy-{self.node[:8]}")
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True,
                             name=f"proxy-conn-{self.node[:8]}").start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(10.0)
        hello = b""
        dialer = "?"
        try:
            head = _recv_exact(client, _HELLO.size)
            hello = head
            _, length = _HELLO.unpack(head)
            if 0 < length <= _MAX_CERT:
                der = _recv_exact(client, length)
                hello += der
                with contextlib.suppress(IntegrityError):
                    dialer = str(verify_certificate(der)).lower()
        except OSError:
            with contextlib.suppress(OSError):
                client.close()
            return
        conn = _Conn(dialer, self.node, client)
        self.fabric._admit(conn)
        server = self._reach(conn)
        if server is None:
            self.fabric._forget(conn)
            conn.cut()
            return
        with conn.lock:
            cut_meanwhile = conn.closed
            conn.server = server
        if cut_meanwhile:  # a drop cut it while the node was being reached
            with contextlib.suppress(OSError):
                server.close()
            self.fabric._forget(conn)
            return
        client.settimeout(None)
        server.settimeout(None)
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            server.sendall(hello)
        except OSError:
            self.fabric._forget(conn)
            conn.cut()
            return
        conn.carried = len(hello)
        up = threading.Thread(target=self._pump, args=(conn, client, server), daemon=True)
        up.start()
        self._pump(conn, server, client)
        up.join()
        self.fabric._forget(conn)

    def _reach(self, conn: _Conn) -> socket.socket | None:
        """A socket to the node, once the victim is not partitioned and the node listens.

        Until then the dialer is held (nothing forwarded, nothing closed), as a black hole
        would: its own connect timeout decides, and it re-dials with backoff. Closing the
        connection instead would read as a refusal in the TLS hello, which fails the
        dialer's sessions at once rather than letting it wait for a node that restarts.
        """
        held = False
        end = time.monotonic() + _HOLD_S
        while not self._closed.is_set() and not conn.closed and time.monotonic() < end:
            if not self.fabric._partitioned(conn):
                try:
                    return socket.create_connection(self.target, timeout=2.0)
                except OSError as exc:
                    if not held:
                        log.debug("proxy for %s: node unreachable (%s); holding the dialer",
                                  self.node, exc)
            if not held:
                held = True
                self.fabric._held(conn)
            ready, _, _ = select.select([conn.client], [], [], 0.1)
            if ready:
                try:
                    if not conn.client.recv(1, socket.MSG_PEEK):
                        return None  # the dialer gave up
                except OSError:
                    return None
                time.sleep(0.1)
        return None

    def _pump(self, conn: _Conn, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(_CHUNK)
                if not chunk:
                    break
                chunk = self.fabric._bend(conn, chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        conn.cut()  # one side ended: end both (a TCP half-close is not used by metisnet)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise ConnectionResetError("closed during the hello")
        buf += part
    return bytes(buf)


class FaultFabric:
    """All proxies of a devnet and the one fault armed at a time (thread-safe)."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._partition_until = 0.0
        self._corrupt_left = 0
        self._conns: list[_Conn] = []
        self.proxies: dict[str, FaultProxy] = {}
        #: faults that actually touched traffic (a delay counts once, however many
        #: connections it slowed down)
        self.fired = 0
        #: connections held because their node was partitioned or down
        self.held = 0
        self._delayed: set[int] = set()
        self.events: list[str] = []

    def add(self, node: str, target: tuple[str, int], listen: tuple[str, int]) -> FaultProxy:
        proxy = FaultProxy(self, node, target, listen)
        self.proxies[node.lower()] = proxy
        return proxy

    # -- the fault ------------------------------------------------------------------------
    def arm(self, fault: Fault) -> None:
        """Start ``fault`` (replacing any other); ``drop`` cuts the victim's links now."""
        victim = fault.victim.lower()
        with self._lock:
            self._fault = fault
            self._corrupt_left = fault.count if fault.kind == "corrupt" else 0
            self._delayed.clear()
            cut = []
            if fault.kind == "drop":
                self._partition_until = time.monotonic() + fault.partition_s
                cut = [c for c in self._conns if c.involves(victim)]
        for c in cut:
            c.cut()
        if fault.kind == "drop":
            self._note(f"cut {len(cut)} connection(s) of {victim}; partitioned for "
                       f"{fault.partition_s:g} s")
            with self._lock:
                self.fired += 1

    @property
    def delayed(self) -> int:
        """How many connections the armed delay has slowed down."""
        with self._lock:
            return len(self._delayed)

    def disarm(self) -> None:
        with self._lock:
            self._fault = None
            self._partition_until = 0.0
            self._corrupt_left = 0

    def reset(self) -> None:
        """Disarm and zero the counters (between scenarios)."""
        self.disarm()
        with self._lock:
            self.fired = 0
            self.held = 0
            self._delayed.clear()
            self.events = []

    def _note(self, event: str) -> None:
        log.info("fault proxy: %s", event)
        with self._lock:
            self.events.append(event)

    def _victim(self, conn: _Conn) -> Fault | None:
        f = self._fault
        return f if f is not None and conn.involves(f.victim.lower()) else None

    def _admit(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.append(conn)

    def _partitioned(self, conn: _Conn) -> bool:
        with self._lock:
            f = self._victim(conn)
            return f is not None and f.kind == "drop" and \
                time.monotonic() < self._partition_until

    def _held(self, conn: _Conn) -> None:
        log.debug("fault proxy: holding a connection %s -> %s", conn.dialer, conn.node)
        with self._lock:
            self.held += 1

    def _forget(self, conn: _Conn) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._conns.remove(conn)

    def _bend(self, conn: _Conn, chunk: bytes) -> bytes:
        """The chunk to forward (bent by the armed fault); may sleep or cut ``conn``."""
        action, pause = "", 0.0
        with self._lock:
            conn.carried += len(chunk)
            f = self._victim(conn)
            if f is None:
                return chunk
            if f.kind == "delay":
                if not self._delayed:
                    self.fired += 1
                self._delayed.add(id(conn))
                action, pause = "delay", f.delay_s
            elif f.kind == "corrupt" and self._corrupt_left > 0 and conn.carried >= f.after_bytes:
                self._corrupt_left -= 1
                self.fired += 1
                buf = bytearray(chunk)
                buf[self._rng.randrange(len(buf))] ^= 1 << self._rng.randrange(8)
                chunk, action = bytes(buf), "corrupt"
            elif f.kind == "drop" and time.monotonic() < self._partition_until:
                action = "cut"  # a connection that slipped in before the cut
        if action == "delay":
            time.sleep(pause)
        elif action == "corrupt":
            self._note(f"flipped a bit in a {len(chunk)}-byte chunk {conn.dialer} <-> "
                       f"{conn.node} ({conn.carried} bytes into the connection)")
        elif action == "cut":
            conn.cut()
        return chunk

    def close(self) -> None:
        self.disarm()
        for p in self.proxies.values():
            p.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.cut()
