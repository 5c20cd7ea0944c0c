"""Image inputs: accuracy against a pixels-only baseline, featurizer throughput, request latency.

Run on a quiet machine (writes ``benchmarks/results/images.md``)::

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/images.py

* **Accuracy**: the digits fixture (1,797 real handwritten digits, 8×8 PNGs),
  three seeded 60/40 splits; the same tabular trainer fed (a) the 64 raw
  pixels as numeric columns (the baseline), (b) the classical featurizer,
  (c) the EfficientNet-Lite0 embedding, (d) ``auto``, the default, which keeps the
  better of (b) and (c) on held-out rows.  Mean held-out accuracy and log loss.
* **Throughput**: images per second on one core for each featurizer (decode +
  embed), on the 8×8 digits and on a 451×300 photo (scikit-image's ``chelsea``).
* **Latency**: the real server (``tsengine serve``) answering one image through
  the predApi (JSON), Peltarion and Einstein routes: end to end and server side,
  p50/p99, for a CNN and a classical deployment; and a 200-image CSV body (images/s).
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _env import package_versions  # noqa: E402
from _measure import server_seconds, stats  # noqa: E402
from _report import machine  # noqa: E402
from _server import free_port, start_server, tsengine_command  # noqa: E402

import tsengine  # noqa: E402
from tsengine.images import get_featurizer  # noqa: E402
from tsengine.tabular import train_tabular  # noqa: E402
from tsengine.tabular.deployment import probability_column  # noqa: E402
from tsengine.tabular.images import to_image  # noqa: E402

DIGITS = ROOT / "fixtures" / "digits_images.csv"
OUT = ROOT / "benchmarks" / "results" / "images.md"
SEEDS = (0, 1, 2)


def pixels(frame: pl.DataFrame) -> pl.DataFrame:
    """The baseline's inputs: each PNG's 64 grey levels as numeric columns."""
    grids = np.stack(
        [np.asarray(Image.open(io.BytesIO(base64.b64decode(t)))).reshape(-1) for t in frame["image"]]
    )
    return pl.DataFrame({f"p{i}": grids[:, i].astype(np.float64) for i in range(grids.shape[1])})


def scores(model: Any, rows: pl.DataFrame, truth: np.ndarray) -> tuple[float, float]:
    got = model.predict(rows)
    proba = got.select([probability_column("digit", c) for c in model.classes]).to_numpy()
    index = np.searchsorted(np.asarray(model.classes), truth)
    logloss = float(-np.mean(np.log(np.clip(proba[np.arange(len(truth)), index], 1e-15, 1))))
    return float(np.mean(got["prediction"].to_numpy() == truth)), logloss


def accuracy(digits: pl.DataFrame) -> list[dict[str, Any]]:
    flat = pixels(digits)
    results: dict[str, list[tuple[float, float, float]]] = {}
    for seed in SEEDS:
        order = np.random.default_rng(seed).permutation(digits.height)
        train, test = order[: int(0.6 * digits.height)], order[int(0.6 * digits.height) :]
        truth = digits["digit"].to_numpy()[test]
        runs = {
            "pixels-only LightGBM (baseline)": (flat.with_columns(digits["digit"]), {}),
            "classical featurizer": (digits, {"image_columns": ["image"], "image_featurizer": "classical"}),
            "efficientnet-lite0": (
                digits,
                {"image_columns": ["image"], "image_featurizer": "efficientnet-lite0"},
            ),
            "auto (featurizer chosen on held-out rows)": (digits, {"image_columns": ["image"]}),
        }
        for name, (frame, extra) in runs.items():
            t0 = time.perf_counter()
            model = train_tabular(frame[train], target="digit", task="multiclass", seed=seed, **extra)
            seconds = time.perf_counter() - t0
            acc, loss = scores(model, frame[test].drop("digit"), truth)
            if "auto" in name:
                column = model.schema.column("image")
                name = f"auto (chosen on held-out rows): {column.featurizer if column else '?'}"
            results.setdefault(name, []).append((acc, loss, seconds))
            print(
                f"seed {seed} {name}: accuracy {acc:.3f} logloss {loss:.3f} train {seconds:.1f}s", flush=True
            )
    return [
        {
            "model": name,
            "accuracy": float(np.mean([r[0] for r in runs])),
            "accuracy_sd": float(np.std([r[0] for r in runs])),
            "logloss": float(np.mean([r[1] for r in runs])),
            "train_s": float(np.mean([r[2] for r in runs])),
        }
        for name, runs in results.items()
    ]


def throughput(digits: pl.DataFrame) -> list[dict[str, Any]]:
    from skimage import data as samples

    buffer = io.BytesIO()
    Image.fromarray(samples.chelsea()).save(buffer, format="JPEG", quality=90)
    photo = base64.b64encode(buffer.getvalue()).decode()
    sets = {"digit 8×8 PNG": digits["image"].head(256).to_list(), "photo 451×300 JPEG": [photo] * 128}
    out = []
    for featurizer in ("classical", "efficientnet-lite0"):
        model = get_featurizer(featurizer)
        for label, values in sets.items():
            model.embed([to_image(v) for v in values[:32]])  # warm-up
            t0 = time.perf_counter()
            images = [to_image(v) for v in values]
            decoded = time.perf_counter()
            for start in range(0, len(images), 32):
                model.embed(images[start : start + 32])
            done = time.perf_counter()
            out.append(
                {
                    "featurizer": featurizer,
                    "images": label,
                    "decode_per_s": len(values) / (decoded - t0),
                    "embed_per_s": len(values) / (done - decoded),
                    "total_per_s": len(values) / (done - t0),
                }
            )
            print(out[-1], flush=True)
    return out


def latency(digits: pl.DataFrame, workdir: Path, n: int) -> list[dict[str, Any]]:
    registry = tsengine.Registry(workdir / "registry")
    for featurizer in ("efficientnet-lite0", "classical"):
        registry.save(
            train_tabular(
                digits.head(1000),
                target="digit",
                task="multiclass",
                deployment_id=featurizer,
                image_columns=["image"],
                image_featurizer=featurizer,
            )
        )
    image = digits["image"][1500]
    rows = digits.slice(1000, 200).drop("digit").write_csv().encode()
    port = free_port()
    out = []
    serving = start_server(tsengine_command(registry.path, port), port=port, log=workdir / "server.log")
    with serving, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:  # noqa: SIM117
        for featurizer in ("efficientnet-lite0", "classical"):
            cases: dict[str, dict[str, Any]] = {
                "predApi JSON, 1 image": {
                    "url": f"/predApi/v1.0/deployments/{featurizer}/predictions",
                    "json": [{"image": f"data:image/png;base64,{image}"}],
                },
                "Peltarion {rows}, 1 image": {
                    "url": f"/deployment/{featurizer}/forward",
                    "json": {"rows": [{"image": f"data:image/png;base64,{image}"}]},
                },
                "Einstein predict, 1 upload": {
                    "url": "/v2/vision/predict",
                    "data": {"modelId": featurizer},
                    "files": {"sampleContent": ("d.png", base64.b64decode(image), "image/png")},
                },
            }
            for name, case in cases.items():
                request = {k: v for k, v in case.items() if k != "url"}
                for _ in range(3):
                    client.post(case["url"], **request).raise_for_status()
                e2e, server = [], []
                for _ in range(n):
                    t0 = time.perf_counter()
                    answer = client.post(case["url"], **request)
                    e2e.append(time.perf_counter() - t0)
                    answer.raise_for_status()
                    if "X-DataRobot-Execution-Time" in answer.headers:
                        server.append(server_seconds(answer.headers))
                label = f"{featurizer}: {name}"
                out.append({"case": label, "e2e": stats(e2e), "server": stats(server) if server else None})
                print(label, out[-1]["e2e"], flush=True)
            t0 = time.perf_counter()
            answer = client.post(
                f"/predApi/v1.0/deployments/{featurizer}/predictions",
                content=rows,
                headers={"Content-Type": "text/csv"},
            )
            seconds = time.perf_counter() - t0
            answer.raise_for_status()
            out.append({"case": featurizer, "rows_per_s": 200 / seconds, "seconds": seconds})
    return out


def markdown(acc: list[dict[str, Any]], speed: list[dict[str, Any]], lat: list[dict[str, Any]]) -> str:
    info = machine()
    baseline = next(r for r in acc if r["model"].startswith("pixels"))
    lines = [
        "# Image inputs",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/images.py` on {info['cpu']}, "
        f"{info['cores']}; load {info['load']}; one thread (`OMP_NUM_THREADS=1`, `taskset -c 0`).",
        "",
        package_versions(["onnxruntime", "onnx", "pillow", "scikit-image", "lightgbm", "polars"]) + ".",
        "",
        "## Accuracy: digits fixture, three seeded 60/40 splits (1,078 train / 719 test rows)",
        "",
        "Same trainer (`train_tabular`, multiclass LightGBM, early stopping) for every row; the",
        "baseline reads the 64 raw grey levels as numeric columns; `auto` (the default) trains with",
        "both featurizers and keeps the one with the lower held-out log loss.",
        "",
        "| inputs | accuracy (mean ± sd) | vs baseline | log loss | train s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in acc:
        lines.append(
            f"| {r['model']} | {r['accuracy']:.3f} ± {r['accuracy_sd']:.3f} | "
            f"{r['accuracy'] - baseline['accuracy']:+.3f} | {r['logloss']:.3f} | {r['train_s']:.1f} |"
        )
    lines += [
        "",
        "## Featurizer throughput, one core (images/s)",
        "",
        "| featurizer | images | decode | embed | decode + embed |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in speed:
        lines.append(
            f"| {r['featurizer']} | {r['images']} | {r['decode_per_s']:,.0f} | {r['embed_per_s']:,.0f} | "
            f"{r['total_per_s']:,.0f} |"
        )
    lines += [
        "",
        "## Request latency, real server (`tsengine serve`, one deployment per featurizer), ms",
        "",
        "| request | n | end-to-end p50 | p99 | server-side p50 | p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in lat:
        if "rows_per_s" in r:
            continue
        server = r["server"]
        side = f"{server.p50:.2f} | {server.p99:.2f}" if server else "n/a | n/a"
        lines.append(f"| {r['case']} | {r['e2e'].n} | {r['e2e'].p50:.2f} | {r['e2e'].p99:.2f} | {side} |")
    lines.append("")
    for bulk in (r for r in lat if "rows_per_s" in r):
        lines.append(
            f"A 200-image CSV body through the predApi, {bulk['case']} deployment: "
            f"{bulk['seconds']:.2f} s, {bulk['rows_per_s']:,.0f} images/s."
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100, help="requests per latency case")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tsengine-bench-images"))
    args = parser.parse_args()
    digits = pl.read_csv(DIGITS)
    args.workdir.mkdir(parents=True, exist_ok=True)
    acc = accuracy(digits)
    speed = throughput(digits)
    lat = latency(digits, args.workdir, args.requests)
    OUT.write_text(markdown(acc, speed, lat))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
