"""Where the MPC planner's shortfall from the oracle comes from: the planner told, one at a time,
what it cannot observe.

The oracle knows each simulated athlete's true physiology, performance response and
illness/injury hazard; the MPC planner infers the physiology from what it observes (its
personalised posterior) and takes the prior medians for the other two, since neither
performance nor the hazard's coefficients show in any observation. This runs, on a tuning
cohort (seed 3000 by default, as `mpc_sweep.py`), the planner as it is and with the true
performance parameters, the true hazard parameters or both (`AthleteBelief.known_performance`
/ `known_hazard`), against random play and the oracle on the same athletes and random streams,
and reports each one's ΔP and share of the oracle's ΔP gain over random (95 % bootstrap
interval over athletes), return and injured days. `--oracle-risk-weights` also runs the oracle
with other weights of the CVaR risk term than the planner's (the oracle is "the same planner"
given the truth, so by default it shares the planner's objective), to see whether the bound
the shares are taken against could be tighter.

    .venv/bin/python benchmarks/mpc_gap.py [--n 100] [--cohort-seed 3000]
        [--oracle-risk-weights W ...] [--out benchmarks/results/mpc_gap.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agents.baselines import RandomPolicy
from agents.mpc import MPCConfig, MPCPlanner, OraclePlanner
from analysis.benchmark import gap_record, write_benchmark
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.env import EnvConfig
from simulator.rollout import ObjectiveConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mpc_latency import SIM_SEED, run_episode  # one episode runner for the MPC benchmarks

KNOWN: dict[str, tuple[str, ...]] = {"mpc": (), "mpc+true_performance": ("performance",),
                                     "mpc+true_hazard": ("hazard",),
                                     "mpc+true_performance+hazard": ("performance", "hazard")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shipped")
    parser.add_argument("--n", type=int, default=100, help="athletes of the tuning cohort")
    parser.add_argument("--cohort-seed", type=int, default=3000)
    parser.add_argument("--oracle-risk-weights", type=float, nargs="*", default=[],
                        help="also run the oracle with these CVaR risk weights")
    parser.add_argument("--out", default="benchmarks/results/mpc_gap.json")
    args = parser.parse_args(argv)
    model = WorldModel.load(args.model)
    cohort = generate_cohort(model, args.n, seed=args.cohort_seed)
    started = time.perf_counter()

    def planner(known: tuple[str, ...]) -> MPCPlanner:
        mpc = MPCPlanner(model, MPCConfig(), seed=0)
        if "performance" in known:
            mpc.belief.known_performance = cohort.performance_params()
        if "hazard" in known:
            mpc.belief.known_hazard = cohort.hazard_params()
        return mpc

    summaries = {"random": run_episode(lambda sim: RandomPolicy(), cohort, args.n)[0],
                 "oracle": run_episode(lambda sim: OraclePlanner(sim, seed=0), cohort,
                                       args.n)[0]}
    for name, known in KNOWN.items():
        summaries[name] = run_episode(lambda sim, k=known: planner(k), cohort, args.n)[0]
    for weight in args.oracle_risk_weights:
        objective = ObjectiveConfig.from_env(EnvConfig(), risk_weight=weight)
        summaries[f"oracle_risk{weight:g}"] = run_episode(
            lambda sim, o=objective: OraclePlanner(sim, objective=o, seed=0), cohort, args.n)[0]
    dp = {k: v["delta_performance"] for k, v in summaries.items()}
    records = []
    for name, summary in summaries.items():
        record = {"policy": name, "known": list(KNOWN.get(name, ())),
                  "delta_performance_mean": float(dp[name].mean()),
                  **gap_record(dp, name, "mpc" if name in KNOWN else None),
                  "return_mean": float(summary["return"].mean()),
                  "injured_days_mean": float(summary["injured_days"].mean()), "n": args.n}
        records.append(record)
        ci = record["pct_of_oracle_gain_ci95"]
        print(f"{name:28s} ΔP {record['delta_performance_mean']:6.3f}  "
              + (f"{record['pct_of_oracle_gain']:6.1f} % of the oracle's gain "
                 f"[{ci[0]:.0f}, {ci[1]:.0f}]" if ci else "")
              + f"  return {record['return_mean']:7.3f}  injured days "
                f"{record['injured_days_mean']:.2f}", flush=True)
    meta = {"command": "python benchmarks/mpc_gap.py " + " ".join(argv or sys.argv[1:]),
            "cohort_seed": args.cohort_seed, "sim_seed": SIM_SEED, "model": args.model,
            "wall_s": time.perf_counter() - started}
    write_benchmark(args.out, meta, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
