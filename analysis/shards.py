"""`periodize evaluate --workers K`: the evaluation cut into (policy, athlete shard) tasks.

The work of `analysis.benchmark.evaluate_policies` is one episode per policy over the whole
cohort. Here each policy's cohort is cut into shards of `shard_size` consecutive athletes
(0: one shard, the whole cohort) and every (policy, shard) pair is a task for
`analysis.parallel.run_tasks` (this process, local processes or Ray). A task names what it
needs (`PolicySpec`: the policies by name, the model and run directories, the seed) and the
worker rebuilds the policies from it; nothing loaded crosses a process boundary.

Same numbers whatever runs them. The simulator's random streams are keyed by lane (athlete
index), so an athlete meets the same illnesses, noise and missing mornings in any shard
(`run_policy(lane_offset=...)`). A policy's own randomness (the random baseline, the MPC's
and the oracle's sampling) comes from one generator per shard, seeded from the evaluation
seed and the shard's first athlete (`shard_seed`), as are the performance tests' noise. The
per-athlete results are therefore a function of the seed and the shard size, never of the
number of workers or of where they ran (tests/test_shards.py compares 1 and 2 workers). With
`shard_size=0` the one shard uses the evaluation seed itself, as `evaluate_policies` does: the
same numbers as the one-process evaluation, with the policies spread over the workers.
Deterministic policies (the rule baselines, trained SAC/PPO acting greedily) give the same
per-athlete results at any shard size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from analysis.benchmark import (
    PerformanceTesting,
    PolicyRun,
    policy_factories,
    run_policy,
    summarize,
)
from analysis.parallel import run_tasks, worker_cache
from physiology_model.model.world_model import WorldModel
from simulator.cohort import Cohort
from simulator.env import EnvConfig


@dataclass(frozen=True)
class PolicySpec:
    """The arguments of `analysis.benchmark.policy_factories`, as plain data."""

    names: tuple[str, ...]
    model_dir: str | None = None
    runs: tuple[str, ...] = ()
    bc_path: str | None = None
    """A saved bc policy (`BCPolicy.save`) for the `bc` baseline."""
    device: str = "cpu"
    seed: int = 0
    test_cv: float | None = None


@dataclass(frozen=True)
class ShardTask:
    spec: PolicySpec
    policy: str
    cohort_path: str
    start: int
    n: int
    config: EnvConfig
    seed: int
    policy_seed: int
    tests: PerformanceTesting | None


def shard_seed(seed: int, start: int) -> int:
    """The policy's (and the tests') seed in the shard that starts at athlete `start`."""
    return int(np.random.SeedSequence([seed, start]).generate_state(1)[0])


def build_factories(spec: PolicySpec) -> dict[str, Any]:
    """The policy factories a spec names (in this process; loads the model and the runs)."""

    model = None
    if spec.model_dir is not None:

        model = WorldModel.load(spec.model_dir)
    bc_policy = None
    if spec.bc_path is not None:
        from agents.bc import BCPolicy

        bc_policy = BCPolicy.load(spec.bc_path)
    return policy_factories(spec.names, model=model, bc_policy=bc_policy, runs=spec.runs,
                            device=spec.device, seed=spec.seed, test_cv=spec.test_cv)


def _run_shard(task: ShardTask) -> PolicyRun:
    """One policy on one shard (top-level: it runs in worker processes)."""

    factories = worker_cache(("factories", task.spec), lambda: build_factories(task.spec))
    cohort = worker_cache(("cohort", task.cohort_path), lambda: Cohort.load(task.cohort_path))
    return run_policy(task.policy, factories[task.policy], cohort, task.config, task.seed,
                      n=task.n, policy_seed=task.policy_seed, tests=task.tests,
                      lane_offset=task.start)


def merge_runs(parts: Sequence[PolicyRun]) -> PolicyRun:
    """The shards of one policy as one run over all their athletes (in shard order);
    `wall_s` is the sum of the shards' times."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    metrics = {k: np.concatenate([p.metrics[k] for p in parts]) for k in first.metrics}
    extra = {k: np.concatenate([p.extra[k] for p in parts], axis=1) for k in first.extra
             if all(k in p.extra for p in parts)}
    return PolicyRun(first.name, metrics,
                     *(np.concatenate([getattr(p, f) for p in parts], axis=1)
                       for f in ("recovery", "tsb", "actions", "performance")),
                     wall_s=float(sum(p.wall_s for p in parts)), extra=extra)


def shard_tasks(spec: PolicySpec, cohort_path: str, n_athletes: int, config: EnvConfig,
                seed: int, shard_size: int = 0, tests: PerformanceTesting | None = None
                ) -> list[ShardTask]:
    """Every (policy, shard) task, policies in `spec.names` order then runs (module
    docstring)."""
    if shard_size < 0:
        raise ValueError(f"--shard-size must be ≥ 0 (0: the whole cohort), got {shard_size}")
    size = n_athletes if shard_size == 0 else shard_size
    names = list(build_names(spec))
    tasks = []
    for name in names:
        for start in range(0, n_athletes, size):
            one = shard_size == 0
            tasks.append(ShardTask(
                spec, name, cohort_path, start, min(size, n_athletes - start), config, seed,
                seed if one else shard_seed(seed, start),
                None if tests is None else (tests if one else replace(
                    tests, seed=shard_seed(tests.seed, start)))))
    return tasks


def build_names(spec: PolicySpec) -> list[str]:
    """The names the policies will have (`policy_factories`: a run is named by its agent,
    or by its directory when two runs share one)."""

    return list(worker_cache(("factories", spec), lambda: build_factories(spec)))


def evaluate_sharded(spec: PolicySpec, cohort_path: str, config: EnvConfig | None = None,
                     seed: int = 0, *, shard_size: int = 0, workers: int = 1,
                     ray_address: str | None = None,
                     tests: PerformanceTesting | None = None, reference: str | None = None,
                     progress: bool = True, say: Callable[[str], None] | None = None
                     ) -> tuple[dict[str, PolicyRun], list[dict[str, Any]]]:
    """`evaluate_policies` over (policy, shard) tasks (module docstring): the runs, merged
    per policy, and the summary records."""

    cohort = Cohort.load(cohort_path)
    config = EnvConfig() if config is None else config
    tasks = shard_tasks(spec, cohort_path, cohort.n, config, seed, shard_size, tests)
    parts = run_tasks(_run_shard, tasks, workers=workers, ray_address=ray_address,
                      desc="policy × athletes", weights=[t.n for t in tasks],
                      progress=progress)
    runs: dict[str, PolicyRun] = {}
    for name in dict.fromkeys(t.policy for t in tasks):
        runs[name] = merge_runs([p for t, p in zip(tasks, parts) if t.policy == name])
        if say:
            m = runs[name].metrics
            say(f"{name}: ΔP {np.mean(m['delta_performance']):+.2f} "
                f"return {np.mean(m['return']):+.2f} ({runs[name].wall_s:.0f} s in shards)")
    return runs, summarize(runs, reference)
