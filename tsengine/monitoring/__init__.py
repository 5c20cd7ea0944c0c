"""Deployment monitoring: prediction log, actuals, accuracy and drift."""

from __future__ import annotations
