"""One entry point to train every learner from the batched env (DESIGN §8), used by the CLI.

    run_dir = train("sac", cohort, steps=300_000, seed=0, out_dir="runs", n_envs=64)
    policy = load_agent(run_dir)            # an agents.policy.Policy

Learners (`AGENTS`): `sac`, our masked discrete SAC (agents/sac.py); `sac-continuous`, SB3's SAC
on the continuous (duration, intensity) action; `ppo`, sb3-contrib's MaskablePPO. All train on
`simulator.env.BatchedPeriodizationEnv` (N athletes stepped together), on CUDA when present and
on the CPU otherwise (`agents.device.select_device`), from one root seed.

A run directory holds

- `run.json`: the agent, the resolved env and agent configs, the seeds, the device, the cohort's
  description, library versions, and, once finished, the training report (env steps, wall time,
  env-steps/s, final training scalars);
- `model/`: the final checkpoint (our SAC: `config.json` + `weights.pt`; SB3: `policy.pt` +
  `normalizer.pt` + `policy.json`), loaded back by `load_agent`: weights with
  `torch.load(weights_only=True)`, settings from JSON, never a pickle (agents.checkpoint_io);
- `checkpoints/step_<env steps>/`: the same, every `checkpoint_every` env steps (optional);
- `tb/`: TensorBoard event files (losses, temperature, entropy, Q1/Q2 gap, episode return).

`evaluate_on_cohort` is a quick check (one episode per athlete of a cohort, mean return and
performance gain) for tests and training reports; the evaluation protocol of the project is
`analysis`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.device import describe_device, select_device
from agents.policy import N_FEATURES, Policy
from agents.runs import RUN_FORMAT, run_versions, stale_settings, write_json
from agents.sac import (
    DiscreteSAC,
    RunningNormalizer,
    SACConfig,
    TrainingReport,
    config_from_dict,
    train_sac,
)
from agents.sb3_agents import (
    ContinuousSACPolicy,
    CriticStateVecEnv,
    MaskablePPOPolicy,
    NormalizedVecEnv,
    PPOConfig,
    SB3SACConfig,
    load_sb3_policy,
    make_maskable_ppo,
    make_sb3_sac,
)
from physiology_model.errors import DataError
from physiology_model.jsonio import jsonable
from simulator.cohort import Cohort
from simulator.env import CRITIC_STATE_NAMES, BatchedPeriodizationEnv, EnvConfig

AGENTS: tuple[str, ...] = ("sac", "sac-continuous", "ppo")
_CONFIG_TYPES: dict[str, type] = {"sac": SACConfig, "sac-continuous": SB3SACConfig,
                                  "ppo": PPOConfig}
_ACTION_TYPES: dict[str, str] = {"sac": "discrete", "sac-continuous": "continuous",
                                 "ppo": "discrete"}


def _resolve_cohort(cohort: Cohort | str | Path) -> tuple[Cohort, dict[str, Any]]:
    if isinstance(cohort, Cohort):
        return cohort, {"n": cohort.n, "meta": cohort.meta}
    path = Path(cohort)
    if not path.is_file():
        raise ValueError(f"cohort file {path} does not exist")
    loaded = Cohort.load(path)
    return loaded, {"n": loaded.n, "path": str(path), "meta": loaded.meta}


def _seeds(seed: int) -> dict[str, int]:
    """Independent streams of the root seed (env, agent) by `SeedSequence.spawn`."""
    env_ss, agent_ss = np.random.SeedSequence(seed).spawn(2)
    return {"root": seed, "env": int(env_ss.generate_state(1)[0]),
            "agent": int(agent_ss.generate_state(1)[0])}


def _check_arguments(agent: str, steps: int, n_envs: int, agent_config: Any,
                     checkpoint_every: int | None, torch_threads: int | None) -> None:
    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {AGENTS}, got {agent!r}")
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if n_envs < 1:
        raise ValueError(f"n_envs must be ≥ 1, got {n_envs}")
    wanted = _CONFIG_TYPES[agent]
    if agent_config is not None and not isinstance(agent_config, wanted):
        raise ValueError(f"agent {agent!r} takes a {wanted.__name__}, got "
                         f"{type(agent_config).__name__}")
    if (isinstance(agent_config, SACConfig) and agent_config.hazard_margin is not None
            and not agent_config.warm_start):
        raise ValueError("hazard_margin guards a SAC warm-started from a distilled student "
                         "(its belief tracks the loads): set warm_start, or hazard_margin null")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be ≥ 1 env steps, got {checkpoint_every}")
    if torch_threads is not None and torch_threads < 1:
        raise ValueError(f"torch_threads must be ≥ 1, got {torch_threads}")


def run_settings(agent: str, steps: int, seed: int = 0, n_envs: int = 64,
                 env_config: EnvConfig | None = None,
                 agent_config: SACConfig | SB3SACConfig | PPOConfig | None = None
                 ) -> dict[str, Any]:
    """What decides a run's result, as `train` records it in `run.json` (JSON values): the
    agent, steps, lanes, seeds and the resolved env and agent configs. Two runs with equal
    settings on the same cohort and device are the same run (a finished one can be reused)."""
    env_cfg, agent_cfg = _resolved_configs(agent, env_config, agent_config)
    return jsonable({"agent": agent, "steps": steps, "n_envs": n_envs, "seeds": _seeds(seed),
                      "env_config": env_cfg, "agent_config": agent_cfg})


def _resolved_configs(agent: str, env_config: EnvConfig | None,
                      agent_config: SACConfig | SB3SACConfig | PPOConfig | None
                      ) -> tuple[EnvConfig, SACConfig | SB3SACConfig | PPOConfig]:
    """The env config with the agent's action type, and the agent config or its default."""
    env_cfg = replace(env_config or EnvConfig(), action_type=_ACTION_TYPES[agent])
    return env_cfg, agent_config or _CONFIG_TYPES[agent]()


def train(agent: str, cohort: Cohort | str | Path, steps: int, seed: int = 0,
          device: str = "auto", out_dir: str | Path = "runs", n_envs: int = 64, *,
          env_config: EnvConfig | None = None,
          agent_config: SACConfig | SB3SACConfig | PPOConfig | None = None,
          run_name: str | None = None, progress: bool = True,
          checkpoint_every: int | None = None, torch_threads: int | None = None,
          max_seconds: float | None = None,
          on_checkpoint: Callable[[int, Path], None] | None = None) -> Path:
    """Train one learner and return its run directory (module docstring).

    `agent` in `AGENTS`; `cohort` a `Cohort` or the path of a saved one (its athletes are the
    training athletes: lane i of episode e gets athlete (i + e·n_envs) mod n); `steps` env
    transitions in all (batched-env steps × `n_envs`); `device` `auto`/`cpu`/`cuda`;
    `out_dir/run_name` (default `<agent>-seed<seed>`) must not hold a run yet. `env_config`
    defaults to `EnvConfig()`; its `action_type` is set by the agent (continuous for
    `sac-continuous`). `agent_config` defaults to the learner's config class.
    `torch_threads` sets torch's CPU threads for the run (restored afterwards; on a loaded
    machine 1 can be much faster than several). `max_seconds` ends training early once that
    much wall time has passed (the run is saved as usual and its report says `time_limited`),
    so that a fixed time budget can be shared between runs. `on_checkpoint(env_steps,
    directory)` is called after each periodic checkpoint is saved (a tuner evaluates it there
    and may end the run by raising, e.g. `optuna.TrialPruned`; the run then stays `running`).
    """
    _check_arguments(agent, steps, n_envs, agent_config, checkpoint_every, torch_threads)
    torch_device = select_device(device)
    cohort_obj, cohort_desc = _resolve_cohort(cohort)
    run_dir = Path(out_dir) / (run_name or f"{agent}-seed{seed}")
    if (run_dir / "run.json").exists():
        raise ValueError(f"{run_dir} already holds a run; choose another run_name or out_dir")
    settings = run_settings(agent, steps, seed, n_envs, env_config, agent_config)
    env_cfg, agent_cfg = _resolved_configs(agent, env_config, agent_config)
    # a tested SAC's belief needs the cohort's world model: found before any file is written
    model_dir = (_model_dir(cohort_obj) if agent in ("sac", "sac-continuous")
                 and agent_cfg.tests_every and not getattr(agent_cfg, "warm_start", None)
                 else None)
    run_dir.mkdir(parents=True, exist_ok=True)
    seeds = settings["seeds"]
    record: dict[str, Any] = {
        "format": RUN_FORMAT, "status": "running", **settings, "device": str(torch_device),
        "device_name": describe_device(torch_device), "cohort": cohort_desc,
        "versions": run_versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": ("SB3 networks have no dropout; the seed's dropout 0.2 is in our SAC only"
                  if agent != "sac" else ""),
    }
    write_json(run_dir / "run.json", record)
    env = BatchedPeriodizationEnv(cohort_obj, n_envs, env_cfg, seed=seeds["env"])
    previous_threads = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    try:
        if agent == "sac":
            report = _train_discrete_sac(env, agent_cfg, steps, seeds["agent"], torch_device,
                                         run_dir, progress, checkpoint_every, max_seconds,
                                         on_checkpoint, model_dir=model_dir)
        else:
            report = _train_sb3(agent, env, agent_cfg, steps, seeds["agent"], torch_device,
                                run_dir, progress, checkpoint_every, max_seconds,
                                on_checkpoint, model_dir=model_dir)
    finally:
        torch.set_num_threads(previous_threads)
        env.close()
    record.update(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  report={"env_steps": report.env_steps, "gradient_steps": report.gradient_steps,
                          "wall_seconds": report.wall_seconds,
                          "env_steps_per_second": report.env_steps_per_second,
                          "time_limited": report.env_steps < steps,
                          "episode_returns": report.episode_returns,
                          "final_metrics": report.last_metrics})
    write_json(run_dir / "run.json", record)
    return run_dir


WARM_SAC = {"bc_weight": 1.0, "hazard_margin": 0.005}
"""The warm-started SAC's settings over `SACConfig`'s defaults (besides `warm_start`): a steady
behaviour-cloning term toward its student, the one variant of `benchmarks/sac_fixes.py
--warm-start` that kept the student's share of the oracle's gain (docs/results.md), and the
injury guard (`agents.distill.guarded_mask`) at 0.005: on the 1,000 validation athletes
(seed 6000), of 0.001, 0.003, 0.005 and 0.008 the largest margin whose injured days stayed
below the tested MPC's (upper 95 % bound < 0): injured days against it +0.09 without the
guard, −0.29, −0.20, −0.12 and +0.01 with them, ΔP −0.08, −0.31, −0.14, −0.12 and −0.12
(docs/results.md, "The injury guard")."""
STUDENT_ATHLETES = 256
"""Training athletes the recipe's student is distilled on (the shipped student's count)."""
KEEP_STUDENT_HINT = (" (a SAC run that stopped keeps its finished student: remove only its "
                     "run.json to train the SAC again from that student)")


def student_config(sac: SACConfig, **overrides: Any) -> Any:
    """The `agents.distill.DistillConfig` of the student a SAC of settings `sac` starts from:
    tested as the SAC is (`tests_every`, performance draws `test_draws`; none when the SAC is
    wearable-only), with the SAC's actor layout (hidden sizes, dropout), then `overrides`."""
    from agents.distill import DistillConfig

    tested = sac.tests_every > 0
    return DistillConfig(**{"tests_every": sac.tests_every,
                            "performance_draws": sac.test_draws if tested else 0,
                            "hidden_sizes": tuple(sac.hidden_sizes), "dropout": sac.dropout,
                            **overrides})


def train_warm_sac(cohort: Cohort | str | Path, steps: int, *, model: Any = None,
                   model_dir: str | None = None, seed: int = 0, out_dir: str | Path = "runs",
                   run_name: str = "sac-warm", sac_config: SACConfig | None = None,
                   student: Any = None, student_athletes: int = STUDENT_ATHLETES,
                   env_config: EnvConfig | None = None,
                   say: Callable[[str], None] | None = None, **train_kwargs: Any) -> Path:
    """The recipe that reached issue 20's target, in one call (`periodize train --agent sac`'s
    default): distil the MPC planner of the world model into a student on the cohort's first
    `student_athletes` athletes (`agents.distill.distill`, settings `student` or
    `student_config(sac_config)`), saved as the run `out_dir/run_name/student`; then train our
    SAC warm-started from it (`sac_config`, default `SACConfig(**WARM_SAC)`, its `warm_start`
    set to the student) for `steps` on the whole cohort, as the run `out_dir/run_name`.
    `model`/`model_dir`: the world model the planner plans with (default: the cohort's own,
    `load_world_model`). `say` hears the distillation's progress (`distill`'s `progress`);
    `train_kwargs` go to `train`. A finished student of the same
    settings and athletes already in that folder (a run stopped during the SAC's training) is
    reused; the SAC's checkpoint does not need the student's folder to load."""
    from agents.distill import distill
    from agents.sac_tested import load_world_model
    from physiology_model.model.world_model import SHIPPED

    cohort_obj, _ = _resolve_cohort(cohort)
    sac_config = sac_config or SACConfig(**WARM_SAC)
    student = student or student_config(sac_config)
    if student_athletes < 1:
        raise ValueError(f"student_athletes must be at least 1, got {student_athletes}")
    run_dir = Path(out_dir) / run_name
    if (run_dir / "run.json").exists():
        keep = KEEP_STUDENT_HINT if (run_dir / "student" / "run.json").exists() else ""
        raise ValueError(f"{run_dir} already holds a run; choose another run_name or "
                         f"out_dir{keep}")
    if model is None:
        # the student's checkpoint names its world model: a planner distilled without one
        # could not be loaded again without the caller's (DistilledPlanner.load)
        model_dir = model_dir or _model_dir(cohort_obj) or SHIPPED
        model = load_world_model(model_dir)
    if model_dir is not None and _named_model_dir(model_dir) is None:
        model_dir = SHIPPED  # by its name, found wherever the package is installed
    first = cohort_obj.subset(np.arange(min(student_athletes, cohort_obj.n)))
    student_dir = run_dir / "student"
    if not _finished_student(student_dir, first, seed, student, env_config, model_dir):
        distill(model, first, seed=seed, out_dir=run_dir, run_name="student", config=student,
                env_config=env_config, model_dir=model_dir, progress=say)
    return train("sac", cohort, steps, seed=seed, out_dir=out_dir, run_name=run_name,
                 agent_config=replace(sac_config, warm_start=str(student_dir)),
                 env_config=env_config, **train_kwargs)


def _finished_student(run: Path, cohort: Cohort, seed: int, config: Any,
                      env_config: EnvConfig | None, model_dir: str | None) -> bool:
    """Whether `run` holds a finished distillation of these settings on these athletes, by
    the planner of the world model in `model_dir`."""
    from agents.distill import distill_settings
    from physiology_model.jsonio import jsonable

    wanted = {**distill_settings(cohort.n, seed, config, env_config),
              "cohort": jsonable({"n": cohort.n, "meta": cohort.meta}), "model_dir": model_dir}
    return stale_settings(run, wanted) == []


def _train_discrete_sac(env: BatchedPeriodizationEnv, config: SACConfig, steps: int, seed: int,
                        device: torch.device, run_dir: Path, progress: bool,
                        checkpoint_every: int | None, max_seconds: float | None,
                        on_checkpoint: Callable[[int, Path], None] | None = None, *,
                        model_dir: str | None = None) -> TrainingReport:
    """Our SAC; with `config.tests_every` the tested athlete (`agents.sac_tested`): the env's
    athletes are tested, the actor reads the tests' summary and checkpoints are `TestedSAC`s
    (their belief draws the physiology from the world model of `model_dir`, None: shipped);
    with `config.warm_start` the SAC starts from a distilled student (`_train_warm_sac`)."""
    n_latent = len(CRITIC_STATE_NAMES) if config.asymmetric_critic else 0
    n_features = N_FEATURES
    train_env: Any = env
    deployed = None
    if config.warm_start:
        return _train_warm_sac(env, config, steps, seed, device, run_dir, progress,
                               checkpoint_every, max_seconds, on_checkpoint, n_latent)
    if config.tests_every:
        train_env, deployed = _tested_training(env, config, seed, model_dir)
        n_features = int(train_env.observation_space.shape[0])
    agent = DiscreteSAC(config, n_features=n_features, n_latent=n_latent, device=device,
                        seed=seed)
    saver = agent if deployed is None else deployed(agent)
    return _run_sac(agent, train_env, saver, steps, seed, run_dir, progress, checkpoint_every,
                    max_seconds, on_checkpoint)


def _run_sac(agent: DiscreteSAC, train_env: Any, saver: Any, steps: int, seed: int,
             run_dir: Path, progress: bool, checkpoint_every: int | None,
             max_seconds: float | None,
             on_checkpoint: Callable[[int, Path], None] | None) -> TrainingReport:
    """`train_sac` with periodic checkpoints and TensorBoard; `saver.save` writes them."""
    from torch.utils.tensorboard import SummaryWriter

    last_saved = [0]

    def save_checkpoint(env_steps: int) -> None:
        if checkpoint_every is not None and env_steps - last_saved[0] >= checkpoint_every:
            where = run_dir / "checkpoints" / f"step_{env_steps:010d}"
            saver.save(where)
            last_saved[0] = env_steps
            if on_checkpoint is not None:
                on_checkpoint(env_steps, where)

    writer = SummaryWriter(str(run_dir / "tb"))
    try:
        report = train_sac(agent, train_env, steps, seed=seed, writer=writer,
                           progress=progress, on_episode_end=save_checkpoint,
                           max_seconds=max_seconds)
    finally:
        writer.close()
    saver.save(run_dir / "model")
    return report


def _train_warm_sac(env: BatchedPeriodizationEnv, config: SACConfig, steps: int, seed: int,
                    device: torch.device, run_dir: Path, progress: bool,
                    checkpoint_every: int | None, max_seconds: float | None,
                    on_checkpoint: Callable[[int, Path], None] | None,
                    n_latent: int) -> TrainingReport:
    """Our SAC warm-started from the distilled student `config.warm_start`
    (`agents.sac_warm`): the training env computes the student's belief, the actor starts as
    the student, checkpoints are `DistilledPlanner`s with this SAC's network."""
    from agents.distill import DistilledPlanner
    from agents.sac_tested import TestedTrainingEnv, TestSettings
    from agents.sac_warm import load_student, warm_start

    source = config.warm_start
    student = load_student(source)
    belief = student.config
    if bool(belief.performance_draws) != bool(config.tests_every):
        raise ValueError(
            f"warm_start {source}: the student was distilled "
            f"{'with' if belief.performance_draws else 'without'} performance tests; set "
            f"tests_every {'> 0' if belief.performance_draws else 'to 0'}")
    tests = None
    if config.tests_every:
        if config.test_draws != belief.performance_draws:
            raise ValueError(f"warm_start {source}: the student's belief draws "
                             f"{belief.performance_draws} performance responses, test_draws "
                             f"is {config.test_draws}: set them equal")
        tests = TestSettings(every=config.tests_every, session=config.test_session,
                             draws=belief.performance_draws, cv=belief.performance_test_cv)
    model = student.belief.model
    train_env = TestedTrainingEnv(env, model, tests, seed=seed, belief_config=belief,
                                  all_features=True)
    agent = DiscreteSAC(config, n_features=student.network.n_features, n_latent=n_latent,
                        device=device, seed=seed)
    warm_start(agent, student.network, source)
    policy = DistilledPlanner(model, agent, belief, seed, model_dir=student.model_dir)
    return _run_sac(agent, train_env, policy, steps, seed, run_dir, progress, checkpoint_every,
                    max_seconds, on_checkpoint)


def _tested_training(env: BatchedPeriodizationEnv, config: Any, seed: int,
                     model_dir: str | None) -> tuple[Any, Callable[[Any], Any]]:
    """The tested athlete of a learner's `config` (`tests_every`, `test_session`,
    `test_draws`; `agents.sac_tested`): the training env whose athletes are tested, and what
    turns the trained actor into the deployed `TestedSAC` (its belief draws from the world
    model of `model_dir`, None: shipped)."""
    from agents.sac_tested import TestedSAC, TestedTrainingEnv, TestSettings, load_world_model

    tests = TestSettings(every=config.tests_every, session=config.test_session,
                         draws=config.test_draws)
    world = load_world_model(model_dir)

    def deployed(actor: Any) -> Any:
        return TestedSAC(actor, world, tests, seed=seed, model_dir=model_dir,
                         env_config=env.config)

    return TestedTrainingEnv(env, world, tests, seed=seed), deployed


def _model_dir(cohort: Cohort) -> str | None:
    """The world model a cohort was drawn from, as a tested SAC's checkpoint names it: None
    for the shipped model (found wherever the package is), else the directory's absolute
    path. A directory that is not found here is an error (a cohort drawn from another model
    must not be planned for with the shipped one), except the shipped model's own relative
    name `models/shipped` from another working directory."""
    return _named_model_dir(cohort.meta.get("model_dir") if isinstance(cohort.meta, dict)
                            else None)


def _named_model_dir(named: str | None) -> str | None:
    """`_model_dir` of the directory `named` (None, `shipped` or a path)."""
    from physiology_model.model.world_model import SHIPPED, resolve_model_dir, shipped_model_dir

    if not named:
        return None
    path = resolve_model_dir(named)
    if not path.exists():
        if not path.is_absolute() and path == Path("models") / SHIPPED:
            return None
        raise ValueError(f"the cohort was drawn from the world model {named!r}, which is not "
                         f"found from {Path.cwd()}: pass --model DIR")
    try:
        if path.resolve() == Path(shipped_model_dir()).resolve():
            return None
    except OSError:
        return None
    return str(path.resolve())


def _train_sb3(agent: str, env: BatchedPeriodizationEnv, config: SB3SACConfig | PPOConfig,
               steps: int, seed: int, device: torch.device, run_dir: Path, progress: bool,
               checkpoint_every: int | None, max_seconds: float | None,
               on_checkpoint: Callable[[int, Path], None] | None = None, *,
               model_dir: str | None = None) -> TrainingReport:
    """SB3's learners; with `config.tests_every` (continuous SAC) the tested athlete: the
    env's athletes are tested, the actor reads the tests' summary and checkpoints are
    `TestedSAC`s of the SB3 adapter (their belief uses the world model of `model_dir`)."""
    from stable_baselines3.common.callbacks import BaseCallback

    observed: Any = env
    wrap = None
    if getattr(config, "tests_every", 0):
        observed, wrap = _tested_training(env, config, seed, model_dir)
    n_observed = int(observed.observation_space.shape[0])
    normalizer = RunningNormalizer(n_observed, clip=config.obs_clip)
    venv: Any = NormalizedVecEnv(observed, normalizer)
    if getattr(config, "asymmetric_critic", False):  # SB3 SAC: the critics read the latents
        venv = CriticStateVecEnv(venv, env, RunningNormalizer(len(CRITIC_STATE_NAMES),
                                                              clip=config.obs_clip))
    tb = str(run_dir / "tb")
    if agent == "ppo":
        model = make_maskable_ppo(venv, config, seed=seed, device=device, tensorboard_log=tb)
        adapter_cls: type = MaskablePPOPolicy
    else:
        model = make_sb3_sac(venv, config, seed=seed, device=device, tensorboard_log=tb,
                             n_observed=n_observed)
        adapter_cls = ContinuousSACPolicy

    def save(where: Path) -> None:
        adapter = adapter_cls(model, normalizer, agent, kind=agent, config=config)
        (adapter if wrap is None else wrap(adapter)).save(where)
    returns: list[float] = []

    class _Track(BaseCallback):
        """Mean return of each finished batch of episodes, and periodic checkpoints."""

        def __init__(self) -> None:
            super().__init__()
            self.last_saved = 0

        def _on_step(self) -> bool:
            infos = self.locals.get("infos", [])
            finished = [i["episode"]["r"] for i in infos if "episode" in i]
            if finished:
                returns.append(float(np.mean(finished)))
                self.logger.record("episode/return", returns[-1])
            if (checkpoint_every is not None
                    and self.num_timesteps - self.last_saved >= checkpoint_every):
                self.last_saved = self.num_timesteps
                where = run_dir / "checkpoints" / f"step_{self.num_timesteps:010d}"
                save(where)
                if on_checkpoint is not None:
                    on_checkpoint(self.num_timesteps, where)
            return max_seconds is None or time.perf_counter() - started < max_seconds

    started = time.perf_counter()
    model.learn(total_timesteps=steps, progress_bar=progress, tb_log_name=agent,
                callback=_Track())
    wall = time.perf_counter() - started
    save(run_dir / "model")
    gradient_steps = int(getattr(model, "_n_updates", 0))
    return TrainingReport(env_steps=int(model.num_timesteps), gradient_steps=gradient_steps,
                          wall_seconds=wall, episode_returns=returns)


def agent_config(agent: str, overrides: dict[str, Any] | None = None
                 ) -> SACConfig | SB3SACConfig | PPOConfig:
    """The learner's default config with `overrides` (field → value, as JSON gives them);
    an unknown field or an invalid value raises `ValueError` naming it."""
    if agent not in _CONFIG_TYPES:
        raise ValueError(f"unknown agent {agent!r}; expected one of {AGENTS}")
    cls = _CONFIG_TYPES[agent]
    return config_from_dict(cls, {**asdict(cls()), **(overrides or {})})


def load_agent(run_dir: str | Path, device: str = "cpu", model: Any = None) -> Policy:
    """The trained policy of a run directory written by `train` (final checkpoint), on
    `device` (`cpu` by default: inference is cheap). Our SAC comes back as `DiscreteSAC`, SB3
    learners as `MaskablePPOPolicy` / `ContinuousSACPolicy` (whose `act` returns Box actions,
    `action_type = "continuous"`), the distilled planner as `agents.distill.DistilledPlanner`
    (it needs the world model: `model`, or the one its checkpoint names)."""
    d = Path(run_dir)
    meta_path = d / "run.json"
    if not meta_path.is_file():
        raise DataError(d, "not a training run directory (no run.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(meta_path, f"unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise DataError(meta_path, f"not a {RUN_FORMAT} file")
    if meta.get("status") != "finished":
        raise DataError(d, f"the run did not finish (status {meta.get('status')!r}); load one "
                           f"of its checkpoints/ instead")
    try:
        return load_checkpoint(meta.get("agent"), d / "model", device, model=model)
    except DataError:
        raise  # names the checkpoint's file and field already
    except (ValueError, OSError, KeyError, TypeError, RuntimeError) as exc:
        # the checkpoint loaders name the file; a DataError from them passes through as it is
        detail = f"{exc}" if not isinstance(exc, KeyError) else f"missing key {exc}"
        raise DataError(d, f"its final checkpoint cannot be loaded ({detail[:400]})") from None


def load_checkpoint(agent: str, directory: str | Path, device: str = "cpu",
                    model: Any = None) -> Policy:
    """The policy of one checkpoint directory of an `agent` run (`model/` or one of
    `checkpoints/step_*`), on `device`; `model` is the world model a distilled planner uses
    (default: the one its checkpoint names)."""
    torch_device = select_device(device)
    if agent == "sac":
        from agents.sac_tested import TestedSAC

        if (Path(directory) / "belief.json").is_file():  # warm-started from a student
            from agents.distill import DistilledPlanner

            return DistilledPlanner.load(directory, model=model, device=torch_device)
        if TestedSAC.is_checkpoint(directory):
            return TestedSAC.load(directory, model=model, device=torch_device)
        return DiscreteSAC.load(directory, device=torch_device)
    if agent == "mpc-distilled":
        from agents.distill import DistilledPlanner  # distill imports this module

        return DistilledPlanner.load(directory, model=model, device=torch_device)
    if agent in ("sac-continuous", "ppo"):
        from agents.sac_tested import TestedSAC

        if agent == "sac-continuous" and TestedSAC.is_checkpoint(directory):
            return TestedSAC.load(directory, model=model, device=torch_device)
        return load_sb3_policy(directory, device=torch_device)
    raise ValueError(f"{directory}: unknown agent {agent!r}")


def evaluate_on_cohort(policy: Policy, cohort: Cohort, *, env_config: EnvConfig | None = None,
                       seed: int = 0) -> dict[str, float]:
    """One episode per athlete of `cohort` (all stepped together), means over athletes:
    `return`, `delta_performance` (% of baseline, end minus start), `penalty`, `injured_days`,
    `attempted_violations`, the share of each action, and, when the policy has
    `diagnostics(obs, mask)`, the mean policy entropy and Q1/Q2 gap over the days. The env's
    action type follows `policy.action_type` (default discrete)."""
    action_type = getattr(policy, "action_type", "discrete")
    cfg = replace(env_config or EnvConfig(), action_type=action_type)
    env = BatchedPeriodizationEnv(cohort, cohort.n, cfg, seed=seed)
    obs = env.reset()
    policy.reset(seed)
    entropy, gap = [], []
    for _ in range(cfg.episode_days):
        mask = env.action_masks()
        if callable(getattr(policy, "diagnostics", None)):
            e, g = policy.diagnostics(obs, mask)
            entropy.append(float(np.mean(e)))
            gap.append(float(np.nanmean(g)) if np.isfinite(g).any() else float("nan"))
        obs, _, dones, _ = env.step(policy.act(obs, mask))
    if env.last_summary is None or not np.all(dones):
        raise ValueError("the episode did not end after episode_days steps")
    summary = env.last_summary
    keys = ["return", "delta_performance", "penalty", "injured_days", "attempted_violations"]
    keys += [k for k in summary if k.startswith("share_")]
    out = {k: float(np.mean(summary[k])) for k in keys}
    out["episodes"] = float(cohort.n)
    if entropy:
        out["policy_entropy"] = float(np.mean(entropy))
        out["q_gap"] = float(np.mean(gap))
    return out
