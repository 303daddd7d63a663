"""Pieces shared by june's Litestar services (speech, gateway): the OpenAI error envelope and serving.

Every error a june service returns has OpenAI's shape,
``{"error": {"message": str, "type": str, "param": str | None, "code": str | None}}``
(https://platform.openai.com/docs/guides/error-codes), mapped in one place: `exception_handlers`.
"""

from __future__ import annotations

import gc
import logging
from http import HTTPStatus
from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from core.limits import RateLimited
from core.priority import DEFAULT_CLASS, HEADER, RequestClass, parse_class

log = logging.getLogger(__name__)

# OpenAI's error `type` for each status class we return.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class OpenAIError(Exception):
    """An error to answer with the OpenAI envelope and `status_code`.

    `param` names the offending request field (e.g. "file", "input"), `code` is a short
    machine-readable reason (e.g. "unsupported_audio_format").
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,  # noqa: A002 - OpenAI's field name
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status_code, "server_error" if status_code >= 500 else "invalid_request_error")
        self.headers = headers or {}


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:  # noqa: A002 - OpenAI's field name
    """The OpenAI error envelope as a dict."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def rate_limit_error(exc: RateLimited) -> OpenAIError:
    """OpenAI's 429 for a refused limit: type rate_limit_error, code rate_limit_exceeded, and
    Retry-After (whole seconds, at least 1)."""
    return OpenAIError(
        429,
        str(exc),
        type="rate_limit_error",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(exc.retry_after)},
    )


def header_class(value: str | None, default: RequestClass = DEFAULT_CLASS) -> RequestClass:
    """The request class an `X-June-Class` header value names (`core.priority.parse_class`; `default`
    without one). Raises OpenAIError 400 (param the header, code invalid_value) for another value."""
    try:
        return parse_class(value, default)
    except ValueError as e:
        raise OpenAIError(400, str(e), param=HEADER, code="invalid_value") from None


def _openai_error(_: Request, exc: OpenAIError) -> Response:
    return Response(
        error_body(exc.message, exc.type, exc.param, exc.code),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _validation_error(_: Request, exc: ValidationException) -> Response:
    # Litestar puts [{"key": field, "message": ...}] in `extra`; name the first field, as OpenAI does.
    extra = exc.extra if isinstance(exc.extra, list) else []
    param = next((e.get("key") for e in extra if isinstance(e, dict) and e.get("key")), None)
    detail = "; ".join(f"{e.get('key') or 'body'}: {e.get('message')}" for e in extra if isinstance(e, dict))
    return Response(
        error_body(detail or exc.detail, "invalid_request_error", param, "invalid_value"),
        status_code=400,
    )


def _http_error(_: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    return Response(
        error_body(
            exc.detail or HTTPStatus(status).phrase,
            _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
        ),
        status_code=status,
        headers=exc.headers,
    )


def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(error_body("Internal server error.", "server_error", None, "internal_error"), status_code=500)


exception_handlers: ExceptionHandlersMap = {
    OpenAIError: _openai_error,
    RateLimited: lambda request, exc: _openai_error(request, rate_limit_error(exc)),
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}
"""Pass to `Litestar(exception_handlers=...)`: every error leaves in the OpenAI envelope."""


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's reach (`gc.freeze`).

    A service's heap after start-up is mostly imported modules, classes and app wiring (about 90k
    objects for the gateway) that live until exit; a full (generation 2) collection walks them all,
    40-85 ms measured, with the service stalled. Frozen, they are never walked again, and full
    collections only see objects made since. Run once start-up is done.
    https://docs.python.org/3/library/gc.html#gc.freeze
    """
    gc.collect()
    gc.freeze()


def serve(app: Litestar, host: str, port: int, *, access_log: bool = True) -> None:
    """Run `app` under uvicorn until SIGINT/SIGTERM; `access_log` False drops the line per request.

    The heap is frozen (`freeze_heap`) once the app's start-up hooks have run.
    """
    import uvicorn

    from core.observability import uvicorn_log_config

    app.on_startup.append(freeze_heap)

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        log_config=uvicorn_log_config(),
        access_log=access_log,
        timeout_graceful_shutdown=5,
    )
