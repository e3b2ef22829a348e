"""Learner settings trained side by side on one wall-time budget, each scored on held-out athletes.

Every variant (a learner, overrides of its config and of the env config, a device) trains in its
own process with one torch thread through `agents.training.train(..., max_seconds=budget)`, so
all get the same wall time, then plays one 90-day episode per held-out athlete
(`analysis.benchmark.run_policy`, the evaluation protocol of `periodize evaluate`). Random
choice, fixed periodization and the oracle play the same athletes with the same env seed in
processes of their own, so every comparison is paired. Per variant the output holds the env
steps it reached, its env-steps/s, mean ΔP (% of baseline) ± SD, the share of the oracle's ΔP
gain over random, the Wilcoxon p against fixed periodization (the best baseline of the last full
evaluation), the mean return and the largest single-action share.

With one core per process the budget is a fair race only when there are at least as many cores
as processes (the GPU variants share one card). Written for a lent 16-core GPU machine; on a
small machine run fewer variants (`--variants`). Usage:

    python benchmarks/learner_sweep.py --train-cohort TRAIN.npz --test-cohort TEST.npz \\
        --budget-s 300 --out DIR [--variants ppo sac ...] [--jobs 14] [--n-envs 256]

Writes `DIR/learner_sweep.json` (configuration, seeds, machine, every result) and the run
directories under `DIR/runs/`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import machine_record  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    # PPO (sb3-contrib MaskablePPO) on the CPU: the small networks gain nothing from a GPU.
    "ppo": {"agent": "ppo", "device": "cpu"},
    "ppo-no-event": {"agent": "ppo", "device": "cpu", "env": {"judge_day_is_event": False}},
    "ppo-gamma999": {"agent": "ppo", "device": "cpu", "config": {"gamma": 0.999}},
    "ppo-ent01": {"agent": "ppo", "device": "cpu", "config": {"ent_coef": 0.01}},
    "ppo-gamma999-ent01": {"agent": "ppo", "device": "cpu",
                           "config": {"gamma": 0.999, "ent_coef": 0.01}},
    "ppo-gamma999-lr1e4": {"agent": "ppo", "device": "cpu",
                           "config": {"gamma": 0.999, "learning_rate": 1e-4}},
    # Our masked discrete SAC: on the GPU where there is one, and the same on the CPU.
    "sac": {"agent": "sac", "device": "auto"},
    "sac-cpu": {"agent": "sac", "device": "cpu"},
    "sac-no-event": {"agent": "sac", "device": "auto", "env": {"judge_day_is_event": False}},
    "sac-rr8": {"agent": "sac", "device": "auto", "config": {"replay_ratio": 0.125}},
    "sac-gamma995": {"agent": "sac", "device": "auto", "config": {"gamma": 0.995}},
    # SB3's SAC on the continuous (duration, intensity) action.
    "sac-continuous": {"agent": "sac-continuous", "device": "auto"},
    # Second round, around the best of the first (PPO, gamma 0.999, learning rate 1e-4).
    "ppo-g999-lr1e4-seed1": {"agent": "ppo", "device": "cpu", "seed": 1,
                             "config": {"gamma": 0.999, "learning_rate": 1e-4}},
    "ppo-g999-lr1e4-no-event": {"agent": "ppo", "device": "cpu",
                                "config": {"gamma": 0.999, "learning_rate": 1e-4},
                                "env": {"judge_day_is_event": False}},
    "ppo-g999-lr1e4-lambda99": {"agent": "ppo", "device": "cpu",
                                "config": {"gamma": 0.999, "learning_rate": 1e-4,
                                           "gae_lambda": 0.99}},
    "ppo-g999-lr5e5": {"agent": "ppo", "device": "cpu",
                       "config": {"gamma": 0.999, "learning_rate": 5e-5}},
    "ppo-g999-lr1e4-epochs5": {"agent": "ppo", "device": "cpu",
                               "config": {"gamma": 0.999, "learning_rate": 1e-4,
                                          "n_epochs": 5}},
    "ppo-g999-lr1e4-batch1024": {"agent": "ppo", "device": "cpu",
                                 "config": {"gamma": 0.999, "learning_rate": 1e-4,
                                            "batch_size": 1024}},
    "ppo-g999-lr1e4-clip01": {"agent": "ppo", "device": "cpu",
                              "config": {"gamma": 0.999, "learning_rate": 1e-4,
                                         "clip_range": 0.1}},
    "ppo-g999-lr1e4-ent003": {"agent": "ppo", "device": "cpu",
                              "config": {"gamma": 0.999, "learning_rate": 1e-4,
                                         "ent_coef": 0.003}},
    "ppo-g999-lr1e4-64x64": {"agent": "ppo", "device": "cpu",
                             "config": {"gamma": 0.999, "learning_rate": 1e-4,
                                        "hidden_sizes": [64, 64]}},
    "sac-g999-cpu": {"agent": "sac", "device": "cpu", "config": {"gamma": 0.999}},
    "sac-g999-lr1e4-cpu": {"agent": "sac", "device": "cpu",
                           "config": {"gamma": 0.999, "learning_rate": 1e-4}},
}
"""Named variants: `agent`, `device`, `config` (agent-config overrides), `env` (EnvConfig
overrides), `seed` (training seed, default `--seed`)."""
ROUND_1: tuple[str, ...] = tuple(list(VARIANTS)[:12])
"""The variants of the first sweep (`--variants` default)."""

REFERENCES: tuple[str, ...] = ("random", "fixed_periodization", "oracle")
SUMMARY_METRICS: tuple[str, ...] = ("delta_performance", "return", "max_action_share",
                                    "injured_days", "executed_violations")


def _env_config(overrides: dict[str, Any]):
    from simulator.env import EnvConfig

    return replace(EnvConfig(), **overrides)


def _metrics(run) -> dict[str, list[float]]:
    keep = SUMMARY_METRICS + tuple(k for k in run.metrics if k.startswith("share_"))
    return {k: np.asarray(run.metrics[k], float).tolist() for k in keep if k in run.metrics}


def _train_and_score(name: str, spec: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    import torch

    from agents.training import agent_config, load_agent, train
    from analysis.benchmark import run_policy
    from simulator.cohort import Cohort

    torch.set_num_threads(1)
    env_cfg = _env_config(spec.get("env", {}))
    started = time.perf_counter()
    run_dir = train(spec["agent"], args["train_cohort"], args["max_steps"],
                    seed=spec.get("seed", args["seed"]),
                    device=spec.get("device", "auto"), out_dir=Path(args["out"]) / "runs",
                    run_name=name, n_envs=args["n_envs"], env_config=env_cfg,
                    agent_config=agent_config(spec["agent"], spec.get("config")),
                    progress=False, torch_threads=1, max_seconds=args["budget_s"])
    train_wall = time.perf_counter() - started
    record = json.loads((run_dir / "run.json").read_text())
    policy = load_agent(run_dir, device="cpu")
    test = Cohort.load(args["test_cohort"])
    run = run_policy(name, lambda sim: policy, test, env_cfg, seed=args["eval_seed"])
    return {"name": name, "spec": spec, "device": record["device"],
            "env_steps": record["report"]["env_steps"],
            "env_steps_per_s": record["report"]["env_steps_per_second"],
            "time_limited": record["report"]["time_limited"], "train_wall_s": train_wall,
            "run_dir": str(run_dir), "metrics": _metrics(run)}


def _score_reference(name: str, args: dict[str, Any]) -> dict[str, Any]:
    from analysis.benchmark import policy_factories, run_policy
    from simulator.cohort import Cohort

    test = Cohort.load(args["test_cohort"])
    factory = policy_factories([name], seed=args["eval_seed"])[name]
    run = run_policy(name, factory, test, _env_config({}), seed=args["eval_seed"])
    return {"name": name, "spec": {"reference": True}, "metrics": _metrics(run),
            "eval_wall_s": run.wall_s}


def _summary(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    from analysis.benchmark import paired_p_value, share_of_oracle_gain

    dp = {n: np.asarray(r["metrics"]["delta_performance"]) for n, r in results.items()}
    base = dp.get("fixed_periodization")
    rows = []
    for name, r in results.items():
        m = r["metrics"]
        row = {"name": name, "delta_performance": float(np.mean(m["delta_performance"])),
               "delta_performance_sd": float(np.std(m["delta_performance"])),
               "return": float(np.mean(m["return"])),
               "max_action_share": float(np.mean(m["max_action_share"])),
               "executed_violations": float(np.sum(m["executed_violations"])),
               "env_steps": r.get("env_steps"), "env_steps_per_s": r.get("env_steps_per_s"),
               "device": r.get("device", "cpu")}
        share = (share_of_oracle_gain(dp[name], dp["random"], dp["oracle"])
                 if "random" in dp and "oracle" in dp else None)
        if share is not None:
            row["pct_of_oracle"] = share["pct"]
        if base is not None and name != "fixed_periodization":
            row["p_vs_fixed_periodization"] = paired_p_value(dp[name], base)
        rows.append(row)
    return sorted(rows, key=lambda row: -row["delta_performance"])


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-cohort", type=Path, required=True)
    parser.add_argument("--test-cohort", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=list(ROUND_1), choices=list(VARIANTS))
    parser.add_argument("--references", nargs="*", default=list(REFERENCES),
                        choices=list(REFERENCES))
    parser.add_argument("--budget-s", type=float, default=300.0,
                        help="training wall time of every variant, s")
    parser.add_argument("--max-steps", type=int, default=50_000_000,
                        help="env steps at most (the budget normally ends training first)")
    parser.add_argument("--n-envs", type=int, default=256)
    parser.add_argument("--jobs", type=int, default=None,
                        help="processes at once (default: one per variant and reference)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--eval-seed", type=int, default=0, help="env seed of the evaluation")
    args = parser.parse_args(argv)
    for path in (args.train_cohort, args.test_cohort):
        if not path.is_file():
            parser.error(f"{path} does not exist (make one with `periodize cohort`)")
    if (args.out / "runs").exists() and any((args.out / "runs").iterdir()):
        parser.error(f"{args.out / 'runs'} already holds runs; choose another --out")
    args.out.mkdir(parents=True, exist_ok=True)
    shared = {"train_cohort": str(args.train_cohort), "test_cohort": str(args.test_cohort),
              "out": str(args.out), "budget_s": args.budget_s, "max_steps": args.max_steps,
              "n_envs": args.n_envs, "seed": args.seed, "eval_seed": args.eval_seed}
    jobs = args.jobs or len(args.variants) + len(args.references)
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_score_reference, name, shared): name for name in args.references}
        futures.update({pool.submit(_train_and_score, name, VARIANTS[name], shared): name
                        for name in args.variants})
        for future in as_completed(futures):
            name = futures[future]
            try:
                results[name] = future.result()
            except Exception as exc:  # noqa: BLE001 (one broken variant must not lose the rest)
                failures[name] = f"{type(exc).__name__}: {exc}"
                print(f"{name}: FAILED {failures[name]}", flush=True)
                continue
            print(f"{name}: ΔP {np.mean(results[name]['metrics']['delta_performance']):+.2f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    rows = _summary(results) if results else []
    print(f"{'variant':<22}{'ΔP %':>8}{'% oracle':>10}{'p vs fixed':>12}{'return':>9}"
          f"{'max share':>11}{'env steps':>12}{'steps/s':>9}  device")
    for row in rows:
        pct = row.get("pct_of_oracle")
        p = row.get("p_vs_fixed_periodization")
        print(f"{row['name']:<22}{row['delta_performance']:>+8.2f}"
              f"{'' if pct is None else f'{pct:.0f}':>10}"
              f"{'' if p is None else f'{p:.1g}':>12}{row['return']:>+9.2f}"
              f"{row['max_action_share']:>11.2f}{row['env_steps'] or 0:>12,}"
              f"{row['env_steps_per_s'] or 0:>9.0f}  {row['device']}")
    import torch

    from agents.device import describe_device, select_device

    payload = {"command": " ".join(["benchmarks/learner_sweep.py"]
                                   + (argv if argv is not None else sys.argv[1:])),
               "config": shared, "variants": {n: VARIANTS[n] for n in args.variants},
               "machine": machine_record(torch=torch.__version__,
                                          accelerator=describe_device(select_device("auto"))),
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "wall_s": time.perf_counter() - started, "summary": rows,
               "failures": failures, "results": results}
    tmp = args.out / "learner_sweep.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(args.out / "learner_sweep.json")
    print(f"wrote {args.out / 'learner_sweep.json'}")
    return rows


if __name__ == "__main__":
    main()
