"""Baseline: the same prediction served through FastAPI's default JSON path.

The route parses the CSV body and predicts exactly as tsengine's server does,
builds the same rows (DataRobot's JSON row shape, from the same polars
expressions), and then does what a FastAPI app does by default: return
``{"data": frame.to_dicts()}`` and let FastAPI run ``jsonable_encoder`` and the
stdlib ``json`` encoder (``JSONResponse``).  Against tsengine's server this
isolates the cost of the response path (orjson renderer vs the default).

Run: ``python benchmarks/_baseline_app.py --registry DIR --deployment ID --port N``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import polars as pl
import uvicorn  # the baseline is a FastAPI app by definition
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from tsengine.options import PredictOptions
from tsengine.registry import Registry
from tsengine.render import timeseries as render


def create_app(registry: Path, deployment_id: str) -> FastAPI:
    deployment = Registry(registry).load(deployment_id)
    app = FastAPI()

    def rows(body: bytes) -> list[dict[str, Any]]:
        frame = pl.read_csv(body, schema_overrides=deployment.input_schema_overrides())
        options = PredictOptions()
        result = deployment.predict_result(frame, options)
        # The same row shape tsengine renders, minus the final serialisation.
        shaped = result.frame.select(render._ts_json_columns(deployment, result, []))
        return shaped.to_dicts()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"response": "pong"}

    @app.post("/predApi/v1.0/deployments/{deployment_id}/predictions")
    async def predict(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"data": await run_in_threadpool(rows, body)}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", type=Path, required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_app(args.registry, args.deployment)
    uvicorn.run(app, host="127.0.0.1", port=args.port, http="h11", log_level="info")


if __name__ == "__main__":
    main()
