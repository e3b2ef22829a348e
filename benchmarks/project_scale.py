"""Projection (not a measurement) of daily recommendations to more workers and more athletes.

Reads benchmarks/results/recommend_throughput.json. For each planner, the one-worker run gives
the per-athlete time of one worker, t = (wall − start-up) / athletes, with the start-up taken
as the measured model load (`meta.model_load_s`); each added worker pays the start-up once and
plans its share. The projection for W workers and N athletes is start-up + N · t / W, i.e.
perfect scaling of the per-athlete work: an upper bound on speed, which the measured 2-worker
run (`parallel_efficiency_measured`) tempers. Ray adds a task dispatch per task of up to
32 exports (milliseconds against seconds of planning) and nothing per athlete.

Writes benchmarks/results/recommend_projection.json; every number in it is labelled
`projected` and derives from the measured file named in its meta.

    .venv/bin/python benchmarks/project_scale.py [--workers 1 2 16 64] [--athletes 1000 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.benchmark import write_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measured", default=str(ROOT / "benchmarks" / "results"
                                                  / "recommend_throughput.json"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 16, 64])
    parser.add_argument("--athletes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "recommend_projection.json"))
    args = parser.parse_args(argv)
    measured = json.loads(Path(args.measured).read_text())
    startup = float(measured["meta"]["model_load_s"])
    # local runs by (planner, workers); `workers` is a number, or a string in the newer files
    # ("1", "2", "ray2": the Ray runs are left out here); of several sizes, the largest
    runs = {}
    for r in sorted((r for r in measured["records"] if "workers" in r),
                    key=lambda r: r.get("athletes", 0)):
        if str(r["workers"]).isdigit():
            runs[(r["planner"], int(r["workers"]))] = r
    records = []
    for planner in sorted({p for p, _ in runs}):
        one = runs.get((planner, 1))
        if one is None:
            continue
        per_athlete = max(one["wall_s"] - startup, 0.0) / one["planned"]
        two = runs.get((planner, 2))
        efficiency = None if two is None else one["wall_s"] / two["wall_s"] / 2
        for workers in args.workers:
            for n in args.athletes:
                wall = startup + n * per_athlete / workers
                records.append({"planner": planner, "workers": workers, "athletes": n,
                                "projected_wall_s": wall, "projected_wall_min": wall / 60,
                                "projected_recommendations_per_s": n / wall,
                                "measured_per_athlete_s_one_worker": per_athlete,
                                "measured_startup_s": startup,
                                "parallel_efficiency_measured": efficiency})
    meta = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "measured_file": args.measured, "measured_meta": measured["meta"],
            "note": "projected, not measured: start-up + athletes × per-athlete time / workers "
                    "(perfect scaling; see parallel_efficiency_measured)"}
    write_benchmark(args.out, meta, records)
    for r in records:
        print(f"{r['planner']:9s} {r['workers']:3d} workers {r['athletes']:7d} athletes: "
              f"projected {r['projected_wall_min']:9.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
