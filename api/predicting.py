"""One prediction path for every HTTP surface: parse, predict, log.

The predApi routes and the web pages both call :func:`predict_and_log`, so a
forecast drawn on the page is the forecast the API answers, logged for
monitoring the same way.
"""

from __future__ import annotations

import random
import time
from typing import Any

import polars as pl

from api.parsing import Payload, to_frame
from tsengine.deployment import Prediction
from tsengine.monitoring.log import SAMPLE_ROWS
from tsengine.monitoring.service import Monitor
from tsengine.options import PredictOptions

__all__ = ["predict_and_log"]

# Posted frames up to this many rows are queued for the log as they are; larger
# ones as the sample the log keeps of them (see _drift_inputs).
_WHOLE_INPUT_ROWS = 4_096


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
            _drift_inputs(frame),
            created=time.time(),
            request_id=request_id,
            source=source,
            version=version,
            association=association,
        )
    return frame, prediction


def _drift_inputs(frame: pl.DataFrame) -> pl.DataFrame:
    """The posted rows the prediction log needs: all of a small frame, a random sample of a large one.

    The log keeps :data:`~tsengine.monitoring.log.SAMPLE_ROWS` random input rows
    per request for feature drift, drawn when its writer thread gets to the
    event.  Queuing the whole frame kept every large request's decoded payload
    alive until then (the queue holds up to thousands of events); the same
    random sample is drawn here instead.  Small frames are passed as they are,
    so a one-series request pays nothing for it.
    """
    if frame.height <= max(_WHOLE_INPUT_ROWS, SAMPLE_ROWS):
        return frame
    return frame.sample(SAMPLE_ROWS, seed=random.randrange(2**31))
