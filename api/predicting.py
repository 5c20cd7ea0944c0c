"""One prediction path for every HTTP surface: parse, predict, log.

The predApi routes and the web pages both call :func:`predict_and_log`, so a
forecast drawn on the page is the forecast the API answers, logged for
monitoring the same way.
"""

from __future__ import annotations

import time
from typing import Any

import polars as pl

from api.parsing import Payload, to_frame
from tsengine.deployment import Prediction
from tsengine.monitoring.service import Monitor
from tsengine.options import PredictOptions

__all__ = ["predict_and_log"]


def predict_and_log(
    deployment: Any,
    payload: Payload,
    options: PredictOptions,
    monitor: Monitor | None = None,
    *,
    request_id: str = "",
    version: str | None = None,
    source: str = "realtime",
) -> tuple[pl.DataFrame, Prediction]:
    """The posted frame and the deployment's prediction, queued for the prediction log.

    Raises:
        TsEngineError: the core's errors, naming the offending row, column or parameter.
    """
    frame = to_frame(payload, schema_overrides=deployment.input_schema_overrides())
    association = monitor.association_column(deployment, frame) if monitor is not None else None
    prediction = deployment.predict_result(frame, options)
    if monitor is not None:
        monitor.record_prediction(
            deployment,
            prediction.frame,
            frame,
            created=time.time(),
            request_id=request_id,
            source=source,
            version=version,
            association=association,
        )
    return frame, prediction
