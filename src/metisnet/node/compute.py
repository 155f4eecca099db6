"""The compute node as a process: TLS endpoint, chain agent, graceful shutdown.

:func:`run_compute_node` loads the node's keystore (password from ``METIS_KEY_PASSWORD``),
connects to the chain at ``chain_url`` with the deployment file, starts a TLS
:class:`~metisnet.net.endpoint.Endpoint` whose peers are pinned by the node registry
(:class:`~metisnet.node.chaintrust.ChainTrust`), and polls a
:class:`~metisnet.node.agents.ComputeAgent` until SIGTERM or SIGINT; then it stops polling,
lets a running session finish for up to ``shutdown_timeout_s``, closes the endpoint and
restores the previous signal handlers. A chain that stops answering (a failed call, or
one pending for more than ``stall_s``) is said once, "chain unresponsive since ...", and
polled with exponential backoff until it answers again ("chain back after N s")
(:class:`ChainWatch`). In malicious-mode sessions the agent signs its
claims with the node key (:class:`~metisnet.node.claims.NodeSigner`), so a receiver can
check them against the registry and slash a member they prove to have equivocated.
Example ``compute.toml``::

    [compute]
    name = "compute-0"
    keystore = "/var/lib/metis/compute-0/node.keystore"
    chain_url = "http://127.0.0.1:8545"
    chain_deployment = "/var/lib/metis/deployment.json"
    port = 7101
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from metisnet.chain.backend import connect
from metisnet.chain.deploy import Contracts, Deployment
from metisnet.config import load_config
from metisnet.errors import ConfigError
from metisnet.net.channel import Channel
from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import NodeIdentity, load_node_identity
from metisnet.node.agents import ComputeAgent, SessionOpener
from metisnet.node.chaintrust import ChainTrust
from metisnet.node.misbehave import arm_compute
from metisnet.types import NodeId

__all__ = [
    "ChainWatch",
    "ComputeNodeConfig",
    "load_compute_config",
    "load_deployment",
    "run_compute_node",
    "signal_stop",
    "tls_sessions",
]

log = logging.getLogger("metisnet.compute")


@dataclass(frozen=True)
class ComputeNodeConfig:
    """Everything a compute node needs to start; the ``[compute]`` table of its TOML."""

    name: str = "compute"
    #: Encrypted keystore of :mod:`metisnet.net.identity` (its TLS key sits beside it).
    keystore: Path = Path("node.keystore")
    chain_url: str = "http://127.0.0.1:8545"
    chain_deployment: Path = Path("deployment.json")
    host: str = "127.0.0.1"
    port: int = 0
    poll_interval_s: float = 0.1
    #: recv timeout of a session (a silent peer fails the session after this)
    session_timeout_s: float = 60.0
    shutdown_timeout_s: float = 10.0
    log_level: str = "info"
    #: fault injection (devnets, tests): false makes the node a no-show in every draw
    acknowledge: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("compute node port must be between 0 and 65535")
        if min(self.poll_interval_s, self.session_timeout_s) <= 0:
            raise ConfigError("poll_interval_s and session_timeout_s must be positive")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
            raise ConfigError(f"unknown log_level {self.log_level!r}")


def load_compute_config(path: str | Path) -> ComputeNodeConfig:
    """The ``[compute]`` table of ``path``; ``METIS_*`` environment variables override."""
    return load_config(ComputeNodeConfig, path, table="compute", env_prefix="METIS")


def load_deployment(path: Path) -> Deployment:
    try:
        return Deployment.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):
        raise ConfigError(f"cannot read the deployment file {path}") from None


def tls_sessions(endpoint: Endpoint) -> SessionOpener:
    """A :data:`SessionOpener` over ``endpoint`` (session members are lowercased ids)."""

    def open_session(sid: bytes, members: Sequence[str]) -> Channel:
        return endpoint.session(sid, [NodeId(to_checksum_address(m)) for m in members])

    return open_session


class ChainWatch:
    """Tells, once each, when the chain stops answering a node's poll loop and when it is
    back; and how long the loop waits before its next poll (exponential backoff while the
    chain fails, up to ``max_backoff_s``).

    The loop calls :meth:`begin` before a poll and :meth:`end` after it. A failed poll
    marks the chain down at once; a poll still pending after ``stall_s`` (a stopped chain
    node accepts connections but never answers) is noticed by :meth:`check`, which a
    watchdog thread (:meth:`start`) calls twice a second.
    """

    def __init__(self, logger: logging.Logger, *, interval_s: float, stall_s: float = 3.0,
                 max_backoff_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.log = logger
        self.interval_s = interval_s
        self.stall_s = stall_s
        self.max_backoff_s = max(max_backoff_s, interval_s)
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._pending: float | None = None  # clock() at the start of the current poll
        self._down: float | None = None  # clock() when the chain stopped answering
        self.failures = 0
        #: the warnings given (for tests and status pages): ("down"|"back", seconds)
        self.events: list[tuple[str, float]] = []

    @property
    def down(self) -> bool:
        return self._down is not None

    def begin(self) -> None:
        with self._lock:
            self._pending = self._clock()

    def check(self) -> None:
        """A poll pending for longer than ``stall_s`` marks the chain down."""
        with self._lock:
            if self._pending is not None and self._down is None and \
                    self._clock() - self._pending > self.stall_s:
                self._mark_down(self._pending, f"a call pending for over {self.stall_s:g} s")

    def end(self, error: BaseException | None = None) -> float:
        """Record a poll's outcome; the seconds to wait before the next poll."""
        with self._lock:
            self._pending = None
            if error is None:
                if self._down is not None:
                    gone = self._clock() - self._down
                    self.log.warning("chain back after %.1f s", gone)
                    self.events.append(("back", gone))
                self._down, self.failures = None, 0
                return self.interval_s
            self.failures += 1
            if self._down is None:
                self._mark_down(self._clock(), f"{type(error).__name__}: {error}")
            else:
                self.log.debug("chain still unresponsive: %s", type(error).__name__)
            return float(min(self.max_backoff_s,
                             self.interval_s * 2 ** min(self.failures, 16)))

    def _mark_down(self, since: float, why: str) -> None:
        self._down = since
        stamp = time.strftime("%H:%M:%S", time.gmtime(self._wall() - (self._clock() - since)))
        self.log.warning("chain unresponsive since %s UTC (%s); polling with backoff",
                         stamp, why)
        self.events.append(("down", since))

    def start(self, stop: threading.Event, every_s: float = 0.5) -> threading.Thread:
        """The watchdog thread calling :meth:`check` until ``stop`` is set."""
        def run() -> None:
            while not stop.wait(every_s):
                self.check()

        thread = threading.Thread(target=run, name="metis-chain-watch", daemon=True)
        thread.start()
        return thread


def signal_stop(stop: threading.Event) -> Callable[[], None]:
    """Route SIGTERM/SIGINT to ``stop``; returns a function restoring the old handlers."""
    previous: dict[int, Any] = {}

    def _handler(sig: int, frame: FrameType | None) -> None:
        log.info("received signal %d; shutting down", sig)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, _handler)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def run_compute_node(cfg: ComputeNodeConfig, *, stop: threading.Event | None = None,
                     identity: NodeIdentity | None = None,
                     announce: Callable[[str, tuple[str, int]], None] | None = None) -> None:
    """Serve until ``stop`` is set or a signal arrives (blocking)."""
    stop = stop or threading.Event()
    ident = identity or load_node_identity(cfg.keystore)
    chain = connect(cfg.chain_url)
    account = Account.from_key(ident.key.secret_bytes())
    contracts = Contracts.attach(chain, load_deployment(cfg.chain_deployment), account)
    trust = ChainTrust(contracts.registry)
    endpoint = Endpoint(ident, trust, EndpointConfig(host=cfg.host, port=cfg.port,
                                                     timeout=cfg.session_timeout_s))
    endpoint.start()
    agent = ComputeAgent(contracts, tls_sessions(endpoint),
                         spec_timeout=cfg.session_timeout_s,
                         accept=lambda task_id: cfg.acknowledge,
                         on_spec=lambda task_id, spec: trust.pin_receivers(spec))
    arm_compute(agent)  # TEST ONLY: a no-op unless a devnet chaos harness started us
    restore = signal_stop(stop) if threading.current_thread() is threading.main_thread() \
        else (lambda: None)
    try:
        if announce is not None:
            announce(str(ident.node_id), endpoint.address)
        log.info("compute node %s (%s) on %s:%d", cfg.name, ident.node_id, *endpoint.address)
        checked = time.monotonic()
        watch = ChainWatch(log, interval_s=cfg.poll_interval_s)
        watch.start(stop)
        while not stop.is_set():
            watch.begin()
            failed: BaseException | None = None
            try:
                agent.poll()
                if time.monotonic() - checked > trust.ttl:
                    checked = time.monotonic()
                    trust.revalidate(endpoint)
            except Exception as exc:  # a chain hiccup must not end the node
                failed = exc
                if not watch.down:
                    log.warning("poll failed: %s: %s", type(exc).__name__, exc)
            stop.wait(watch.end(failed))
        for t in agent.tasks.values():  # let a running session end before the endpoint
            if t.worker is not None:
                t.worker.thread.join(cfg.shutdown_timeout_s)
    finally:
        endpoint.close()
        restore()
        log.info("compute node %s stopped", cfg.name)
