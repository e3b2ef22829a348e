"""The Ray path of `analysis.parallel` (`--ray-address`): a small local Ray started inside
the test gives the same results as local processes. Skipped when Ray (the `[scale]` extra)
is not installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from analysis.batch_recommend import RecommendSpec, recommend
from analysis.shards import PolicySpec, evaluate_sharded
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.env import EnvConfig

ROOT = Path(__file__).resolve().parent.parent
MODEL = str(ROOT / "models" / "shipped")


@pytest.fixture(scope="module")
def local_ray():
    yield "local"
    ray.shutdown()


def test_recommend_and_evaluate_on_ray_equal_the_local_run(local_ray, tmp_path):
    for user in ("u07", "u12"):
        shutil.copytree(ROOT / "data" / "real" / "whoop" / user, tmp_path / "data" / user)
    spec = RecommendSpec(MODEL)
    here = recommend(spec, tmp_path / "data", progress=False)
    there = recommend(spec, tmp_path / "data", ray_address=local_ray, exports_per_task=1,
                      progress=False)
    assert here == there and {r["status"] for r in here} == {"ok"}

    cohort = tmp_path / "cohort.npz"
    generate_cohort(WorldModel.load(MODEL), 5, seed=4).save(cohort)
    policies = PolicySpec(("random", "seed_rule"), seed=3)
    config = EnvConfig(episode_days=10)
    one, records = evaluate_sharded(policies, str(cohort), config, 3, shard_size=2,
                                    progress=False)
    spread, spread_records = evaluate_sharded(policies, str(cohort), config, 3, shard_size=2,
                                              ray_address=local_ray, progress=False)
    for name in one:
        for metric, values in one[name].metrics.items():
            np.testing.assert_array_equal(values, spread[name].metrics[metric])
    assert records == spread_records
