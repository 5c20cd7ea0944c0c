"""End to end: image deployments trained by the CLI, served by the real server, called by real clients.

A digit classifier is trained with ``tsengine train`` from a ZIP of class
folders (DataRobot's image format) with the default featurizer choice (the
EfficientNet-Lite0 CNN and the classical features both tried), and a regression ("the digit's value from its photo")
from the CSV of base64 PNGs with the classical featurizer.  The real server
then answers them in the three request styles: DataRobot's predApi (CSV, JSON,
a one-example multipart upload, ``datarobot-predict``), Peltarion's
``{"rows"}`` (JSON, form fields, curl) and Einstein Vision's predict; a batch
job scores a file of images.
"""

from __future__ import annotations

import base64
import http.server
import io
import shutil
import struct
import subprocess
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datarobot
import httpx
import numpy as np
import pandas as pd
import polars as pl
import pytest
from datarobot_predict import deployment as dr_deployment
from PIL import Image
from typer.testing import CliRunner

import tsengine
from api import Settings
from api.testing import running
from tsengine.batch import BatchEngine, parse_job_spec
from tsengine.cli import app
from tsengine.tabular.deployment import probability_column

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using an empty collection for 'allowed_methods':FutureWarning"
)

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "fixtures" / "digits_images.csv"
KEY = "image-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
TRAIN = 250
runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stderr


@pytest.fixture(scope="module")
def digits() -> pl.DataFrame:
    return pl.read_csv(DIGITS)


@pytest.fixture(scope="module")
def held_out(digits: pl.DataFrame) -> pl.DataFrame:
    return digits.slice(1500, 40)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, digits: pl.DataFrame) -> Path:
    folder = tmp_path_factory.mktemp("images")
    path = folder / "registry"
    archive = folder / "digits.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for i, (text, digit) in enumerate(
            zip(digits["image"].head(TRAIN), digits["digit"].head(TRAIN), strict=True)
        ):
            out.writestr(f"{digit}/{i:04d}.png", base64.b64decode(text))
    code, err = cli(
        "train", str(archive), "--name", "digits", "--target", "class", "--task", "multiclass",
        "--image-column", "image", "--registry", str(path),
    )  # fmt: skip
    assert code == 0, err
    csv = folder / "values.csv"
    digits.head(TRAIN).write_csv(csv)
    code, err = cli(
        "train", str(csv), "--name", "digit-value", "--target", "digit", "--task", "regression",
        "--image-column", "image", "--image-featurizer", "classical", "--registry", str(path),
    )  # fmt: skip
    assert code == 0, err
    return path


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry, api_keys=[KEY])) as url:
        yield url


def png(text: str) -> bytes:
    return base64.b64decode(text)


def npy_uri(text: str) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(Image.open(io.BytesIO(png(text)))))
    return "data:application/x.peltarion.npy;base64," + base64.b64encode(buffer.getvalue()).decode()


def bomb() -> bytes:
    """A PNG header claiming 60000×60000 pixels, followed by a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def accuracy(labels: list[Any], truth: list[Any]) -> float:
    return float(np.mean([str(a) == str(b) for a, b in zip(labels, truth, strict=True)]))


# ----------------------------------------------------------------- DataRobot predApi


def test_predapi_csv_json_and_csv_out(base_url: str, held_out: pl.DataFrame) -> None:
    url = f"{base_url}/predApi/v1.0/deployments/digits/predictions"
    body = held_out.drop("digit").write_csv().encode()
    answer = httpx.post(url, content=body, headers={**AUTH, "Content-Type": "text/csv"}, timeout=60)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["data"]
    assert len(rows) == held_out.height
    assert {v["label"] for v in rows[0]["predictionValues"]} == {str(d) for d in range(10)}
    assert accuracy([r["prediction"] for r in rows], held_out["digit"].to_list()) > 0.7
    records = [{"image": f"data:image/png;base64,{t}"} for t in held_out["image"].head(5)]
    as_json = httpx.post(url, json=records, headers=AUTH, timeout=60).json()["data"]
    assert [r["prediction"] for r in as_json] == [r["prediction"] for r in rows[:5]]
    as_csv = httpx.post(
        url, content=body, headers={**AUTH, "Content-Type": "text/csv", "Accept": "text/csv"}, timeout=60
    )
    frame = pl.read_csv(io.BytesIO(as_csv.content))
    assert frame.height == held_out.height
    assert "class_PREDICTION" in frame.columns


def test_predapi_explanations_name_the_image(base_url: str, held_out: pl.DataFrame) -> None:
    url = f"{base_url}/predApi/v1.0/deployments/digit-value/predictions?maxExplanations=2"
    answer = httpx.post(
        url,
        content=held_out.head(3).drop("digit").write_csv().encode(),
        headers={**AUTH, "Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    explanations = answer.json()["data"][0]["predictionExplanations"]
    assert [e["feature"] for e in explanations] == ["image"]


def test_predapi_one_example_as_an_upload(base_url: str, held_out: pl.DataFrame) -> None:
    url = f"{base_url}/predApi/v1.0/deployments/digits/predictions"
    answer = httpx.post(
        url, files={"image": ("digit.png", png(held_out["image"][0]), "image/png")}, headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    rows = answer.json()["data"]
    assert len(rows) == 1
    posted = httpx.post(url, json=[{"image": held_out["image"][0]}], headers=AUTH).json()["data"]
    assert rows[0]["predictionValues"] == posted[0]["predictionValues"]


def test_datarobot_predict_client(base_url: str, held_out: pl.DataFrame) -> None:
    datarobot.client.set_client(datarobot.rest.RESTClientObject(auth=KEY, endpoint=f"{base_url}/api/v2"))
    dr_deployment.clear_context()
    try:
        frame = held_out.drop("digit").head(10).to_pandas()
        result = dr_deployment.predict(
            "digits", frame, prediction_endpoint=f"{base_url}/predApi/v1.0"
        ).dataframe
        assert len(result) == 10
        assert "class_PREDICTION" in result.columns
        values = dr_deployment.predict("digit-value", frame, prediction_endpoint=f"{base_url}/predApi/v1.0")
        assert values.dataframe["digit_PREDICTION"].between(-1, 10).all()
    finally:
        dr_deployment.clear_context()


def test_bad_images_are_422_naming_row_column_and_reason(base_url: str, held_out: pl.DataFrame) -> None:
    url = f"{base_url}/predApi/v1.0/deployments/digits/predictions"
    good = held_out["image"][0]
    cases = {
        "garbage": ("bm90IGFuIGltYWdl", "row 1"),
        "header": ("data:text/plain;base64,aGVsbG8=", "text/plain"),
        "bomb": (base64.b64encode(bomb()).decode(), "3,600,000,000"),
        "truncated": (base64.b64encode(png(good)[:40]).decode(), "row 1"),
    }
    for name, (value, expected) in cases.items():
        answer = httpx.post(url, json=[{"image": good}, {"image": value}], headers=AUTH)
        assert answer.status_code == 422, (name, answer.text)
        message = answer.json()["message"]
        for part in ("'image'", "row 1", expected):
            assert part in message, (name, message)
    missing = httpx.post(url, json=[{"other": 1}], headers=AUTH)
    assert missing.status_code == 422
    assert "image" in missing.json()["message"]


# ------------------------------------------------------------------------ Peltarion


def test_peltarion_rows_with_data_uris_and_arrays(base_url: str, held_out: pl.DataFrame) -> None:
    images = held_out["image"].head(4).to_list()
    rows = [{"image": f"data:image/png;base64,{t}"} for t in images[:3]] + [{"image": npy_uri(images[3])}]
    answer = httpx.post(
        f"{base_url}/deployment/digits/forward", json={"rows": rows}, headers=AUTH, timeout=60
    )
    assert answer.status_code == 200, answer.text
    out = answer.json()["rows"]
    assert len(out) == 4
    for row in out:
        assert list(row) == ["class"]
        assert set(row["class"]) == {str(d) for d in range(10)}
        assert sum(row["class"].values()) == pytest.approx(1.0)
    alias = httpx.post(f"{base_url}/deployments/digits/peltarion", json={"rows": rows}, headers=AUTH)
    assert alias.json() == answer.json()
    values = httpx.post(f"{base_url}/deployment/digit-value/forward", json={"rows": rows[:2]}, headers=AUTH)
    assert [list(r) for r in values.json()["rows"]] == [["digit"], ["digit"]]
    assert all(isinstance(r["digit"], float) for r in values.json()["rows"])


def test_peltarion_form_fields_and_curl(base_url: str, held_out: pl.DataFrame, tmp_path: Path) -> None:
    url = f"{base_url}/deployment/digits/forward"
    image = png(held_out["image"][0])
    form = httpx.post(url, files={"image": ("three.png", image, "image/png")}, headers=AUTH)
    assert form.status_code == 200, form.text
    posted = httpx.post(url, json={"rows": [{"image": held_out["image"][0]}]}, headers=AUTH)
    assert form.json() == posted.json()
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    (tmp_path / "three.png").write_bytes(image)
    # Peltarion's own example: a JSON Content-Type header together with -F fields.
    done = subprocess.run(
        ["curl", "-s", "-X", "POST", "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
         "-F", f"image=@{tmp_path / 'three.png'}", url],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    assert httpx.Response(200, content=done.stdout).json() == posted.json()


def test_peltarion_needs_the_bearer_token(base_url: str, held_out: pl.DataFrame) -> None:
    answer = httpx.post(
        f"{base_url}/deployment/digits/forward", json={"rows": [{"image": held_out["image"][0]}]}
    )
    assert answer.status_code == 401
    assert answer.json() == {"message": "Invalid API token"}


# ------------------------------------------------------------------- Einstein Vision


def test_einstein_file_and_base64(base_url: str, held_out: pl.DataFrame) -> None:
    url = f"{base_url}/v2/vision/predict"
    image = png(held_out["image"][0])
    upload = httpx.post(
        url, data={"modelId": "digits"}, files={"sampleContent": ("d.png", image, "image/png")}, headers=AUTH
    )
    assert upload.status_code == 200, upload.text
    answer = upload.json()
    assert answer["object"] == "predictresponse"
    probabilities = [p["probability"] for p in answer["probabilities"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert len(probabilities) == 10
    assert {p["label"] for p in answer["probabilities"]} == {str(d) for d in range(10)}
    encoded = httpx.post(
        url,
        files={
            "modelId": (None, "digits"),
            "sampleBase64Content": (None, held_out["image"][0]),
            "numResults": (None, "3"),
            "sampleId": (None, "s-1"),
        },
        headers=AUTH,
    )
    assert encoded.status_code == 200, encoded.text
    assert encoded.json()["probabilities"] == answer["probabilities"][:3]
    assert encoded.json()["sampleId"] == "s-1"


def test_einstein_refusals(base_url: str, held_out: pl.DataFrame) -> None:
    url = f"{base_url}/v2/vision/predict"
    location = httpx.post(
        url,
        data={"modelId": "digits", "sampleLocation": "http://169.254.169.254/latest/meta-data"},
        headers=AUTH,
    )
    assert location.status_code == 400
    assert "TSENGINE_SAMPLE_LOCATION_HOSTS" in location.json()["message"]
    regression = httpx.post(
        url, data={"modelId": "digit-value", "sampleBase64Content": held_out["image"][0]}, headers=AUTH
    )
    assert regression.status_code == 422
    assert "classifier" in regression.json()["message"]
    nothing = httpx.post(url, data={"modelId": "digits"}, headers=AUTH)
    assert nothing.status_code == 400
    assert "sampleContent" in nothing.json()["message"]
    unknown = httpx.post(
        url, data={"modelId": "nope", "sampleBase64Content": held_out["image"][0]}, headers=AUTH
    )
    assert unknown.status_code == 404
    bad = httpx.post(
        url, data={"modelId": "digits", "sampleBase64Content": "data:text/plain;base64,aGk="}, headers=AUTH
    )
    assert bad.status_code == 422
    assert "text/plain" in bad.json()["message"]


@pytest.fixture
def image_host(held_out: pl.DataFrame) -> Iterator[str]:
    image = png(held_out["image"][0])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_einstein_sample_location_from_an_allowed_host(
    registry: Path, image_host: str, held_out: pl.DataFrame
) -> None:
    with running(Settings(registry=registry, sample_location_hosts=["127.0.0.1"])) as url:
        fetched = httpx.post(
            f"{url}/v2/vision/predict",
            data={"modelId": "digits", "sampleLocation": f"{image_host}/three.png"},
        )
        assert fetched.status_code == 200, fetched.text
        direct = httpx.post(
            f"{url}/v2/vision/predict",
            data={"modelId": "digits", "sampleBase64Content": held_out["image"][0]},
        )
        assert fetched.json() == direct.json()
        moved = httpx.post(
            f"{url}/v2/vision/predict", data={"modelId": "digits", "sampleLocation": f"{image_host}/moved"}
        )
        assert moved.status_code == 400
        assert "302" in moved.json()["message"]
        other = httpx.post(
            f"{url}/v2/vision/predict", data={"modelId": "digits", "sampleLocation": "http://localhost/x.png"}
        )
        assert other.status_code == 400
        assert "127.0.0.1" in other.json()["message"]


# ------------------------------------------------------------------------------ batch


def test_batch_job_scores_a_file_of_images(registry: Path, held_out: pl.DataFrame, tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    held_out.write_csv(source)
    engine = BatchEngine(tsengine.Registry(registry))
    spec = parse_job_spec(
        {
            "deploymentId": "digits",
            "intakeSettings": {"type": "filesystem", "path": str(source)},
            "outputSettings": {"type": "filesystem", "path": str(out)},
            "chunkSize": 1024,
            "passthroughColumns": ["digit"],
        },
        allow_filesystem=True,
    )
    done = engine.run_now(engine.create_job(spec)["id"])
    assert done["status"] == "COMPLETED", done["statusDetails"]
    got = pl.read_csv(out)
    expected = tsengine.Registry(registry).load("digits").predict(held_out.drop("digit"))
    assert got["digit"].to_list() == held_out["digit"].to_list()
    np.testing.assert_allclose(
        got[probability_column("class", "3")].to_numpy(),
        expected[probability_column("class", "3")].to_numpy(),
        atol=1e-9,
    )
    assert pd.Series(got["class_PREDICTION"].to_list()).astype(str).tolist() == [
        str(p) for p in expected["prediction"].to_list()
    ]
