"""One exception tree for the whole engine.

Every error the core raises for something the caller sent wrong carries the HTTP
status it maps to and a message that names the culprit (column, series, timestamp,
row) and, where it can, says what would be accepted.  The HTTP layer maps the tree
with one handler; the CLI prints ``message`` and exits 2.  The statuses come from
:class:`http.HTTPStatus`, so the core never imports a web framework.

::

    TsEngineError (400)
    ├── ValidationError (422)            posted data is unusable
    │   ├── MissingColumnError           required columns absent
    │   ├── DatetimeParseError           a datetime value does not parse
    │   ├── DuplicateRowError            (series, timestamp) posted twice
    │   ├── OffGridError                 timestamp not on the time-step grid
    │   ├── InsufficientHistoryError     too little history inside the FDW
    │   ├── KnownInAdvanceError          forecast rows lack KIA values
    │   ├── MissingForecastRowsError     a nowcast lacks rows it must predict
    │   └── TrainingDataError            data cannot train a deployment
    ├── ParameterError (422)             a query parameter or option is wrong
    ├── BadRequestError (400)            malformed body, unknown passthrough column
    ├── AuthenticationError (401)
    ├── NotFoundError (404)              unknown deployment, job or route
    ├── ConflictError (409)              the resource is not in a state that allows it
    ├── PayloadTooLargeError (413)
    ├── RequestLineTooLongError (414)
    ├── TooManyRequestsError (429)       the batch job queue is full
    ├── HumilityError (480)              a humility rule's ReturnError action
    ├── DeploymentStoreError (500)       a stored deployment is corrupt or too new
    ├── MonitoringStoreError (503)       the monitoring database cannot be reached
    └── UnavailableError (503)           a component the deployment needs is not installed
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DatetimeParseError",
    "DeploymentStoreError",
    "DuplicateRowError",
    "HumilityError",
    "InsufficientHistoryError",
    "KnownInAdvanceError",
    "MissingColumnError",
    "MissingForecastRowsError",
    "MonitoringStoreError",
    "NotFoundError",
    "OffGridError",
    "ParameterError",
    "PayloadTooLargeError",
    "RequestLineTooLongError",
    "TooManyRequestsError",
    "TrainingDataError",
    "TsEngineError",
    "UnavailableError",
    "ValidationError",
    "short_list",
]

_repr = reprlib.Repr()
_repr.maxlist = 5
_repr.maxtuple = 5
_repr.maxstring = 60
_repr.maxother = 60


def short_list(items: Iterable[Any], *, limit: int = 5, quote: bool = True) -> str:
    """Render the first few items and a count of the rest.

    Messages name culprits, but a 100,000-row upload with every row wrong must
    not produce a 100,000-item message.  ``quote=False`` joins descriptions that
    are already formatted (``row 3: 'x'``) without quoting them again.
    """
    items = list(items)

    def show(x: Any) -> str:
        if isinstance(x, str):
            return repr(x) if quote else x
        return _repr.repr(x)

    shown = ", ".join(show(x) for x in items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


class TsEngineError(Exception):
    """Base of every error tsengine raises on purpose."""

    status: ClassVar[int] = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(TsEngineError):
    """The posted or training data cannot be used as it is."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class MissingColumnError(ValidationError):
    """Columns the deployment needs are absent."""


class DatetimeParseError(ValidationError):
    """A datetime value does not parse in any supported format."""


class DuplicateRowError(ValidationError):
    """The same (series, timestamp) appears more than once."""


class OffGridError(ValidationError):
    """A timestamp (or forecast point) does not lie on the time-step grid."""


class InsufficientHistoryError(ValidationError):
    """A series has too little history inside the feature derivation window."""


class KnownInAdvanceError(ValidationError):
    """Forecast rows lack values of known-in-advance features."""


class MissingForecastRowsError(ValidationError):
    """A nowcasting request lacks a row it must predict (nowcasts are never autoexpanded)."""


class TrainingDataError(ValidationError):
    """The data cannot train a deployment (too short, irregular, wrong types)."""


class ParameterError(TsEngineError):
    """A parameter (query string, CLI option, keyword argument) is invalid."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class BadRequestError(TsEngineError):
    """The request is malformed: undecodable body, unknown passthrough column."""

    status = HTTPStatus.BAD_REQUEST


class AuthenticationError(TsEngineError):
    """Missing or wrong credentials."""

    status = HTTPStatus.UNAUTHORIZED


class NotFoundError(TsEngineError):
    """An unknown deployment or route."""

    status = HTTPStatus.NOT_FOUND


class ConflictError(TsEngineError):
    """The resource is in a state that does not allow the call (an upload already begun)."""

    status = HTTPStatus.CONFLICT


class TooManyRequestsError(TsEngineError):
    """Too many batch jobs are waiting; retry later (backpressure, not an error in the data)."""

    status = HTTPStatus.TOO_MANY_REQUESTS


class PayloadTooLargeError(TsEngineError):
    """The body exceeds the configured limit (50 MB by default, as DataRobot)."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class RequestLineTooLongError(TsEngineError):
    """The request line exceeds 8,192 bytes (DataRobot's documented limit)."""

    status = HTTPStatus.REQUEST_URI_TOO_LONG


class HumilityError(TsEngineError):
    """A humility rule with the ReturnError action fired (DataRobot answers 480)."""

    status = 480


class DeploymentStoreError(TsEngineError):
    """A stored deployment is corrupt, partial or written by a newer tsengine.

    This is a server-side fault, not the caller's, hence 500.
    """

    status = HTTPStatus.INTERNAL_SERVER_ERROR


class MonitoringStoreError(TsEngineError):
    """The monitoring store cannot be reached; predictions go on, reports wait for it."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class UnavailableError(TsEngineError):
    """The deployment needs a component this installation lacks (e.g. the image featurizer).

    Not the caller's fault and not a bug: the server must be installed with the
    extra the message names, hence 503.
    """

    status = HTTPStatus.SERVICE_UNAVAILABLE
