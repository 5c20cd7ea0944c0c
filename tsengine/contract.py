"""The deployment contract: what every deployment kind offers, and its metadata, typed.

Time series and tabular deployments are different classes with one job in
common: the transports (HTTP routes, the CLI, batch jobs, the pages, the
prediction log) ask them for the same few things and never which kind they
hold.  :class:`ServingDeployment` declares those things, so mypy checks every
transport against both kinds.

A deployment's metadata is stored as JSON (``deployment.json``), which is why it
is a mapping on the deployment; :func:`facts` reads it once into frozen
dataclasses, so the code that shows or compares training facts (leaderboard,
selection, training summary) reads typed fields instead of nested ``.get``
chains, and a deployment stored by an older version (missing fields) reads as
``None``/empty rather than failing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

if TYPE_CHECKING:
    from tsengine.deployment import Prediction
    from tsengine.options import PredictOptions

__all__ = [
    "DistanceError",
    "Facts",
    "LeaderboardEntry",
    "Selection",
    "ServingDeployment",
    "TrainingSummary",
    "facts",
]


class ServingDeployment(Protocol):
    """What every deployment kind offers the transports."""

    @property
    def id(self) -> str:
        """The registry id, which is also the URL's."""
        ...

    @property
    def kind(self) -> str:
        """``timeseries`` or ``tabular``: only renderers branch on it."""
        ...

    @property
    def model_id(self) -> str:
        """Id of the fitted model (``X-DataRobot-Model-Id``)."""
        ...

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The stored metadata document; read it typed with :func:`facts`."""
        ...

    @property
    def image_columns(self) -> tuple[str, ...]:
        """Columns read as images (base64 or data URIs): a one-example upload names them."""
        ...

    def input_schema_overrides(self) -> dict[str, pl.DataType]:
        """Column types to parse posted CSV with (ids and datetimes kept as written)."""
        ...

    def info(self) -> dict[str, Any]:
        """A JSON-able summary (``tsengine info``, ``/info``, the pages)."""
        ...

    def predict_result(self, frame: Any, options: PredictOptions | None = None) -> Prediction:
        """Output rows, warnings and what the transport must tell the caller."""
        ...

    def to_files(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Metadata and files for the registry."""
        ...


def _number(value: Any) -> float | None:
    """A stored metric: None for missing, null (NaN when written) or non-finite."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class DistanceError:
    """A model's backtest error at one forecast distance."""

    distance: int
    mase: float | None
    smape: float | None
    rmse: float | None
    n: int


@dataclass(frozen=True, slots=True)
class LeaderboardEntry:
    """One candidate's backtest errors, overall and by distance."""

    model: str
    mase: float | None
    smape: float | None
    rmse: float | None
    n: int
    by_distance: tuple[DistanceError, ...] = ()

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> LeaderboardEntry:
        """From the stored leaderboard row."""
        return cls(
            model=str(row.get("model", "")),
            mase=_number(row.get("mase")),
            smape=_number(row.get("smape")),
            rmse=_number(row.get("rmse")),
            n=int(row.get("n") or 0),
            by_distance=tuple(
                DistanceError(
                    int(d["distance"]),
                    _number(d.get("mase")),
                    _number(d.get("smape")),
                    _number(d.get("rmse")),
                    int(d.get("n") or 0),
                )
                for d in row.get("by_distance") or ()
            ),
        )


@dataclass(frozen=True, slots=True)
class Selection:
    """Which candidate was deployed, and why."""

    model: str
    reason: str


# What training has to say about the data, in the stored ``training`` object.
NOTE_KEYS = ("window_note", "intervals_note", "closed_rows_note", "calendar_note")


@dataclass(frozen=True, slots=True)
class TrainingSummary:
    """What the training data was (time series deployments)."""

    rows: int
    series: int | None
    start: str | None
    end: str | None
    time_step: str
    backtest_origins: tuple[str, ...]
    nonnegative: bool
    notes: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSummary:
        """From the stored ``training`` object."""
        notes = tuple(str(data[k]) for k in NOTE_KEYS if data.get(k))
        series = data.get("series")
        return cls(
            rows=int(data.get("rows") or 0),
            series=int(series) if isinstance(series, int) else None,
            start=data.get("start"),
            end=data.get("end"),
            time_step=str(data.get("time_step", "")),
            backtest_origins=tuple(data.get("backtest_origins") or ()),
            nonnegative=bool(data.get("nonnegative", False)),
            notes=notes,
        )


@dataclass(frozen=True, slots=True)
class Facts:
    """A deployment's metadata, typed."""

    model_id: str
    model_kind: str
    created_at: str
    tsengine_version: str
    training: TrainingSummary | None
    leaderboard: tuple[LeaderboardEntry, ...]
    selection: Selection | None

    def deployed_entry(self) -> LeaderboardEntry | None:
        """The deployed model's leaderboard row (its backtest errors), if it has one."""
        chosen = self.selection.model if self.selection else None
        return next((e for e in self.leaderboard if e.model == chosen), None)


def facts(metadata: Mapping[str, Any]) -> Facts:
    """Read a deployment's stored metadata into :class:`Facts` (missing fields read as empty)."""
    training = metadata.get("training")
    selection = metadata.get("selection")
    return Facts(
        model_id=str(metadata.get("model_id", "")),
        model_kind=str(metadata.get("model_kind", "")),
        created_at=str(metadata.get("created_at", "")),
        tsengine_version=str(metadata.get("tsengine_version", "")),
        training=TrainingSummary.from_dict(training) if isinstance(training, Mapping) else None,
        leaderboard=tuple(LeaderboardEntry.from_dict(r) for r in metadata.get("leaderboard") or ()),
        selection=(
            Selection(str(selection.get("model", "")), str(selection.get("reason", "")))
            if isinstance(selection, Mapping)
            else None
        ),
    )


if TYPE_CHECKING:  # mypy proves that both kinds keep the contract
    from tsengine.deployment import Deployment
    from tsengine.tabular.deployment import TabularDeployment

    def _both_kinds_conform(
        a: Deployment, b: TabularDeployment
    ) -> tuple[ServingDeployment, ServingDeployment]:
        return a, b
