"""The deployment store: round trips, versions, atomic saves, corrupt and foreign files."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import tsengine
from tsengine import registry as registry_module
from tsengine.errors import DeploymentStoreError, NotFoundError, ParameterError
from tsengine.registry import DEPLOYMENT_FORMAT_VERSION, Registry, default_registry_path


@pytest.fixture
def deployment(small_deployment: tsengine.Deployment) -> tsengine.Deployment:
    return dataclasses.replace(small_deployment, id="flights")


@pytest.fixture
def history(small_flights: pl.DataFrame) -> pl.DataFrame:
    return small_flights.filter(pl.col("date") <= "2013-12-20")


def _predict(deployment: tsengine.Deployment, history: pl.DataFrame) -> pl.DataFrame:
    return deployment.predict(history, relax_known_in_advance=True)


def test_save_then_load_gives_identical_predictions(
    tmp_registry: Registry, deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    tmp_registry.save(deployment)
    loaded = tmp_registry.load("flights")
    assert loaded.spec == deployment.spec
    assert loaded.model.kind == deployment.model.kind
    assert loaded.intervals == deployment.intervals
    assert loaded.info() == orjson.loads(orjson.dumps(deployment.info()))
    assert_frame_equal(_predict(loaded, history), _predict(deployment, history))


def test_every_save_is_a_new_version_and_the_latest_is_live(
    tmp_registry: Registry, deployment: tsengine.Deployment
) -> None:
    first = tmp_registry.save(deployment)
    second = tmp_registry.save(dataclasses.replace(deployment, metadata={"model_id": "second"}))
    assert (first.name, second.name) == ("v0001", "v0002")
    assert tmp_registry.versions("flights") == ["v0001", "v0002"]
    assert (tmp_registry.path / "flights" / "CURRENT").read_text() == "v0002"
    assert tmp_registry.load("flights").model_id == "second"
    assert tmp_registry.load("flights", version="v0001").model_id == deployment.model_id


def test_stored_files_carry_format_version_id_and_kind(
    tmp_registry: Registry, deployment: tsengine.Deployment
) -> None:
    folder = tmp_registry.save(deployment)
    meta = orjson.loads((folder / "deployment.json").read_bytes())
    assert (meta["format_version"], meta["id"], meta["kind"]) == (
        DEPLOYMENT_FORMAT_VERSION,
        "flights",
        "timeseries",
    )
    # the chosen model's backtest forecasts ride along for the deployment page's chart
    assert sorted(p.name for p in folder.iterdir()) == ["backtest.parquet", "deployment.json", "model.bin"]


def test_list_and_exists(tmp_registry: Registry, deployment: tsengine.Deployment) -> None:
    assert tmp_registry.list() == []
    tmp_registry.save(dataclasses.replace(deployment, id="zeta"))
    tmp_registry.save(deployment)
    assert tmp_registry.list() == ["flights", "zeta"]
    assert tmp_registry.exists("zeta")
    assert not tmp_registry.exists("other")
    assert not tmp_registry.exists("../zeta")


def _crash_on(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = registry_module._write

    def write(path: Path, data: bytes) -> None:
        if path.name == name:
            msg = "disk full (simulated)"
            raise OSError(msg)
        real(path, data)

    monkeypatch.setattr(registry_module, "_write", write)


@pytest.mark.parametrize("crash_at", ["model.bin", "deployment.json", ".CURRENT.tmp"])
def test_a_crash_mid_save_leaves_the_old_version_live(
    tmp_registry: Registry,
    deployment: tsengine.Deployment,
    history: pl.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    crash_at: str,
) -> None:
    tmp_registry.save(deployment)
    expected = _predict(deployment, history)
    _crash_on(monkeypatch, crash_at)
    with pytest.raises(OSError, match="simulated"):
        tmp_registry.save(dataclasses.replace(deployment, metadata={"model_id": "broken"}))
    monkeypatch.undo()
    assert tmp_registry.list() == ["flights"]
    live = tmp_registry.load("flights")
    assert live.model_id == deployment.model_id
    assert_frame_equal(_predict(live, history), expected)
    home = tmp_registry.path / "flights"
    assert not [p for p in home.iterdir() if p.name.startswith(".tmp-")]
    assert (home / "CURRENT").read_text() == "v0001"


def test_a_crash_during_the_first_save_leaves_nothing_visible(
    tmp_registry: Registry, deployment: tsengine.Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_on(monkeypatch, "deployment.json")
    with pytest.raises(OSError, match="simulated"):
        tmp_registry.save(deployment)
    monkeypatch.undo()
    assert tmp_registry.list() == []
    assert not tmp_registry.exists("flights")
    with pytest.raises(NotFoundError, match="'flights' not found"):
        tmp_registry.load("flights")


def test_a_crash_when_flipping_current_keeps_the_old_version(
    tmp_registry: Registry, deployment: tsengine.Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_registry.save(deployment)

    def replace(src: object, dst: object) -> None:
        msg = "power cut (simulated)"
        raise OSError(msg)

    monkeypatch.setattr(registry_module.os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        tmp_registry.save(dataclasses.replace(deployment, metadata={"model_id": "new"}))
    monkeypatch.undo()
    assert tmp_registry.load("flights").model_id == deployment.model_id
    assert tmp_registry.save(deployment).name == "v0003"


def test_corrupt_deployment_json_is_a_store_error_naming_the_id(
    tmp_registry: Registry, deployment: tsengine.Deployment
) -> None:
    folder = tmp_registry.save(deployment)
    (folder / "deployment.json").write_bytes(b'{"format_version": 1, "id": "flights", "spec": ')
    with pytest.raises(
        DeploymentStoreError, match=r"deployment 'flights' \(version v0001\) is corrupt"
    ) as info:
        tmp_registry.load("flights")
    assert str(tmp_registry.path) not in info.value.message
    with pytest.raises(DeploymentStoreError, match="'flights' .*corrupt") as info:
        tmp_registry.read_meta("flights")
    assert str(tmp_registry.path) not in info.value.message


def test_a_truncated_model_file_is_a_store_error_without_the_servers_path(
    tmp_registry: Registry, deployment: tsengine.Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_registry.save(deployment)
    model = folder / "model.bin"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with (
        caplog.at_level(logging.ERROR, logger="tsengine.registry"),
        pytest.raises(
            DeploymentStoreError, match=r"'flights' \(version v0001\) is corrupt or incomplete: "
        ) as info,
    ):
        tmp_registry.load("flights")
    assert info.value.status == 500
    assert str(tmp_registry.path) not in info.value.message
    assert "/" not in info.value.message  # no path of any kind reaches a client
    # the operator finds the folder in the server's log
    assert any(str(folder) in r.getMessage() and r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (b"[1, 2]", "deployment.json holds a JSON list, not an object"),
        (b'{"format_version": 1, "kind": "timeseries"}', "missing entry 'id'"),
        (b'{"format_version": "one"}', "invalid literal for int()"),
    ],
)
def test_malformed_metadata_is_a_store_error_naming_the_problem(
    tmp_registry: Registry, deployment: tsengine.Deployment, stored: bytes, message: str
) -> None:
    folder = tmp_registry.save(deployment)
    (folder / "deployment.json").write_bytes(stored)
    with pytest.raises(DeploymentStoreError, match="'flights' .*corrupt or incomplete") as info:
        tmp_registry.load("flights")
    assert message in info.value.message


def test_a_missing_metadata_file_is_named_without_its_folder(
    tmp_registry: Registry, deployment: tsengine.Deployment
) -> None:
    folder = tmp_registry.save(deployment)
    (folder / "deployment.json").unlink()
    for read in (tmp_registry.load, tmp_registry.read_meta):
        with pytest.raises(DeploymentStoreError) as info:
            read("flights")
        assert info.value.message.endswith(
            "corrupt or incomplete: deployment.json: No such file or directory"
        )


def test_lightgbm_model_string_errors_are_store_errors(
    tmp_registry: Registry, deployment: tsengine.Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightgbm as lgb

    tmp_registry.save(deployment)

    def garbage_booster(meta: object, read: object) -> object:
        return lgb.Booster(model_str="tree\nnot a model\n")

    monkeypatch.setitem(registry_module._KINDS, "timeseries", lambda: garbage_booster)
    with pytest.raises(DeploymentStoreError, match="'flights' .*corrupt or incomplete: .*"):
        tmp_registry.load("flights")


def test_a_bug_while_loading_propagates_instead_of_blaming_the_files(
    tmp_registry: Registry, deployment: tsengine.Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_registry.save(deployment)

    def buggy(meta: object, read: object) -> object:
        return 1 / 0

    monkeypatch.setattr(tsengine.Deployment, "from_files", buggy)
    with pytest.raises(ZeroDivisionError):
        tmp_registry.load("flights")

    def attribute_bug(meta: object, read: object) -> object:
        return meta.no_such_attribute  # type: ignore[attr-defined]

    monkeypatch.setattr(tsengine.Deployment, "from_files", attribute_bug)
    with pytest.raises(AttributeError):
        tmp_registry.load("flights")


def test_read_meta_lets_bugs_propagate(
    tmp_registry: Registry, deployment: tsengine.Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_registry.save(deployment)

    def buggy(data: bytes) -> object:
        raise ZeroDivisionError

    monkeypatch.setattr(registry_module.orjson, "loads", buggy)
    with pytest.raises(ZeroDivisionError):
        tmp_registry.read_meta("flights")


def test_corrupt_model_file_is_a_store_error(tmp_registry: Registry, deployment: tsengine.Deployment) -> None:
    folder = tmp_registry.save(deployment)
    (folder / "model.bin").write_bytes(b"\x00garbage")
    with pytest.raises(DeploymentStoreError, match="'flights'.*corrupt"):
        tmp_registry.load("flights")


def test_missing_model_file_is_a_store_error(tmp_registry: Registry, deployment: tsengine.Deployment) -> None:
    folder = tmp_registry.save(deployment)
    (folder / "model.bin").unlink()
    with pytest.raises(DeploymentStoreError, match="corrupt or incomplete"):
        tmp_registry.load("flights")


def test_newer_deployment_format_is_a_store_error_asking_to_upgrade(
    tmp_registry: Registry, deployment: tsengine.Deployment
) -> None:
    folder = tmp_registry.save(deployment)
    meta = orjson.loads((folder / "deployment.json").read_bytes())
    meta["format_version"] = DEPLOYMENT_FORMAT_VERSION + 1
    (folder / "deployment.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(DeploymentStoreError, match=r"'flights' was written by a newer tsengine.*upgrade"):
        tmp_registry.load("flights")


def test_newer_spec_format_is_a_store_error(tmp_registry: Registry, deployment: tsengine.Deployment) -> None:
    folder = tmp_registry.save(deployment)
    meta = orjson.loads((folder / "deployment.json").read_bytes())
    meta["spec"]["format_version"] = 99
    (folder / "deployment.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(DeploymentStoreError, match="spec format version 99 is newer"):
        tmp_registry.load("flights")


def test_unknown_deployment_kind_is_a_store_error(
    tmp_registry: Registry, deployment: tsengine.Deployment
) -> None:
    folder = tmp_registry.save(deployment)
    meta = orjson.loads((folder / "deployment.json").read_bytes())
    meta["kind"] = "quantum"
    (folder / "deployment.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(DeploymentStoreError, match="unknown kind 'quantum'"):
        tmp_registry.load("flights")


def test_unknown_id_is_not_found_naming_only_it(
    tmp_registry: Registry, deployment: tsengine.Deployment
) -> None:
    tmp_registry.save(deployment)
    with pytest.raises(NotFoundError, match="deployment 'nope' not found") as info:
        tmp_registry.load("nope")
    assert "flights" not in info.value.message  # HTTP clients must not learn other ids
    assert str(tmp_registry.path) not in info.value.message  # nor the server's paths


@pytest.mark.parametrize("bad_id", ["", "../escape", "a/b", ".hidden", "-dash", "x" * 129, "sp ace", "é"])
def test_invalid_ids_are_rejected_naming_them(
    tmp_registry: Registry, deployment: tsengine.Deployment, bad_id: str
) -> None:
    with pytest.raises(ParameterError, match=f"deployment id {bad_id!r} is invalid"):
        tmp_registry.save(dataclasses.replace(deployment, id=bad_id))
    with pytest.raises(ParameterError, match="is invalid"):
        tmp_registry.versions(bad_id)
    with pytest.raises(NotFoundError):
        tmp_registry.load(bad_id)
    assert not (tmp_registry.path.parent / "escape").exists()


def test_delete_removes_every_version(tmp_registry: Registry, deployment: tsengine.Deployment) -> None:
    tmp_registry.save(deployment)
    tmp_registry.save(deployment)
    tmp_registry.delete("flights")
    assert tmp_registry.list() == []
    assert not (tmp_registry.path / "flights").exists()
    with pytest.raises(NotFoundError, match="'flights' not found"):
        tmp_registry.delete("flights")


def test_registry_defaults_to_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSENGINE_REGISTRY", str(tmp_path / "from-env"))
    assert default_registry_path() == tmp_path / "from-env"
    assert Registry().path == tmp_path / "from-env"
    assert Registry(tmp_path / "explicit").path == tmp_path / "explicit"


def test_registry_defaults_to_the_home_folder_without_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TSENGINE_REGISTRY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_registry_path() == tmp_path / ".tsengine" / "registry"


def test_registry_repr_names_its_path(tmp_path: Path) -> None:
    assert repr(Registry(tmp_path)) == f"Registry({str(tmp_path)!r})"


def test_live_version_follows_every_swap_of_current(tmp_path: Path) -> None:
    """live_version caches by the CURRENT file's identity, so each os.replace (as save does) is seen."""
    registry = Registry(tmp_path)
    home = tmp_path / "demand"
    assert registry.live_version("demand") is None
    home.mkdir()
    for version in ("v1", "v2", "v3"):
        pointer = home / "CURRENT.tmp"
        pointer.write_text(version + "\n")
        os.replace(pointer, home / "CURRENT")
        assert registry.live_version("demand") == version
        assert registry.live_version("demand") == version  # answered from the stat
    (home / "CURRENT").unlink()
    assert registry.live_version("demand") is None
    assert registry.live_version("../demand") is None
