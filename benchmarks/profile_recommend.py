"""Where the time of `periodize recommend` goes, per part (issue 22: what stands between the
per-athlete pipeline and 10^5 recommendations a day).

Runs `analysis.batch_recommend.recommend` once to warm up (model load, caches), then once under
cProfile, in one process, on the export folders under `--data` (e.g. the synthetic exports that
`benchmarks/recommend_throughput.py --work DIR` writes, `DIR/exports_n32_d42_s0`), with the MPC
or with a distilled planner (`--policy RUN`, e.g. the `DIR/distilled_n16_s0` run it trains).
Writes the wall time of the profiled run and, for each named part, its cumulative seconds and
share of that run (cProfile's overhead included, so shares, not absolute times, are the result).

    python benchmarks/profile_recommend.py --data DIR/exports_n32_d42_s0 \\
        [--policy DIR/distilled_n16_s0] --out benchmarks/results/profile_recommend.json
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
import warnings
from pathlib import Path

from run_record import load_average, write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.batch_recommend import RecommendSpec, recommend

PARTS = {
    "reading the exports": ("batch_recommend.py", "_load_export"),
    "features, rules and notes of this morning": ("recommend.py", "_prepare"),
    "personalisation": ("world_model.py", "personalize"),
    "the policy's roll-out": ("recommend.py", "_policy_sessions"),
    "  its rules on the predicted mornings": ("constraints.py", "mask_from_table"),
    "  its predicted mornings": ("recommend.py", "after"),
    "  its features": ("recommend.py", "_last_features"),
    "predict_batch (intervals of the plan)": ("world_model.py", "predict_batch"),
}
"""Named parts: (file name, function name) as cProfile reports them."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shipped")
    parser.add_argument("--data", required=True)
    parser.add_argument("--policy", default=None, help="a distilled run; the MPC without it")
    parser.add_argument("--out", default="benchmarks/results/profile_recommend.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    spec = RecommendSpec(args.model, policy_dir=args.policy)
    recommend(spec, args.data, progress=False)
    before = load_average()
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    rows = recommend(spec, args.data, progress=False)
    profile.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profile).stats
    parts = {}
    for label, (file, function) in PARTS.items():
        seconds = sum(v[3] for (path, _, name), v in stats.items()
                      if name == function and path.endswith(file))
        if seconds:
            parts[label] = {"seconds": round(seconds, 3), "share": round(seconds / wall, 3)}
    athletes = len({r["athlete"] for r in rows})
    for label, part in parts.items():
        print(f"{label:45s} {part['seconds']:7.2f} s  {100 * part['share']:5.1f} %")
    print(f"{athletes} athletes in {wall:.1f} s under the profiler")
    write_result(args.out, "profile_recommend", vars(args),
                 {"load_average": [before, load_average()], "athletes": athletes,
                  "wall_s": wall, "parts": parts})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
