"""Run directories are data: no checkpoint can make the loaders or the CLI run code, and a damaged
or tampered checkpoint is one clear error naming the file (docs/untrusted_input.md)."""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.checkpoint_io import MAX_LAYER_WIDTH
from agents.policy import N_FEATURES
from agents.runs import RUN_FORMAT
from agents.sac import DiscreteSAC, RunningNormalizer, SACConfig
from agents.sb3_agents import (
    ContinuousSACPolicy,
    MaskablePPOPolicy,
    PPOConfig,
    SB3SACConfig,
    load_sb3_policy,
    make_maskable_ppo,
    make_sb3_sac,
)
from agents.training import load_agent
from analysis.cli import main
from physiology_model.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "shipped"
WHOOP_U01 = ROOT / "data" / "real" / "whoop" / "u01"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Payload:
    """Unpickling this creates the file `marker` (`open(marker, "w")`): the kind of object a
    crafted checkpoint hides. A file appearing means code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload_bytes(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker), protocol=2)


def test_the_payload_is_live(tmp_path) -> None:
    """The payload really runs code when unpickled (else the tests below prove nothing)."""
    marker = tmp_path / "ran"
    pickle.loads(_payload_bytes(marker)).close()
    assert marker.exists()


def _run_dir(root: Path, agent: str) -> Path:
    d = root / "run"
    (d / "model").mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "status": "finished",
                                            "agent": agent}))
    return d


def _sb3_zip_with_payload(path: Path, marker: Path) -> None:
    """A `model.zip` laid out as SB3 writes one: a `data` JSON whose objects are base64
    pickles (here the payload), `policy.pth`, `pytorch_variables.pth`."""
    serialized = base64.b64encode(_payload_bytes(marker)).decode()
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": serialized},
            "observation_space": {":type:": "<class 'gymnasium.spaces.box.Box'>",
                                  ":serialized:": serialized}}
    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(1)}, buffer)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data", json.dumps(data))
        z.writestr("policy.pth", buffer.getvalue())
        z.writestr("pytorch_variables.pth", _payload_bytes(marker))
        z.writestr("_stable_baselines3_version", "2.9.2")


@pytest.mark.parametrize("agent", ["ppo", "sac-continuous"])
def test_a_pickled_sb3_zip_is_refused_and_nothing_runs(tmp_path, agent) -> None:
    run = _run_dir(tmp_path, agent)
    marker = tmp_path / "pwned"
    _sb3_zip_with_payload(run / "model" / "model.zip", marker)
    (run / "model" / "policy.json").write_text(json.dumps(
        {"format": "adaptive-periodization.SB3Policy", "version": 1, "kind": agent,
         "name": agent, "config": {"obs_clip": 10.0, "hidden_sizes": [8]}}))
    torch.save(RunningNormalizer(N_FEATURES).state_dict(), run / "model" / "normalizer.pt")
    with pytest.raises(DataError, match=r"model\.zip.*unpickles.*not loaded"):
        load_agent(run)
    assert not marker.exists()


def test_a_pickle_in_place_of_the_weights_is_refused_and_nothing_runs(tmp_path) -> None:
    """`policy.pt` / `weights.pt` holding an object: torch's weights-only reader refuses it."""
    marker = tmp_path / "pwned"
    for agent, weights in (("sac", "weights.pt"), ("ppo", "policy.pt")):
        run = _run_dir(tmp_path / agent, agent)
        if agent == "sac":
            DiscreteSAC(SACConfig(hidden_sizes=(8,)), seed=0).save(run / "model")
        else:
            save_tiny_sb3(run / "model", "ppo")
        torch.save({"actor": _Payload(marker)}, run / "model" / weights)
        with pytest.raises(DataError, match=rf"{weights}: holds something other than tensors"):
            load_agent(run)
        assert not marker.exists()


def save_tiny_sb3(directory: Path, kind: str):
    """An untrained SB3 adapter of `kind` saved in `directory` (its network is random: the
    round trip is what is tested)."""
    from agents.sac import RunningNormalizer as Norm
    from agents.sb3_agents import NormalizedVecEnv
    from physiology_model.model.world_model import WorldModel
    from simulator.cohort import generate_cohort
    from simulator.env import BatchedPeriodizationEnv, EnvConfig

    cohort = generate_cohort(WorldModel.load(MODEL_DIR), 2, seed=0)
    action_type = "continuous" if kind == "sac-continuous" else "discrete"
    env = BatchedPeriodizationEnv(cohort, 2, EnvConfig(episode_days=10, warmup_days=7,
                                                       action_type=action_type), seed=0)
    normalizer = Norm(N_FEATURES)
    normalizer.update(torch.randn(64, N_FEATURES, dtype=torch.float64) * 3 + 1)
    venv = NormalizedVecEnv(env, normalizer, training=False)
    if kind == "ppo":
        config = PPOConfig(hidden_sizes=(16, 8))
        adapter = MaskablePPOPolicy(make_maskable_ppo(venv, config, seed=3), normalizer, kind)
    else:
        config = SB3SACConfig(hidden_sizes=(16, 8), buffer_size=256, asymmetric_critic=False)
        adapter = ContinuousSACPolicy(make_sb3_sac(venv, config, seed=3), normalizer, kind)
    adapter.save(directory, kind, config)
    return adapter


@pytest.mark.parametrize("kind", ["ppo", "sac-continuous"])
def test_sb3_policies_round_trip_through_weights_only_files(tmp_path, kind) -> None:
    saved = save_tiny_sb3(tmp_path / "ckpt", kind)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "normalizer.pt", "policy.json", "policy.pt"]
    loaded = load_sb3_policy(tmp_path / "ckpt")
    assert type(loaded) is type(saved) and loaded.name == kind
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(9, N_FEATURES)).astype(np.float32)
    mask = np.ones((9, 6), dtype=bool)
    mask[::2, 3:] = False
    if kind == "ppo":
        np.testing.assert_allclose(loaded.action_probabilities(obs, mask),
                                   saved.action_probabilities(obs, mask), rtol=1e-6)
    np.testing.assert_array_equal(loaded.act(obs, mask), saved.act(obs, mask))
    for name, tensor in saved.policy.state_dict().items():
        torch.testing.assert_close(loaded.policy.state_dict()[name], tensor.cpu())


@pytest.mark.parametrize("tamper, words", [
    (lambda m: m.pop("kind"), ("policy.json", "'kind'", "missing")),
    (lambda m: m.update(kind=7), ("policy.json", "'kind'", "str")),
    (lambda m: m.update(kind="dqn"), ("policy.json", "unknown policy kind")),
    (lambda m: m["config"].update(hidden_sizes=[MAX_LAYER_WIDTH * 100] * 3),
     ("policy.json", "config.hidden_sizes")),
    (lambda m: m["config"].update(hidden_sizes="big"), ("policy.json", "config.hidden_sizes")),
    (lambda m: m["config"].update(hidden_sizes=[32, 32]), ("policy.pt", "do not fit")),
    (lambda m: m["config"].update(obs_clip=-1), ("policy.json", "config.obs_clip")),
    (lambda m: m.update(n_features=10**9), ("policy.json", "n_features")),
    (lambda m: m.update(action_space={"type": "box", "low": [0], "high": [1e9]}),
     ("policy.json", "action_space")),
    (lambda m: m.update(version=99), ("policy.json", "version 99")),
])
def test_a_tampered_sb3_policy_json_is_one_error_naming_file_and_field(tmp_path, tamper,
                                                                      words) -> None:
    save_tiny_sb3(tmp_path / "ckpt", "ppo")
    path = tmp_path / "ckpt" / "policy.json"
    meta = json.loads(path.read_text())
    tamper(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(DataError) as info:
        load_sb3_policy(tmp_path / "ckpt")
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_tampered_weights_are_one_error_naming_the_file(tmp_path) -> None:
    save_tiny_sb3(tmp_path / "ckpt", "sac-continuous")
    weights = tmp_path / "ckpt" / "policy.pt"
    state = torch.load(weights, weights_only=True)
    first = next(iter(state))
    cases = {
        "wrong shape": {**state, first: torch.zeros(3, 3)},
        "missing key": {k: v for k, v in state.items() if k != first},
        "not finite": {**state, first: torch.full_like(state[first], float("nan"))},
        "not a dict": [torch.zeros(2)],
    }
    for bad in cases.values():
        torch.save(bad, weights)
        with pytest.raises(DataError, match="policy.pt"):
            load_sb3_policy(tmp_path / "ckpt")
    weights.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="policy.pt: not a readable torch weights file"):
        load_sb3_policy(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "normalizer.pt").write_bytes(b"")
    with pytest.raises(DataError, match="normalizer.pt"):
        load_sb3_policy(tmp_path / "ckpt")


@pytest.mark.parametrize("tamper, words", [
    (lambda m: m.update(n_features=10**8), ("config.json", "n_features")),
    (lambda m: m["config"].update(hidden_sizes=[10**7]), ("config.json", "hidden_sizes")),
    (lambda m: m["config"].update(gamma="high"), ("config.json", "'config'")),
    (lambda m: m["config"].update(nonsense=1), ("config.json", "nonsense")),
    (lambda m: m["config"].update(hazard_margin="off"), ("config.json", "hazard_margin")),
    (lambda m: m["config"].update(hazard_margin=True), ("config.json", "hazard_margin")),
    (lambda m: m.pop("config"), ("config.json", "'config'", "missing")),
    (lambda m: m.update(gradient_steps=-5), ("config.json", "gradient_steps")),
])
def test_a_tampered_sac_checkpoint_is_one_error(tmp_path, tamper, words) -> None:
    run = _run_dir(tmp_path, "sac")
    DiscreteSAC(SACConfig(hidden_sizes=(8,)), seed=0).save(run / "model")
    path = run / "model" / "config.json"
    meta = json.loads(path.read_text())
    tamper(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(DataError) as info:
        load_agent(run)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    path.write_text("[1, 2")
    with pytest.raises(DataError, match="config.json: not valid JSON"):
        load_agent(run)


def test_the_cli_refuses_a_crafted_run_for_plan_and_evaluate(tmp_path, one_error) -> None:
    from physiology_model.model.world_model import WorldModel
    from simulator.cohort import generate_cohort

    run = _run_dir(tmp_path, "ppo")
    marker = tmp_path / "pwned"
    _sb3_zip_with_payload(run / "model" / "model.zip", marker)
    rc = main(["plan", "--model", str(MODEL_DIR), "--data", str(WHOOP_U01), "--policy",
               str(run), "--days", "1"])
    line = one_error()
    assert rc == 2 and "model.zip" in line and "not loaded" in line
    cohort = tmp_path / "cohort.npz"
    generate_cohort(WorldModel.load(MODEL_DIR), 2, seed=0).save(cohort)
    rc = main(["evaluate", "--model", str(MODEL_DIR), "--cohort", str(cohort), "--policies",
               "random", "--runs", str(run), "--days", "5", "--out", str(tmp_path / "ev")])
    line = one_error()
    assert rc == 2 and "model.zip" in line
    assert not marker.exists()
    assert not (tmp_path / "ev" / "results.json").exists()


@pytest.mark.parametrize("record", [
    [1, 2], {"env_config": "big"}, {"env_config": {"judge_day_is_event": True,
                                                   "episode_days": "90"}},
])
def test_a_tampered_run_record_is_one_error_for_the_planner(tmp_path, record) -> None:
    from agents.recommend import policy_event_horizon

    (tmp_path / "run.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="run.json"):
        policy_event_horizon(tmp_path)


@pytest.mark.parametrize("record", [
    [1], {"report": "x"}, {"report": {"episode_returns": ["a", "b"]}},
    {"report": {"episode_returns": [1.0, 2.0]}, "n_envs": "8"}, "{not json",
])
def test_a_damaged_run_record_does_not_end_the_report(tmp_path, record) -> None:
    from analysis.report import _training_curves

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(record if isinstance(record, str) else json.dumps(record))
    assert "No readable training curve" in _training_curves([str(run)])
