"""How errors become HTTP responses: every refusal a 4xx JSON body, never a 500.

``{"error": "<kind>", "message": "<what to fix>", "rule": "<policy rule or null>"}``.
Messages are those of :mod:`metisnet.errors`, which never hold a secret; an unexpected
exception becomes a bare 500 whose details go to the node's log only.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from metisnet.api.body import UploadTooLarge
from metisnet.errors import (
    ChainError,
    DecryptionError,
    IntegrityError,
    MetisError,
    PolicyViolation,
    StorageError,
    ValidationError,
)
from metisnet.node.datanode import NotFound

__all__ = ["Busy", "Unauthorized", "install_error_handlers", "status_of"]

log = logging.getLogger("metisnet.api")


class Unauthorized(MetisError, PermissionError):
    """A request's signature, timestamp or nonce did not pass."""


class Busy(MetisError):
    """The node is already ingesting as many uploads as it is configured for."""


_STATUS: list[tuple[type[BaseException], int, str]] = [
    (UploadTooLarge, 413, "upload_too_large"),
    (Busy, 429, "busy"),
    (NotFound, 404, "not_found"),
    (Unauthorized, 401, "unauthorized"),
    (PolicyViolation, 403, "policy_violation"),
    (DecryptionError, 400, "decryption_failed"),
    (IntegrityError, 401, "bad_signature"),
    (ValidationError, 400, "invalid_input"),
    (ChainError, 502, "registry_unavailable"),
    (StorageError, 503, "storage_unavailable"),
    (MetisError, 400, "refused"),
]


def status_of(exc: BaseException) -> tuple[int, str]:
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal_error"


def error_response(exc: BaseException) -> JSONResponse:
    status, kind = status_of(exc)
    message = str(exc) if status != 500 else "internal error; see the node's log"
    rule = getattr(exc, "rule", None) or None
    return JSONResponse({"error": kind, "message": message, "rule": rule}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    async def metis_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        errs = exc.errors() if isinstance(exc, RequestValidationError) else []
        parts = []
        for e in errs[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()))
            parts.append(f"{loc}: {e.get('msg', 'invalid')}")
        return JSONResponse(
            {"error": "invalid_request", "message": "; ".join(parts) or "invalid request",
             "rule": None},
            status_code=422,
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 400
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else "bad request"
        return JSONResponse({"error": "http_error", "message": str(detail), "rule": None},
                            status_code=status)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s: %s", request.method, request.url.path,
                  type(exc).__name__, exc_info=exc)
        return error_response(exc)

    app.add_exception_handler(MetisError, metis_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
