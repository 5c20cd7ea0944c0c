"""The core runs without the server extra: no web framework is imported by ``tsengine``.

A fresh interpreter refuses to import the server's packages (as on a machine
that installed ``tsengine`` without ``[server]``), then imports every core
module and runs a real train and predict; ``tsengine serve`` there says which
extra to install instead of a traceback.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic_settings",  # (pydantic itself comes with typer, a core dependency)
    "jinja2",
    "multipart",
    "python_multipart",
    "prometheus_client",
)
BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {SERVER_PACKAGES!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_core_imports_trains_and_predicts_without_the_server_packages() -> None:
    done = _run(
        """
        import pkgutil, importlib, polars as pl
        import tsengine
        for module in pkgutil.walk_packages(tsengine.__path__, "tsengine."):
            importlib.import_module(module.name)
        frame = pl.read_csv("fixtures/flights_daily.csv").filter(pl.col("series") == "EWR-UA")
        deployment = tsengine.train(
            frame, target="delayed", datetime_column="date", models=["seasonal_naive"], backtests=1
        )
        print(deployment.predict(frame.drop("scheduled", "holiday")).height)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print("leaked", leaked)
        """.replace("BLOCKED", repr(set(SERVER_PACKAGES)))
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-2] == "28"
    assert lines[-1] == "leaked []"


def test_serve_without_the_server_extra_says_what_to_install() -> None:
    done = _run(
        """
        import sys
        from tsengine.cli import main
        sys.argv = ["tsengine", "serve", "--registry", "/nonexistent-registry"]
        main()
        """
    )
    assert done.returncode == 2
    assert "pip install 'tsengine[server]'" in done.stderr
    assert "Traceback" not in done.stderr
