"""The prediction routes' query parameters, declared once.

Each parameter is one :class:`QueryParameter` (name, type, description,
whether it repeats, its allowed words).  :func:`parse_options` reads a query
string by these declarations and :func:`openapi_parameters` describes them in
the OpenAPI document, so a parameter cannot be accepted without being
documented, or documented without being accepted (schemathesis fuzzes the
server from that document).  The messages are DataRobot's where it has one
(``'wd': wd is not allowed key``) and name the parameter and value otherwise.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tsengine.errors import ParameterError, TsEngineError
from tsengine.options import PredictOptions
from tsengine.timestep import parse_timestamp

__all__ = [
    "ALLOWED_QUERY_KEYS",
    "PARAMETERS",
    "QueryParameter",
    "openapi_parameters",
    "parse_options",
]

Kind = Literal["datetime", "bool", "count", "number", "column", "word"]
"""How a value is read: an ISO datetime, a boolean spelling, a whole number
(with optional extra ``words``), a finite number, a column name, or one of ``words``."""

# (spelling, value) in the order the OpenAPI enum lists them.
_BOOLS = (("true", True), ("false", False), ("True", True), ("False", False), ("1", True), ("0", False))
_BOOL_VALUES = dict(_BOOLS)
# At most 18 digits: fits an int64, and stays below int()'s 4300-digit guard.
_INT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LOST_PLUS = re.compile(
    r"(?P<time>T?[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?) (?P<offset>[0-9]{2}:?[0-9]{2})$"
)


@dataclass(frozen=True, slots=True)
class QueryParameter:
    """One query parameter of the prediction routes.

    Attributes:
        name: the key, as DataRobot spells it.
        kind: how its value is read (see :data:`Kind`).
        description: one line for the OpenAPI document.
        repeatable: whether the key may be given several times (values kept in order).
        words: the allowed values of a ``word``; extra values a ``count`` accepts.
        ignore_case: whether ``words`` match whatever the letter case.
        rejection: the message for a value outside ``words`` (``{value!r}`` is
            filled in); by default one listing them.
    """

    name: str
    kind: Kind
    description: str
    repeatable: bool = False
    words: tuple[str, ...] = ()
    ignore_case: bool = False
    rejection: str = ""

    def schema(self) -> dict[str, Any]:
        """The JSON schema of one value."""
        count: dict[str, Any] = {"type": "integer", "minimum": 0}
        schemas: dict[Kind, dict[str, Any]] = {
            "datetime": {"type": "string", "format": "date-time"},
            "bool": {"type": "string", "enum": [spelling for spelling, _ in _BOOLS]},
            "count": count,
            "number": {"type": "number"},
            "column": {"type": "string", "minLength": 1},
            "word": {"type": "string", "enum": list(self.words)},
        }
        schema = schemas[self.kind]
        if self.kind == "count" and self.words:
            schema = {"oneOf": [count, {"type": "string", "enum": list(self.words)}]}
        return {"type": "array", "items": schema} if self.repeatable else schema

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI ``parameters`` entry (repeated keys as ``?k=a&k=b``)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "in": "query",
            "required": False,
            "schema": self.schema(),
            "description": self.description,
        }
        return {**entry, "style": "form", "explode": True} if self.repeatable else entry


PARAMETERS: tuple[QueryParameter, ...] = (
    QueryParameter("forecastPoint", "datetime", "Forecast mode as of this time."),
    QueryParameter("predictionsStartDate", "datetime", "Historical mode: first timestamp (inclusive)."),
    QueryParameter("predictionsEndDate", "datetime", "Historical mode: end of range (exclusive)."),
    QueryParameter("relaxKnownInAdvanceFeaturesCheck", "bool", "Impute missing KIA values."),
    QueryParameter(
        "passthroughColumns",
        "column",
        "Input columns copied into each output row (repeatable).",
        repeatable=True,
    ),
    QueryParameter(
        "passthroughColumnsSet",
        "word",
        "Pass every column.",
        words=("all",),
        rejection=(
            "passthroughColumnsSet must be 'all', got {value!r}; "
            "to pass some columns through use passthroughColumns=<name> (repeatable)"
        ),
    ),
    QueryParameter("maxExplanations", "count", "Explanations per row."),
    QueryParameter("maxCodes", "count", "Old name of maxExplanations."),
    QueryParameter("thresholdLow", "number", "Explain predictions below this."),
    QueryParameter("thresholdHigh", "number", "Explain predictions above this."),
    QueryParameter(
        "explanationAlgorithm",
        "word",
        "Explainer.",
        words=("shap",),
        ignore_case=True,
        rejection=(
            "explanationAlgorithm {value!r} is not supported; tsengine explains "
            "with 'shap' (per-feature contributions)"
        ),
    ),
    QueryParameter(
        "maxNgramExplanations",
        "count",
        "Accepted for compatibility; text features are not explained.",
        words=("all",),
    ),
    QueryParameter("excludeAdjustedPredictions", "bool", "Accepted for compatibility."),
)
"""Every parameter of the prediction routes, in the order the documentation lists them."""

_BY_NAME = {p.name: p for p in PARAMETERS}
ALLOWED_QUERY_KEYS = frozenset(_BY_NAME)


def openapi_parameters() -> list[dict[str, Any]]:
    """The OpenAPI ``parameters`` of the prediction routes, from :data:`PARAMETERS`."""
    return [parameter.openapi() for parameter in PARAMETERS]


def parse_options(items: Iterable[tuple[str, str]], *, default_max_explanations: int = 0) -> PredictOptions:
    """Turn query parameters into validated :class:`PredictOptions`.

    Keys are checked strictly (DataRobot answers 422 for an unknown key) and every
    value is typed here by its declaration, so the core receives only well-formed
    options.  ``maxExplanations``, ``maxNgramExplanations``,
    ``excludeAdjustedPredictions`` and ``explanationAlgorithm`` are validated even
    where the core has no use for them yet, so a client's typo is reported rather
    than ignored.

    Args:
        items: the query's (key, value) pairs in order, repeated keys included.
        default_max_explanations: ``maxExplanations`` when not given (DataRobot's
            deprecated ``predictionExplanations`` route defaults to 3).

    Raises:
        ParameterError: an unknown or repeated key, a badly typed value, or a
            combination the core rejects (see :meth:`PredictOptions.validated`).
    """
    single: dict[str, str] = {}
    repeated: dict[str, list[str]] = {p.name: [] for p in PARAMETERS if p.repeatable}
    for key, value in items:
        parameter = _BY_NAME.get(key)
        if parameter is None:
            msg = f"'{key}': {key} is not allowed key"
            raise ParameterError(msg)
        if parameter.repeatable:
            repeated[key].append(value)
        elif key in single and single[key] != value:
            msg = f"{key} was given more than once with different values; give it once"
            raise ParameterError(msg)
        else:
            single[key] = value
    query = _Values(single)

    # Checked in this order so that a query with several faults keeps its message.
    both = "maxCodes" in single and "maxExplanations" in single
    if both and query.count("maxCodes") != query.count("maxExplanations"):
        msg = "maxCodes is the old name of maxExplanations; give one of them, not both"
        raise ParameterError(msg)
    max_explanations = query.count("maxExplanations")
    if max_explanations is None:
        max_explanations = query.count("maxCodes")
    # Parameters the core does not take (yet): read so that typos are reported.
    query.bool("excludeAdjustedPredictions")
    query.count_or_word("maxNgramExplanations")
    query.word("explanationAlgorithm")
    passthrough_all = query.word("passthroughColumnsSet") == "all"

    options = PredictOptions(
        forecast_point=query.datetime("forecastPoint"),
        start=query.datetime("predictionsStartDate"),
        end=query.datetime("predictionsEndDate"),
        relax_known_in_advance=query.bool("relaxKnownInAdvanceFeaturesCheck") or False,
        passthrough_columns=tuple(repeated["passthroughColumns"]),
        passthrough_all=passthrough_all,
        max_explanations=(default_max_explanations if max_explanations is None else max_explanations),
        threshold_low=query.number("thresholdLow"),
        threshold_high=query.number("thresholdHigh"),
    )
    return options.validated()


class _Values:
    """One query's single-valued parameters, each read as its declaration says."""

    def __init__(self, single: Mapping[str, str]) -> None:
        self.single = single

    def _raw(self, name: str, kind: Kind) -> str | None:
        if _BY_NAME[name].kind != kind:  # a parameter read against its declaration: a bug here
            msg = f"{name} is declared as a {_BY_NAME[name].kind}, not a {kind}"
            raise TypeError(msg)
        return self.single.get(name)

    def bool(self, name: str) -> bool | None:
        value = self._raw(name, "bool")
        if value is None:
            return None
        if value in _BOOL_VALUES:
            return _BOOL_VALUES[value]
        msg = f"{name} must be true or false (also True/False/1/0), got {value!r}"
        raise ParameterError(msg)

    def count(self, name: str) -> int | None:
        """A whole number; its range is the core's to check (:meth:`PredictOptions.validated`)."""
        value = self.count_or_word(name)
        if isinstance(value, str):
            msg = f"{name} declares words; read it with count_or_word"
            raise TypeError(msg)
        return value

    def count_or_word(self, name: str) -> int | str | None:
        """A whole number, or one of its declared words (then 0 or more: nothing checks it later)."""
        value = self._raw(name, "count")
        words = _BY_NAME[name].words
        if value is None or value in words:
            return value
        if not _INT.fullmatch(value.strip()):
            msg = f"{name} must be a whole number, got {value!r}"
            raise ParameterError(msg)
        number = int(value)
        if words and number < 0:
            choices = " or ".join(repr(word) for word in words)
            msg = f"{name} must be 0 or more, or {choices}, got {value!r}"
            raise ParameterError(msg)
        return number

    def number(self, name: str) -> float | None:
        value = self._raw(name, "number")
        if value is None:
            return None
        if not _FLOAT.fullmatch(value.strip()) or not math.isfinite(number := float(value)):
            msg = f"{name} must be a finite number, got {value!r}"
            raise ParameterError(msg)
        return number

    def word(self, name: str) -> str | None:
        """One of the declared words (as declared, whatever case the client used)."""
        value = self._raw(name, "word")
        if value is None:
            return None
        parameter = _BY_NAME[name]
        for word in parameter.words:
            if value == word or (parameter.ignore_case and value.lower() == word.lower()):
                return word
        template = parameter.rejection or "{name} must be one of {words}, got {value!r}"
        raise ParameterError(template.format(name=name, words=", ".join(parameter.words), value=value))

    def datetime(self, name: str) -> dt.datetime | None:
        value = self._raw(name, "datetime")
        if value is None:
            return None
        # An unencoded "+" in "...T00:00:00+02:00" arrives as a space: restore the offset.
        value = _LOST_PLUS.sub(r"\g<time>+\g<offset>", value)
        try:
            return parse_timestamp(value, name=name)
        except TsEngineError:
            raise
        except (ValueError, OverflowError) as exc:
            # e.g. 9999-12-31T23:59:59-01:00 overflows when converted to UTC.
            msg = f"{name}: {value!r} is not a usable datetime ({exc})"
            raise ParameterError(msg) from exc
