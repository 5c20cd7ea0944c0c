"""One path from an error to DataRobot's HTTP error answer.

DataRobot's clients read ``message`` from every error, so every surface (the
predApi routes, the batch and monitoring routes, the web pages) must agree on
what an error becomes: its status, its ``{"message": ...}``, ``WWW-Authenticate``
on a 401, and on a 5xx a logged traceback plus the request id in the message,
so that a user's report can be matched with the server's log.  That decision
is :func:`describe_error`; :func:`exception_response` renders it as JSON, and an
HTML page can render the same :class:`ErrorReply` its own way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tsengine.errors import TsEngineError

__all__ = [
    "INTERNAL_ERROR",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "ErrorReply",
    "describe_error",
    "error_response",
    "exception_response",
]

logger = logging.getLogger("tsengine.api")

NOT_FOUND = (
    "The requested URL was not found on the server. "
    "If you entered the URL manually please check your spelling and try again."
)
"""DataRobot's (Flask's) message for an unknown route."""
METHOD_NOT_ALLOWED = "The method is not allowed for the requested URL."
INTERNAL_ERROR = "Internal server error"
"""The whole message of an unexpected exception: its text may hold paths or data."""
_AUTHENTICATE = MappingProxyType({"WWW-Authenticate": 'Bearer realm="tsengine"'})
_ROUTING = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """What an error tells the client: status, message and extra headers."""

    status: int
    message: str
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def describe_error(exc: BaseException, *, request_id: str | None = None) -> ErrorReply:
    """The status, message and headers any error becomes, logging server-side faults.

    * a :class:`~tsengine.errors.TsEngineError`: its status and message, with
      ``WWW-Authenticate`` on a 401;
    * Starlette's and FastAPI's HTTP errors: their status, with DataRobot's
      wording for an unknown route (404) or method (405), and their headers;
    * FastAPI's request validation errors: 422 naming each bad field;
    * anything else is a bug: 500 with no detail (its text may hold paths).

    A 5xx is logged with its traceback and, given ``request_id``, names it.
    """
    if isinstance(exc, TsEngineError):
        status, message = int(exc.status), exc.message
        headers: Mapping[str, str] = _AUTHENTICATE if status == 401 else {}
    elif isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        message = _ROUTING.get(status, str(exc.detail))
        headers = dict(exc.headers or {})
    elif isinstance(exc, RequestValidationError):
        status, headers = 422, {}
        problems = [
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
            for error in exc.errors()
        ]
        message = "; ".join(problems) or "The request is invalid"
    else:
        status, message, headers = 500, INTERNAL_ERROR, {}
    if status >= 500:
        logger.error("Server-side error serving request %s", request_id or "(no id)", exc_info=exc)
        if request_id:
            message = f"{message} (request id {request_id})"
    return ErrorReply(status, message, MappingProxyType(dict(headers)))


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """DataRobot's error shape: ``{"message": ...}`` as exactly ``application/json``.

    The ``datarobot`` client compares the Content-Type to ``application/json``
    verbatim before reading ``message``, so no charset parameter is added.
    """
    return Response(
        orjson.dumps({"message": message}),
        status_code=status,
        media_type="application/json",
        headers=dict(headers) if headers else None,
    )


def exception_response(exc: BaseException, *, request_id: str | None = None) -> Response:
    """The JSON error response for any error (see :func:`describe_error`)."""
    reply = describe_error(exc, request_id=request_id)
    return error_response(reply.status, reply.message, reply.headers)
