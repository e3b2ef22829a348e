"""Every policy on the same held-out simulated athletes, with the seed's metrics (DESIGN §9).

Protocol. One cohort (its seed never used in training), one `Simulation` lane per athlete, one
90-day episode per policy with the same episode seed: the counter-based random streams of the
simulator make every policy meet exactly the same athletes, noise, illnesses and missing
mornings, so differences between policies are paired differences (Wilcoxon signed-rank over
athletes, seed §6.4).

Metrics per athlete (from `Simulation.episode_summary`): episode return; fitness gain as the
change of latent performance ΔP (% of baseline) and of CTL (TRIMP/day); % of mornings with
recovery > 60 %; HRV-crash mornings (ln HRV below baseline − 2 SD); risky mornings (any hard rule
fired); the action shares and the largest one (realism: no action above 60 % of days);
attempted and executed constraint violations; illness/injury onsets; the overtraining score
(mean per day, 0-3); and, for policies that expose `diagnostics(obs, mask)` (SAC), the mean
policy entropy and the mean |Q1 − Q2| gap.

`pct_of_oracle` of a metric = 100 · (policy − random) / (oracle − random), on means: the share
of what the oracle adds over random choice that the policy adds. It is reported for ΔP, ΔCTL and
the return, only when the oracle ran and beats random on that metric, with a 95 % bootstrap
interval over the athletes (`pct_of_oracle_ci95`, `share_of_oracle_gain`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from agents.baselines import FixedPeriodizationPolicy, HRVGuidedPolicy, RandomPolicy, SeedRulePolicy
from agents.mpc import MPCConfig, MPCPlanner, OraclePlanner
from agents.policy import reads_performance_tests
from agents.recommend import TEST_DRAWS
from physiology_model.data.table import ACTIONS, atomic_write
from simulator.cohort import Cohort
from simulator.env import EnvConfig, Simulation
from simulator.observation import FEATURE_INDEX

BASELINES: tuple[str, ...] = ("random", "seed_rule", "hrv_guided", "fixed_periodization", "bc")
"""Names of the baseline policies (agents/baselines.py, agents/bc.py)."""

HEADLINE: tuple[str, ...] = ("delta_performance", "delta_ctl", "return", "pct_recovery_gt60",
                             "hrv_crash_days", "risky_days", "injury_onsets",
                             "overtraining_score", "attempted_violations",
                             "executed_violations", "max_action_share")
"""Metrics shown first in the report."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "delta_performance": True, "delta_ctl": True, "return": True, "pct_recovery_gt60": True,
    "hrv_crash_days": False, "risky_days": False, "injury_onsets": False,
    "overtraining_score": False, "attempted_violations": False, "executed_violations": False,
}

ORACLE_METRICS: tuple[str, ...] = ("delta_performance", "delta_ctl", "return")


@dataclass
class PolicyRun:
    """One policy's episode on the cohort: per-athlete metrics and a daily log."""

    name: str
    metrics: dict[str, np.ndarray]
    recovery: np.ndarray
    """(days, N) recovery % seen each morning (NaN missing)."""
    tsb: np.ndarray
    """(days, N) training stress balance (CTL − ATL, TRIMP/day) each morning."""
    actions: np.ndarray
    """(days, N) executed actions."""
    performance: np.ndarray
    """(days + 1, N) latent performance each morning."""
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)


PolicyFactory = Callable[[Simulation], Any]
"""Builds a policy for a simulation (the oracle needs the simulation; others ignore it)."""


@dataclass(frozen=True)
class PerformanceTesting:
    """Performance tests in an episode (`run_policy`): a test every `every` mornings from the
    first (`Simulation.performance_test` at coefficient of variation `cv`, from a generator
    seeded `seed`), handed to the policies that read tests (`agents.policy.
    reads_performance_tests`) before they act. The test is free when `session` is None;
    otherwise it is that day's session (an action index, e.g. tempo_threshold for a 5-km
    time trial): an athlete does it instead of what the policy chose, on the first morning
    from the due one that the rules allow that session, and the policy is told what was done
    (`record_executed`)."""

    every: int
    cv: float = MPCConfig.performance_test_cv
    session: int | None = None
    seed: int = 77

    def __post_init__(self) -> None:
        if self.every < 1 or not 0.0 <= self.cv < 1.0:
            raise ValueError(f"tests need every ≥ 1 and cv in [0, 1), got {self.every}, "
                             f"{self.cv}")
        if self.session is not None and not 0 <= self.session < len(ACTIONS):
            raise ValueError(f"session must be an action index, got {self.session}")


def run_policy(name: str, factory: PolicyFactory, cohort: Cohort, config: EnvConfig,
               seed: int, progress: Callable[[str], None] | None = None, *,
               n: int | None = None, policy_seed: int | None = None,
               tests: PerformanceTesting | None = None, lane_offset: int = 0) -> PolicyRun:
    """Run one episode of the policy for `n` athletes of `cohort` from athlete `lane_offset`
    (default all, one lane each; the simulator's random streams are keyed by lane, so an
    athlete meets the same noise in any shard: `analysis.shards`), the simulator seeded
    `seed` and the policy `policy_seed` (default `seed`);
    with `tests`, a policy that reads them is handed performance tests (`PerformanceTesting`;
    `extra["tested"]`, (days, N) bool, says who was tested on which morning)."""
    start = time.perf_counter()
    n = cohort.n - lane_offset if n is None else n
    action_type = getattr(factory(None), "action_type", "discrete")
    sim = Simulation(cohort, n, replace(config, action_type=action_type),
                     lane_offset=lane_offset)
    obs = sim.reset(seed)
    policy = factory(sim)  # the oracle reads the simulation, the MPC its episode length
    policy.reset(seed if policy_seed is None else policy_seed)
    if tests is not None and not reads_performance_tests(policy):
        tests = None
    days = sim.config.episode_days
    rec, tsb, acts = (np.zeros((days, n)) for _ in range(3))
    injured, tested = (np.zeros((days, n), dtype=bool) for _ in range(2))
    seen = np.zeros((days, n, obs.shape[1]), dtype=np.float32)
    perf = np.zeros((days + 1, n))
    perf[0] = sim.performance()
    entropy, qgap = [], []
    test_rng = np.random.default_rng(tests.seed) if tests else None
    due = np.zeros(n, dtype=bool)
    for d in range(days):
        rec[d] = sim.reading["recovery_pct"]
        tsb[d] = obs[:, FEATURE_INDEX["tsb_trimp"]]
        seen[d] = obs
        if callable(getattr(policy, "diagnostics", None)):
            # an asymmetric critic (agents.sac) reads the simulator's latent state for its
            # Q-gap; the policy's actions never do
            extra = {"latent": sim.critic_state()} if getattr(policy, "n_latent", 0) else {}
            day_entropy, day_gap = policy.diagnostics(obs, sim.agent_mask, **extra)  # (N,)
            entropy.append(day_entropy)
            qgap.append(day_gap)
        if tests is not None:
            due |= sim.day % tests.every == 0
            tested[d] = due if tests.session is None else due & sim.mask[:, tests.session]
            if tested[d].any():
                results = sim.performance_test(tests.cv, test_rng)
                policy.observe_performance(np.where(tested[d], results, np.nan))
            due &= ~tested[d]
        action = policy.act(obs, sim.agent_mask.copy())
        fixed = None
        if tests is not None and tests.session is not None:
            fixed = np.where(tested[d], tests.session, -1)
        obs, _, _ = sim.step(action, fixed)
        if tests is not None and tests.session is not None and tested[d].any():
            policy.record_executed(sim.last_executed)
        acts[d] = sim.last_executed
        injured[d] = sim.injury_left > 0
        perf[d + 1] = sim.performance()
        if progress and (d + 1) % 30 == 0:
            progress(f"{name}: day {d + 1}/{days}")
    metrics = sim.episode_summary()
    shares = np.stack([metrics[f"share_{a}"] for a in ACTIONS], axis=1)
    metrics["max_action_share"] = shares.max(axis=1)
    if entropy:
        metrics["policy_entropy"] = np.mean(entropy, axis=0)
        metrics["q_gap"] = np.mean(qgap, axis=0)
    extra = {"injured": injured, "obs": seen}
    if tests is not None:
        extra["tested"] = tested
    return PolicyRun(name, metrics, rec, tsb, acts, perf, time.perf_counter() - start, extra)


def paired_p_value(a: np.ndarray, b: np.ndarray) -> float | None:
    """Wilcoxon signed-rank p of paired per-athlete values (non-finite pairs dropped; None
    with fewer than 2 pairs, 1.0 when they are all equal)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return None
    if np.allclose(d, 0):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox").pvalue)


def share_of_oracle_gain(policy: Any, random: Any, oracle: Any, *, n_boot: int = 0,
                         seed: int = 0) -> dict[str, float] | None:
    """`pct_of_oracle` (module docstring) of per-athlete values of the same athletes: 100 ·
    (policy − random) / (oracle − random) on means; None unless the oracle beats random.
    With `n_boot`, also `ci95_low`/`ci95_high`: the 2.5 and 97.5 % percentiles of the share
    over `n_boot` resamplings of the athletes (the same athletes for all three; resamples in
    which the oracle does not beat random are left out)."""
    v = np.vstack([np.asarray(x, float) for x in (policy, random, oracle)])
    v = v[:, np.all(np.isfinite(v), axis=0)]
    p, r, o = v.mean(axis=1)
    if v.shape[1] == 0 or not o > r:
        return None
    out = {"pct": float(100.0 * (p - r) / (o - r))}
    if n_boot > 0:
        idx = np.random.default_rng(seed).integers(0, v.shape[1], size=(n_boot, v.shape[1]))
        pb, rb, ob = (v[k][idx].mean(axis=1) for k in range(3))
        ok = ob > rb
        shares = 100.0 * (pb[ok] - rb[ok]) / (ob[ok] - rb[ok])
        out["ci95_low"], out["ci95_high"] = (float(q) for q in np.percentile(shares, [2.5, 97.5]))
    return out


def write_benchmark(path: str | Path, meta: dict[str, Any], records: list[dict[str, Any]]
                    ) -> None:
    """Write `{"meta": meta, "records": records}` as JSON to `path` (the MPC benchmarks'
    output: `mpc_gap.py`, `mpc_sweep.py`, `performance_tests.py`), whole or not at all
    (`atomic_write`), and say where."""
    text = json.dumps({"meta": meta, "records": records}, indent=1) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    print(f"wrote {path}")


def gap_record(delta_p: dict[str, np.ndarray], name: str, reference: str | None = None,
               *, n_boot: int = 2000) -> dict[str, Any]:
    """The fields the MPC benchmarks (`mpc_sweep.py`, `mpc_gap.py`) write for policy `name`,
    from per-athlete ΔP of the same athletes under each policy (`random` and `oracle` among
    them): its share of the oracle's gain with the 95 % interval, and, against `reference`,
    the paired difference's mean and standard error and its Wilcoxon p."""
    share = share_of_oracle_gain(delta_p[name], delta_p["random"], delta_p["oracle"],
                                 n_boot=n_boot)
    out: dict[str, Any] = {
        "pct_of_oracle_gain": share["pct"] if share else None,
        "pct_of_oracle_gain_ci95": [share["ci95_low"], share["ci95_high"]] if share else None}
    if reference is not None and name != reference:
        diff = np.asarray(delta_p[name], float) - np.asarray(delta_p[reference], float)
        out.update({f"delta_p_minus_{reference}": float(diff.mean()),
                    f"delta_p_minus_{reference}_se": float(diff.std(ddof=1) / np.sqrt(diff.size)),
                    f"p_vs_{reference}": paired_p_value(delta_p[name], delta_p[reference])})
    return out


def best_baseline(runs: dict[str, PolicyRun]) -> str | None:
    """The baseline with the highest mean ΔP (the fitness-gain headline)."""
    present = [n for n in BASELINES if n in runs]
    if not present:
        return None
    return max(present, key=lambda n: float(np.mean(runs[n].metrics["delta_performance"])))


def summarize(runs: dict[str, PolicyRun], reference: str | None = None
              ) -> list[dict[str, Any]]:
    """The flat list of records of `results.json`: one per policy × metric. p-values compare
    each policy with `reference` (default: the best baseline)."""
    best = reference if reference is not None else best_baseline(runs)
    records = []
    for name, run in runs.items():
        for metric, values in run.metrics.items():
            if metric in ("athlete", "days"):
                continue
            v = np.asarray(values, float)
            if not np.isfinite(v).any():  # e.g. a Q-gap of a learner without twin critics
                continue
            rec: dict[str, Any] = {"policy": name, "metric": metric,
                                   "mean": float(np.nanmean(v)), "std": float(np.nanstd(v)),
                                   "n": int(np.isfinite(v).sum())}
            if best is not None and name != best and metric in runs[best].metrics:
                rec["p_vs_best_baseline"] = paired_p_value(v, runs[best].metrics[metric])
                rec["best_baseline"] = best
            if (metric in ORACLE_METRICS and "oracle" in runs and "random" in runs):
                share = share_of_oracle_gain(v, runs["random"].metrics[metric],
                                             runs["oracle"].metrics[metric], n_boot=2000)
                if share is not None:
                    rec["pct_of_oracle"] = share["pct"]
                    rec["pct_of_oracle_ci95"] = [share["ci95_low"], share["ci95_high"]]
            records.append(rec)
    return records


def athlete_table(runs: dict[str, PolicyRun]) -> pd.DataFrame:
    """One row per policy and athlete (`athlete`: its index in the cohort), a column per
    metric: what `results.json` summarises, for paired comparisons of any two policies (every
    policy meets the same athletes under the same episode seed). A metric a policy lacks
    (e.g. `q_gap`) is empty in its rows."""
    frames = [pd.DataFrame({"policy": name, **{m: np.asarray(v) for m, v in
                                                run.metrics.items()}})
              for name, run in runs.items()]
    table = pd.concat(frames, ignore_index=True)
    table["athlete"] = table["athlete"].astype(int)
    return table[["policy", "athlete", *[c for c in table if c not in ("policy", "athlete")]]]


def evaluate_policies(factories: dict[str, PolicyFactory], cohort: Cohort,
                      config: EnvConfig = EnvConfig(), seed: int = 0,
                      progress: Callable[[str], None] | None = None,
                      reference: str | None = None, tests: PerformanceTesting | None = None
                      ) -> tuple[dict[str, PolicyRun], list[dict[str, Any]]]:
    """Run every policy on the cohort and summarise (module docstring); with `tests`, the
    policies that read performance tests are handed them (`run_policy`)."""
    runs = {}
    for name, factory in factories.items():
        runs[name] = run_policy(name, factory, cohort, config, seed, progress, tests=tests)
        if progress:
            m = runs[name].metrics
            progress(f"{name}: ΔP {np.mean(m['delta_performance']):+.2f} "
                     f"return {np.mean(m['return']):+.2f} ({runs[name].wall_s:.0f} s)")
    return runs, summarize(runs, reference)


def policy_factories(names: Sequence[str], *, model=None, bc_policy=None,
                     runs: Sequence[str] = (), device: str = "cpu",
                     seed: int = 0, test_cv: float | None = None) -> dict[str, PolicyFactory]:
    """Factories for policies named on the command line and for trained run directories;
    `test_cv`: the performance tests' CV that `mpc_tested` assumes (default its config's)."""

    out: dict[str, PolicyFactory] = {}
    simple = {"random": RandomPolicy, "seed_rule": SeedRulePolicy,
              "hrv_guided": HRVGuidedPolicy, "fixed_periodization": FixedPeriodizationPolicy}
    for name in names:
        if name in simple:
            out[name] = lambda sim, cls=simple[name]: cls()
        elif name == "bc":
            if bc_policy is None:
                raise ValueError("the bc policy needs --data (to train it) or a bc run")
            out[name] = lambda sim: bc_policy
        elif name in ("mpc", "mpc_tested"):

            if model is None:
                raise ValueError(f"the {name} policy needs --model")
            # the planner's objective ends when the episode does (the twins' are 60 days);
            # mpc_tested draws the performance response, which the tests it is handed weigh
            tested = {"performance_draws": TEST_DRAWS} if name == "mpc_tested" else {}
            if tested and test_cv is not None:
                tested["performance_test_cv"] = test_cv
            out[name] = lambda sim, tested=tested: MPCPlanner(model, MPCConfig(
                episode_days=EnvConfig().episode_days if sim is None
                else sim.config.episode_days, **tested), seed=seed)
        elif name == "oracle":

            out[name] = lambda sim: None if sim is None else OraclePlanner(sim, seed=seed)
        else:
            raise ValueError(f"unknown policy {name!r}; known: {sorted(simple)} + bc, mpc, "
                             f"mpc_tested, oracle (trained agents come from --runs)")
    for run_dir in runs:
        from agents.training import load_agent

        agent = load_agent(run_dir, device=device, model=model)
        # two runs of one kind (a distilled planner with and without tests) keep both rows
        name = agent.name if agent.name not in out else Path(run_dir).name
        if name in out:
            raise ValueError(f"two policies named {name!r}: give the runs distinct directory "
                             f"names")
        out[name] = lambda sim, agent=agent: agent
    return out
