"""Tabular rendering at its old import path; the code lives in :mod:`tsengine.render.tabular`.

The explanation and humility pieces both kinds share are in
:mod:`tsengine.render.shared`; they are re-exported here as before.
"""

from __future__ import annotations

from tsengine.render.shared import EXPLANATIONS as EXPLANATIONS
from tsengine.render.shared import explanation_csv, explanations_json, humility_csv, json_body
from tsengine.render.tabular import csv_table, to_csv, to_json

__all__ = [
    "csv_table",
    "explanation_csv",
    "explanations_json",
    "humility_csv",
    "json_body",
    "to_csv",
    "to_json",
]
