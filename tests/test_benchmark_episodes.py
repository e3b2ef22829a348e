"""The episode runner of the evaluation and of the MPC benchmarks (`analysis.benchmark.
run_policy`, through benchmarks/mpc_latency.py `run_episode`): how performance tests are handed
to a policy that reads them, free or as the day's session, and never to one that does not."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agents.baselines import RandomPolicy
from physiology_model.data.table import ACTIONS
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from mpc_latency import run_episode

TEMPO = ACTIONS.index("tempo_threshold")


class Recorder(RandomPolicy):
    """Random play that records the tests it is handed and what it is told was done; it
    reads tests (`reads_performance_tests`) unless `reads` is False."""

    def __init__(self, reads: bool = True) -> None:
        super().__init__()
        self.config = SimpleNamespace(performance_draws=8 if reads else 0)
        self.day, self.tests, self.chosen, self.executed = 0, {}, [], {}

    def observe_performance(self, results: np.ndarray) -> None:
        self.tests[self.day] = np.array(results)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        action = super().act(obs, mask)
        self.chosen.append(action)
        self.day += 1
        return action

    def record_executed(self, actions: np.ndarray) -> None:
        self.executed[self.day - 1] = np.array(actions)


@pytest.fixture(scope="module")
def cohort():
    return generate_cohort(WorldModel.load(ROOT / "models" / "shipped"), 12, seed=11)


def test_free_tests_come_every_k_days_and_change_nothing(cohort):
    policy = Recorder()
    summary, _ = run_episode(lambda sim: policy, cohort, 12, tests_every=28, test_cv=0.015)
    assert sorted(policy.tests) == [0, 28, 56, 84] and not policy.executed
    assert all(np.all(r > 0) for r in policy.tests.values())  # every athlete, every time
    again = Recorder()
    plain, _ = run_episode(lambda sim: again, cohort, 12)
    np.testing.assert_array_equal(summary["delta_performance"], plain["delta_performance"])


def test_a_test_that_is_the_days_session_replaces_it_when_the_rules_allow(cohort):
    policy = Recorder()
    summary, _ = run_episode(lambda sim: policy, cohort, 12, tests_every=28, test_cv=0.015,
                             test_session=TEMPO)
    tested_days = sorted(policy.tests)
    assert tested_days[0] == 0
    done = np.zeros(12, dtype=int)
    for day, results in policy.tests.items():
        tested = np.isfinite(results)
        done += tested
        # the policy is told that the tested athletes did the test session that day
        assert np.all(policy.executed[day][tested] == TEMPO)
    assert np.all(done == 4)  # each athlete tested once per 28-day block, deferred if need be
    free, _ = run_episode(lambda sim: Recorder(), cohort, 12, tests_every=28, test_cv=0.015)
    assert not np.array_equal(summary["delta_performance"], free["delta_performance"])


def test_a_policy_that_does_not_read_tests_is_never_handed_one(cohort):
    policy = Recorder(reads=False)
    summary, _ = run_episode(lambda sim: policy, cohort, 12, tests_every=28, test_cv=0.015,
                             test_session=TEMPO)
    assert not policy.tests and not policy.executed
    plain, _ = run_episode(lambda sim: Recorder(reads=False), cohort, 12)
    np.testing.assert_array_equal(summary["delta_performance"], plain["delta_performance"])


def test_paired_metrics_pairs_athletes_of_the_same_judging_only(tmp_path):
    import json

    import pandas as pd
    from paired_metrics import load_tables, main

    config = {"cohort": "c.npz", "n_athletes": 4, "episode_days": 90, "seed": 1,
              "performance_tests": {"every_days": 28, "handed_to": ["a"]}}
    for name, policy, injured in (("one", "a", [0, 2, 4, 6]), ("two", "b", [1, 2, 3, 6])):
        (tmp_path / name).mkdir()
        pd.DataFrame({"policy": policy, "athlete": range(4), "injured_days": injured}
                     ).to_csv(tmp_path / name / "athletes.csv", index=False)
        (tmp_path / name / "config.json").write_text(json.dumps(
            {**config, "performance_tests": {"every_days": 28, "handed_to": [policy]}}))
    out = tmp_path / "paired.json"
    main(["--eval", str(tmp_path / "one"), str(tmp_path / "two"), "--reference", "b",
          "--metrics", "injured_days", "--boot", "200", "--out", str(out)])
    (rec,) = json.loads(out.read_text())["records"]
    assert rec["policy"] == "a" and rec["mean_difference"] == pytest.approx(0.0)
    assert (rec["share_higher"], rec["share_equal"], rec["share_lower"]) == (0.25, 0.5, 0.25)
    assert rec["ci95"][0] <= 0.0 <= rec["ci95"][1]
    # a gzipped table (as docs/results keeps them) reads the same
    import gzip
    import shutil

    with open(tmp_path / "two" / "athletes.csv", "rb") as src, \
            gzip.open(tmp_path / "two" / "athletes.csv.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (tmp_path / "two" / "athletes.csv").unlink()
    assert set(load_tables([tmp_path / "one", tmp_path / "two"])["policy"]) == {"a", "b"}
    # one name in two folders (two runs of one kind) is told apart by its folder
    pd.DataFrame({"policy": "b", "athlete": range(4), "injured_days": [1, 1, 1, 1]}
                 ).to_csv(tmp_path / "one" / "athletes.csv", index=False)
    names = set(load_tables([tmp_path / "one", tmp_path / "two"])["policy"])
    assert names == {"b@one", "b@two"}
    # athletes judged with another episode seed are not paired with these
    (tmp_path / "two" / "config.json").write_text(json.dumps({**config, "seed": 2}))
    with pytest.raises(SystemExit, match="seed"):
        load_tables([tmp_path / "one", tmp_path / "two"])
    # nor with shards of another size (they seed the tests' noise)
    (tmp_path / "two" / "config.json").write_text(json.dumps({**config, "shard_size": 250}))
    with pytest.raises(SystemExit, match="shard_size"):
        load_tables([tmp_path / "one", tmp_path / "two"])


def test_paired_metrics_scores_a_policy_against_the_oracle_of_another_folder(tmp_path):
    import json

    import pandas as pd
    from paired_metrics import main

    config = {"cohort": "c.npz", "n_athletes": 4, "episode_days": 90, "seed": 1,
              "performance_tests": None}
    rows = {"one": {"random": [0, 0, 1, 1], "oracle": [2, 2, 3, 3]},
            "two": {"new": [1, 1, 2, 2], "random": [0, 0, 1, 1]}}
    for name, policies in rows.items():
        (tmp_path / name).mkdir()
        pd.concat([pd.DataFrame({"policy": p, "athlete": range(4), "delta_performance": v,
                                 "injured_days": 0.0}) for p, v in policies.items()]
                  ).to_csv(tmp_path / name / "athletes.csv", index=False)
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    out = tmp_path / "share.json"
    main(["--eval", str(tmp_path / "one"), str(tmp_path / "two"), "--reference", "random",
          "--oracle", "oracle", "--random", "random", "--metrics", "injured_days",
          "--boot", "200", "--out", str(out)])
    shares = {r["policy"]: r for r in json.loads(out.read_text())["records"]
              if r["metric"] == "pct_of_oracle"}
    assert set(shares) == {"new"}  # the oracle and random are not scored against themselves
    assert shares["new"]["pct"] == pytest.approx(50.0)
    assert shares["new"]["ci95_low"] <= 50.0 <= shares["new"]["ci95_high"]
    with pytest.raises(SystemExit, match="go together"):
        main(["--eval", str(tmp_path / "one"), "--reference", "random", "--oracle", "oracle",
              "--metrics", "injured_days", "--out", str(out)])
