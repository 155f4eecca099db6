"""Start and stop a local anvil node (the devnet chain) on a loopback port.

anvil is a standalone binary from the npm package ``@foundry-rs/anvil-linux-amd64``, installed
by ``scripts/install-anvil.sh`` into ``.tools/``. ``METIS_ANVIL`` may point at another binary.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from metisnet.errors import ChainError
from metisnet.net.ports import free_port

__all__ = ["ANVIL_VERSION", "AnvilNode", "find_anvil", "free_port", "start_anvil"]

ANVIL_VERSION = "1.7.1"
_RELATIVE = Path(".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


def find_anvil() -> Path:
    """The anvil binary: ``$METIS_ANVIL``, else ``.tools/...`` in this checkout or the cwd."""
    env = os.environ.get("METIS_ANVIL")
    candidates = [Path(env)] if env else []
    repo_root = Path(__file__).resolve().parents[3]
    candidates += [repo_root / _RELATIVE, Path.cwd() / _RELATIVE]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise ChainError(
        f"the anvil binary was not found at {candidates[-1]}; "
        "install it with scripts/install-anvil.sh (needs npm)"
    )


@dataclass
class AnvilNode:
    """A running anvil process; use as a context manager or call :meth:`stop`."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self) -> AnvilNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_anvil(
    port: int | None = None, *, accounts: int = 20, mnemonic: str | None = None,
    timeout: float = 20.0,
) -> AnvilNode:
    """Start anvil on ``127.0.0.1:port`` (a free port by default) and wait until it answers."""
    binary = find_anvil()
    port = port or free_port()
    args = [str(binary), "--host", "127.0.0.1", "--port", str(port),
            "--accounts", str(accounts), "--silent"]
    if mnemonic:
        args += ["--mnemonic", mnemonic]
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors)
    node = AnvilNode(proc, port)
    deadline = time.monotonic() + timeout
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            errors.seek(0)
            err = errors.read().decode(errors="replace")
            raise ChainError(f"anvil exited with code {proc.returncode}: {err.strip()[:500]}")
        try:
            if httpx.post(node.url, json=body, timeout=1.0).status_code == 200:
                return node
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    node.stop()
    raise ChainError(f"anvil did not answer on {node.url} within {timeout} s")
