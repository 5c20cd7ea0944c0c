"""The public surface: a pinned ``__all__`` and a core free of web frameworks."""

from __future__ import annotations

import subprocess
import sys

import tsengine


def test_all_is_pinned() -> None:
    assert tsengine.__all__ == [
        "Deployment",
        "PredictOptions",
        "Prediction",
        "Registry",
        "TimeSeriesSpec",
        "TimeStep",
        "TsEngineError",
        "__version__",
        "train",
    ]


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert tsengine.__all__ == sorted(tsengine.__all__)
    for name in tsengine.__all__:
        assert hasattr(tsengine, name)


def test_version_is_a_string() -> None:
    assert isinstance(tsengine.__version__, str)
    assert tsengine.__version__.count(".") >= 2


def test_import_tsengine_leaves_web_frameworks_unimported() -> None:
    code = (
        "import sys, tsengine, tsengine.cli, tsengine.render, tsengine.registry, tsengine.train\n"
        "bad = sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'pydantic') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
