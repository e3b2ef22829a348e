"""`periodize model`: fit, evaluate, calibrate, couple, weekday and check the world model."""

from __future__ import annotations

import argparse
import time

import pandas as pd


def _model_fit(args: argparse.Namespace) -> int:
    from physiology_model.data.loaders import load_exports
    from physiology_model.model.bayes import PriorConfig, SamplerConfig
    from physiology_model.model.fitting import fit_world_model
    from physiology_model.model.population_fit import check_population_athletes, serial_runner
    from physiology_model.model.world_model import WorldModelConfig

    started = time.perf_counter()
    run = serial_runner
    if args.population_athletes is not None:
        from functools import partial

        from analysis.parallel import check_workers, run_tasks

        check_population_athletes(args.population_athletes)  # the top end once data are read
        check_workers(args.workers, args.ray_address)
        run = partial(run_tasks, workers=args.workers, ray_address=args.ray_address)
    elif args.workers != 1 or args.ray_address is not None:
        raise ValueError("--workers and --ray-address go with --population-athletes (the "
                         "personalisation of the athletes outside the NUTS fit)")
    sampler = SamplerConfig(sampler=args.sampler, draws=args.draws, tune=args.tune,
                            chains=args.chains, target_accept=args.target_accept,
                            seed=args.seed, progress_bar=args.progress,
                            nutpie_backend=args.nutpie_backend,
                            low_rank_mass_matrix=args.low_rank_mass_matrix)
    model = fit_world_model(load_exports(args.data).frame, seed=args.seed, use_all=args.all,
                            config=WorldModelConfig(max_days=args.max_days), sampler=sampler,
                            priors=PriorConfig(slow_noise=args.noise == "slow-fast"),
                            residual=not args.no_residual, say=lambda s: print(s, flush=True),
                            population_athletes=args.population_athletes, run=run)
    model.save(args.out)
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s in all)")
    return 0 if model.diagnostics_.get("ok", False) else 3


def _model_evaluate(args: argparse.Namespace) -> int:
    from analysis.forecast_eval import evaluate_forecasters, write_forecast_report
    from physiology_model.data.loaders import load_exports
    from physiology_model.model.forecasters import baseline_forecasters
    from physiology_model.model.world_model import (
        WorldModel,
        WorldModelForecaster,
        resolve_model_dir,
    )

    model = WorldModel.load(resolve_model_dir(args.model))
    seed = args.seed if args.seed is not None else int(model.split_.get("seed", 0))
    frame = load_exports(args.data).frame
    baselines = baseline_forecasters(max_horizon=max(args.horizons))
    forecasters = [*baselines,
                   WorldModelForecaster(model, seed=seed, use_residual=False,
                                        name="world_model_base"),
                   WorldModelForecaster(model, seed=seed)]
    records = evaluate_forecasters(frame, forecasters, seed=seed, n_samples=args.samples,
                                   horizons=args.horizons, condition_days=args.condition_days,
                                   baselines=[b.name for b in baselines], say=print)
    write_forecast_report(records, args.out)
    table = pd.DataFrame(records)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.pivot_table(index=["target", "horizon", "split"], columns="method",
                                values="crps").round(4).to_string())
        ratios = table[table["method"] == "world_model"]
        print("\nworld model CRPS / the best baseline's [95 % paired bootstrap, athletes]:")
        print(ratios[["target", "horizon", "split", "best_baseline", "crps_ratio",
                      "crps_ratio_lo", "crps_ratio_hi"]].round(3).to_string(index=False))
    print(f"wrote {args.out} ({len(records)} records)")
    return 0


def _model_and_its_fit_rows(args: argparse.Namespace) -> tuple:
    """The model of `--model`, its directory, its split seed and the rows of `--data` that
    `model fit` learned its post-fit parts on (drift, coupling, calibration)."""
    from physiology_model.data.loaders import load_exports
    from physiology_model.errors import DataError
    from physiology_model.model.fitting import calibration_rows, fitted_rows, split_for_forecasting
    from physiology_model.model.world_model import WorldModel, resolve_model_dir

    directory = resolve_model_dir(args.model)
    model = WorldModel.load(directory)
    seed = int(model.split_.get("seed", 0))
    split = split_for_forecasting(load_exports(args.data).frame, seed=seed)
    fit_frame = calibration_rows(model, fitted_rows(split, bool(model.split_.get("all"))))
    if not fit_frame["user_id"].astype(str).isin(model.athletes_).any():
        raise DataError(args.model, "none of the model's training athletes is in the data")
    return model, directory, seed, fit_frame


def _model_calibrate(args: argparse.Namespace) -> int:
    from physiology_model.model.fitting import learn_calibration

    model, directory, seed, fit_frame = _model_and_its_fit_rows(args)
    learn_calibration(model, fit_frame, seed, say=lambda s: print(s, flush=True))
    model.calibration_.save(directory)
    print(f"wrote {directory / 'calibration.json'}")
    return 0


def _post_fit(learn: str, what: str):
    """The command that relearns one post-fit part (`fitting.learn_coupling`,
    `fitting.learn_weekday`) on the model's training athletes and saves the model."""

    def run(args: argparse.Namespace) -> int:
        from physiology_model.model import fitting

        model, directory, _, fit_frame = _model_and_its_fit_rows(args)
        getattr(fitting, learn)(model, fit_frame, say=lambda s: print(s, flush=True))
        model.save(directory)
        print(f"wrote {what} into {directory}")
        return 0

    return run


def _model_check(args: argparse.Namespace) -> int:
    from analysis.forecast_eval import write_forecast_report
    from analysis.model_check import CheckConfig, run_check, summary_table
    from physiology_model.data.loaders import load_exports
    from physiology_model.model.world_model import WorldModel, resolve_model_dir

    config = CheckConfig(condition_days=args.condition_days, replicates=args.replicates,
                         seed=args.seed)
    model = WorldModel.load(resolve_model_dir(args.model))
    frame = load_exports(args.data).frame
    records = run_check(model, frame, config, progress=lambda m: print(m, flush=True))
    write_forecast_report(records, args.out)
    print(summary_table(records))
    print(f"wrote {args.out} ({len(records)} records)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sub-command to `periodize`'s parser."""
    model = sub.add_parser("model", help="fit and evaluate the physiology world model")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    fit = model_sub.add_parser("fit", help="fit the hierarchical Bayesian world model")
    fit.add_argument("--data", nargs="+", required=True, help="export files or directories")
    fit.add_argument("--out", required=True, help="model directory to write")
    fit.add_argument("--seed", type=int, default=0, help="root seed (split and sampler)")
    fit.add_argument("--all", action="store_true",
                     help="fit on every athlete and day (default: hold out the evaluation's "
                          "test athletes and the last 15%% of each athlete's days)")
    fit.add_argument("--sampler", default="nutpie",
                     choices=["nutpie", "pymc", "advi", "pathfinder"])
    # The defaults reproduce models/shipped (docs/world_model.md: ~6-8 min on 2 cores).
    fit.add_argument("--draws", type=int, default=1500, help="posterior draws per chain")
    fit.add_argument("--tune", type=int, default=1000, help="warm-up iterations per chain")
    fit.add_argument("--chains", type=int, default=2)
    fit.add_argument("--target-accept", type=float, default=0.9,
                     help="NUTS target acceptance rate (higher: smaller steps, fewer "
                          "divergences, slower)")
    fit.add_argument("--low-rank-mass-matrix", action=argparse.BooleanOptionalAction,
                     default=True,
                     help="nutpie: adapt a diagonal plus low-rank mass matrix (default), which "
                          "follows correlations such as the pooled time constants' with every "
                          "athlete's gains; --no-low-rank-mass-matrix: diagonal only")
    fit.add_argument("--nutpie-backend", default="jax", choices=["jax", "numba"],
                     help="nutpie's compiler (jax: seconds to compile; numba: minutes)")
    fit.add_argument("--noise", default="ar1", choices=["ar1", "slow-fast"],
                     help="each target's noise in the likelihood: one AR(1), its slow drift "
                          "chosen after the fit (default, as models/shipped), or slow + fast "
                          "AR(1)s fitted in the likelihood (several times slower)")
    fit.add_argument("--max-days", type=int, default=365,
                     help="most recent days per athlete used in the fit")
    fit.add_argument("--progress", action="store_true", help="show the sampler's progress")
    fit.add_argument("--no-residual", action="store_true",
                     help="skip the neural residual (Banister model only)")
    fit.add_argument("--population-athletes", type=int, default=None, metavar="K",
                     help="large cohorts: the population by NUTS on K training athletes "
                          "(chosen by --seed, stratified by source), every other one "
                          "personalised against it (docs/scale.md)")
    fit.add_argument("--workers", type=int, default=1,
                     help="with --population-athletes: local processes that personalise")
    fit.add_argument("--ray-address", default=None,
                     help="with --population-athletes: personalise on this Ray cluster "
                          "(host:port, 'auto' or 'local')")
    fit.set_defaults(func=_model_fit)
    ev = model_sub.add_parser("evaluate", help="forecast skill against baselines")
    ev.add_argument("--model", required=True, help="model directory")
    ev.add_argument("--data", nargs="+", required=True, help="export files or directories")
    ev.add_argument("--out", required=True, help="JSON file of records")
    ev.add_argument("--seed", type=int, default=None, help="default: the model's split seed")
    ev.add_argument("--samples", type=int, default=200, help="predictive samples per forecast")
    ev.add_argument("--horizons", type=int, nargs="+", default=[1, 7],
                    help="forecast horizons in days")
    ev.add_argument("--condition-days", type=int, default=14,
                    help="first calendar days each unseen athlete is personalised on")
    ev.set_defaults(func=_model_evaluate)
    # the post-fit parts relearned on the model's training athletes (_model_and_its_fit_rows)
    for name, what, func in (
            ("calibrate", "learn the predictive intervals' recalibration for new athletes",
             _model_calibrate),
            ("couple", "estimate how the signals' noises move together on the same morning",
             _post_fit("learn_coupling", "the coupling")),
            ("weekday", "estimate each signal's offset on each day of the week",
             _post_fit("learn_weekday", "the weekday offsets"))):
        post_fit = model_sub.add_parser(name, help=f"{what} on the model's training athletes "
                                                   f"(written into the model directory)")
        post_fit.add_argument("--model", required=True, help="model directory")
        post_fit.add_argument("--data", nargs="+", required=True,
                              help="the export files or directories the model was fitted on")
        post_fit.set_defaults(func=func)
    check = model_sub.add_parser(
        "check", help="out-of-sample sim-to-real check on athletes outside the fit")
    check.add_argument("--model", required=True, help="model directory")
    check.add_argument("--data", nargs="+", required=True, help="export files or directories")
    check.add_argument("--out", required=True, help="JSON file of records")
    check.add_argument("--condition-days", type=int, default=28,
                       help="first calendar days each athlete is personalised on")
    check.add_argument("--replicates", type=int, default=100,
                       help="simulated trajectories per athlete")
    check.add_argument("--seed", type=int, default=0)
    check.set_defaults(func=_model_check)
