"""The API's error shape: ``{"error": {"code", "message", ...}}`` with the right status.

Handlers raise ``ApiError`` for what is wrong with the HTTP request itself; use cases raise a
``hub.errors.Refusal``, which is answered here from its fields alone: the status from its kind,
then its code, message and extra fields.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hub.errors import Refusal

__all__ = ["REFUSAL_STATUS", "ApiError", "error_middleware", "error_response", "refusal_response"]

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """Raise from a handler; the middleware turns it into the JSON error body."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, dumps=lambda v: json.dumps(v, default=str))


REFUSAL_STATUS = {"not_found": 404, "forbidden": 403, "conflict": 409, "invalid": 422, "unavailable": 503}
"""A refusal's HTTP status by its kind; the one mapping from use-case refusals to HTTP."""


def refusal_response(refusal: Refusal) -> web.Response:
    status = REFUSAL_STATUS.get(refusal.kind, 409)
    return error_response(status, refusal.code, refusal.message, **refusal.fields)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    503: "unavailable",
}


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)
    except Refusal as exc:
        return refusal_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason)
    except web.RequestPayloadError:
        # raised while reading the body as sent; a retry of the same bytes cannot help
        return error_response(
            400, "invalid_body", "the request body could not be read: its Content-Encoding or chunks are broken"
        )
    except Exception:
        # the provider or client will retry; nothing was acknowledged
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; nothing was acknowledged")
