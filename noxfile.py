"""Sessions: tests, lint, typecheck, properties (expensive hypothesis profile), bench.

Modelled on starlette/httpx's scripts: each session installs the project from
its own files into a fresh virtualenv, so a green session means a fresh machine
works too.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The README's test command: the quick suite (slow and bench deselected)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def properties(session: nox.Session) -> None:
    """Hypothesis properties with the expensive profile (1,000 examples each)."""
    session.install("-e", ".[test]")
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/properties",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "expensive"},
    )


@nox.session
def slow(session: nox.Session) -> None:
    """Long-running tests (marked slow)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Format check, then ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over tsengine/ and api/."""
    session.install("-e", ".[lint]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Accuracy and performance benchmarks; results land in benchmarks/results/."""
    session.install("-e", ".[test,bench]")
    session.run("python", "benchmarks/accuracy.py", "--windows", "3")
    session.run("python", "benchmarks/collection.py", "--windows", "3")
    session.run("python", "benchmarks/cold_start.py", "--windows", "3")
    session.run("python", "benchmarks/performance.py", *session.posargs)
    session.run("python", "benchmarks/calendar_cost.py")
    session.run("python", "benchmarks/batch.py")
    session.run("python", "benchmarks/batch_monitoring.py")
    session.run("python", "benchmarks/monitoring.py")
    session.run("python", "benchmarks/monitoring_store.py")
