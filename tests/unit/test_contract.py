"""The deployment contract: both kinds keep it, and stored metadata reads typed."""

from __future__ import annotations

import math

import tsengine
from tsengine.contract import LeaderboardEntry, ServingDeployment, facts


def _members(protocol: type) -> list[str]:
    return [name for name in vars(protocol) if not name.startswith("_")]


def test_a_time_series_deployment_offers_every_member(small_deployment: tsengine.Deployment) -> None:
    for name in _members(ServingDeployment):
        assert hasattr(small_deployment, name), name


def test_facts_of_a_trained_deployment(small_deployment: tsengine.Deployment) -> None:
    known = facts(small_deployment.metadata)
    assert known.model_id == small_deployment.model_id
    assert known.selection is not None
    assert known.training is not None
    assert known.training.series == 3
    assert known.training.time_step == "1 day"
    assert {e.model for e in known.leaderboard} == {"lightgbm", "seasonal_naive"}
    entry = known.deployed_entry()
    assert entry is not None
    assert entry.model == known.selection.model
    assert [d.distance for d in entry.by_distance] == list(range(1, 8))


def test_old_or_partial_metadata_reads_as_empty() -> None:
    known = facts({})
    assert (known.model_id, known.training, known.leaderboard, known.selection) == ("", None, (), None)
    assert known.deployed_entry() is None
    row = LeaderboardEntry.from_dict({"model": "ets", "mase": None, "smape": math.nan, "rmse": 1.5, "n": 3})
    assert (row.mase, row.smape, row.rmse, row.by_distance) == (None, None, 1.5, ())
