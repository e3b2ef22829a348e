"""The `periodize` command line: one sub-command per stage, no logic of its own.

Bad input ends in one line on stderr naming the file and the problem, and exit code 2; no
traceback and no partial output file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from physiology_model.errors import DataError


def _data_summary(args: argparse.Namespace) -> int:
    from physiology_model.loaders import load_exports
    from physiology_model.summary import summarize_table, totals_by_source

    table = load_exports(args.paths)
    summary = summarize_table(table)
    if args.json:
        payload = {
            "athletes": summary.to_dict(orient="records"),
            "totals": totals_by_source(summary).to_dict(orient="records"),
            "notes": [n.__dict__ for n in table.notes],
        }
        sys.stdout.write(json.dumps(payload, indent=1, default=_json_default) + "\n")
        return 0
    with pd.option_context("display.max_rows", None, "display.width", 200,
                           "display.max_columns", None):
        print(summary.to_string(index=False))
        print()
        print(totals_by_source(summary).to_string(index=False))
    kinds = pd.Series([n.kind for n in table.notes]).value_counts()
    if len(kinds):
        print()
        print("notes: " + ", ".join(f"{k} {v}" for k, v in kinds.items())
              + " (see --json for each one)")
    return 0


def _data_build(args: argparse.Namespace) -> int:
    from physiology_model.loaders import load_exports

    table = load_exports(args.paths)
    out = Path(args.out)
    table.to_parquet(out)
    print(f"wrote {out}: {len(table.frame)} user-days, {len(table.users)} athletes, "
          f"{len(table.notes)} notes")
    return 0


def _data_calibrate(args: argparse.Namespace) -> int:
    from physiology_model.load import calibrate_strain, save_strain_calibration

    calibration = calibrate_strain(args.paths)
    save_strain_calibration(calibration, args.out)
    print(calibration.describe())
    print(f"wrote {args.out}")
    return 0


def _model_fit(args: argparse.Namespace) -> int:
    from analysis.forecast_eval import split_for_forecasting
    from physiology_model.bayes import SamplerConfig
    from physiology_model.loaders import load_exports
    from physiology_model.world_model import WorldModel, WorldModelConfig

    frame = load_exports(args.data).frame
    split = split_for_forecasting(frame, seed=args.seed)
    fit_frame = (pd.concat(list(split.frames.values()), ignore_index=True) if args.all
                 else split.fit_frame)
    config = WorldModelConfig(max_days=args.max_days)
    sampler = SamplerConfig(sampler=args.sampler, draws=args.draws, tune=args.tune,
                            chains=args.chains, seed=args.seed, progress_bar=args.progress,
                            nutpie_backend=args.nutpie_backend)
    held_out = "none (--all)" if args.all else (f"{len(split.test_users)} athletes and the last "
                                               f"15 % of each training athlete's days")
    print(f"fitting {fit_frame['user_id'].nunique()} athletes, {len(fit_frame)} days "
          f"(held out: {held_out}); sampler {args.sampler}, {args.chains} chains × "
          f"{args.draws} draws", flush=True)
    started = time.perf_counter()
    model = WorldModel(config, sampler=sampler).fit(fit_frame)
    timings = model.fit_info_.get("timings", {})
    print(f"posterior: {time.perf_counter() - started:.0f} s (compile "
          f"{timings.get('compile_s', 0.0):.0f} s, sampling {timings.get('sample_s', 0.0):.0f} s)",
          flush=True)
    drift_started = time.perf_counter()
    drift = model.fit_drift(fit_frame, seed=args.seed)
    model.fit_info_["drift"] = drift
    model.fit_info_["timings"]["drift_s"] = time.perf_counter() - drift_started
    for target, chosen in drift.items():
        print(f"noise drift {target}: {chosen['setting']} (next-day CRPS {chosen['crps']:.4f} vs "
              f"{chosen['crps_ar1']:.4f} with one AR(1), {chosen['athletes']} athletes "
              f"personalised on 14 days)")
    if not args.no_residual:
        from physiology_model.hybrid import describe_residual, fit_residual

        residual_started = time.perf_counter()
        model.residual_ = fit_residual(model, fit_frame, seed=args.seed)
        print(describe_residual(model.residual_))
        model.fit_info_["timings"]["residual_s"] = time.perf_counter() - residual_started
    calibration_started = time.perf_counter()
    _learn_calibration(model, fit_frame, args.seed)
    model.fit_info_["timings"]["calibration_s"] = time.perf_counter() - calibration_started
    model.split_ = {"seed": args.seed, "all": bool(args.all),
                    "test_users": list(split.test_users)}
    model.save(args.out)
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s in all)")
    return 0 if model.diagnostics_.get("ok", False) else 3


def _learn_calibration(model, fit_frame: pd.DataFrame, seed: int) -> None:
    """Learn the interval calibration on the fit's training athletes and print its
    leave-athletes-out coverage (physiology_model/calibration.py)."""
    from physiology_model.calibration import fit_calibration

    model.calibration_ = None  # standardise the model's own forecasts
    model.calibration_ = fit_calibration(model, fit_frame, seed=seed)
    for row in model.calibration_.info["cross_validation"]:
        print(f"calibrated intervals, {row['target']} h={row['horizon']} after "
              f"{row['condition_days']} days: 50 % cover {row['cover50']:.3f}, 90 % cover "
              f"{row['cover90']:.3f} (training athletes left out by fold, {row['n']} days)")


def _model_calibrate(args: argparse.Namespace) -> int:
    from analysis.forecast_eval import split_for_forecasting
    from physiology_model.loaders import load_exports
    from physiology_model.world_model import WorldModel

    model = WorldModel.load(args.model)
    seed = int(model.split_.get("seed", 0))
    frame = load_exports(args.data).frame
    split = split_for_forecasting(frame, seed=seed)
    fit_frame = split.fit_frame[split.fit_frame["user_id"].astype(str).isin(model.athletes_)]
    if fit_frame.empty:
        raise DataError(args.model, "none of the model's training athletes is in the data")
    _learn_calibration(model, fit_frame, seed)
    model.calibration_.save(args.model)
    print(f"wrote {Path(args.model) / 'calibration.json'}")
    return 0


def _model_evaluate(args: argparse.Namespace) -> int:
    from analysis.forecast_eval import evaluate_forecasters, write_forecast_report
    from physiology_model.forecast import baseline_forecasters
    from physiology_model.loaders import load_exports
    from physiology_model.world_model import WorldModel, WorldModelForecaster

    model = WorldModel.load(args.model)
    seed = args.seed if args.seed is not None else int(model.split_.get("seed", 0))
    frame = load_exports(args.data).frame
    forecasters = [*baseline_forecasters(max_horizon=max(args.horizons)),
                   WorldModelForecaster(model, seed=seed, use_residual=False,
                                        name="world_model_base"),
                   WorldModelForecaster(model, seed=seed)]
    records = evaluate_forecasters(frame, forecasters, seed=seed, n_samples=args.samples,
                                   horizons=args.horizons, condition_days=args.condition_days)
    write_forecast_report(records, args.out)
    table = pd.DataFrame(records)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.pivot_table(index=["target", "horizon", "split"], columns="method",
                                values="crps").round(4).to_string())
    print(f"wrote {args.out} ({len(records)} records)")
    return 0


def _model_check(args: argparse.Namespace) -> int:
    from analysis.forecast_eval import write_forecast_report
    from analysis.model_check import CheckConfig, run_check, summary_table
    from physiology_model.loaders import load_exports
    from physiology_model.world_model import WorldModel

    config = CheckConfig(condition_days=args.condition_days, replicates=args.replicates,
                         seed=args.seed)
    model = WorldModel.load(args.model)
    frame = load_exports(args.data).frame
    records = run_check(model, frame, config, progress=lambda m: print(m, flush=True))
    write_forecast_report(records, args.out)
    print(summary_table(records))
    print(f"wrote {args.out} ({len(records)} records)")
    return 0


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="periodize", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="read wearable exports into the canonical daily table")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    summary = data_sub.add_parser("summary", help="per-athlete summary of exports")
    summary.add_argument("paths", nargs="+", help="export files or directories")
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    summary.set_defaults(func=_data_summary)
    build = data_sub.add_parser("build", help="write the canonical daily table")
    build.add_argument("paths", nargs="+", help="export files or directories")
    build.add_argument("--out", required=True, help="output .parquet file")
    build.set_defaults(func=_data_build)
    calibrate = data_sub.add_parser(
        "calibrate", help="fit the WHOOP day strain → TRIMP calibration on users with both")
    calibrate.add_argument("paths", nargs="+", help="WHOOP export files or directories")
    calibrate.add_argument("--out", required=True, help="output .json file")
    calibrate.set_defaults(func=_data_calibrate)

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
    fit.add_argument("--nutpie-backend", default="jax", choices=["jax", "numba"],
                     help="nutpie's compiler (jax: seconds to compile; numba: minutes)")
    fit.add_argument("--max-days", type=int, default=365,
                     help="most recent days per athlete used in the fit")
    fit.add_argument("--progress", action="store_true", help="show the sampler's progress")
    fit.add_argument("--no-residual", action="store_true",
                     help="skip the neural residual (Banister model only)")
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
    calibrate = model_sub.add_parser(
        "calibrate", help="learn the predictive intervals' recalibration for new athletes on "
                          "the model's training athletes (written into the model directory)")
    calibrate.add_argument("--model", required=True, help="model directory")
    calibrate.add_argument("--data", nargs="+", required=True,
                           help="the export files or directories the model was fitted on")
    calibrate.set_defaults(func=_model_calibrate)
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

    from analysis.commands import register

    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded with outputs
    try:
        return int(args.func(args) or 0)
    except DataError as exc:
        print(f"periodize: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # the library's functions raise ValueError for an argument they cannot use (steps < 1,
        # a policy without what it needs, ...): one line, unless the traceback is asked for
        if os.environ.get("PERIODIZE_TRACEBACK"):
            raise
        print(f"periodize: error: {exc} (PERIODIZE_TRACEBACK=1 shows where)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
