"""Stored model kind → model class, for the code that rebuilds models from their kind.

An ensemble stores its members by kind and finds their classes when it is
fitted or loaded; a deployment finds its model's class the same way.  The
table lives in this small module rather than in :mod:`tsengine.models` so
that :mod:`tsengine.models.ensemble` (itself in the table) imports it at the
top: importing any ``tsengine.models`` module first runs the package, which
imports every model module and then fills the table with :func:`register`,
before anything can look a kind up.
"""

from __future__ import annotations

from tsengine.models.base import ForecastModel

__all__ = ["MODELS", "model_class", "register"]

MODELS: dict[str, type[ForecastModel]] = {}
"""Every model class by its stored ``kind`` (filled by :mod:`tsengine.models`)."""


def register(*classes: type[ForecastModel]) -> None:
    """Add model classes to :data:`MODELS` under their ``kind``."""
    for cls in classes:
        MODELS[cls.kind] = cls


def model_class(kind: str) -> type[ForecastModel]:
    """The class for a stored model kind.

    Raises:
        KeyError: unknown kind (the registry turns this into a store error).
    """
    return MODELS[kind]
