"""OpenAPI descriptions of what the prediction routes read by hand.

The prediction routes parse their body and query string themselves (strictly,
with DataRobot's messages), so FastAPI cannot derive their schema from the
signature.  These fragments document the same contract for humans and for
schema-driven tools (schemathesis generates its requests from them); the query
parameters come from their declarations in :mod:`api.query`, the ones
``parse_options`` reads by, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.query import openapi_parameters

__all__ = ["ERROR_RESPONSES", "PREDICTION_OPENAPI", "ErrorMessage", "Pong"]


class ErrorMessage(BaseModel):
    """The body of every error response, as DataRobot's clients expect it."""

    message: str = Field(description="What is wrong, naming the culprit.")


class Pong(BaseModel):
    """The answer of the liveness routes."""

    response: str = Field(examples=["pong"])


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorMessage, "description": description}
    for status, description in {
        400: "Malformed body or parameter (message names it).",
        401: "Missing or wrong API key or datarobot-key.",
        404: "Unknown deployment.",
        413: "Body over the size limit.",
        414: "Request line over the length limit.",
        422: "Unusable data or parameters (message names the column, series or value).",
    }.items()
}


_RECORDS = {"type": "array", "items": {"type": "object", "additionalProperties": True}}

PREDICTION_OPENAPI: dict[str, Any] = {
    "parameters": openapi_parameters(),
    "requestBody": {
        "required": True,
        "description": (
            "The rows to predict: CSV with a header line, a JSON array of records, "
            '{"rows": [...]}, or a multipart upload of either (any part name). '
            "A charset parameter and Content-Encoding gzip/bz2 are honoured."
        ),
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "oneOf": [
                        _RECORDS,
                        {
                            "type": "object",
                            "properties": {"rows": _RECORDS},
                            "required": ["rows"],
                        },
                    ]
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    },
    "responses": {
        "200": {
            "description": "One row per prediction.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"data": {"type": "array", "items": {"type": "object"}}},
                        "required": ["data"],
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
}
