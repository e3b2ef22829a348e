"""`periodize evaluate --workers`: (policy, athlete shard) tasks over processes give the same
per-athlete results as one process (analysis/shards.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.benchmark import evaluate_policies
from analysis.cli import main
from analysis.shards import PolicySpec, build_factories, evaluate_sharded
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.env import EnvConfig

ROOT = Path(__file__).resolve().parent.parent
MODEL = str(ROOT / "models" / "shipped")
POLICIES = ("random", "seed_rule", "mpc", "oracle")
CONFIG = EnvConfig(episode_days=12)
SEED = 5


@pytest.fixture(scope="module")
def cohort_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cohort") / "cohort.npz"
    generate_cohort(WorldModel.load(MODEL), 7, seed=3).save(path)
    return str(path)


def _same(a, b) -> None:
    assert list(a) == list(b)
    for name in a:
        for metric, values in a[name].metrics.items():
            np.testing.assert_array_equal(values, b[name].metrics[metric], err_msg=metric)
        np.testing.assert_array_equal(a[name].actions, b[name].actions)
        np.testing.assert_array_equal(a[name].performance, b[name].performance)


def test_policies_over_two_workers_equal_the_one_process_evaluation(cohort_path):
    from simulator.cohort import Cohort

    spec = PolicySpec(POLICIES, MODEL, seed=SEED)
    alone, records = evaluate_policies(build_factories(spec), Cohort.load(cohort_path), CONFIG,
                                       seed=SEED)
    spread, spread_records = evaluate_sharded(spec, cohort_path, CONFIG, SEED, workers=2,
                                              progress=False)
    _same(alone, spread)
    assert records == spread_records


def test_shards_give_the_same_athletes_whatever_the_workers(cohort_path, tmp_path):
    spec = PolicySpec(POLICIES, MODEL, seed=SEED)
    one, _ = evaluate_sharded(spec, cohort_path, CONFIG, SEED, shard_size=3, workers=1,
                              progress=False)
    assert one["mpc"].metrics["delta_performance"].shape == (7,)
    # a deterministic rule and the simulator's own streams do not see the shards at all (the
    # rule alone: a policy's runs do not depend on the other policies evaluated beside it)
    rule = PolicySpec(("seed_rule",), MODEL, seed=SEED)
    whole, _ = evaluate_sharded(rule, cohort_path, CONFIG, SEED, progress=False)
    _same(whole, {"seed_rule": one["seed_rule"]})
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", MODEL, "--cohort", cohort_path, "--policies",
                 *POLICIES, "--days", "12", "--seed", str(SEED), "--shard-size", "3",
                 "--workers", "2", "--forecast", "", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    for rec in results:
        values = one[rec["policy"]].metrics[rec["metric"]]
        assert rec["mean"] == pytest.approx(float(np.nanmean(values)), rel=0, abs=0), rec
    # the per-athlete table: each shard's athletes under their cohort index, every metric
    table = pd.read_csv(out / "athletes.csv")
    for name, run in one.items():
        rows = table[table["policy"] == name].set_index("athlete").sort_index()
        assert list(rows.index) == list(range(7))
        for metric in ("delta_performance", "injured_days", "risky_days"):
            # athletes.csv keeps 12 significant digits
            np.testing.assert_allclose(rows[metric], run.metrics[metric], rtol=1e-11)
