"""Batch prediction jobs: DataRobot's Batch Prediction API over files, S3 and databases.

``spec`` parses a job specification (into ``spec_types``' values), ``store``
keeps jobs and catalog records, ``adapters`` (with ``s3`` and ``sql``, which
has ``sql_connection`` and ``sql_intake``) read intakes and write outputs,
``chunks`` cuts the input without splitting a series, ``score`` scores a chunk,
``engine`` runs the queue (its parts: ``engine_base``, ``uploads``, ``runner``
and ``housekeeping``), ``definitions`` stores and schedules job specs and
``catalog`` registers datasets.  Nothing here imports a web framework.
"""

from __future__ import annotations

from tsengine.batch.engine import BatchEngine, public_job
from tsengine.batch.spec import JobSpec, parse_job_spec
from tsengine.batch.store import BatchStore

__all__ = ["BatchEngine", "BatchStore", "JobSpec", "parse_job_spec", "public_job"]
