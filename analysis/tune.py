"""`periodize tune`: an Optuna study of a learner's settings (seed §9.5).

Objective. The validation cohort's ΔP share of the oracle: 100 · (policy − random) /
(oracle − random) on the mean ΔP of the validation athletes (`analysis.benchmark.
share_of_oracle_gain`), each policy run on the same athletes with the same episode seed
(`VALIDATION_SEED`, used by nothing else), the athletes tested monthly as the project judges
agents (`VALIDATION_TESTS`: a policy that reads performance tests, such as the default tested
SAC, is handed them; the others play as without). The random and oracle references are
computed once per study and kept in DIR/reference.json. The test cohort is never seen.

Search space (`suggest`, seed §9.5): learning rates, γ, the entropy settings (our SAC's initial
temperature and target entropy; PPO's entropy coefficient), network sizes and dropout (where
the learner has it), and the reward's weights where they apply: the kind of reward, α/β/γ for
the multi-horizon reward (ordered as it needs, γ > β > α, summing to 1) and the recovery
weight of the potential-based one. The distilled
planner imitates the MPC and has no reward: its student's settings only.

Study. TPE (`optuna.samplers.TPESampler`, seeded per worker) and a median pruner on the
intermediate evaluations: a run is evaluated at each of `evaluations` checkpoints
(`agents.training.train(on_checkpoint=...)`) and stopped when it falls below the median of
earlier trials at the same step. The distilled planner is trained in one piece (no
checkpoints), so it is only evaluated at the end and never pruned. Storage: DIR/study.db
(SQLite) unless `--storage` names another SQLAlchemy URL. A second call with the same storage
resumes: `--trials N` is the study's total of finished (complete or pruned) trials (the
remaining ones are split between the workers; a trial that fails with an error is recorded
as failed and not made up for until the next call), and a trial whose process died (no
heartbeat for `heartbeat_s`·2, or none at all: `fail_trials_without_heartbeat`) is marked
failed and its settings tried again (Optuna's heartbeat retry callback).

Trials. Every trial is a normal run directory, DIR/trials/trial_NNNN (run.json, model/,
checkpoints/, tb/), that `periodize evaluate --runs` reads. The best trial's settings are
written to DIR/best.json in the form `periodize train --agent-config best.json` takes, and a
summary of every trial to DIR/study.json.

Parallel trials: `workers` Optuna workers share the storage, each in its own process
(`analysis.parallel`), or each a Ray task on the cluster at `ray_address`. We chose Optuna
workers on a shared RDB storage over Ray Tune with its Optuna searcher: the study, its
resumption and its pruning are then the same code with or without Ray (Ray only places the
workers), the state lives in one SQL database a second call or another machine can open,
and trials stay ordinary run directories instead of Tune's experiment layout. On a cluster of
several machines give `--storage` a server database (PostgreSQL, MySQL): SQLite is for one
machine.

Optuna is an optional extra (`pip install '.[tune]'`); only this module imports it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import RandomPolicy
from agents.mpc import OraclePlanner
from analysis.benchmark import PerformanceTesting, run_policy, share_of_oracle_gain
from analysis.parallel import check_workers, run_tasks, worker_cache
from physiology_model.data.table import ACTIONS, atomic_write
from physiology_model.errors import DataError
from physiology_model.model.world_model import WorldModel
from simulator.cohort import Cohort
from simulator.env import EnvConfig
from simulator.rewards import RewardConfig

TUNE_AGENTS: tuple[str, ...] = ("sac", "sac-continuous", "ppo", "mpc-distilled")
VALIDATION_SEED = 424_242
"""Episode seed of the validation runs (never a training or test seed)."""
VALIDATION_TESTS = PerformanceTesting(28, session=ACTIONS.index("tempo_threshold"))
"""A monthly performance test taken as that day's tempo session, for the policies that read
tests (`periodize evaluate --tests-every 28 --test-session tempo_threshold`)."""

HIDDEN_SIZES: dict[str, tuple[int, ...]] = {
    "64x64": (64, 64), "128x64": (128, 64), "256x128x64": (256, 128, 64),
    "256x256": (256, 256)}
"""Network shapes the study chooses among (the defaults' 256x128x64 included)."""


@dataclass(frozen=True)
class TuneSpec:
    """One study's settings (plain data: every worker gets a copy)."""

    agent: str
    cohort: str
    """Training cohort file."""
    val_cohort: str
    """Validation cohort file (the objective's athletes)."""
    out: str
    """Study directory: study.db, reference.json, trials/, best.json, study.json."""
    trials: int
    """Finished (complete or pruned) trials the study should have in all."""
    storage: str | None = None
    """SQLAlchemy URL (None: sqlite in `out`)."""
    study_name: str = "periodize"
    model_dir: str | None = None
    """World model (mpc-distilled: the planner's)."""
    steps: int = 200_000
    """Environment steps per trial (learners; ignored by mpc-distilled)."""
    n_envs: int = 64
    seed: int = 0
    """Training seed of every trial (equal for all, so trials differ by their settings) and
    the sampler's seed (plus the worker's index)."""
    trial_minutes: float | None = None
    """Wall-time limit of one trial's training (`train(max_seconds=...)`)."""
    evaluations: int = 4
    """Intermediate evaluations per trial (the pruner's steps)."""
    val_days: int = 90
    """Episode length of the validation runs."""
    heartbeat_s: int = 60
    """A running trial's heartbeat; a trial silent for twice this is failed and retried."""

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.out).resolve() / 'study.db'}"


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ValueError("periodize tune needs Optuna: pip install "
                         "'adaptive-periodization[tune]'") from None
    return optuna


def suggest(trial, agent: str) -> dict[str, Any]:
    """The trial's settings as `--agent-config` takes them (a "reward" object for the
    env's reward, where the learner has one)."""
    shape = trial.suggest_categorical("hidden_sizes", list(HIDDEN_SIZES))
    out: dict[str, Any] = {"hidden_sizes": list(HIDDEN_SIZES[shape])}
    if agent == "mpc-distilled":
        out.update(learning_rate=trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
                   dropout=trial.suggest_float("dropout", 0.0, 0.4),
                   student_share=trial.suggest_float("student_share", 0.2, 0.8))
        return out
    out["learning_rate"] = trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)
    out["gamma"] = trial.suggest_float("gamma", 0.95, 0.999)
    if agent == "sac":
        # trials train the SAC from scratch (a student each would add ~15 min a trial); said
        # outright, so that best.json trains as tuned, not as `periodize train`'s recipe
        out.update(warm_start=None, dropout=trial.suggest_float("dropout", 0.0, 0.4),
                   initial_alpha=trial.suggest_float("initial_alpha", 0.01, 1.0, log=True),
                   target_entropy_scale=trial.suggest_float("target_entropy_scale", 0.1, 0.9))
    elif agent == "ppo":
        out.update(ent_coef=trial.suggest_float("ent_coef", 1e-4, 0.05, log=True),
                   gae_lambda=trial.suggest_float("gae_lambda", 0.9, 0.99),
                   clip_range=trial.suggest_float("clip_range", 0.1, 0.3))
    kind = trial.suggest_categorical("reward_kind", ["potential", "multi_horizon"])
    reward: dict[str, Any] = {"kind": kind}
    if kind == "multi_horizon":
        # the reward needs γ > β > α ≥ 0 (independent draws broke it in most trials): the
        # three sum to 1, as the defaults 0.2/0.3/0.5 do; α is a share of its largest value
        # 1/3, β a share of the room between α and (1 − α)/2, and γ the rest
        alpha = trial.suggest_float("reward_alpha_share", 0.0, 0.97) / 3.0
        room = (1.0 - alpha) / 2.0 - alpha
        beta = alpha + trial.suggest_float("reward_beta_share", 0.01, 0.99) * room
        reward.update(alpha=alpha, beta=beta, gamma=1.0 - alpha - beta)
    else:
        reward["recovery_weight"] = trial.suggest_float("reward_recovery_weight", 0.0, 0.5)
    out["reward"] = reward
    return out


# -- the objective ----------------------------------------------------------------------------
def _val_config(spec: TuneSpec):

    return EnvConfig(episode_days=spec.val_days)


def _delta_p(policy, cohort, spec: TuneSpec, name: str = "policy") -> np.ndarray:

    run = run_policy(name, lambda sim: policy, cohort, _val_config(spec), VALIDATION_SEED,
                     tests=VALIDATION_TESTS)
    return np.asarray(run.metrics["delta_performance"], float)


def reference(spec: TuneSpec) -> dict[str, list[float]]:
    """ΔP per validation athlete of the random policy and the oracle (computed once, kept in
    DIR/reference.json with what it was computed for)."""

    def build():
        path = Path(spec.out) / "reference.json"
        key = {"val_cohort": str(Path(spec.val_cohort).resolve()), "days": spec.val_days,
               "seed": VALIDATION_SEED}
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("for") == key:
                return saved["delta_p"]

        cohort = Cohort.load(spec.val_cohort)
        config = _val_config(spec)
        delta = {}
        for name, factory in (("random", lambda sim: RandomPolicy()),
                              ("oracle", lambda sim: None if sim is None
                               else OraclePlanner(sim, seed=VALIDATION_SEED))):
            run = run_policy(name, factory, cohort, config, VALIDATION_SEED)
            delta[name] = [float(x) for x in run.metrics["delta_performance"]]
        text = json.dumps({"for": key, "delta_p": delta}, indent=1) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        return delta

    return worker_cache(("tune-reference", spec.val_cohort, spec.out, spec.val_days), build)


def validation_share(policy, spec: TuneSpec) -> float:
    """The objective (module docstring) of a loaded policy; −inf-free: a policy no better
    than random scores ≤ 0, and a validation cohort where the oracle does not beat random is
    an error."""

    ref = reference(spec)
    cohort = worker_cache(("cohort", spec.val_cohort), lambda: Cohort.load(spec.val_cohort))
    share = share_of_oracle_gain(_delta_p(policy, cohort, spec), ref["random"], ref["oracle"])
    if share is None:
        raise DataError(spec.val_cohort, "the oracle does not beat random on this validation "
                                         "cohort: no share to optimise (more athletes or "
                                         "longer --val-days)")
    return float(share["pct"])


def _objective(spec: TuneSpec):
    optuna = _optuna()

    def objective(trial) -> float:
        from agents.training import load_agent, load_checkpoint

        settings = suggest(trial, spec.agent)
        run_dir = Path(spec.out) / "trials" / f"trial_{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("agent_config", settings)
        model = _model(spec)
        if spec.agent == "mpc-distilled":
            _train_distilled(spec, settings, run_dir, model)
        else:
            step_of = {}

            def evaluate(env_steps: int, directory: Path) -> None:
                policy = load_checkpoint(spec.agent, directory, device="cpu")
                k = step_of.setdefault(env_steps, len(step_of) + 1)
                value = validation_share(policy, spec)
                trial.report(value, k)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after {env_steps} env steps "
                                             f"(share {value:.1f} %)")

            _train_learner(spec, settings, run_dir, evaluate)
        policy = load_agent(run_dir, device="cpu", model=model)
        return validation_share(policy, spec)

    return objective


def _model(spec: TuneSpec):
    if spec.model_dir is None:
        return None

    return worker_cache(("model", spec.model_dir), lambda: WorldModel.load(spec.model_dir))


def _env_config(settings: dict[str, Any]):
    from agents.sac import config_from_dict

    reward = settings.get("reward")
    if reward is None:
        return None
    return EnvConfig(reward=config_from_dict(RewardConfig, {**asdict(RewardConfig()), **reward}))


def _train_learner(spec: TuneSpec, settings: dict[str, Any], run_dir: Path, on_checkpoint
                   ) -> None:
    from agents.training import agent_config, train

    learner = {k: v for k, v in settings.items() if k != "reward"}
    every = max(1, math.ceil(spec.steps / max(spec.evaluations, 1)))
    train(spec.agent, spec.cohort, spec.steps, seed=spec.seed, device="cpu",
          out_dir=run_dir.parent, run_name=run_dir.name, n_envs=spec.n_envs,
          env_config=_env_config(settings), agent_config=agent_config(spec.agent, learner),
          progress=False, checkpoint_every=every if spec.evaluations else None,
          torch_threads=1,
          max_seconds=None if spec.trial_minutes is None else 60.0 * spec.trial_minutes,
          on_checkpoint=on_checkpoint if spec.evaluations else None)


def _train_distilled(spec: TuneSpec, settings: dict[str, Any], run_dir: Path, model) -> None:
    from agents.distill import DistillConfig, distill
    from agents.sac import config_from_dict

    config = config_from_dict(DistillConfig, {**asdict(DistillConfig()), **settings})
    distill(model, spec.cohort, seed=spec.seed, out_dir=run_dir.parent, run_name=run_dir.name,
            config=config, model_dir=spec.model_dir)


# -- the study --------------------------------------------------------------------------------
def _storage(spec: TuneSpec):
    import warnings

    optuna = _optuna()
    from optuna import storages

    url = spec.storage_url()
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        # heartbeats are "experimental" in Optuna since 2.8; the retry callback was renamed
        # in 4.9 (the old name still works until 6.0)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):
            retry = {"heartbeat_stale_trial_callback":
                     storages.RetryHeartbeatStaleTrialCallback(max_retry=2)}
        else:
            retry = {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=2)}
        return storages.RDBStorage(url, engine_kwargs=engine,
                                   heartbeat_interval=spec.heartbeat_s,
                                   grace_period=2 * spec.heartbeat_s, **retry), optuna


def _study(spec: TuneSpec, worker: int = 0):
    storage, optuna = _storage(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=spec.seed + worker, n_startup_trials=5)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    study = optuna.create_study(storage=storage, study_name=spec.study_name, sampler=sampler,
                                pruner=pruner, direction="maximize", load_if_exists=True)
    saved = study.user_attrs.get("agent")
    if saved is None:
        study.set_user_attr("agent", spec.agent)
    elif saved != spec.agent:
        raise DataError(spec.storage_url(), f"this study tunes {saved!r}, not {spec.agent!r}")
    return study, optuna


@dataclass(frozen=True)
class _WorkerTask:
    spec: TuneSpec
    worker: int
    quota: int
    """Trials this worker runs (the remaining ones split over the workers, so that parallel
    workers do not overshoot `spec.trials`)."""


def _finished(study, optuna) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def fail_trials_without_heartbeat(study, optuna, grace_s: float) -> list[int]:
    """Fail the running trials that never recorded a heartbeat and started over `grace_s`
    ago, and retry their settings, as Optuna does for stale ones; returns their numbers.

    A process killed between Optuna's `ask` and its heartbeat thread's first beat leaves a
    RUNNING trial with no heartbeat row, which Optuna's stale check skips (`RDBStorage.
    _get_stale_trial_ids`, Optuna 5.1): without this it stays RUNNING for good. A live
    trial beats within milliseconds of its start, so none is failed by mistake."""
    import datetime

    import sqlalchemy

    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # the RDBStorage under Optuna's cache
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    now = datetime.datetime.now()  # Optuna stamps datetime_start with local naive time
    old = {t._trial_id: t for t in running
           if t.datetime_start is not None and (now - t.datetime_start).total_seconds() > grace_s}
    if not old:
        return []
    with backend.engine.connect() as connection:
        beating = {row[0] for row in connection.execute(
            sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))}
    retry = storage.get_heartbeat_stale_trial_callback()
    failed = []
    for trial_id, trial in old.items():
        if trial_id in beating:
            continue  # Optuna's own stale check judges these
        try:
            if not storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker finished or failed it first
        failed.append(trial.number)
        if retry is not None:
            retry(study, storage.get_trial(trial_id))
    return failed


def _run_worker(task: _WorkerTask) -> int:
    """One Optuna worker: trials until the study has `spec.trials` finished ones
    (top-level: it runs in worker processes and Ray tasks)."""
    spec = task.spec
    study, optuna = _study(spec, task.worker)
    fail_trials_without_heartbeat(study, optuna, 2 * spec.heartbeat_s)
    done = optuna.study.MaxTrialsCallback(
        spec.trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    if _finished(study, optuna) >= spec.trials:
        return 0
    before = len(study.trials)
    study.optimize(_objective(spec), n_trials=task.quota, callbacks=[done],
                   catch=(DataError, ValueError, RuntimeError), gc_after_trial=True)
    return len(study.trials) - before


def tune(spec: TuneSpec, *, workers: int = 1, ray_address: str | None = None,
         progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the study (module docstring) and write best.json and study.json;
    returns the summary."""

    if spec.agent not in TUNE_AGENTS:
        raise ValueError(f"--agent must be one of {TUNE_AGENTS}, got {spec.agent!r}")
    if spec.trials < 1 or spec.steps < 1 or spec.evaluations < 0 or spec.val_days < 1:
        raise ValueError("--trials, --steps and --val-days must be ≥ 1, --evaluations ≥ 0")
    if spec.agent == "mpc-distilled" and spec.model_dir is None:
        raise DataError("(arguments)", "--agent mpc-distilled imitates the MPC planner: give "
                                       "--model MODEL_DIR")
    for path in (spec.cohort, spec.val_cohort):
        if not Path(path).is_file():
            raise DataError(path, "no such cohort file")
    check_workers(workers, ray_address)
    Path(spec.out).mkdir(parents=True, exist_ok=True)
    study, optuna = _study(spec)  # creates the study once, before workers race to
    reference(spec)  # the references once, not in every worker
    started = time.perf_counter()
    remaining = max(0, spec.trials - _finished(study, optuna))
    quotas = [remaining // workers + (w < remaining % workers) for w in range(workers)]
    tasks = [_WorkerTask(spec, w, q) for w, q in enumerate(quotas) if q > 0]
    run_tasks(_run_worker, tasks, workers=workers, ray_address=ray_address,
              desc="optuna workers", weights=[t.quota for t in tasks], progress=progress)
    summary = summarize_study(study, optuna, spec, time.perf_counter() - started)
    write_study(spec, summary)
    return summary


def summarize_study(study, optuna, spec: TuneSpec, wall_s: float) -> dict[str, Any]:
    """Every trial (number, state, value, settings, run directory) and the best one."""
    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append({"number": t.number, "state": t.state.name, "value": t.value,
                       "intermediate": {str(k): v for k, v in
                                        sorted(t.intermediate_values.items())},
                       "agent_config": t.user_attrs.get("agent_config"),
                       "run_dir": t.user_attrs.get("run_dir"),
                       "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
                       if t.datetime_complete and t.datetime_start else None})
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    best = max(complete, key=lambda t: t["value"]) if complete else None
    return {"agent": spec.agent, "storage": spec.storage_url(), "study": spec.study_name,
            "objective": "validation ΔP share of the oracle, %", "val_cohort": spec.val_cohort,
            "val_days": spec.val_days, "validation_seed": VALIDATION_SEED,
            "spec": asdict(spec), "wall_s_this_call": wall_s,
            "finished": sum(t["state"] in ("COMPLETE", "PRUNED") for t in trials),
            "best": best, "trials": trials}


def write_study(spec: TuneSpec, summary: dict[str, Any]) -> None:

    out = Path(spec.out)
    text = json.dumps(summary, indent=1, default=str) + "\n"
    atomic_write(out / "study.json", lambda tmp: Path(tmp).write_text(text))
    if summary["best"] is not None:
        best = json.dumps(summary["best"]["agent_config"], indent=1) + "\n"
        atomic_write(out / "best.json", lambda tmp: Path(tmp).write_text(best))
