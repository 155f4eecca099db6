"""A local metisnet network of separate OS processes: ``metis devnet up|down|status``.

:func:`devnet_up` starts one anvil node on a free loopback port, deploys the contracts,
creates a key, a TLS identity and a config for 3 data nodes and 6 compute nodes in the data
directory (default ``.devnet/``), funds, registers and stakes every node on chain with its
certificate hash and TLS endpoint, loads a synthetic dataset into each data node (registered
on chain, open to every requester), then starts every node as its own process
(``metis data start`` / ``metis compute start``, one log file each under ``logs/``) and waits
until all answer. ``state.json`` records pids, ports, URLs and datasets; :func:`devnet_down`
stops the processes (SIGTERM, then SIGKILL after a timeout), :func:`devnet_status` reports
them. :func:`stop_node` and :func:`restart_node` kill one node process and start it again
from its config and stored state (fault injection).

Six compute nodes by default: ``TaskManager.restart`` replaces a running committee that
delivered nothing with a disjoint one, so it needs twice the committee size (3) in compute
nodes. With ``proxied=True`` every node listens on a private port and registers another
one on chain, for a :class:`~metisnet.node.faultproxy.FaultFabric` to forward (and bend):
such a devnet works only while its proxies run (the chaos harness runs them).

The keystores are encrypted with a random password kept in ``password`` (mode 0600) and
handed to the node processes in ``METIS_KEY_PASSWORD``; their scrypt cost is lowered, as
befits throwaway devnet keys.

:class:`DevnetRequester` is a requester on a running devnet: its own TLS endpoint (pinned
by the spec's ``receiver_tls``), specs handed to the data nodes over their REST API.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from metisnet.chain.anvil import find_anvil, free_port
from metisnet.chain.backend import Chain, connect
from metisnet.chain.deploy import ChainParams, Contracts, deploy_contracts
from metisnet.chain.registry import Role
from metisnet.errors import ConfigError, MetisError
from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import (
    PASSWORD_ENV,
    NodeIdentity,
    NodeKey,
    TlsIdentity,
    create_node_files,
    load_node_identity,
)
from metisnet.node.agents import Decision
from metisnet.node.auth import sign_request
from metisnet.node.chaintrust import ChainTrust
from metisnet.node.compute import load_deployment, tls_sessions
from metisnet.node.config import DataNodeConfig
from metisnet.node.datanode import DataNode
from metisnet.node.identity import NodeKey as SigningKey
from metisnet.node.localnet import synthetic_column
from metisnet.node.misbehave import MISBEHAVE_ENV
from metisnet.node.policy import Policy
from metisnet.node.registrar import ChainRegistrar
from metisnet.node.requester import Requester
from metisnet.node.taskspec import TaskSpec
from metisnet.types import Wei

__all__ = [
    "DEFAULT_DIR",
    "DevnetError",
    "DevnetNetwork",
    "DevnetRequester",
    "DevnetState",
    "NodeProc",
    "devnet_down",
    "devnet_status",
    "devnet_up",
    "load_state",
    "restart_node",
    "stop_node",
]

log = logging.getLogger("metisnet.devnet")

DEFAULT_DIR = Path(".devnet")
ETHER = 10**18
STAKE = Wei(2 * ETHER)
FUNDING = Wei(5 * ETHER)
SCRYPT_N = 2**12
STATE = "state.json"
#: TEST ONLY: where a chaos harness leaves misbehaviour orders for a proxied devnet's nodes
MISBEHAVE_DIR = "misbehave"


class DevnetError(MetisError, RuntimeError):
    """The devnet could not be started, found or stopped."""


@dataclass
class NodeProc:
    """One process of the devnet."""

    name: str
    role: str  # "chain", "data" or "compute"
    pid: int
    log: str
    address: str = ""
    rest_url: str = ""
    tls: str = ""
    config: str = ""
    #: where the node really listens when a fault proxy owns ``tls`` (else empty)
    listen: str = ""


@dataclass
class DevnetState:
    """What ``state.json`` holds."""

    root: str
    chain_url: str
    deployment: str
    started_at: float
    procs: list[NodeProc] = field(default_factory=list)
    #: dataset id -> {"node": data node address, "seed": int, "rows": int, "column": str}
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> DevnetState:
        doc = json.loads(text)
        procs = [NodeProc(**p) for p in doc.pop("procs")]
        return cls(procs=procs, **doc)

    def by_role(self, role: str) -> list[NodeProc]:
        return [p for p in self.procs if p.role == role]

    def by_name(self, name: str) -> NodeProc:
        for p in self.procs:
            if p.name == name:
                return p
        raise DevnetError(f"no process {name!r} in this devnet")


# ------------------------------------------------------------------------- processes
def _alive(pid: int) -> bool:
    """Whether ``pid`` runs and is one of ours (an anvil or a metisnet process)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # a zombie has exited
        return False
    if not cmd:  # just forked, not yet exec'd: judge by the command name
        return stat.partition("(")[2].rpartition(")")[0].startswith(("python", "anvil"))
    return b"metisnet" in cmd or b"anvil" in cmd


def _spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                close_fds=True)
    return proc.pid


def _metis(*args: str) -> list[str]:
    return [sys.executable, "-c", "from metisnet.cli import run; run()", *args]


def _tail(path: str, lines: int = 12) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _log_size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _wait_ready(p: NodeProc, deadline: float, since: int = 0) -> None:
    """Wait until ``p`` serves; ``since``: where its log stood when it was started."""
    while time.monotonic() < deadline:
        if not _alive(p.pid):
            raise DevnetError(f"{p.name} exited during start; its log ({p.log}) ends:\n"
                              f"{_tail(p.log)}")
        if p.role == "data":
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(p.rest_url + "/health", timeout=1.0).status_code == 200:
                    return
        elif p.role == "compute":
            with contextlib.suppress(OSError), open(p.log, "rb") as f:
                f.seek(since)
                if b"listening on" in f.read():
                    return
        time.sleep(0.1)
    raise DevnetError(f"{p.name} did not come up in time; see {p.log}")


def _wait_chain(url: str, pid: int, deadline: float) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    while time.monotonic() < deadline:
        if not _alive(pid):
            code: object = "?"
            with contextlib.suppress(ChildProcessError, OSError):
                code = os.waitpid(pid, os.WNOHANG)[1]
            raise DevnetError(f"anvil exited during start (wait status {code})")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(url, json=body, timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise DevnetError(f"anvil did not answer on {url}")


@contextlib.contextmanager
def _password_env(password: str) -> Iterator[None]:
    old = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = password
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = old


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _toml(tables: dict[str, dict[str, Any]]) -> str:
    out = []
    for name, values in tables.items():
        out.append(f"[{name}]")
        for k, v in values.items():
            out.append(f"{k} = {json.dumps(v) if not isinstance(v, Path) else json.dumps(str(v))}")
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------- up / down
def load_state(root: Path = DEFAULT_DIR) -> DevnetState | None:
    path = Path(root) / STATE
    if not path.exists():
        return None
    try:
        return DevnetState.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError):
        raise DevnetError(f"{path} is not a devnet state file; remove it") from None


def devnet_up(root: Path = DEFAULT_DIR, *, rows: int = 10_000, data_nodes: int = 3,
              compute_nodes: int = 6, timeout: float = 90.0, log_level: str = "info",
              no_shows: int = 0, proxied: bool = False,
              session_timeout: float | None = None) -> tuple[DevnetState, bool]:
    """Start the devnet in ``root`` unless it runs; returns (state, whether it was started).

    ``no_shows`` compute nodes (the first ones) are configured never to acknowledge a draw
    (fault injection: the requester redraws and the contract slashes them). ``proxied``
    registers each node's TLS endpoint on a port a fault proxy must forward to ``listen``.
    ``session_timeout`` sets the compute nodes' ``session_timeout_s`` (default: theirs,
    60 s); a chaos harness keeps it near its requester's, so that a member left waiting
    by a cheater reports its claims before the requester stops listening.
    """
    if session_timeout is not None and not 0 < session_timeout <= 3600:
        raise ConfigError("session_timeout must be within (0, 3600] seconds")
    if not 0 <= no_shows <= compute_nodes:
        raise ConfigError("no_shows must be between 0 and the number of compute nodes")
    root = Path(root).resolve()
    state = load_state(root)
    if state is not None:
        if all(_alive(p.pid) for p in state.procs):
            return state, False
        devnet_down(root)  # a partial devnet: clear it and start afresh
    if root.is_dir() and any(root.iterdir()) and not (root / "password").is_file():
        raise DevnetError(f"{root} is not empty and holds no devnet; pick a new directory")
    # a previous devnet's, whose chain is gone
    for sub in ("keys", "nodes", "logs", "requesters", MISBEHAVE_DIR):
        d = root / sub
        if d.exists():
            shutil.rmtree(d)
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir()
    password = secrets.token_hex(16)
    _write_private(root / "password", password + "\n")
    deadline = time.monotonic() + timeout
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    anvil_pid = _spawn([str(find_anvil()), "--host", "127.0.0.1", "--port", str(port),
                        "--accounts", "20"], root / "logs" / "anvil.log")
    state = DevnetState(str(root), url, str(root / "deployment.json"), time.time(),
                        [NodeProc("anvil", "chain", anvil_pid, str(root / "logs" / "anvil.log"),
                                  rest_url=url)])
    (root / STATE).write_text(state.to_json(), encoding="utf-8")
    try:
        _wait_chain(url, anvil_pid, deadline)
        chain = connect(url)
        deployment = deploy_contracts(chain, chain.account(0), ChainParams())
        Path(state.deployment).write_text(deployment.to_json(), encoding="utf-8")
        contracts = Contracts.attach(chain, deployment, chain.account(0))
        env = {**os.environ, PASSWORD_ENV: password}
        with _password_env(password):
            for i in range(data_nodes):
                state.procs.append(_setup_data(root, i, chain, contracts, state, rows,
                                               log_level, proxied))
            for i in range(compute_nodes):
                state.procs.append(_setup_compute(root, i, chain, contracts, state, log_level,
                                                  acknowledge=i >= no_shows,
                                                  proxied=proxied,
                                                  session_timeout=session_timeout))
        for p in state.procs[1:]:
            p.pid = _spawn(_node_args(p), Path(p.log), _node_env(root, p, env))
            (root / STATE).write_text(state.to_json(), encoding="utf-8")
        for p in state.procs[1:]:
            _wait_ready(p, deadline)
    except BaseException:
        (root / STATE).write_text(state.to_json(), encoding="utf-8")
        devnet_down(root)
        raise
    (root / STATE).write_text(state.to_json(), encoding="utf-8")
    return state, True


def _node_args(p: NodeProc) -> list[str]:
    return _metis("data" if p.role == "data" else "compute", "start", "--config", p.config)


def _node_env(root: Path, p: NodeProc, env: dict[str, str]) -> dict[str, str]:
    """A node process's environment. TEST ONLY: a proxied devnet's nodes (only the chaos
    harness runs one) get :data:`~metisnet.node.misbehave.MISBEHAVE_ENV`, the directory
    its misbehaviour orders go to; every other node runs without it."""
    env = {k: v for k, v in env.items() if k != MISBEHAVE_ENV}
    if p.listen:
        env[MISBEHAVE_ENV] = str(root / MISBEHAVE_DIR)
    return env


def _ports(proxied: bool) -> tuple[int, int]:
    """(the port registered on chain, the port the node listens on)."""
    tls = free_port()
    return tls, (free_port() if proxied else tls)


def _register(chain: Chain, contracts: Contracts, account: LocalAccount, role: Role,
              cert_hash: bytes, tls: str) -> None:
    chain.fund(account.address, FUNDING)
    contracts.registry.using(account).register(role, cert_hash, tls, 1, STAKE)


def _identity(path: Path) -> tuple[NodeIdentity, LocalAccount]:
    from eth_account import Account

    path.parent.mkdir(parents=True, exist_ok=True)
    ident = create_node_files(path, scrypt_n=SCRYPT_N, overwrite=True)
    return ident, Account.from_key(ident.key.secret_bytes())


def _setup_data(root: Path, i: int, chain: Chain, contracts: Contracts, state: DevnetState,
                rows: int, log_level: str, proxied: bool = False) -> NodeProc:
    name = f"data-{i}"
    ident, account = _identity(root / "keys" / f"{name}.keystore")
    rest = free_port()
    tls, listen = _ports(proxied)
    _register(chain, contracts, account, Role.DATA, ident.cert_hash, f"127.0.0.1:{tls}")
    data_dir = root / "nodes" / name
    node_table: dict[str, Any] = {
        "name": name, "data_dir": str(data_dir), "host": "127.0.0.1", "port": rest,
        "chain_url": state.chain_url, "chain_deployment": state.deployment,
        "node_keystore": str(root / "keys" / f"{name}.keystore"), "log_level": log_level,
    }
    cfg_path = root / f"{name}.toml"
    cfg_path.write_text(_toml({"node": node_table,
                               "agent": {"host": "127.0.0.1", "tls_port": listen}}),
                        encoding="utf-8")
    cfg = DataNodeConfig(name=name, data_dir=data_dir, port=rest, chain_url=state.chain_url,
                         chain_deployment=Path(state.deployment),
                         node_keystore=root / "keys" / f"{name}.keystore")
    node = DataNode(cfg, registrar=ChainRegistrar(contracts.datasets.using(account)))
    try:
        col = synthetic_column(i, rows)
        csv = "age\n" + "\n".join(f"{v:.2f}" for v in col) + "\n"
        rec = node.add_dataset(io.BytesIO(csv.encode()), owner=account.address,
                               name=f"ages-{i}",
                               policy=Policy(allowed_programs=("*",), allowed_columns=("*",),
                                             allowed_requesters=("*",)))
    finally:
        node.close()
    state.datasets[rec.id] = {"node": account.address, "seed": i, "rows": rows,
                              "column": "age"}
    return NodeProc(name, "data", 0, str(root / "logs" / f"{name}.log"),
                    address=account.address, rest_url=f"http://127.0.0.1:{rest}",
                    tls=f"127.0.0.1:{tls}", config=str(cfg_path),
                    listen=f"127.0.0.1:{listen}" if proxied else "")


def _setup_compute(root: Path, i: int, chain: Chain, contracts: Contracts,
                   state: DevnetState, log_level: str, *, acknowledge: bool = True,
                   proxied: bool = False, session_timeout: float | None = None) -> NodeProc:
    name = f"compute-{i}"
    keystore = root / "keys" / f"{name}.keystore"
    ident, account = _identity(keystore)
    tls, listen = _ports(proxied)
    _register(chain, contracts, account, Role.COMPUTE, ident.cert_hash, f"127.0.0.1:{tls}")
    cfg_path = root / f"{name}.toml"
    table: dict[str, Any] = {
        "name": name, "keystore": str(keystore), "chain_url": state.chain_url,
        "chain_deployment": state.deployment, "host": "127.0.0.1", "port": listen,
        "log_level": log_level, "acknowledge": acknowledge}
    if session_timeout is not None:
        table["session_timeout_s"] = float(session_timeout)
    cfg_path.write_text(_toml({"compute": table}), encoding="utf-8")
    return NodeProc(name, "compute", 0, str(root / "logs" / f"{name}.log"),
                    address=account.address, tls=f"127.0.0.1:{tls}", config=str(cfg_path),
                    listen=f"127.0.0.1:{listen}" if proxied else "")


def _node_of(root: Path, name: str, why: str) -> tuple[Path, DevnetState, NodeProc]:
    """The devnet in ``root``, its state and node ``name``, which must not be the chain
    (``why`` says why not)."""
    root = Path(root).resolve()
    state = load_state(root)
    if state is None:
        raise DevnetError(f"no devnet in {root}")
    p = state.by_name(name)
    if p.role == "chain":
        raise DevnetError(why)
    return root, state, p


def stop_node(root: Path, name: str, sig: int = signal.SIGKILL) -> NodeProc:
    """Send ``sig`` (SIGKILL by default: a crash) to node ``name`` and wait until it is gone."""
    root, _, p = _node_of(root, name, "stop_node stops data and compute nodes; the chain "
                                      "keeps its state only while it runs")
    if _alive(p.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, sig)
    end = time.monotonic() + 10.0
    while _alive(p.pid) and time.monotonic() < end:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(p.pid, os.WNOHANG)  # reap it if this process started it
        time.sleep(0.02)
    if _alive(p.pid):
        raise DevnetError(f"{name} (pid {p.pid}) did not stop")
    log.info("%s (pid %d) stopped with signal %d", name, p.pid, sig)
    return p


def restart_node(root: Path, name: str, *, timeout: float = 60.0) -> NodeProc:
    """Start node ``name`` again from its config, keys and stored state; wait until it
    serves. Refuses a node that still runs."""
    root, state, p = _node_of(root, name, "the chain cannot be restarted: anvil keeps its "
                                          "state in memory")
    if _alive(p.pid):
        raise DevnetError(f"{name} (pid {p.pid}) still runs; stop it first")
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(p.pid, os.WNOHANG)
    password = (root / "password").read_text(encoding="utf-8").strip()
    since = _log_size(p.log)
    p.pid = _spawn(_node_args(p), Path(p.log),
                   _node_env(root, p, {**os.environ, PASSWORD_ENV: password}))
    (root / STATE).write_text(state.to_json(), encoding="utf-8")
    _wait_ready(p, time.monotonic() + timeout, since)
    log.info("%s restarted (pid %d)", name, p.pid)
    return p


def top_up_node(root: Path, name: str, amount: int) -> None:
    """Node ``name``'s operator bonds ``amount`` wei more (funded from the devnet's faucet):
    after a slash, a chaos harness keeps every node eligible for the next draws."""
    if amount <= 0:
        raise ConfigError("a top-up must be a positive amount of wei")
    root, state, _ = _node_of(root, name, "only data and compute nodes hold stake")
    from eth_account import Account

    keystore = root / "keys" / f"{name}.keystore"
    password = (root / "password").read_text(encoding="utf-8").strip()
    ident = load_node_identity(keystore, password, create_tls=False)
    account = Account.from_key(ident.key.secret_bytes())
    chain = connect(state.chain_url)
    contracts = Contracts.attach(chain, load_deployment(Path(state.deployment)), account)
    chain.fund(account.address, Wei(amount))
    contracts.registry.top_up(Wei(amount))


def devnet_down(root: Path = DEFAULT_DIR, *, timeout: float = 10.0) -> list[str]:
    """Stop every process of the devnet in ``root`` (nodes first, the chain last)."""
    root = Path(root).resolve()
    state = load_state(root)
    if state is None:
        return []
    stopped: list[str] = []
    for group in (state.by_role("data") + state.by_role("compute"), state.by_role("chain")):
        live = [p for p in group if p.pid > 0 and _alive(p.pid)]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(_alive(p.pid) for p in live):
            time.sleep(0.05)
        for p in live:
            if _alive(p.pid):
                log.warning("%s did not stop within %g s; killing it", p.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
            stopped.append(p.name)
    for p in state.procs:  # reap our own children, if we started them
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(p.pid, os.WNOHANG)
    (root / STATE).unlink(missing_ok=True)
    return stopped


def devnet_status(root: Path = DEFAULT_DIR) -> list[dict[str, Any]]:
    """One row per process: name, role, pid, alive, address, REST URL, TLS endpoint, log."""
    state = load_state(Path(root).resolve())
    if state is None:
        return []
    return [{"name": p.name, "role": p.role, "pid": p.pid, "alive": _alive(p.pid),
             "address": p.address, "rest": p.rest_url, "tls": p.tls, "log": p.log}
            for p in state.procs]


# ------------------------------------------------------------------------- requester
def _requester_tls(root: Path, key: NodeKey) -> TlsIdentity:
    """A requester's TLS identity, kept in the devnet directory so that its pin is stable:
    nodes keep the latest pin of each receiver, and a new certificate for the same account
    would be refused by a node that has not seen the new spec yet."""
    path = root / "requesters" / f"{key.node_id}.tls"
    password = (root / "password").read_text(encoding="utf-8").strip()
    if path.exists():
        tls = TlsIdentity.load(path, password)
        if tls.node_id == key.node_id:
            return tls
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tls = TlsIdentity.create(key)
    tls.save(path, password)
    return tls


class DevnetRequester:
    """A requester on a running devnet, with its own TLS endpoint (close it when done).

    ``account_index`` picks one of anvil's funded accounts (0 is the devnet's deployer and
    faucet); the receiver's TLS certificate is kept per account in the devnet directory and
    travels in the spec's ``receiver_tls``.
    """

    def __init__(self, state: DevnetState, *, account_index: int = 1,
                 session_timeout: float = 60.0) -> None:
        if account_index < 1:
            raise ConfigError("account 0 is the devnet's faucet; use 1 or more")
        self.state = state
        self.chain = connect(state.chain_url)
        self.account = self.chain.account(account_index)
        self.contracts = Contracts.attach(self.chain, load_deployment(Path(state.deployment)),
                                          self.account)
        key = NodeKey(bytes(self.account.key))
        self.identity = NodeIdentity(key, _requester_tls(Path(state.root), key))
        self._signing = SigningKey(bytes(self.account.key))
        self.trust = ChainTrust(self.contracts.registry)
        self.endpoint = Endpoint(self.identity, self.trust,
                                 EndpointConfig(port=0, timeout=session_timeout)).start()
        self._rest = {p.address.lower(): p.rest_url for p in state.by_role("data")}
        self._http = httpx.Client(timeout=60.0)

    @property
    def address(self) -> str:
        return str(self.account.address)

    def spec(self, program: str, inputs: list[tuple[str, list[str]]], fee_wei: int,
             **kw: Any) -> TaskSpec:
        """A spec received by this requester, with its TLS pin and endpoint."""
        host, port = self.endpoint.address
        tls = [{"address": self.address, "cert_sha256": self.identity.cert_hash.hex(),
                "endpoint": f"{host}:{port}"}]
        return TaskSpec.new(program, inputs, [self.address], fee_wei, receiver_tls=tls, **kw)

    def deliver(self, owner: str, task_id: int, spec: TaskSpec) -> Decision:
        """Hand ``spec`` to data node ``owner`` over its REST API; its vote."""
        url = self._rest.get(owner.lower())
        if url is None:
            return Decision(False, "no such data node on this devnet")
        body = spec.canonical()
        target = f"/v1/chain-tasks/{task_id}"
        headers = sign_request(self._signing, "POST", target, hashlib.sha256(body).hexdigest())
        try:
            resp = self._http.post(url + target, content=body,
                                   headers={**headers, "content-type": "application/json"})
        except httpx.HTTPError as exc:
            return Decision(False, f"data node unreachable: {exc}")
        doc = resp.json() if resp.headers.get("content-type", "").startswith(
            "application/json") else {}
        if resp.status_code != 200:
            return Decision(False, str(doc.get("message", resp.text[:200])),
                            str(doc.get("rule") or ""))
        return Decision(bool(doc["approve"]), doc.get("reason", ""), doc.get("rule", ""))

    def requester(self, **kw: Any) -> Requester:
        return Requester(self.contracts, tls_sessions(self.endpoint), self.deliver,
                         advance_time=self.chain.advance_time, now=self.chain.timestamp, **kw)

    def datasets(self, rest_url: str) -> list[dict[str, Any]]:
        """The datasets a data node lists (any signed caller may list them)."""
        resp = self._http.get(rest_url + "/datasets",
                              headers=sign_request(self._signing, "GET", "/datasets"))
        if resp.status_code != 200:
            raise DevnetError(f"listing the datasets of {rest_url} failed: {resp.status_code}")
        out: list[dict[str, Any]] = resp.json()
        return out

    def audit(self, rest_url: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The audit entries a data node shows this requester (its own entries)."""
        target = f"/audit?limit={limit}"
        resp = self._http.get(rest_url + target,
                              headers=sign_request(self._signing, "GET", target))
        if resp.status_code != 200:
            raise DevnetError(f"audit of {rest_url} failed: {resp.status_code}")
        out: list[dict[str, Any]] = resp.json()
        return out

    def close(self) -> None:
        self.endpoint.close()
        self._http.close()

    def __enter__(self) -> DevnetRequester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Member:
    address: str


class DevnetNetwork:
    """The devnet seen the way ``metis demo`` sees a :class:`LocalNetwork`.

    Starts the devnet in ``root`` if it is not running (and stops it on :meth:`close` only
    then); the requester is one of anvil's funded accounts with its own TLS endpoint.
    """

    def __init__(self, root: Path = DEFAULT_DIR, *, rows: int = 10_000,
                 account_index: int = 1) -> None:
        self.root = Path(root)
        self.state, self.started = devnet_up(self.root, rows=rows)
        try:
            self.client = DevnetRequester(self.state, account_index=account_index)
        except BaseException:
            if self.started:
                devnet_down(self.root)
            raise
        self.data = [_Member(p.address) for p in self.state.by_role("data")]
        self.compute = [_Member(p.address) for p in self.state.by_role("compute")]
        self.requester_account = _Member(self.client.address)
        self.columns = {d: synthetic_column(m["seed"], m["rows"])
                        for d, m in self.state.datasets.items()}
        self.rows = {int(m["rows"]) for m in self.state.datasets.values()}

    @property
    def dataset_ids(self) -> list[str]:
        return list(self.columns)

    def spec(self, program: str, inputs: list[tuple[str, list[str]]], fee_wei: int,
             **kw: Any) -> TaskSpec:
        return self.client.spec(program, inputs, fee_wei, **kw)

    def requester(self, **kw: Any) -> Requester:
        return self.client.requester(**kw)

    def close(self) -> None:
        self.client.close()
        if self.started:
            devnet_down(self.root)
