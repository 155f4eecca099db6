"""A client for a data node's REST API that signs every request with the caller's key.

Owners use it to add or host datasets, set policies and revoke; requesters to ask for a
dataset's use. Uploads stream from disk in two passes (hash, then send), so a file of any
size is sent with bounded memory; a hosted upload is encrypted to the node's public key on
the fly (:mod:`metisnet.node.envelope`), twice with the same ephemeral key, giving the same
bytes both times.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from metisnet.errors import MetisError, NetworkError, PeerTimeout, PolicyViolation
from metisnet.node.auth import sign_request
from metisnet.node.envelope import envelope_chunks, new_ephemeral_key
from metisnet.node.identity import NodeKey

__all__ = ["NodeClient", "NodeRequestError", "guess_format"]

_CHUNK = 1 << 20


class NodeRequestError(MetisError):
    """The node refused a request; ``status`` and ``kind`` say how."""

    def __init__(self, message: str, *, status: int, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def guess_format(path: Path) -> str:
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"


def _file_chunks(path: Path, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            if progress is not None:
                progress(len(chunk))
            yield chunk


class NodeClient:
    """Signed calls to one data node at ``base_url`` as the holder of ``key``."""

    def __init__(self, base_url: str, key: NodeKey, *, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.key = key
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, content: bytes | Iterable[bytes] | None = None,
                body_sha256: str | None = None, headers: Mapping[str, str] | None = None,
                signed: bool = True) -> Any:
        hdrs = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            hdrs["content-type"] = "application/json"
        if body_sha256 is None:
            if content is not None and not isinstance(content, bytes):
                raise ValueError("a streamed body needs its sha256 up front")
            body_sha256 = hashlib.sha256(content or b"").hexdigest()
        req = self._http.build_request(method, path, params=params, content=content,
                                       headers=hdrs)
        if signed:
            target = req.url.raw_path.decode("ascii")
            req.headers.update(sign_request(self.key, method, target, body_sha256))
        try:
            resp = self._http.send(req)
        except httpx.TimeoutException:
            raise PeerTimeout(f"the node at {self._http.base_url} did not answer in time") \
                from None
        except httpx.HTTPError as exc:
            raise NetworkError(f"cannot reach the node at {self._http.base_url}: "
                               f"{type(exc).__name__}") from None
        if resp.status_code >= 400:
            try:
                err = resp.json()
                kind, message, rule = err.get("error", ""), err.get("message", ""), err.get("rule")
            except (ValueError, AttributeError):
                kind, message, rule = "http_error", resp.text[:200], None
            if kind == "policy_violation":
                raise PolicyViolation(message, rule=rule or "")
            raise NodeRequestError(f"{resp.status_code} {kind}: {message}",
                                   status=resp.status_code, kind=kind)
        return resp.json()

    # -- node -----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = self.request("GET", "/health", signed=False)
        return out

    def node_info(self) -> dict[str, Any]:
        out: dict[str, Any] = self.request("GET", "/node", signed=False)
        return out

    # -- datasets -------------------------------------------------------------------------
    def _upload_params(self, name: str, fmt: str, schema: Mapping[str, str] | None
                       ) -> dict[str, str]:
        params = {"name": name, "format": fmt}
        if schema:
            params["schema"] = json.dumps(dict(schema), separators=(",", ":"))
        return params

    def add_dataset(self, path: Path, *, name: str, fmt: str | None = None,
                    schema: Mapping[str, str] | None = None,
                    progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Operators: upload a plaintext CSV/Parquet file (the node stores it encrypted)."""
        h = hashlib.sha256()
        for chunk in _file_chunks(path, None):
            h.update(chunk)
        out: dict[str, Any] = self.request(
            "POST", "/datasets", params=self._upload_params(name, fmt or guess_format(path),
                                                            schema),
            content=_file_chunks(path, progress), body_sha256=h.hexdigest(),
            headers={"content-type": "text/csv", "content-length": str(path.stat().st_size)},
        )
        return out

    def host_dataset(self, path: Path, *, name: str, fmt: str | None = None,
                     schema: Mapping[str, str] | None = None,
                     node_public_key: bytes | None = None,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Owners without a node: encrypt ``path`` to the node's key and upload it.

        Pass ``node_public_key`` as registered on chain to pin it; otherwise it is read
        from the node's ``/node`` endpoint (trust on first use).
        """
        pub = node_public_key or bytes.fromhex(self.node_info()["public_key"])
        eph = new_ephemeral_key()

        def envelope(report: Callable[[int], None] | None) -> Iterator[bytes]:
            with open(path, "rb") as f:
                for piece in envelope_chunks(pub, f, eph):
                    if report is not None:
                        report(len(piece))
                    yield piece

        h, size = hashlib.sha256(), 0
        for piece in envelope(None):
            h.update(piece)
            size += len(piece)
        out: dict[str, Any] = self.request(
            "POST", "/datasets/hosted",
            params=self._upload_params(name, fmt or guess_format(path), schema),
            content=envelope(progress), body_sha256=h.hexdigest(),
            headers={"content-type": "application/octet-stream",
                     "content-length": str(size)},
        )
        return out

    def list_datasets(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.request("GET", "/datasets")
        return out

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.request("GET", f"/datasets/{dataset_id}")
        return out

    def get_policy(self, dataset_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.request("GET", f"/datasets/{dataset_id}/policy")
        return out

    def set_policy(self, dataset_id: str, policy: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.request("PUT", f"/datasets/{dataset_id}/policy",
                                           json_body=dict(policy))
        return out

    def revoke(self, dataset_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.request("POST", f"/datasets/{dataset_id}/revoke")
        return out

    # -- tasks and audit -------------------------------------------------------------------
    def request_task(self, dataset_id: str, *, program: str, columns: list[str],
                     min_group_size: int = 1) -> dict[str, Any]:
        out: dict[str, Any] = self.request(
            "POST", "/tasks", json_body={"dataset_id": dataset_id, "program": program,
                                         "columns": columns, "min_group_size": min_group_size})
        return out

    def list_tasks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.request("GET", "/tasks")
        return out

    def get_task(self, task_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.request("GET", f"/tasks/{task_id}")
        return out

    def audit(self, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.request("GET", "/audit",
                                                 params={"after": after, "limit": limit})
        return out
