"""Errors in OpenAI's format: ``{"error": {"message", "type", "param", "code"}}``, one path for all of them.

Bad input is the client's: 400 (malformed JSON, wrong types, empty messages, a prompt longer than
the context), 404 (unknown model or route), 405, 413, 415 (a body that is not sent as JSON); a full
queue or a stopping server is 503 with Retry-After; only a fault of the server itself is 500, and
its message names no internals. No request body reaches a log: validation errors are answered, not
logged, and an unexpected exception is logged as its type and where it was raised, never its
message or traceback text (either can quote the request: a validation error holds its input).
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("medtune.serve")

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 408: "timeout_error", 413: "invalid_request_error",
               415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
               503: "overloaded_error", 504: "timeout_error"}


class APIError(Exception):
    """An error response; raise it anywhere in a request and the app answers with it."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.status, self.message, self.code, self.param)


# Codes for the security layer's refusals (the status says the class; the code says which check).
_SECURITY_CODES = {"AuthError": {401: "invalid_api_key", 403: "permission_denied"}, "PhiBlocked": "phi_blocked",
                   "LimitError": {413: "request_too_large", 422: "limit_exceeded", 429: "rate_limit_exceeded"},
                   "AuditError": "audit_unavailable"}


def api_error(err: Exception) -> APIError:
    """A :class:`medtune.security.SecurityError` as the API's error: its status, headers and field.

    The security package knows nothing of HTTP responses; this is the one place its refusals become them.
    An audit failure is 503 (the request was not completed because it could not be recorded).
    """
    kind = type(err).__name__
    status = 503 if kind == "AuditError" else int(getattr(err, "status", 400))
    codes = _SECURITY_CODES.get(kind)
    code = codes.get(status) if isinstance(codes, dict) else codes
    headers = err.headers() if hasattr(err, "headers") else {}
    if kind == "AuditError":
        message = "the request could not be recorded in the audit log, so it was not completed (logged on the server)"
    else:
        message = str(err)
    return APIError(status, message, code=code, param=getattr(err, "field", None), headers=headers)


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
                      "param": param, "code": code}}


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _not_json(exc: RequestValidationError) -> bool:
    """The body arrived as raw bytes: FastAPI parses JSON only when the Content-Type says JSON (text/plain,
    form-encoded or no Content-Type at all reach validation as ``bytes``)."""
    return any(isinstance(e.get("input"), (bytes, bytearray)) for e in exc.errors())


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None, str]:
    """One readable line naming the first bad field (and how many more), plus the param and a code."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "invalid"}
    loc = _field_path(first)
    # A union field (``stop: str | list[str]``) reports one error per member; the one that is not a
    # plain type mismatch says what is wrong ("at most 4 items").
    same = [e for e in errors if _field_path(e) == loc]
    first = next((e for e in same if not e.get("type", "").endswith("_type")), first)
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx") or {}
        return f"malformed JSON body: {ctx.get('error', first['msg'])}", None, "invalid_json"
    if first.get("type") == "missing" and not loc:
        return "the request body is missing (send a JSON object)", None, "missing_body"
    param = ".".join(loc) or None
    where = f"{param}: " if param else ""
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    got = first.get("input")  # a JSON scalar from the body (echoed to its sender only; never logged)
    shown = f" (got {json.dumps(got)[:60]})" if isinstance(got, (str, int, float, bool)) else ""
    return f"{where}{first['msg']}{shown}{more}", param, first.get("type", "invalid_value")


def _field_path(error: dict) -> list[str]:
    """The field's path without pydantic's "body" root and union member tags ("str", "list[str]")."""
    return [str(x) for x in error.get("loc", ()) if x != "body" and not _is_type_tag(x)]


def _is_type_tag(part: object) -> bool:
    return isinstance(part, str) and (part in ("str", "int", "float", "bool", "dict", "list", "none") or "[" in part)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    from ..security import SecurityError

    @app.exception_handler(SecurityError)
    async def _security(_request: Request, exc: SecurityError) -> JSONResponse:
        return error_response(api_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        if _not_json(exc):
            return error_response(APIError(415, "the request body must be JSON: send it with Content-Type: "
                                           "application/json", code="unsupported_media_type"))
        message, param, code = _validation_message(exc)
        return error_response(APIError(400, message, code=code, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "no such route", 405: "method not allowed",
                   413: "request body over the limit (security.max_body_bytes)"}.get(exc.status_code, str(exc.detail))
        code = "request_too_large" if exc.status_code == 413 else None  # a chunked body counted as it arrived
        return error_response(APIError(exc.status_code, message, code=code, headers=dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the last resort, for a fault of ContextMiddleware itself (ErrorBoundary catches the app's own)
        if not isinstance(exc, ResponseAborted):  # (logged by ErrorBoundary already)
            log_internal_error(exc, request.scope)
        return internal_error_response()


def internal_error_response() -> JSONResponse:
    return error_response(APIError(500, "internal server error (logged on the server)", code="internal_error"))


def log_internal_error(exc: BaseException, scope: dict) -> None:
    """One line for an unexpected exception: the route, the exception's type and where it was raised.

    Never its message, arguments or chained exceptions, nor the raw path: any of them can quote the
    request (a validation error carries the body it refused), and the PHI log filter removes
    identifiers, not clinical text.
    """
    ctx = (scope.get("state") or {}).get("ctx")
    route = getattr(scope.get("route"), "path", None) or getattr(ctx, "route", None) or "an unmatched route"
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(frames)) or "?"
    log.error("internal error (request %s, %s %s): %s.%s at %s", getattr(ctx, "request_id", "-"),
              safe_method(scope.get("method")), route, type(exc).__module__, type(exc).__qualname__, where)


METHOD = re.compile(r"[A-Z]{3,7}")


def safe_method(method: object) -> str:
    """The request method for logs and audit events (``RequestContext.method`` holds it): a client may send any
    token as its method, so anything but 3-7 capital letters is written as OTHER.

    >>> safe_method("POST"), safe_method("JOHN SMITH"), safe_method(None)
    ('POST', 'OTHER', 'OTHER')
    """
    return method if isinstance(method, str) and METHOD.fullmatch(method) else "OTHER"


class ResponseAborted(Exception):
    """A response that had started could not be completed (the cause was logged without its message)."""


class ErrorBoundary:
    """Pure ASGI, inside ContextMiddleware: an exception that escapes the app is logged by
    :func:`log_internal_error` and answered 500, so nothing downstream (Starlette's error middleware,
    uvicorn's "Exception in ASGI application") prints its traceback, which quotes its message.

    When the response had already started (a stream), there is nothing to answer: a bare
    :class:`ResponseAborted` is raised in its place, so the connection is cut, as before, and the
    request context records the failure.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            log_internal_error(exc, scope)
            if started:
                raise ResponseAborted("the response could not be completed (logged on the server)") from None
            await internal_error_response()(scope, receive, send)
