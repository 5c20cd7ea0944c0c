"""The query parameters are declared once: what the parser accepts is what the OpenAPI document says.

schemathesis fuzzes the server from the document, and clients generate code
from it, so a parameter the parser takes but the document omits (or the other
way round) is a bug either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api import Settings, create_app
from api.parsing import ALLOWED_QUERY_KEYS, parse_options
from api.query import PARAMETERS
from tsengine.errors import ParameterError

PREDICTIONS = "/predApi/v1.0/deployments/{deployment_id}/predictions"
# A second key some parameters need to be valid on their own (historical mode takes both ends).
_PARTNERS = {
    "predictionsStartDate": ("predictionsEndDate", "2030-01-01"),
    "predictionsEndDate": ("predictionsStartDate", "2000-01-01"),
}


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The query parameters the app's OpenAPI document gives the predictions route."""
    registry: Path = tmp_path_factory.mktemp("empty-registry")
    schema = create_app(Settings(registry=registry, monitoring_enabled=False)).openapi()
    operation = schema["paths"][PREDICTIONS]["post"]
    return {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}


def _accepts_key(key: str, value: str) -> bool:
    """Whether parse_options takes the key (whatever it then thinks of the value)."""
    try:
        parse_options([(key, value)])
    except ParameterError as exc:
        return exc.message != f"'{key}': {key} is not allowed key"
    return True


def test_every_accepted_key_is_documented_and_every_documented_key_is_accepted(
    documented: dict[str, dict[str, Any]],
) -> None:
    assert set(documented) == ALLOWED_QUERY_KEYS
    for key in documented:
        assert _accepts_key(key, "?"), key
    for key in ("wd", "forecast_point", "ForecastPoint", "deployment_id", ""):
        assert not _accepts_key(key, "1"), key


def _examples(schema: dict[str, Any]) -> list[str]:
    """Values the document says are valid, as they travel in a query string."""
    if "oneOf" in schema:
        return [value for option in schema["oneOf"] for value in _examples(option)]
    if schema.get("type") == "array":
        return _examples(schema["items"])
    if "enum" in schema:
        return [str(value) for value in schema["enum"]]
    return {
        "integer": ["0", "3"],
        "number": ["0.25", "-1e3"],
        "string": ["2018-01-09T00:00:00Z", "2018-01-09"] if schema.get("format") == "date-time" else ["a"],
    }[schema["type"]]


@pytest.mark.parametrize("parameter", PARAMETERS, ids=lambda p: p.name)
def test_documented_values_parse(documented: dict[str, dict[str, Any]], parameter: Any) -> None:
    for value in _examples(documented[parameter.name]["schema"]):
        items = [(parameter.name, value)]
        if parameter.name in _PARTNERS:
            items.append(_PARTNERS[parameter.name])
        parse_options(items)


@pytest.mark.parametrize("parameter", PARAMETERS, ids=lambda p: p.name)
def test_a_key_repeats_exactly_when_the_document_says_so(
    documented: dict[str, dict[str, Any]], parameter: Any
) -> None:
    entry = documented[parameter.name]
    repeatable = entry["schema"].get("type") == "array"
    assert repeatable == parameter.repeatable
    assert (entry.get("style"), entry.get("explode")) == (("form", True) if repeatable else (None, None))
    first, second = (_examples(entry["schema"]) * 2)[:2]
    if first == second:
        second = "other"
    items = [(parameter.name, first), (parameter.name, second)]
    if repeatable:
        assert parse_options(items).passthrough_columns == (first, second)
    else:
        with pytest.raises(ParameterError, match=f"{parameter.name} was given more than once"):
            parse_options(items)


def test_the_document_describes_every_parameter(documented: dict[str, dict[str, Any]]) -> None:
    for entry in documented.values():
        assert entry["description"].strip()
        assert entry["required"] is False
