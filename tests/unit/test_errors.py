"""The exception tree: statuses, subclassing, and short culprit lists."""

from __future__ import annotations

import inspect
from http import HTTPStatus

import pytest

from tsengine import errors
from tsengine.errors import (
    AuthenticationError,
    BadRequestError,
    DatetimeParseError,
    DeploymentStoreError,
    DuplicateRowError,
    HumilityError,
    InsufficientHistoryError,
    KnownInAdvanceError,
    MissingColumnError,
    NotFoundError,
    OffGridError,
    ParameterError,
    PayloadTooLargeError,
    RequestLineTooLongError,
    TrainingDataError,
    TsEngineError,
    ValidationError,
    short_list,
)

VALIDATION_ERRORS = [
    MissingColumnError,
    DatetimeParseError,
    DuplicateRowError,
    OffGridError,
    InsufficientHistoryError,
    KnownInAdvanceError,
    TrainingDataError,
]


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (TsEngineError, 400),
        (ValidationError, 422),
        *[(cls, 422) for cls in VALIDATION_ERRORS],
        (ParameterError, 422),
        (BadRequestError, 400),
        (AuthenticationError, 401),
        (NotFoundError, 404),
        (PayloadTooLargeError, 413),
        (RequestLineTooLongError, 414),
        (HumilityError, 480),
        (DeploymentStoreError, 500),
    ],
)
def test_each_error_carries_its_http_status(cls: type[TsEngineError], status: int) -> None:
    assert cls.status == status
    assert int(cls("x").status) == status


@pytest.mark.parametrize("cls", VALIDATION_ERRORS)
def test_data_problems_are_validation_errors(cls: type[TsEngineError]) -> None:
    assert issubclass(cls, ValidationError)
    assert issubclass(cls, TsEngineError)


def test_every_exported_error_is_in_the_tree_under_the_base() -> None:
    classes = [
        obj
        for name in errors.__all__
        if inspect.isclass(obj := getattr(errors, name)) and issubclass(obj, Exception)
    ]
    assert len(classes) == len(errors.__all__) - 1  # all but short_list
    assert all(issubclass(cls, TsEngineError) for cls in classes)


def test_every_error_class_is_drawn_in_the_module_docstring() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        if name != "short_list":
            assert name in doc


def test_parameter_and_validation_errors_are_distinct_branches() -> None:
    assert not issubclass(ParameterError, ValidationError)
    assert not issubclass(BadRequestError, ValidationError)


def test_message_is_kept_as_attribute_and_str() -> None:
    exc = OffGridError("row 3: '2018-01-09 12:00' is off the grid")
    assert exc.message == "row 3: '2018-01-09 12:00' is off the grid"
    assert str(exc) == exc.message


def test_statuses_come_from_httpstatus() -> None:
    assert ValidationError.status is HTTPStatus.UNPROCESSABLE_ENTITY
    assert NotFoundError.status is HTTPStatus.NOT_FOUND


def test_short_list_shows_first_items_and_counts_the_rest() -> None:
    assert short_list(range(12)) == "0, 1, 2, 3, 4 and 7 more"
    assert short_list(range(12), limit=3) == "0, 1, 2 and 9 more"


def test_short_list_shows_everything_when_short() -> None:
    assert short_list([1, 2, 3]) == "1, 2, 3"
    assert short_list([]) == ""


def test_short_list_quotes_strings() -> None:
    assert short_list(["JFK-B6", "LGA-DL"]) == "'JFK-B6', 'LGA-DL'"


def test_short_list_abbreviates_long_non_string_items() -> None:
    text = short_list([list(range(100))])
    assert "..." in text
    assert len(text) < 60
