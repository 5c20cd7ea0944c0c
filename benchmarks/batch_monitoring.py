"""What the prediction log costs a batch job: the same job with monitoring off and on.

Run ``python benchmarks/batch.py`` first (it builds the data and the deployment in
``benchmarks/.cache/``), then ``python benchmarks/batch_monitoring.py``.  A server
runs batch jobs with monitoring on unless the job sets ``skipDriftTracking``; the
1 GB figures in ``results/batch.md`` are the engine alone.  Results:
``benchmarks/results/batch_monitoring.md``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import tsengine
from tsengine.batch import BatchEngine, parse_job_spec
from tsengine.monitoring.service import Monitor
from tsengine.monitoring.store import MonitoringStore

CACHE = Path(__file__).resolve().parent / ".cache"
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="flights-30000x100.csv", help="a CSV in benchmarks/.cache/")
    parser.add_argument(
        "--registry", default="registry-t200-r100-fdw28-fw1-28", help="a registry in benchmarks/.cache/"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "batch_monitoring.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tsengine-batch-monitoring-"))
    shutil.copytree(CACHE / args.registry, work / "registry")
    registry = tsengine.Registry(work / "registry")
    deployment_id = registry.list()[0]
    data = CACHE / args.data
    rows = []
    for monitored in (False, True):
        monitor = Monitor(MonitoringStore.in_folder(work / f"monitoring-{monitored}")) if monitored else None
        engine = BatchEngine(registry, folder=work / f"batch-{monitored}", monitor=monitor)
        spec = parse_job_spec(
            {
                "deploymentId": deployment_id,
                "numConcurrent": 2,
                "intakeSettings": {"type": "filesystem", "path": str(data)},
                "outputSettings": {"type": "filesystem", "path": str(work / f"out-{monitored}.csv")},
                "timeseriesSettings": {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True},
            },
            allow_filesystem=True,
        )
        job = engine.create_job(spec)
        engine._deployment(deployment_id, job["jobSpec"]["deploymentVersion"])  # loaded before the clock
        t0 = time.perf_counter()
        done = engine.run_now(job["id"])
        job_seconds = time.perf_counter() - t0
        logged = None
        if monitor is not None:
            monitor.log.flush(600)
            logged = time.perf_counter() - t0
            monitor.close()
        rows.append((monitored, done["scoredRows"], job_seconds, logged))
    lines = [
        "# What the prediction log costs a batch job",
        "",
        f"Produced by `python benchmarks/batch_monitoring.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"`{args.data}` (see `results/batch.md`), file to file, `numConcurrent` 2, 2 cores.",
        "",
        "| prediction log | forecast rows | job done (s) | forecast rows/s | log complete (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for monitored, scored, seconds, logged in rows:
        lines.append(
            f"| {'on' if monitored else 'off'} | {scored:,} | {seconds:.1f} | {scored / seconds:,.0f} | "
            f"{'' if logged is None else f'{logged:.1f}'} |"
        )
    lines.append("")
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
