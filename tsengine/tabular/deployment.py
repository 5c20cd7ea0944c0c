"""A tabular (non-time-series) deployment: schema + LightGBM booster + labels.

It answers at the same URL as a time series deployment and keeps the same small
contract the HTTP layer relies on (``kind``, ``model_id``, ``info()``,
``input_schema_overrides()``, ``predict_result(frame, options)``), so the
transport never asks which kind it holds; only the renderer does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from tsengine.deployment import Prediction
from tsengine.explain import LABEL, explain_mask, top_explanations
from tsengine.humility import apply_humility, rules_from_metadata
from tsengine.io import to_polars
from tsengine.options import PredictOptions
from tsengine.tabular.schema import FeatureSchema

__all__ = ["MODEL_FILE", "TASKS", "TabularDeployment", "class_labels", "label_dtype", "probability_column"]

MODEL_FILE = "model.txt"
TASKS = ("regression", "binary", "multiclass")
# Below this many rows a single thread answers faster than a pool wakes up.
_SINGLE_THREAD_ROWS = 20_000


def label_dtype(classes: tuple[Any, ...]) -> pl.DataType:
    """The polars type of class labels as written in the training data."""
    if classes and all(isinstance(c, bool) for c in classes):
        return pl.Boolean()
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return pl.Int64()
    if classes and all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
        return pl.Float64()
    return pl.String()


def probability_column(target: str, label: Any) -> str:
    """Name of a class's probability column: DataRobot's ``<target>_<class>_PREDICTION``."""
    return f"{target}_{label}_PREDICTION"


def class_labels(classes: tuple[Any, ...], index: np.ndarray, name: str) -> pl.Series:
    """The labels at class positions ``index``, typed as the training labels."""
    codes = pl.Series(name, np.asarray(index, dtype=np.int64))
    return codes.replace_strict(list(range(len(classes))), list(classes), return_dtype=label_dtype(classes))


@dataclass(frozen=True, slots=True)
class TabularDeployment:
    """A stored classification or regression deployment.

    Attributes:
        id: the deployment id.
        target: the target column.
        task: regression, binary or multiclass.
        schema: the feature schema learnt at training.
        booster: the fitted LightGBM booster.
        classes: class labels in model order; binary: ``(negative, positive)``.
        threshold: binary: a row is positive when its probability exceeds this.
        metadata: model id, creation time, training summary, humility rules.
    """

    id: str
    target: str
    task: str
    schema: FeatureSchema
    booster: lgb.Booster
    classes: tuple[Any, ...] = ()
    threshold: float = 0.5
    metadata: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "tabular"

    @property
    def model_id(self) -> str:
        """Id of the fitted model (``X-DataRobot-Model-Id``)."""
        return str(self.metadata.get("model_id", ""))

    @property
    def positive_class(self) -> Any:
        """Binary: the class whose probability the threshold applies to."""
        return self.classes[1] if self.task == "binary" else None

    @property
    def image_columns(self) -> tuple[str, ...]:
        """Columns read as images (base64 or data URIs), embedded by the stored featurizer."""
        return tuple(self.schema.image_columns)

    def input_schema_overrides(self) -> dict[str, pl.DataType]:
        """CSV dtypes that keep categories and dates as written."""
        return self.schema.overrides()

    def info(self) -> dict[str, Any]:
        """A JSON-able summary for ``tsengine info`` and ``/info`` routes."""
        return {
            "id": self.id,
            "kind": self.kind,
            "model_id": self.model_id,
            "target": self.target,
            "task": self.task,
            "classes": list(self.classes),
            "positive_class": self.positive_class,
            "prediction_threshold": self.threshold if self.task == "binary" else None,
            "features": [c.to_dict() for c in self.schema.columns],
            "ignored_columns": list(self.schema.ignored),
            **{k: v for k, v in self.metadata.items() if k not in {"model_id", "drift_baseline"}},
        }

    def to_files(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Metadata and LightGBM's text model for the registry (no pickle anywhere)."""
        meta = {
            "target": self.target,
            "task": self.task,
            "classes": list(self.classes),
            "threshold": self.threshold,
            "schema": self.schema.to_dict(),
            "metadata": dict(self.metadata),
        }
        return meta, {MODEL_FILE: self.booster.model_to_string().encode()}

    @classmethod
    def from_files(cls, meta: dict[str, Any], read: Callable[[str], bytes]) -> TabularDeployment:
        """Inverse of :meth:`to_files`; ``read(name)`` returns a stored file's bytes."""
        return cls(
            id=meta["id"],
            target=meta["target"],
            task=meta["task"],
            schema=FeatureSchema.from_dict(meta["schema"]),
            booster=lgb.Booster(model_str=read(MODEL_FILE).decode()),
            classes=tuple(meta.get("classes") or ()),
            threshold=float(meta.get("threshold", 0.5)),
            metadata=meta.get("metadata", {}),
        )

    def predict(self, frame: Any, options: PredictOptions | None = None) -> pl.DataFrame:
        """Predict every row, in input order (the rows of :meth:`predict_result`)."""
        return self.predict_result(frame, options).frame

    def predict_result(self, frame: Any, options: PredictOptions | None = None) -> Prediction:
        """Check the rows, predict, apply humility rules, explain when asked.

        Returns:
            A :class:`~tsengine.deployment.Prediction` whose frame has ``rowId``,
            ``prediction``, per-class probability columns (classification),
            ``predictionThreshold`` (binary), explanation columns (when
            ``max_explanations > 0``) and ``humility`` (when rules exist).

        Raises:
            MissingColumnError, ValidationError: absent features, wrong types.
            HumilityError: a throw-error humility rule fired.
        """
        options = (options or PredictOptions()).validated()
        checked = self.schema.check(to_polars(frame))
        x = self.schema.matrix(checked)
        n = x.shape[0]
        threads = 1 if n < _SINGLE_THREAD_ROWS else 0
        raw = np.asarray(self.booster.predict(x, num_threads=threads), dtype=np.float64) if n else np.empty(0)
        rows = pl.int_range(n, dtype=pl.Int64, eager=True).alias("rowId")
        if self.task == "regression":
            score, top = raw, np.zeros(n, dtype=np.int64)
            out = pl.DataFrame([rows, pl.Series("prediction", raw, dtype=pl.Float64).fill_nan(None)])
        else:
            proba = (
                np.column_stack([1.0 - raw, raw])
                if self.task == "binary"
                else raw.reshape(n, len(self.classes))
            )
            if self.task == "binary":
                top = (raw > self.threshold).astype(np.int64)
                score = raw
            else:
                top = np.argmax(proba, axis=1) if n else np.zeros(0, dtype=np.int64)
                score = proba.max(axis=1, initial=0.0)
            out = pl.DataFrame(
                [
                    rows,
                    class_labels(self.classes, top, "prediction"),
                    *(
                        pl.Series(probability_column(self.target, c), proba[:, i], dtype=pl.Float64)
                        for i, c in enumerate(self.classes)
                    ),
                ]
            )
            if self.task == "binary":
                out = out.with_columns(pl.lit(self.threshold, pl.Float64).alias("predictionThreshold"))
        out = apply_humility(out, rules_from_metadata(self.metadata), score=score, inputs=checked)
        if options.max_explanations > 0:
            out = pl.concat([out, self._explain(x, checked, score, top, options)], how="horizontal")
        return Prediction(out)

    def contributions(self, x: np.ndarray, top: np.ndarray) -> np.ndarray:
        """Per-feature contributions plus the base value, ``(rows, features + 1)``.

        They sum to the raw score: the prediction (regression), the positive
        class's log-odds (binary), the explained class's raw score (multiclass,
        where each row explains the class it predicts).
        """
        contrib = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float64)
        if self.task != "multiclass":
            return contrib
        width = x.shape[1] + 1
        per_class = contrib.reshape(x.shape[0], -1, width)
        return np.asarray(per_class[np.arange(x.shape[0]), top])

    def _explain(
        self,
        x: np.ndarray,
        checked: pl.DataFrame,
        score: np.ndarray,
        top: np.ndarray,
        options: PredictOptions,
    ) -> pl.DataFrame:
        mask = explain_mask(score, options.threshold_low, options.threshold_high)
        chosen = np.flatnonzero(mask)
        names = self.schema.explained_names
        strengths = np.zeros((x.shape[0], len(names)), dtype=np.float64)
        if chosen.size:
            # An image's embedding dimensions add up to one contribution, named by its column.
            per_input = self.contributions(x[chosen], top[chosen])[:, :-1]
            strengths[chosen] = per_input @ np.eye(len(names))[self.schema.explained_index()]
        frame = top_explanations(
            strengths,
            names=names,
            values=self.schema.display_values(checked),
            max_explanations=options.max_explanations,
            mask=mask,
        )
        if self.task == "regression":
            label = pl.Series(LABEL, [self.target] * x.shape[0], dtype=pl.String)
        elif self.task == "binary":
            label = class_labels(self.classes, np.ones(x.shape[0], dtype=np.int64), LABEL)
        else:
            label = class_labels(self.classes, top, LABEL)
        return frame.with_columns(label)
