"""The documentation site under docs/ builds with ``mkdocs build --strict`` and stays self-contained.

The site is the users' documentation: it must build without warnings (broken links
and anchors, docstrings mkdocstrings cannot render), carry the API reference
generated from the docstrings, work offline, and never point at files outside the
repository or at internal tracker numbers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = ("index.html", "timeseries/index.html", "http/index.html", "batch/index.html")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def markdown_files() -> list[Path]:
    files = sorted(DOCS.rglob("*.md"))
    assert files, "no markdown files under docs/"
    return files


def test_every_page_is_built(site: Path) -> None:
    for page in PAGES:
        assert (site / page).is_file(), page


def test_reference_is_generated_from_docstrings(site: Path) -> None:
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    for name in ("predict_result", "PredictOptions", "TsEngineError", "parse_job_spec", "Registry"):
        assert name in reference, name
    # a docstring's text, not just a name written in docs/reference.md
    assert "with warnings, from one options object" in reference
    assert 'id="tsengine.deployment.Deployment.predict_result"' in reference
    # Sphinx roles in docstrings are rendered as code by docs/_hooks/sphinx_roles.py
    assert ":class:" not in reference
    assert ":meth:" not in reference


def test_site_works_offline(site: Path) -> None:
    """No page loads a script or stylesheet from the network."""
    remote = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.IGNORECASE)
    for page in site.rglob("*.html"):
        match = remote.search(page.read_text(encoding="utf-8"))
        assert match is None, f"{page.relative_to(site)} loads {match.group(0) if match else ''}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(DOCS)))
def test_no_links_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert "/work/" not in text
    assert not re.search(r"\]\(\.\./", text), "a link leaves docs/"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(DOCS)))
def test_no_internal_issue_numbers(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = re.search(r"\bissues?\s*#?\d+", text, re.IGNORECASE)
    assert found is None, f"{path.name} mentions {found.group(0) if found else ''}"
