"""``/docs`` and ``/redoc`` work offline, and the OpenAPI document lists every route."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.anyio
_EXTERNAL = re.compile(r"""(?:src|href)=["']https?://""")


async def test_docs_pages_load_only_vendored_assets(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        assert not _EXTERNAL.search(response.text), f"{page} loads something from the internet"
        for asset in re.findall(r"""(?:src|href)=["'](/static/[^"']+)""", response.text):
            served = await client.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 100


async def test_openapi_lists_batch_monitoring_and_prediction_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for route in (
        "/predApi/v1.0/deployments/{deployment_id}/predictions",
        "/api/v2/batchPredictions/",
        "/api/v2/batchPredictions/{job_id}/csvUpload/",
        "/api/v2/batchPredictionJobDefinitions/",
        "/api/v2/deployments/{deployment_id}/actuals/fromJSON/",
        "/api/v2/deployments/{deployment_id}/accuracy/",
        "/api/v2/deployments/{deployment_id}/featureDrift/",
        "/metrics",
    ):
        assert route in paths, route
