"""Which noise model predicts people it has never seen: leave-athletes-out log predictive density.

PSIS-LOO over athletes (`noise_elpd.py`) cannot answer this for the world model: leaving out
a whole athlete moves its own parameters' posterior so far that every athlete's Pareto k is
above 0.7 (58 of 58 in noise_elpd_tails.json), so the estimate is not usable. Here the
athletes are really left out: every athlete of `--data` that none of the compared models was
fitted on is personalised as a new user would be, and the personalisation's importance
sampler estimates the marginal likelihood of its days under the fitted population
(`Personalization.log_evidence`: the athlete's own baselines and gains integrated out, the
population draws averaged over). The predictive density of the athlete's next `--future-days`
days given its first `--condition-days`:

    log p(future | first days, training data) = log Z(first days + future) − log Z(first days),

for all three targets together and for each target's future alone (ln HRV in ln ms, RHR in
bpm, recovery on the logit scale: the world model's own units). Each athlete is personalised
with the same random numbers under every model (common random numbers), so the paired
differences carry less Monte Carlo noise than the densities. The comparison is
`az.compare`'s: the difference of each model's summed log density from the first model's
(the first `--model`, else the first `--one-ar1`), and its standard error
sqrt(n · var(per-athlete differences)) over the n athletes.

`--model NAME=DIR` compares saved models; `--one-ar1 NAME=DIR` is the model of DIR with each
target's two noise components replaced by one AR(1) of the same SD and lag-1 autocorrelation
(`as_one_ar1`).

    .venv/bin/python benchmarks/heldout_elpd.py --one-ar1 one_ar1=models/shipped
        --model post_fit_slow=models/shipped [--model slow_fast=DIR] --data data/real
        [--condition-days 28 --future-days 28 --proposals 2000 --rounds 3 --seed 0]
        [--out benchmarks/results/heldout_elpd.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import load_average, machine_record

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "heldout_elpd.json"
TARGET_FIELDS = {"hrv": "hrv", "rhr": "rhr", "recovery": "recovery_logit"}


def _named(text: str) -> tuple[str, Path]:
    name, sep, directory = text.partition("=")
    if not sep or not name or not directory:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name, Path(directory)


def as_one_ar1(model) -> None:
    """Replace each target's slow + fast noise by one AR(1) with the same marginal SD and the
    same lag-1 autocorrelation w·φ_s + (1 − w)·φ_f, in the population's and every fitted
    athlete's draws. For a model fitted with one AR(1) whose fast φ was kept (RHR in the
    shipped fit), this is its posterior's own noise again; where the post-fit setting fixed
    the fast φ (ln HRV, recovery), the one AR(1) is matched to the two components' lag 1."""
    from physiology_model.dynamics.observation import (
        NOISE_PHI,
        NOISE_PHI_SLOW,
        NOISE_SLOW_SHARE,
    )

    for draws in (model.population_.phi, *model.athletes_.values()):
        for target, phi_name in NOISE_PHI.items():
            share = np.asarray(draws[NOISE_SLOW_SHARE[target]], dtype=float)
            lag1 = (share * np.asarray(draws[NOISE_PHI_SLOW[target]], dtype=float)
                    + (1.0 - share) * np.asarray(draws[phi_name], dtype=float))
            draws[phi_name] = lag1
            draws[NOISE_SLOW_SHARE[target]] = np.zeros_like(share)
            draws[NOISE_PHI_SLOW[target]] = np.zeros_like(share)


def _blank(series, keep_until: int, targets: tuple[str, ...]):
    """The series with every target's days from `keep_until` on blanked, except `targets`'."""
    changes = {}
    for target, field in TARGET_FIELDS.items():
        if target not in targets:
            values = getattr(series, field).copy()
            values[keep_until:] = np.nan
            changes[field] = values
    return dataclasses.replace(series, **changes)


def athlete_densities(model, rows: pd.DataFrame, args, seed_key: int) -> dict | None:
    """Log Z of the first days, and of the first days plus each target's (and all targets')
    future; None when the athlete has under 7 measured days in the first `condition_days` or
    under 7 measured values after them."""
    from physiology_model.model.forecast import series_from_frame

    rows = rows.sort_values("date")
    start = rows["date"].min()
    rows = rows[rows["date"] < start + pd.Timedelta(days=args.condition_days + args.future_days)]
    series = series_from_frame(rows)
    n_cond = min(args.condition_days, len(series.load))
    head_seen = np.isfinite(series.hrv[:n_cond]) | np.isfinite(series.rhr[:n_cond])
    future_n = {t: int(np.isfinite(getattr(series, f)[n_cond:]).sum())
                for t, f in TARGET_FIELDS.items()}
    if head_seen.sum() < 7 or sum(future_n.values()) < 7:
        return None

    def log_z(targets: tuple[str, ...]) -> tuple[float, float]:
        rng = np.random.default_rng([args.seed, seed_key])  # the same draws under every model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rough weights are reported as the ESS
            person = model.personalize(_blank(series, n_cond, targets), rng,
                                       n_proposals=args.proposals, rounds=args.rounds)
        return person.log_evidence, person.ess

    head, head_ess = log_z(())
    out = {"source": series.source, "condition_days": n_cond, "head_days": int(head_seen.sum()),
           "future_values": future_n, "head_ess": head_ess, "log_predictive": {},
           "ess": {}}
    for name, targets in (("all", tuple(TARGET_FIELDS)),
                          *((t, (t,)) for t in TARGET_FIELDS)):
        if sum(future_n[t] for t in targets) == 0:
            continue
        z, ess = log_z(targets)
        out["log_predictive"][name] = z - head
        out["ess"][name] = ess
    return out


def compare(per_model: dict[str, dict[str, dict]], reference: str) -> dict:
    """Per target: each model's summed log predictive density over the athletes every model
    scored, per observed value, and its difference from `reference` with az.compare's SE."""
    table = {}
    for target in ("all", *TARGET_FIELDS):
        athletes = sorted(set.intersection(*(
            {a for a, r in rows.items() if target in r["log_predictive"]}
            for rows in per_model.values())))
        if not athletes:
            continue
        values = {m: np.array([rows[a]["log_predictive"][target] for a in athletes])
                  for m, rows in per_model.items()}
        any_rows = next(iter(per_model.values()))
        n_values = sum(sum(any_rows[a]["future_values"][t] for t in
                           (TARGET_FIELDS if target == "all" else (target,)))
                       for a in athletes)
        table[target] = {"athletes": len(athletes), "values": n_values, "models": {}}
        for m, v in values.items():
            d = v - values[reference]
            table[target]["models"][m] = {
                "elpd": float(v.sum()), "per_value": float(v.sum() / n_values),
                "elpd_diff_vs_" + reference: float(d.sum()),
                "dse": float(np.sqrt(len(d) * d.var(ddof=1))) if len(d) > 1 else None,
                "athletes_better": int((d > 0).sum()),
            }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=_named, action="append", default=[],
                        metavar="NAME=DIR")
    parser.add_argument("--one-ar1", type=_named, action="append", default=[],
                        metavar="NAME=DIR", help="DIR without its post-fit slow noise")
    parser.add_argument("--data", nargs="+", default=[str(ROOT / "data" / "real")])
    parser.add_argument("--condition-days", type=int, default=28)
    parser.add_argument("--future-days", type=int, default=28)
    parser.add_argument("--proposals", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--athletes", nargs="*", default=None,
                        help="only these athletes (default: every one outside every fit)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if len(args.model) + len(args.one_ar1) < 1:
        parser.error("give at least one --model or --one-ar1")

    from analysis.model_check import unseen_athletes
    from physiology_model.data.loaders import load_exports
    from physiology_model.model.world_model import WorldModel

    frame = load_exports(args.data).frame
    frame = frame.assign(user_id=frame["user_id"].astype(str))
    started = time.perf_counter()
    models = {name: WorldModel.load(directory) for name, directory in args.model}
    for name, directory in args.one_ar1:
        models[name] = WorldModel.load(directory)
        as_one_ar1(models[name])
    athletes = sorted(set.intersection(*(set(unseen_athletes(m, frame))
                                         for m in models.values())))
    if args.athletes is not None:
        athletes = [a for a in athletes if a in set(args.athletes)]
    per_model: dict[str, dict[str, dict]] = {name: {} for name in models}
    for athlete in athletes:
        rows = frame[frame["user_id"] == athlete]
        key = zlib.crc32(athlete.encode())
        for name, model in models.items():
            result = athlete_densities(model, rows, args, key)
            if result is not None:
                per_model[name][athlete] = result
        if athlete in per_model[next(iter(models))]:
            lp = {n: round(per_model[n][athlete]["log_predictive"]["all"], 1)
                  for n in models}
            print(f"{athlete}: {lp}", flush=True)
    reference = next(iter(models))
    record = {
        "benchmark": "heldout_elpd", "seed": args.seed,
        "config": {**{k: v for k, v in vars(args).items() if k not in ("model", "one_ar1")},
                   "models": {n: str(d) for n, d in args.model},
                   "one_ar1": {n: str(d) for n, d in args.one_ar1},
                   "out": str(args.out)},
        "machine": machine_record(), "load_average": load_average(),
        "wall_s": time.perf_counter() - started,
        "compare": compare(per_model, reference),
        "athletes": per_model,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(record, indent=1) + "\n")
    tmp_out.replace(args.out)
    print(json.dumps(record["compare"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
