"""kill -9 while the prediction log writes: the store stays whole (committed batches only)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_kill_during_writes_leaves_a_sound_store(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import polars as pl
        from http_flights import LAST_HISTORY, flights, train_flights
        from tsengine.monitoring.log import MonitoringLog, PredictionEvent
        from tsengine.monitoring.store import MonitoringStore
        from tsengine.options import PredictOptions
        frame = train_flights().predict_result(
            flights().filter(pl.col("date") <= LAST_HISTORY), PredictOptions(relax_known_in_advance=True)
        ).frame
        log = MonitoringLog(MonitoringStore.in_folder(__import__("pathlib").Path({str(tmp_path)!r})))
        print("ready", flush=True)
        while True:
            log.record(PredictionEvent("flights", "timeseries", frame, time.time()))
            time.sleep(0.0005)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        database = tmp_path / "monitoring.sqlite3"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kill once writes are under way
            if (
                database.exists()
                and sqlite3.connect(database).execute("SELECT count(*) FROM mon_predictions").fetchone()[0]
            ):
                break
            time.sleep(0.05)
        time.sleep(0.6)  # a few more writer rounds
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    connection = sqlite3.connect(database)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = connection.execute("SELECT count(*) FROM mon_predictions").fetchone()[0]
    assert rows > 0
    assert rows % 21 == 0  # whole events only: every committed batch holds whole forecasts
