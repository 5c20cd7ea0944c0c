"""Job definitions: stored job specs, run now or on a cron-style schedule.

DataRobot's schedule is five lists (``minute``, ``hour``, ``dayOfMonth``,
``month``, ``dayOfWeek``); ``["*"]`` means every value, Sunday is 0, month and
day names (``"jan"``, ``"sun"``) are accepted, day of month and day of week are
additive, and impossible dates (30 February) are skipped.  Those are exactly
cron's rules, so each schedule becomes one cron expression evaluated by
``croniter`` (a kept library, not a hand-written calendar), in UTC.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from croniter import croniter

from tsengine.batch.spec import JobSpec, parse_job_spec
from tsengine.batch.store import BatchStore, new_id, utc_now
from tsengine.errors import NotFoundError, ParameterError, TsEngineError

__all__ = [
    "SCHEDULE_FIELDS",
    "ScheduledRuns",
    "build_definition",
    "cron_expression",
    "next_run",
    "update_definition",
]

SCHEDULE_FIELDS = ("minute", "hour", "dayOfMonth", "month", "dayOfWeek")
_READ_BY_ITSELF = ("s3", "jdbc", "dataset")
logger = logging.getLogger("tsengine.batch")
_USER = {"username": "tsengine", "userId": "tsengine", "fullName": "tsengine"}


def cron_expression(schedule: Mapping[str, Any]) -> str:
    """The cron expression of a DataRobot schedule.

    Raises:
        ParameterError: a missing field or a value cron does not accept, naming it.
    """
    if not isinstance(schedule, Mapping):
        msg = "schedule: must be an object with minute, hour, dayOfMonth, month and dayOfWeek"
        raise ParameterError(msg)
    unknown = [k for k in schedule if k not in SCHEDULE_FIELDS]
    if unknown:
        msg = f"schedule.{unknown[0]}: not a schedule field; use {', '.join(SCHEDULE_FIELDS)}"
        raise ParameterError(msg)
    parts = []
    for name in SCHEDULE_FIELDS:
        values = schedule.get(name)
        if not isinstance(values, list) or not values:
            msg = f'schedule.{name}: required, a non-empty list such as ["*"] or [0, 30]'
            raise ParameterError(msg)
        if any(isinstance(v, bool) or not isinstance(v, int | str) for v in values):
            msg = f"schedule.{name}: values must be numbers or names, got {values!r}"
            raise ParameterError(msg)
        parts.append("*" if "*" in values else ",".join(str(v).lower() for v in values))
    expression = " ".join(parts)
    if not croniter.is_valid(expression):
        msg = f"schedule: {schedule!r} is not a valid schedule (as cron: {expression!r})"
        raise ParameterError(msg)
    return expression


def next_run(schedule: Mapping[str, Any] | None, after: dt.datetime) -> float | None:
    """The next scheduled time after ``after`` (UTC), as a POSIX timestamp."""
    if not schedule:
        return None
    base = after.astimezone(dt.UTC) if after.tzinfo else after.replace(tzinfo=dt.UTC)
    upcoming: dt.datetime = croniter(cron_expression(schedule), base).get_next(dt.datetime)
    return upcoming.timestamp()


def _job_spec(body: Mapping[str, Any]) -> dict[str, Any]:
    spec_body = {k: v for k, v in body.items() if k not in {"name", "enabled", "schedule"}}
    spec = parse_job_spec(spec_body)
    if spec.intake.type not in _READ_BY_ITSELF:
        msg = (
            f"intakeSettings.type: a job definition runs without a client to upload data, so its "
            f"intake must be one of {', '.join(_READ_BY_ITSELF)}, not {spec.intake.type!r}"
        )
        raise ParameterError(msg)
    return spec.to_api()


def build_definition(body: Mapping[str, Any]) -> dict[str, Any]:
    """A new definition from ``POST batchPredictionJobDefinitions/`` (jobSpec keys at top level).

    Raises:
        ParameterError: a malformed job spec, schedule or flag, naming the field.
    """
    if not isinstance(body, Mapping):
        msg = "the job definition must be a JSON object"
        raise ParameterError(msg)
    enabled = body.get("enabled", False)
    if not isinstance(enabled, bool):
        msg = f"enabled: must be true or false, got {enabled!r}"
        raise ParameterError(msg)
    schedule = body.get("schedule")
    if schedule is not None:
        cron_expression(schedule)
    if enabled and schedule is None:
        msg = "schedule: an enabled job definition needs a schedule (or set enabled to false and run it on demand)"
        raise ParameterError(msg)
    job = _job_spec(body)
    now = utc_now()
    name = body.get("name") or f"Batch prediction job definition {new_id()[:8]}"
    if not isinstance(name, str):
        msg = f"name: must be a string, got {name!r}"
        raise ParameterError(msg)
    doc: dict[str, Any] = {
        "id": new_id(),
        "name": name,
        "enabled": enabled,
        "batchPredictionJob": job,
        "created": now,
        "updated": now,
        "createdBy": _USER,
        "updatedBy": _USER,
        "lastScheduledRunTime": None,
        "lastSuccessfulRunTime": None,
        "lastFailedRunTime": None,
        "lastStartedJobStatus": None,
        "lastStartedJobTime": None,
    }
    if schedule is not None:
        doc["schedule"] = dict(schedule)
    return doc


def update_definition(doc: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """A definition after ``PATCH``: name, enabled, schedule and any jobSpec keys.

    Raises:
        ParameterError: as :func:`build_definition`.
    """
    if not isinstance(body, Mapping):
        msg = "the update must be a JSON object"
        raise ParameterError(msg)
    merged = {**doc["batchPredictionJob"], "name": doc["name"], "enabled": doc["enabled"]}
    if "schedule" in doc:
        merged["schedule"] = doc["schedule"]
    for key, value in body.items():
        if key == "schedule" and value is None:
            merged.pop("schedule", None)
        else:
            merged[key] = value
    fresh = build_definition(merged)
    keep = ("id", "created", "createdBy", *(k for k in doc if k.startswith("last")))
    fresh.update({k: doc[k] for k in keep if k in doc})
    if "schedule" not in merged:
        fresh.pop("schedule", None)
    return fresh


class ScheduledRuns:
    """The batch engine's part that runs stored definitions, now or when their schedule is due.

    A mixin of :class:`~tsengine.batch.engine.BatchEngine`, kept here beside the
    schedule rules; it uses the engine's store and ``create_job``.  Several
    processes may share one store: a due run starts once, in the process that
    moves its ``next_run`` first.
    """

    store: BatchStore

    if TYPE_CHECKING:

        def create_job(
            self, spec: JobSpec, *, source: str = "api", definition: dict[str, Any] | None = None
        ) -> dict[str, Any]:
            """Provided by the engine."""
            ...

    def _after_finish(self, doc: dict[str, Any]) -> None:
        definition = doc.get("batchPredictionJobDefinition")
        if not definition:
            return
        try:
            stored = self.store.definition(definition["id"])
        except NotFoundError:
            return
        key = "lastSuccessfulRunTime" if doc["status"] == "COMPLETED" else "lastFailedRunTime"
        stored[key] = utc_now()
        stored["lastStartedJobStatus"] = doc["status"]
        self.store.put_definition(stored, next_run=None, keep_schedule=True)

    # ------------------------------------------------------------- definitions

    @staticmethod
    def _next_run(doc: dict[str, Any], after: float | None = None) -> float | None:
        if not doc.get("enabled") or not doc.get("schedule"):
            return None
        return next_run(doc["schedule"], dt.datetime.fromtimestamp(after or time.time(), dt.UTC))

    def save_definition(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store a definition (new or updated) and schedule its next run."""
        self.store.put_definition(doc, next_run=self._next_run(doc))
        return doc

    def run_definition(self, definition_id: str, *, source: str = "manual") -> dict[str, Any]:
        """Start a job from a stored definition now."""
        doc = self.store.definition(definition_id)
        spec = parse_job_spec(
            {k: v for k, v in doc["batchPredictionJob"].items() if k != "deploymentVersion"}
        )
        job = self.create_job(spec, source=source, definition=doc)
        doc["lastStartedJobTime"] = utc_now()
        doc["lastStartedJobStatus"] = job["status"]
        if source == "scheduled":
            doc["lastScheduledRunTime"] = utc_now()
        self.store.put_definition(doc, next_run=None, keep_schedule=True)
        return job

    def run_due_definitions(self, now: float | None = None) -> list[str]:
        """Start every scheduled definition that is due; returns the new job ids."""
        now = time.time() if now is None else now
        started = []
        for doc in self.store.due_definitions(now):
            expected = self.store.scheduled_run(doc["id"])
            # the next run after this one (a run missed while the server was down runs once)
            following = self._next_run(doc, max(now, expected or now))
            if expected is None or not self.store.advance_schedule(
                doc["id"], expected=expected, next_run=following
            ):
                continue  # another process took this run
            try:
                started.append(self.run_definition(doc["id"], source="scheduled")["id"])
            except TsEngineError as exc:
                logger.warning("scheduled job definition %s could not start: %s", doc["id"], exc.message)
                doc["lastFailedRunTime"] = utc_now()
                self.store.put_definition(doc, next_run=None, keep_schedule=True)
        return started
