"""What the ``/api/v2`` batch route modules share on the wire: JSON in and out, block size.

Split out so the job, upload and catalog handlers (:mod:`api.batch`,
:mod:`api.batch_uploads`, :mod:`api.batch_catalog`) answer and read bodies the
same way: orjson both ways, and a blank body read as an empty object.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from tsengine.errors import BadRequestError

__all__ = ["READ_BLOCK", "json_body", "json_response"]

# Bytes read at a time from a streamed upload or a growing result file.
READ_BLOCK = 1 << 20


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer, encoded by orjson."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def json_body(request: Request) -> Any:
    """The request's JSON body; a blank one is ``{}``.

    Raises:
        BadRequestError: the body is not JSON.
    """
    data = await request.body()
    if not data.strip():
        return {}
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        msg = f"The body is not valid JSON: {exc}"
        raise BadRequestError(msg) from exc
