"""One path from error to response: status, DataRobot's message, 401's challenge, 5xx's request id."""

from __future__ import annotations

import logging

import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import app as app_module
from api.errors import (
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    ErrorReply,
    describe_error,
    error_response,
    exception_response,
)
from tsengine.errors import (
    AuthenticationError,
    DeploymentStoreError,
    HumilityError,
    MissingColumnError,
    MonitoringStoreError,
)


@pytest.mark.parametrize(
    ("exc", "status"),
    [(MissingColumnError("column 'y' is missing"), 422), (HumilityError("too far out"), 480)],
)
def test_engine_errors_keep_status_and_message(exc: Exception, status: int) -> None:
    assert describe_error(exc, request_id="r1") == ErrorReply(status, str(exc))


def test_authentication_errors_carry_the_bearer_challenge() -> None:
    reply = describe_error(AuthenticationError("wrong key"))
    assert (reply.status, reply.message) == (401, "wrong key")
    assert dict(reply.headers) == {"WWW-Authenticate": 'Bearer realm="tsengine"'}


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (
            DeploymentStoreError("deployment 'x' (version v0001) is corrupt"),
            500,
            "is corrupt (request id r9)",
        ),
        (MonitoringStoreError("the store is down"), 503, "the store is down (request id r9)"),
        (ZeroDivisionError("division by zero at /srv/secret"), 500, f"{INTERNAL_ERROR} (request id r9)"),
    ],
)
def test_server_side_errors_are_logged_and_name_the_request(
    caplog: pytest.LogCaptureFixture, exc: Exception, status: int, message: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="tsengine.api"):
        reply = describe_error(exc, request_id="r9")
    assert reply.status == status
    assert reply.message.endswith(message)
    assert "secret" not in reply.message  # a bug's text stays in the log
    assert any("r9" in r.getMessage() and r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("status", "detail", "message"),
    [
        (404, "Not Found", NOT_FOUND),
        (405, "Method Not Allowed", METHOD_NOT_ALLOWED),
        (303, "Log in", "Log in"),
    ],
)
def test_http_errors_use_datarobots_words_and_keep_their_headers(
    status: int, detail: str, message: str
) -> None:
    reply = describe_error(StarletteHTTPException(status, detail, headers={"Location": "/ui/login"}))
    assert (reply.status, reply.message, dict(reply.headers)) == (status, message, {"Location": "/ui/login"})


def test_validation_errors_name_each_field() -> None:
    exc = RequestValidationError(
        [
            {"loc": ("query", "limit"), "msg": "Input should be a valid integer"},
            {"loc": ("body",), "msg": "Field required"},
        ]
    )
    reply = describe_error(exc)
    assert reply.status == 422
    assert reply.message == "query.limit: Input should be a valid integer; body: Field required"
    assert describe_error(RequestValidationError([])).message == "The request is invalid"


def test_the_response_is_exactly_application_json_with_message() -> None:
    response = exception_response(AuthenticationError("wrong key"), request_id="r1")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"] == 'Bearer realm="tsengine"'
    assert orjson.loads(response.body) == {"message": "wrong key"}


def test_error_response_is_still_importable_from_the_app() -> None:
    assert app_module.error_response is error_response
