"""Latency of the MPC planner's daily recommendation on CPU, and (with --evaluate) the planners
against the baselines on a held-out synthetic cohort.

Latency: one athlete (a `Simulation` with one lane) planned for `--days` mornings, each
recommendation timed, for `--athletes` different athletes with their mornings pooled; and a
batch of `--batch` athletes for a few mornings, time per athlete. The first morning of an
episode (a cold start with more CEM iterations) and the mornings the planner re-personalises
its posterior (`MPCConfig.personalize_days`) are reported separately: the median is over the
ordinary warm-started mornings.

Evaluation: a cohort of `--evaluate` athletes drawn with `--cohort-seed` (never used in
training: the agents' training cohorts use other seeds) runs one 90-day episode per policy, in
one batched `Simulation` each, same athletes and same random streams for every policy: the
baselines of `agents.baselines`, the MPC planner and the oracle. Reported: mean and SD over
athletes of the return and of ΔP (`episode_summary()["delta_performance"]`, % of baseline), the
penalty, injured days, mean load, wall time per policy, and the MPC's share of the oracle.

With `--distilled RUN_DIR` the distilled planner (`agents.distill`) is timed the same way: its
network is fast, but it keeps the planner's belief, so it personalises on the same mornings.
With `--performance-draws D` the planner that weighs D draws of the performance response (the
planner of an athlete with performance tests: `periodize plan --tests`, `MPCConfig.
performance_draws`) is timed too, as `mpc-perf<D>`.

Writes a JSON list of records {impl, device, metric, value} (plus `n` where a record is a mean
over athletes).

    .venv/bin/python benchmarks/mpc_latency.py [--model models/shipped] [--days 60]
        [--athletes 5] [--batch 200] [--evaluate 200] [--cohort-seed 1000] [--distilled RUN_DIR]
        [--performance-draws 1024]
        [--out benchmarks/results/mpc_latency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import FixedPeriodizationPolicy, HRVGuidedPolicy, RandomPolicy, SeedRulePolicy
from agents.mpc import MPCConfig, MPCPlanner, OraclePlanner
from analysis.benchmark import PerformanceTesting, run_policy, share_of_oracle_gain
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.env import EnvConfig, Simulation


def _cpu_name() -> str:
    """The CPU model (Linux /proc/cpuinfo, else platform) and the number of logical cores."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu ({name}, {os.cpu_count()} logical cores)"


DEVICE = _cpu_name()
SIM_SEED = 1000


def _record(impl: str, metric: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"impl": impl, "device": DEVICE, "metric": metric, "value": float(value), **extra}


def time_recommendations(model: WorldModel, n_athletes: int, days: int,
                         cohort_seed: int, policy: Any = None,
                         repeats: int = 1) -> dict[str, float]:
    """Seconds per daily recommendation of `policy` (default `MPCPlanner`; any policy with an
    `MPCConfig` as `config`, e.g. the distilled planner) for `n_athletes` athletes: the cold
    start, the median and 90th percentile of the warm mornings, and the mornings with a
    re-personalisation (median, 90th percentile and slowest; NaN when none fell within `days`).
    With `repeats` > 1 the episode is timed for that many different cohorts of `n_athletes`
    (seeds `cohort_seed`, +1, ...) and the mornings of all of them are pooled: one athlete
    has only four personalisation mornings, too few for a percentile on a noisy machine."""
    warm, personalised, cold = [], [], []
    for r in range(repeats):
        cohort = generate_cohort(model, n_athletes, seed=cohort_seed + r)
        sim = Simulation(cohort, n_athletes, EnvConfig())
        obs = sim.reset(seed=SIM_SEED)
        planner = MPCPlanner(model, MPCConfig(), seed=0) if policy is None else policy
        planner.reset(0)
        for day in range(days):
            t0 = time.perf_counter()
            action = planner.act(obs, sim.mask)
            elapsed = time.perf_counter() - t0
            if day == 0:
                cold.append(elapsed)
            elif day in planner.config.personalize_days:
                personalised.append(elapsed)
            else:
                warm.append(elapsed)
            obs, _, _ = sim.step(action)
    nan = float("nan")
    return {"cold_s": float(np.median(cold)), "median_s": float(np.median(warm)),
            "p90_s": float(np.percentile(warm, 90)),
            "personalize_s": float(np.median(personalised)) if personalised else nan,
            "personalize_p90_s": float(np.percentile(personalised, 90)) if personalised
            else nan,
            "personalize_max_s": max(personalised) if personalised else nan}


TEST_SEED = 77
"""The stream of the performance tests' noise (the same for every policy)."""


def run_episode(policy_factory: Any, cohort: Any, n: int, tests_every: int = 0,
                test_cv: float = 0.0, test_session: int | None = None
                ) -> tuple[dict[str, np.ndarray], float]:
    """One episode of the first `n` athletes under one policy → (episode_summary, wall
    seconds): `analysis.benchmark.run_policy` with the MPC benchmarks' seeds (simulator
    `SIM_SEED`, policy 0, tests `TEST_SEED`). With `tests_every` > 0 a policy that reads tests
    is handed one every that many mornings at `test_cv`, free or as the day's session
    `test_session` (`analysis.benchmark.PerformanceTesting`)."""
    tests = (PerformanceTesting(tests_every, test_cv, test_session, TEST_SEED)
             if tests_every else None)
    run = run_policy("episode", lambda sim: None if sim is None else policy_factory(sim),
                     cohort, EnvConfig(), SIM_SEED, n=n, policy_seed=0, tests=tests)
    return run.metrics, run.wall_s


def evaluate(model: WorldModel, n: int, cohort_seed: int) -> list[dict[str, Any]]:
    """The policies on a held-out cohort (module docstring) → records."""
    cohort = generate_cohort(model, n, seed=cohort_seed)
    factories = {
        "random": lambda sim: RandomPolicy(),
        "seed_rule": lambda sim: SeedRulePolicy(),
        "hrv_guided": lambda sim: HRVGuidedPolicy(),
        "fixed_periodization": lambda sim: FixedPeriodizationPolicy(),
        "mpc": lambda sim: MPCPlanner(model, MPCConfig(), seed=0),
        "oracle": lambda sim: OraclePlanner(sim, seed=0),
    }
    records, summaries = [], {}
    for name, factory in factories.items():
        summary, wall = run_episode(factory, cohort, n)
        summaries[name] = summary
        for metric in ("return", "delta_performance", "penalty", "injured_days",
                       "mean_load_trimp"):
            values = summary[metric]
            records.append(_record(name, f"{metric}_mean", values.mean(), n=n))
            records.append(_record(name, f"{metric}_sd", values.std(ddof=1), n=n))
        records.append(_record(name, "episode_wall_s", wall, n=n))
        print(f"{name:20s} return {summary['return'].mean():7.3f} ± "
              f"{summary['return'].std(ddof=1):.3f}  ΔP {summary['delta_performance'].mean():6.3f}"
              f" ± {summary['delta_performance'].std(ddof=1):.3f}  {wall:6.1f} s", flush=True)
    baselines = ("random", "seed_rule", "hrv_guided", "fixed_periodization")
    mean = {k: {m: float(v[m].mean()) for m in ("return", "delta_performance")}
            for k, v in summaries.items()}
    for metric in ("return", "delta_performance"):
        best = max(baselines, key=lambda b: mean[b][metric])
        share = share_of_oracle_gain(summaries["mpc"][metric], summaries["random"][metric],
                                     summaries["oracle"][metric])
        records += [
            _record("mpc", f"{metric}_pct_of_oracle_gain_over_random",
                    share["pct"] if share else float("nan"), n=n),
            _record("mpc", f"{metric}_minus_best_baseline", mean["mpc"][metric]
                    - mean[best][metric], n=n, best_baseline=best),
            _record("mpc", f"{metric}_paired_win_rate_vs_best_baseline",
                    float(np.mean(summaries["mpc"][metric] > summaries[best][metric])), n=n,
                    best_baseline=best),
        ]
    records.append(_record("mpc", "delta_performance_pct_of_oracle",
                           100.0 * mean["mpc"]["delta_performance"]
                           / mean["oracle"]["delta_performance"], n=n))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/shipped"))
    parser.add_argument("--days", type=int, default=60,
                        help="mornings timed for the one-athlete latency (60 covers every "
                             "re-personalisation morning: 7, 14, 28 and 56)")
    parser.add_argument("--athletes", type=int, default=5,
                        help="one-athlete episodes timed (each a different athlete); their "
                             "mornings are pooled")
    parser.add_argument("--batch", type=int, default=200, help="athletes in the batch timing")
    parser.add_argument("--batch-days", type=int, default=5)
    parser.add_argument("--evaluate", type=int, default=0,
                        help="athletes of the held-out cohort (0: latency only)")
    parser.add_argument("--cohort-seed", type=int, default=1000)
    parser.add_argument("--distilled", type=Path, default=None,
                        help="a distilled planner's run directory: time it the same way")
    parser.add_argument("--performance-draws", type=int, default=0,
                        help="also time the planner with this many performance draws")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/mpc_latency.json"))
    args = parser.parse_args(argv)
    if args.days < 2 or args.batch < 1 or args.batch_days < 2 or args.athletes < 1:
        parser.error("--days and --batch-days must be ≥ 2, --batch and --athletes ≥ 1")
    t_start = time.perf_counter()
    model = WorldModel.load(args.model)
    policies = {"mpc": None}  # None: time_recommendations builds the planner
    if args.distilled is not None:
        from agents.training import load_agent

        policies["mpc-distilled"] = load_agent(args.distilled, model=model)
    if args.performance_draws > 0:
        policies[f"mpc-perf{args.performance_draws}"] = MPCPlanner(
            model, MPCConfig(performance_draws=args.performance_draws), seed=0)
    timed = {impl: (time_recommendations(model, 1, args.days, args.cohort_seed, policy,
                                         repeats=args.athletes),
                    time_recommendations(model, args.batch, args.batch_days, args.cohort_seed,
                                         policy))
             for impl, policy in policies.items()}
    records = []
    for impl, (one, batch) in timed.items():
        records += [
            _record(impl, "latency_ms_median_one_athlete", 1e3 * one["median_s"]),
            _record(impl, "latency_ms_p90_one_athlete", 1e3 * one["p90_s"]),
            _record(impl, "latency_ms_cold_start_one_athlete", 1e3 * one["cold_s"]),
            _record(impl, "latency_ms_personalize_day_one_athlete", 1e3 * one["personalize_s"]),
            _record(impl, "latency_ms_personalize_day_p90_one_athlete",
                    1e3 * one["personalize_p90_s"]),
            _record(impl, "latency_ms_personalize_day_max_one_athlete",
                    1e3 * one["personalize_max_s"]),
            _record(impl, f"latency_ms_median_per_athlete_batch_{args.batch}",
                    1e3 * batch["median_s"] / args.batch),
        ]
    print(json.dumps(records, indent=1, ensure_ascii=False))
    if args.evaluate:
        records += evaluate(model, args.evaluate, args.cohort_seed)
    records.append(_record("all", "benchmark_wall_s", time.perf_counter() - t_start,
                           command="python " + " ".join(sys.argv)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
