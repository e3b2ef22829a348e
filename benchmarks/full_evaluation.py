"""The full evaluation: train every learner, evaluate every policy, ablations and sensitivity.

    .venv/bin/python benchmarks/full_evaluation.py --out docs/results/evaluation \
        [--train-n 2048] [--test-n 200] [--sac-steps N] [--ppo-steps N] \
        [--sac-continuous-steps N] [--ablation-steps N] [--distill-n 1024] [--seed 0]
        [--skip-ablations] [--tests-every 28] [--learners sac ...] [--train-only] [--ship DIR]
        [--sac-warm-steps N] [--warm-student-n 256]

The shipped checkpoints (models/agents: issue 20) are this script's runs, made by

    .venv/bin/python benchmarks/full_evaluation.py --out build/ship --learners sac-warm \
        --train-only --ship models/agents
    .venv/bin/python benchmarks/full_evaluation.py --out build/ship \
        --learners sac-continuous --train-only --ship models/agents

(the two can run side by side once the first has written the cohorts): models/agents/sac is
the `sac-warm` learner (the masked discrete SAC warm-started from the tested student, which is
shipped beside it as models/agents/mpc-distilled-tested), models/agents/sac-continuous SB3's
SAC. A full run with `--ship models/agents` trains and ships the same runs (same cohorts,
seed and settings).

1. Cohorts from the shipped world model: training athletes (seed 1) and held-out athletes
   (`--test-seed`, default 4000, never used in training nor in choosing settings: the learner
   sweep and the learning curve chose the learners' settings and budgets on the seed-1000
   cohort, the MPC sweep on seed 3000, and earlier MPC choices were made on seed 2000).
2. Learners: masked discrete SAC, MaskablePPO, SB3 SAC on the continuous action, the MPC
   planner distilled into a network (agents/distill.py, on `--distill-n` training athletes),
   the masked discrete SAC warm-started from the planner with a monthly test distilled on
   `--warm-student-n` athletes (`sac-warm`: `agents.training.WARM_SAC` and `student_config`,
   the settings of `periodize train --agent sac`'s default recipe), and
   behaviour cloning of the real athletes (agents/).
3. `periodize evaluate` on the held-out cohort: every baseline, the learners, MPC and the oracle,
   plus the real athletes (sim-to-real, policies in twins): `OUT/results.json`,
   `OUT/report.html`, `OUT/real.json`, `OUT/config.json`. The held-out athletes run a
   performance test every `--tests-every` days as that day's tempo session, handed to the policies
   that read tests (the default SAC, `mpc_tested`), as the project judges agents.
5. Ablations (seed §11.3), each a SAC trained like the main one with one change and evaluated
   on the same held-out athletes: no safety constraints (evaluated without them: overtraining),
   short-term reward only (long-term fitness), no dropout (generalisation), γ 0.9 and 0.95
   (credit assignment; the main run has γ 1). The ablations are of the wearable SAC
   (`tests_every` 0), evaluated without tests. `OUT/ablations.json`.
4. Sensitivity to the assumptions the data do not identify (docs/identifiability.md): the
   held-out cohort with performance gains k1 halved/doubled, the fatigue ratio k2/k1
   halved/doubled, and the injury hazard's baseline odds ×e / ×1/e; every policy except the
   oracle re-evaluated; do the rankings by ΔP hold (Kendall τ against the base ranking)?
   `OUT/sensitivity.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


TEST_SEED = 4000
"""Seed of the held-out cohort. Not this: 1000 (the learners' settings were chosen on it), 2000
(the MPC's `parameters="median"` and risk weight were first compared on it) and 3000
(`benchmarks/mpc_sweep.py`)."""


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _periodize(*args: str) -> None:
    from analysis.cli import main

    _say("periodize " + " ".join(args))
    code = main(list(args))
    if code != 0:
        raise SystemExit(f"periodize {' '.join(args)} failed with exit code {code}")


def _reusable(run: Path, wanted: dict) -> bool:
    """True when `run` holds a finished run whose recorded settings equal `wanted`; stops the
    script when it holds an unfinished one or one with other settings; False when empty."""
    from agents.runs import stale_settings

    stale = stale_settings(run, wanted)
    if stale is None:
        return False
    if not stale:
        _say(f"{run.name}: already trained with these settings, reusing {run}")
        return True
    raise SystemExit(f"{run} holds an unfinished run or one with other settings "
                     f"({', '.join(stale)}); remove it to retrain")


def _train(agent: str, cohort, steps: int, seed: int, out: Path, name: str, **kw) -> Path:
    from agents.training import run_settings, train

    run = out / "runs" / name
    if _reusable(run, run_settings(agent, steps, seed, kw.get("n_envs", 64),
                                   kw.get("env_config"), kw.get("agent_config"))):
        return run
    _say(f"training {name} ({agent}, {steps} steps)")
    # one torch thread: on a 2-core machine shared with the simulator, two threads made a
    # gradient step ~12x slower (agents/training.py)
    return train(agent, cohort, steps, seed=seed, device="auto", out_dir=out / "runs",
                 run_name=name, progress=False, torch_threads=1, **kw)


LEARNERS = ("sac", "ppo", "sac-continuous", "mpc-distilled", "sac-warm")
SHIPPED = {"sac-warm": "sac", "mpc-distilled-tested": "mpc-distilled-tested",
           "sac-continuous": "sac-continuous"}
"""The runs models/agents ships (issue 20), by the name each is shipped under: the discrete
SAC that reached the target (warm-started from the tested student, which is shipped with it
so that its `warm_start` names a directory of this checkout) and SB3's continuous SAC."""


def _ship(runs: dict[str, Path], ship: Path) -> None:
    """Copy the finished runs of `SHIPPED` to ship/NAME (replacing what is there): weights,
    JSON settings and run.json; TensorBoard logs and intermediate checkpoints stay behind.
    Paths inside a record that name a run shipped with it (a warm start's student) are
    rewritten to the shipped copy, and every path is made relative to this checkout (the
    shipped world model named `shipped` in the checkpoints' settings)."""
    import shutil

    moved = {str(runs[name]): str(ship / shipped) for name, shipped in SHIPPED.items()
             if name in runs}
    for name, shipped in SHIPPED.items():
        if name not in runs:
            continue
        target = ship / shipped
        tmp = ship / f".{shipped}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(runs[name], tmp, ignore=shutil.ignore_patterns("tb", "checkpoints"))
        record = tmp / "run.json"
        text = record.read_text()
        for source, copy in moved.items():
            text = text.replace(f'"{source}"', f'"{copy}"')
        record.write_text(text.replace(f"{ROOT}/", ""))
        # a checkpoint's own settings name the shipped world model by its name, which
        # resolves wherever the package is installed (resolve_model_dir), not by this path
        for settings in (tmp / "model").glob("*.json"):
            settings.write_text(settings.read_text().replace(
                f'"{ROOT}/models/shipped"', '"shipped"').replace(f"{ROOT}/", ""))
        shutil.rmtree(target, ignore_errors=True)
        tmp.replace(target)
        _say(f"shipped {runs[name]} as {target}")


def _warm_sac(model, model_dir: str, cohorts: Path, train_cohort, args: argparse.Namespace,
              out: Path) -> dict[str, Path]:
    """`periodize train --agent sac`'s recipe (`agents.training.train_warm_sac`) with its
    student on a cohort of its own: the tested student (`student_config` of the SAC's
    settings, `--warm-student-n` athletes of seed 1) and the SAC warm-started from it
    (`WARM_SAC`, `--sac-warm-steps` on the training cohort), each reused when a finished run
    of the same settings is there."""
    from dataclasses import replace

    from agents.sac import SACConfig
    from agents.training import WARM_SAC, student_config

    sac_config = SACConfig(**WARM_SAC)
    student = _distilled(model, model_dir, cohorts, args.warm_student_n, args.seed, out,
                         "mpc-distilled-tested", student_config(sac_config))
    sac = _train("sac", train_cohort, args.sac_warm_steps, args.seed, out, "sac-warm",
                 n_envs=args.n_envs,
                 agent_config=replace(sac_config, warm_start=str(student)))
    return {"mpc-distilled-tested": student, "sac-warm": sac}


def _distilled(model, model_dir: str, cohorts: Path, n: int, seed: int, out: Path,
               name: str = "mpc-distilled", config=None) -> Path:
    """The MPC planner distilled on `n` training athletes (cohort seed 1) with `config`
    (`agents.distill.DistillConfig`, default its defaults) as run `name`, or the finished run
    of the same settings already there."""
    from agents.distill import DistillConfig, distill, distill_settings
    from simulator.cohort import Cohort, generate_cohort

    config = config or DistillConfig()
    run = out / "runs" / name
    if _reusable(run, distill_settings(n, seed, config)):
        return run
    path = cohorts / f"train-{n}.npz"
    if not path.exists():
        generate_cohort(model, n, 1, model_dir=model_dir).save(path)
    _say(f"distilling the MPC planner on {n} athletes as {name}")
    return distill(model, Cohort.load(path), seed=seed, out_dir=out / "runs", run_name=name,
                   config=config, model_dir=model_dir)


def _scaled_cohort(cohort, *, fitness: float = 1.0, ratio: float = 1.0, hazard_logit: float = 0.0):
    from simulator.cohort import Cohort

    perf = dict(cohort.performance)
    perf["fitness_gain"] = perf["fitness_gain"] * fitness
    # k2 and k3 follow k1 (their ratio to it is the fatigue ratio), then the ratio is scaled
    perf["fatigue_gain"] = perf["fatigue_gain"] * fitness * ratio
    perf["variable_fatigue_gain"] = perf["variable_fatigue_gain"] * fitness * ratio
    hazard = dict(cohort.hazard)
    hazard["intercept"] = hazard["intercept"] + hazard_logit
    return Cohort(cohort.physiology, perf, hazard, cohort.context, dict(cohort.meta))


def _write_summary(out: Path, args: argparse.Namespace, start: float) -> None:
    (out / "full_evaluation.json").write_text(json.dumps({
        "command": "python benchmarks/full_evaluation.py " + " ".join(sys.argv[1:]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "wall_s": time.perf_counter() - start}, indent=1) + "\n")


def _kendall(a: list[str], b: list[str]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau([a.index(x) for x in a], [b.index(x) for x in a]).statistic)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results/evaluation")
    parser.add_argument("--train-n", type=int, default=2048)
    parser.add_argument("--test-n", type=int, default=200)
    parser.add_argument("--sac-steps", type=int, default=1_000_000)
    parser.add_argument("--ppo-steps", type=int, default=1_000_000)
    parser.add_argument("--sac-continuous-steps", type=int, default=600_000)
    parser.add_argument("--sac-warm-steps", type=int, default=300_000)
    parser.add_argument("--warm-student-n", type=int, default=256,
                        help="training athletes of the tested student the sac-warm learner "
                             "starts from")
    parser.add_argument("--ablation-steps", type=int, default=300_000)
    parser.add_argument("--n-envs", type=int, default=256)
    parser.add_argument("--distill-n", type=int, default=1024,
                        help="training athletes the MPC planner labels for its distilled "
                             "student (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-seed", type=int, default=TEST_SEED,
                        help="seed of the held-out cohort (see TEST_SEED)")
    parser.add_argument("--sensitivity-n", type=int, default=64,
                        help="held-out athletes re-evaluated per sensitivity setting")
    parser.add_argument("--skip-ablations", action="store_true")
    parser.add_argument("--tests-every", type=int, default=28,
                        help="days between the held-out athletes' performance tests, each "
                             "taken as that day's session, in the evaluation (0: none)")
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=LEARNERS,
                        help="the learners to train (default all)")
    parser.add_argument("--train-only", action="store_true",
                        help="stop after training (with --ship: how the shipped runs are made)")
    parser.add_argument("--ship", type=Path, default=None,
                        help="copy the trained runs of SHIPPED to SHIP (models/agents: the "
                             "shipped checkpoints)")
    args = parser.parse_args(argv)

    from agents.sac import SACConfig
    from analysis.benchmark import evaluate_policies, policy_factories
    from physiology_model.model.world_model import WorldModel
    from simulator.cohort import Cohort, generate_cohort
    from simulator.env import EnvConfig
    from simulator.rewards import RewardConfig

    start = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model_dir = str(ROOT / "models/shipped")
    model = WorldModel.load(model_dir)
    cohorts = out / "cohorts"
    cohorts.mkdir(exist_ok=True)
    train_path, test_path = cohorts / "train.npz", cohorts / f"test-seed{args.test_seed}.npz"
    if not train_path.exists():
        generate_cohort(model, args.train_n, 1, model_dir=model_dir).save(train_path)
    if not test_path.exists():
        generate_cohort(model, args.test_n, args.test_seed, model_dir=model_dir).save(test_path)
    train_cohort, test_cohort = Cohort.load(train_path), Cohort.load(test_path)

    steps = {"sac": args.sac_steps, "ppo": args.ppo_steps,
             "sac-continuous": args.sac_continuous_steps}
    runs = {name: _train(name, train_cohort, steps[name], args.seed, out, name,
                         n_envs=args.n_envs)
            for name in steps if name in args.learners}
    if args.distill_n > 0 and "mpc-distilled" in args.learners:
        runs["mpc-distilled"] = _distilled(model, model_dir, cohorts, args.distill_n,
                                           args.seed, out)
    if "sac-warm" in args.learners:
        runs.update(_warm_sac(model, model_dir, cohorts, train_cohort, args, out))
    if args.ship is not None:
        _ship(runs, args.ship)
    if args.train_only:
        _write_summary(out, args, start)
        _say(f"trained {', '.join(runs)} in {time.perf_counter() - start:.0f} s")
        return
    bc_dir = out / "runs" / "bc"
    if not (bc_dir / "bc.json").exists():
        _periodize("train", "--agent", "bc", "--data", str(ROOT / "data/real"), "--seed",
                   str(args.seed), "--out", str(bc_dir))
    _periodize("evaluate", "--model", model_dir, "--cohort", str(test_path),
               "--runs", *[str(r) for r in runs.values()], "--bc", str(bc_dir / "bc.json"),
               "--real", str(ROOT / "data/real"),
               *(["--tests-every", str(args.tests_every), "--test-session", "tempo_threshold"]
                 if args.tests_every else []),
               "--forecast", str(ROOT / "docs/results/forecast_eval.json"), "--out", str(out))

    # -- sensitivity -----------------------------------------------------------------------
    names = ["random", "seed_rule", "hrv_guided", "fixed_periodization", "mpc"]
    base_factories = policy_factories(names, model=model, runs=[str(runs["sac"]),
                                                                  str(runs["ppo"])])
    settings = {"base": {}, "k1_x0.5": {"fitness": 0.5}, "k1_x2": {"fitness": 2.0},
                "fatigue_ratio_x0.5": {"ratio": 0.5}, "fatigue_ratio_x2": {"ratio": 2.0},
                "hazard_odds_x1/e": {"hazard_logit": -1.0},
                "hazard_odds_xe": {"hazard_logit": 1.0}}
    sens, rankings = [], {}
    sens_cohort = test_cohort.subset(np.arange(min(args.sensitivity_n, test_cohort.n)))
    for label, kw in settings.items():
        cohort = _scaled_cohort(sens_cohort, **kw)
        result, _ = evaluate_policies(base_factories, cohort, EnvConfig(), seed=12345,
                                      progress=_say)
        means = {n: float(np.mean(r.metrics["delta_performance"])) for n, r in result.items()}
        rankings[label] = sorted(means, key=means.get, reverse=True)
        for n, r in result.items():
            for metric in ("delta_performance", "return", "injury_onsets"):
                v = r.metrics[metric]
                sens.append({"setting": label, "policy": n, "metric": metric,
                             "mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)})
    for label, ranking in rankings.items():
        sens.append({"setting": label, "policy": "(all)", "metric": "ranking_by_delta_p",
                     "ranking": ranking,
                     "kendall_tau_vs_base": _kendall(rankings["base"], ranking)})
    (out / "sensitivity.json").write_text(json.dumps(sens, indent=1) + "\n")
    if args.skip_ablations:
        _write_summary(out, args, start)
        _say(f"done in {time.perf_counter() - start:.0f} s (ablations skipped)")
        return
    # -- ablations -------------------------------------------------------------------------
    # the wearable SAC: the ablations' evaluation hands no tests (a tested SAC would play
    # as before its first test)
    base_sac = SACConfig(tests_every=0)
    variants = {
        "no_safety": ({"env_config": EnvConfig(enforce_safety=False)}, EnvConfig(
            enforce_safety=False)),
        "short_term_reward": ({"env_config": EnvConfig(reward=RewardConfig(kind="short_term"))},
                              EnvConfig()),
        "no_dropout": ({"agent_config": replace(base_sac, dropout=0.0)}, EnvConfig()),
        "gamma_0.90": ({"agent_config": replace(base_sac, gamma=0.90)}, EnvConfig()),
        "gamma_0.95": ({"agent_config": replace(base_sac, gamma=0.95)}, EnvConfig()),
        "main_budget_matched": ({}, EnvConfig()),
    }
    for train_kw, _ in variants.values():
        train_kw.setdefault("agent_config", base_sac)
    records = []
    ablation_runs = {}
    for name, (train_kw, eval_env) in variants.items():
        run = _train("sac", train_cohort, args.ablation_steps, args.seed, out,
                     f"ablation-{name}", n_envs=args.n_envs, **train_kw)
        factories = policy_factories([], runs=[str(run)])
        agent_name = next(iter(factories))
        result, recs = evaluate_policies({f"sac_{name}": factories[agent_name]}, test_cohort,
                                         eval_env, seed=12345, progress=_say)
        ablation_runs[name] = result[f"sac_{name}"]
        for r in recs:
            r["ablation"] = name
            r["train_steps"] = args.ablation_steps
        records += recs
    from analysis.benchmark import paired_p_value

    ref = ablation_runs["main_budget_matched"].metrics
    for r in records:
        if r["ablation"] != "main_budget_matched" and r["metric"] in ref:
            r["p_vs_main"] = paired_p_value(ablation_runs[r["ablation"]].metrics[r["metric"]],
                                      ref[r["metric"]])
        r.pop("p_vs_best_baseline", None)
        r.pop("best_baseline", None)
    (out / "ablations.json").write_text(json.dumps(records, indent=1) + "\n")
    _say("ablations written")

    _write_summary(out, args, start)
    _say(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
