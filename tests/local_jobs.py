"""A batch prediction job on local files, run to completion in the test's process.

The end-to-end tests of forecasting features (calendars, nowcasting, business
days) check that a batch job gives what one in-process predict gives; this is
the job they run (pytest puts ``tests/`` on the path for the root conftest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tsengine
from tsengine.batch import BatchEngine, parse_job_spec


def run_file_job(
    registry: Path, deployment: str, intake: Path, output: Path, **settings: Any
) -> dict[str, Any]:
    """Score ``intake`` into ``output`` with a forecast-mode job; the finished job's status."""
    spec = parse_job_spec(
        {
            "deploymentId": deployment,
            "intakeSettings": {"type": "filesystem", "path": str(intake)},
            "outputSettings": {"type": "filesystem", "path": str(output)},
            "timeseriesSettings": {"type": "forecast"},
            **settings,
        },
        allow_filesystem=True,
    )
    engine = BatchEngine(tsengine.Registry(registry))
    done: dict[str, Any] = engine.run_now(engine.create_job(spec, source="test")["id"])
    return done
