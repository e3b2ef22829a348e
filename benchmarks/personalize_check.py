"""Personalisation of athletes the shipped world model never saw: weight quality and time.

For each held-out athlete of the shipped model (its `split.test_users`) and two fitted ones,
`personalize.personalize_series` on the athlete's first 14, 60 and 365 rows (the whole history
when it is shorter) with the same seed, and with one round of proposals (the population itself, as
before the adaptive rounds) and with the default rounds. Reports the effective sample size of
the weights, the wall time, and the posterior median and SD of log σ_HRV. Writes
`benchmarks/results/personalize_check.json` (config, machine load, every record). Usage:

    .venv/bin/python benchmarks/personalize_check.py [--days 14 60 365] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FITTED_EXAMPLES = ("whoop-u01", "garmin-u02")
"""Two athletes of the fit, for comparison with the held-out ones."""


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "shipped")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "real")
    parser.add_argument("--days", type=int, nargs="+", default=[14, 60, 365])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "personalize_check.json")
    args = parser.parse_args(argv)

    from physiology_model.data.loaders import load_exports
    from physiology_model.model.forecast import series_from_frame
    from physiology_model.model.personalize import PERSONALIZE_ROUNDS, personalize_series
    from physiology_model.model.world_model import WorldModel

    model = WorldModel.load(args.model)
    frame = load_exports([str(args.data)]).frame
    users = list(model.split_.get("test_users", [])) + list(FITTED_EXAMPLES)
    records = []
    for user in users:
        history = frame[frame["user_id"] == user].sort_values("date").reset_index(drop=True)
        scored = set()
        for days in args.days:
            rows = history.iloc[:days]
            if len(rows) in scored:
                continue  # the whole history was already scored at a smaller length
            scored.add(len(rows))
            series = series_from_frame(rows)
            if int(np.sum(~np.isnan(series.hrv) | ~np.isnan(series.rhr))) < 7:
                continue
            for rounds in (1, PERSONALIZE_ROUNDS):
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = personalize_series(
                        model.population_, series, np.random.default_rng(args.seed),
                        model.config.personalize_proposals, model.config.personalize_draws,
                        rounds=rounds)
                wall = time.perf_counter() - started
                log_sigma = np.log(result.params["sigma_hrv"])
                records.append({"athlete": user, "held_out": user not in FITTED_EXAMPLES,
                                "rows": len(rows), "observed_days": result.n_days,
                                "rounds": rounds, "ess": result.ess,
                                "proposals_per_round": result.n_proposals, "wall_ms": 1e3 * wall,
                                "log_sigma_hrv_median": float(np.median(log_sigma)),
                                "log_sigma_hrv_sd": float(np.std(log_sigma))})
                r = records[-1]
                print(f"{user:24s} {r['rows']:4d} rows  rounds {rounds}  ESS {r['ess']:7.1f}  "
                      f"{r['wall_ms']:6.0f} ms", flush=True)
    payload = {"command": " ".join(["benchmarks/personalize_check.py"]
                                   + (argv if argv is not None else sys.argv[1:])),
               "config": {k: str(v) for k, v in vars(args).items()},
               "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
               "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")
    return records


if __name__ == "__main__":
    main()
