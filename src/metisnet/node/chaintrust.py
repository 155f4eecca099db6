"""Trust from the chain: pinned certificate hashes and endpoints of registered nodes.

:class:`ChainTrust` implements the network layer's :class:`~metisnet.net.trust.TrustStore`
and :class:`~metisnet.net.trust.PeerDirectory` from the node registry (DESIGN.md §5): a
node's TLS certificate hash and its ``"host:port"`` endpoint are what it registered on
chain with its stake. Lookups are cached for ``ttl`` seconds (a miss for ``miss_ttl``), so
a handshake costs no chain call in the common case and a re-registration is seen soon.

Result receivers need not be registered nodes (a requester is an account, not a node).
They travel in the task spec (``receiver_tls``), whose hash the chain holds: once a node has
checked a spec against the chain it calls :meth:`ChainTrust.pin_receivers`, and the
overlay answers for those receivers (a registered node's own registration always wins).
A receiver may dial a node before that node has the spec (or even its session), so a
lookup that misses both the chain and the overlay waits up to ``receiver_wait`` seconds for
a pin to arrive (at most ``max_waiters`` lookups at once; the rest are refused at once): the
handshake or dial thread of the network layer waits, the session does not fail.

:meth:`ChainTrust.revalidate` has an endpoint drop connections to peers that lost their
pin on chain (deregistered, or re-registered with another certificate); node processes
call it every ``ttl`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from eth_utils.address import to_checksum_address

from metisnet.chain.registry import NodeInfo, NodeRegistry
from metisnet.errors import ChainError, ConfigError
from metisnet.net.endpoint import Endpoint
from metisnet.net.trust import parse_address
from metisnet.node.taskspec import TaskSpec
from metisnet.types import NodeId

__all__ = ["ChainTrust"]

log = logging.getLogger("metisnet.trust")

_Entry = tuple[bytes, tuple[str, int] | None]


class ChainTrust:
    """Pins and addresses of registered nodes, plus an overlay for spec receivers."""

    def __init__(self, registry: NodeRegistry, *, ttl: float = 30.0, miss_ttl: float = 1.0,
                 receiver_wait: float = 10.0, max_waiters: int = 32,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self.receiver_wait = receiver_wait
        self.max_waiters = max_waiters
        self._waiters = 0
        self._clock = clock
        self._cond = threading.Condition()
        self._cache: dict[str, tuple[float, _Entry | None]] = {}
        self._overlay: dict[str, _Entry] = {}
        self._local = threading.local()

    # -- chain --------------------------------------------------------------------------
    def _registered(self, node_id: str) -> _Entry | None:
        key = node_id.lower()
        now = self._clock()
        with self._cond:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        entry: _Entry | None = None
        try:
            info: NodeInfo | None = self.registry.get_node(to_checksum_address(node_id))
        except ChainError as exc:
            log.warning("registry lookup of %s failed: %s", node_id, exc)
            return hit[1] if hit is not None else None  # keep a stale answer over none
        if info is not None and info.stake > 0 and any(info.cert_hash):
            addr: tuple[str, int] | None
            try:
                addr = parse_address(info.endpoint)
            except ConfigError:
                addr = None
            entry = (bytes(info.cert_hash), addr)
        with self._cond:
            self._cache[key] = (now + (self.ttl if entry else self.miss_ttl), entry)
        return entry

    # -- receivers ----------------------------------------------------------------------
    def pin_receivers(self, spec: TaskSpec) -> None:
        """Trust the receivers a verified ``spec`` names (call after checking its hash)."""
        with self._cond:
            for r in spec.receiver_tls:
                self._overlay[r.address.lower()] = (bytes.fromhex(r.cert_sha256),
                                                    parse_address(r.endpoint))
            self._cond.notify_all()

    def _lookup(self, node_id: str) -> _Entry | None:
        entry = self._registered(node_id)
        if entry is not None:
            return entry
        key = node_id.lower()
        until = self._clock() + self.receiver_wait
        with self._cond:
            got = self._overlay.get(key)
            if (got is not None or self._waiters >= self.max_waiters
                    or getattr(self._local, "no_wait", False)):
                return got
            self._waiters += 1
            try:
                while got is None:
                    left = until - self._clock()
                    if left <= 0:
                        break
                    self._cond.wait(min(left, 0.5))
                    got = self._overlay.get(key)
            finally:
                self._waiters -= 1
            return got

    @contextlib.contextmanager
    def _no_wait(self) -> Iterator[None]:
        self._local.no_wait = True
        try:
            yield
        finally:
            self._local.no_wait = False

    def revalidate(self, endpoint: Endpoint) -> list[NodeId]:
        """Have ``endpoint`` drop peers no longer pinned to the certificate they showed."""
        with self._no_wait():
            dropped = endpoint.revalidate()
        for peer in dropped:
            log.warning("dropped %s: no longer pinned on chain to the certificate it showed",
                        peer)
        return dropped

    # -- TrustStore / PeerDirectory ---------------------------------------------------------
    def pinned_hash(self, node_id: NodeId) -> bytes | None:
        entry = self._lookup(node_id)
        return entry[0] if entry is not None else None

    def address(self, node_id: NodeId) -> tuple[str, int] | None:
        entry = self._lookup(node_id)
        return entry[1] if entry is not None else None
