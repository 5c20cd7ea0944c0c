"""Image columns in tabular deployments: schema, training, prediction, explanations, storage, ZIPs.

Real data: scikit-learn's bundled handwritten digits as base64 PNGs
(``fixtures/digits_images.csv``).  Most tests use the classical featurizer
(milliseconds per image); one trains with the EfficientNet-Lite0 CNN.
"""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

import tsengine
from tsengine.errors import MissingColumnError, ParameterError, ValidationError
from tsengine.images import get_featurizer
from tsengine.io import read_table
from tsengine.options import PredictOptions
from tsengine.tabular import TabularDeployment, train_tabular
from tsengine.tabular.deployment import probability_column
from tsengine.tabular.schema import IMAGE

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TRAIN_ROWS = 700


@pytest.fixture(scope="module")
def digits() -> pl.DataFrame:
    return pl.read_csv(FIXTURES / "digits_images.csv")


@pytest.fixture(scope="module")
def classical(digits: pl.DataFrame) -> TabularDeployment:
    return train_tabular(
        digits.head(TRAIN_ROWS),
        target="digit",
        task="multiclass",
        deployment_id="digits",
        image_columns=["image"],
        image_featurizer="classical",
    )


def png_pixels(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def test_schema_stores_the_featurizer(classical: TabularDeployment) -> None:
    column = classical.schema.column("image")
    assert column is not None
    assert column.kind == IMAGE
    assert column.featurizer == "classical"
    assert column.dim == get_featurizer("classical").dim
    assert classical.image_columns == ("image",)
    images = classical.metadata["images"]
    assert (images["columns"], images["featurizer"], images["dim"]) == (["image"], "classical", column.dim)
    assert list(images["validation_by_featurizer"]) == ["classical"]
    assert classical.input_schema_overrides()["image"] == pl.String
    # importance is per column, not per embedding dimension
    assert [f["feature"] for f in classical.metadata["feature_importance"]] == ["image"]


def test_predicts_held_out_digits(classical: TabularDeployment, digits: pl.DataFrame) -> None:
    held_out = digits.slice(TRAIN_ROWS, 400)
    got = classical.predict(held_out.drop("digit"))
    accuracy = float((got["prediction"] == held_out["digit"]).mean())
    assert accuracy > 0.85, accuracy
    probabilities = got.select([probability_column("digit", c) for c in classical.classes]).to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)


def test_explanation_names_the_column_and_adds_up(classical: TabularDeployment, digits: pl.DataFrame) -> None:
    rows = digits.slice(TRAIN_ROWS, 25).drop("digit")
    out = classical.predict_result(rows, PredictOptions(max_explanations=3)).frame
    assert set(out["EXPLANATION_1_FEATURE_NAME"].to_list()) == {"image"}
    assert out["EXPLANATION_2_FEATURE_NAME"].null_count() == out.height  # one feature: one explanation
    assert set(out["EXPLANATION_1_ACTUAL_VALUE"].to_list()) == {"image"}
    # The one strength is the whole contribution: raw score of the predicted class minus the base value.
    checked = classical.schema.check(rows)
    x = classical.schema.matrix(checked)
    top = np.array([classical.classes.index(p) for p in out["prediction"].to_list()])
    raw = np.asarray(classical.booster.predict(x, raw_score=True)).reshape(len(rows), -1)
    base = classical.contributions(x, top)[:, -1]
    np.testing.assert_allclose(
        out["EXPLANATION_1_STRENGTH"].to_numpy(), raw[np.arange(len(rows)), top] - base, atol=1e-9
    )


def test_registry_round_trip_predicts_the_same(
    classical: TabularDeployment, digits: pl.DataFrame, tmp_path: Path
) -> None:
    registry = tsengine.Registry(tmp_path)
    registry.save(classical)
    loaded = registry.load("digits")
    rows = digits.slice(TRAIN_ROWS, 50).drop("digit")
    assert loaded.predict(rows).equals(classical.predict(rows))


def test_bad_images_name_rows_and_column(classical: TabularDeployment, digits: pl.DataFrame) -> None:
    rows = digits.slice(TRAIN_ROWS, 6).drop("digit")
    broken = rows.with_columns(
        pl.Series(
            "image",
            [
                *rows["image"].to_list()[:2],
                "bm90IGFuIGltYWdl",
                *rows["image"].to_list()[3:5],
                "data:text/plain;base64,aGk=",
            ],
        )
    )
    with pytest.raises(ValidationError) as caught:
        classical.predict(broken)
    message = str(caught.value)
    assert "'image'" in message
    assert "row 2" in message
    assert "row 5" in message
    assert "text/plain" in message


def test_a_missing_image_is_a_missing_value(classical: TabularDeployment, digits: pl.DataFrame) -> None:
    rows = digits.slice(TRAIN_ROWS, 3).drop("digit")
    holed = rows.with_columns(pl.Series("image", [rows["image"][0], None, ""], dtype=pl.String))
    got = classical.predict(holed)
    assert got.height == 3
    assert got["prediction"].null_count() == 0
    assert got.row(0) == classical.predict(rows.head(1)).row(0)


def test_every_encoding_of_an_image_predicts_the_same(
    classical: TabularDeployment, digits: pl.DataFrame
) -> None:
    text = digits["image"][TRAIN_ROWS]
    pixels = png_pixels(text)
    buffer = io.BytesIO()
    np.save(buffer, pixels)
    npy = "data:application/x.peltarion.npy;base64," + base64.b64encode(buffer.getvalue()).decode()
    jpeg_free = [
        text,
        f"data:image/png;base64,{text}",
        text.rstrip("="),  # unpadded
        base64.urlsafe_b64encode(base64.b64decode(text)).decode(),
        npy,
    ]
    got = classical.predict(pl.DataFrame({"image": jpeg_free}))
    columns = [probability_column("digit", c) for c in classical.classes]
    first = got.select(columns).row(0)
    for i in range(1, len(jpeg_free)):
        np.testing.assert_allclose(got.select(columns).row(i), first, atol=1e-12)


def test_numbers_as_npy_arrays(digits: pl.DataFrame) -> None:
    frame = digits.head(200).with_columns(pl.int_range(200).cast(pl.Float64).alias("size"))
    model = train_tabular(
        frame, target="digit", task="multiclass", image_columns=["image"], image_featurizer="classical"
    )
    buffer = io.BytesIO()
    np.save(buffer, np.array([7.0]))
    npy = "data:application/x.peltarion.npy;base64," + base64.b64encode(buffer.getvalue()).decode()
    as_array = model.predict(pl.DataFrame({"image": [frame["image"][0]], "size": [npy]}))
    as_number = model.predict(pl.DataFrame({"image": [frame["image"][0]], "size": ["7"]}))
    assert as_array.equals(as_number)
    np.save(buffer := io.BytesIO(), np.zeros((2, 2)))
    wide = "data:application/x.peltarion.npy;base64," + base64.b64encode(buffer.getvalue()).decode()
    with pytest.raises(ValidationError, match=r"'size' row 0.*\(2, 2\)"):
        model.predict(pl.DataFrame({"image": [frame["image"][0]], "size": [wide]}))


def test_training_errors_name_the_parameter(digits: pl.DataFrame) -> None:
    with pytest.raises(MissingColumnError, match="photo"):
        train_tabular(digits, target="digit", task="multiclass", image_columns=["photo"])
    with pytest.raises(ParameterError, match="classical"):
        train_tabular(
            digits.head(50),
            target="digit",
            task="multiclass",
            image_columns=["image"],
            image_featurizer="vgg",
        )
    with pytest.raises(ParameterError, match="target"):
        train_tabular(digits.head(50), target="image", task="multiclass", image_columns=["image"])


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_zip_with_a_csv_reads_as_the_csv(digits: pl.DataFrame, tmp_path: Path) -> None:
    rows = digits.head(12)
    images = {f"pics/{i:03d}.png": base64.b64decode(t) for i, t in enumerate(rows["image"].to_list())}
    table = pl.DataFrame({"file": [f"pics/{i:03d}.png" for i in range(12)], "digit": rows["digit"]})
    path = write_zip(tmp_path / "digits.zip", {**images, "labels.csv": table.write_csv().encode()})
    frame = read_table(path)
    assert frame.columns == ["file", "digit"]
    assert frame["file"].to_list() == rows["image"].to_list()
    missing = write_zip(tmp_path / "missing.zip", {"labels.csv": b"file,digit\nnope.png,1\n"})
    with pytest.raises(ValidationError, match=r"'file' rows 0 .*nope\.png"):
        read_table(missing)


def test_zip_of_class_folders(digits: pl.DataFrame, tmp_path: Path) -> None:
    rows = digits.head(10)
    files = {
        f"{d}/{i}.png": base64.b64decode(t)
        for i, (t, d) in enumerate(zip(rows["image"].to_list(), rows["digit"].to_list(), strict=True))
    }
    frame = read_table(write_zip(tmp_path / "folders.zip", files))
    assert frame.columns == ["image", "class"]
    assert sorted(frame["class"].to_list()) == sorted(str(d) for d in rows["digit"].to_list())
    by_image = dict(zip(frame["image"].to_list(), frame["class"].to_list(), strict=True))
    assert by_image[rows["image"][3]] == str(rows["digit"][3])


def test_the_cnn_featurizer_trains_and_predicts(digits: pl.DataFrame) -> None:
    model = train_tabular(
        digits.head(200),
        target="digit",
        task="multiclass",
        image_columns=["image"],
        image_featurizer="efficientnet-lite0",
    )
    column = model.schema.column("image")
    assert column is not None
    assert column.featurizer == "efficientnet-lite0"
    assert column.dim == 1280
    held_out = digits.slice(1500, 200)
    accuracy = float((model.predict(held_out.drop("digit"))["prediction"] == held_out["digit"]).mean())
    assert accuracy > 0.6, accuracy  # chance is 0.1


def test_auto_keeps_the_featurizer_that_scores_better_held_out(digits: pl.DataFrame) -> None:
    model = train_tabular(digits.head(200), target="digit", task="multiclass", image_columns=["image"])
    tried = model.metadata["images"]["validation_by_featurizer"]
    assert set(tried) == {"efficientnet-lite0", "classical"}
    best = min(tried, key=lambda name: tried[name]["logloss"])
    assert model.metadata["images"]["featurizer"] == best
    assert model.metadata["training"]["validation"] == tried[best]
