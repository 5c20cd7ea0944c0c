"""What a results file records about the software it measured."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

__all__ = ["package_versions"]


def package_versions(names: Iterable[str]) -> str:
    """``name version`` of each installed package, ``name (not installed)`` otherwise."""
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)
