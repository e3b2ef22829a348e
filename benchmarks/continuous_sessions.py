"""What sessions a continuous-action policy asks for: duration, intensity and TRIMP per zone.

A continuous-action learner (SB3's SAC, `periodize train --agent sac-continuous`) chooses a
(duration, intensity) each morning. This plays one 90-day episode of `--n` athletes of a
cohort (`Simulation`, episode seed `--seed`) and records every requested session before the
rules: its zone (`simulator.env.session_class`), its duration and intensity, and its TRIMP
(`continuous_loads`) against the nominal session of that zone (`configs/sessions.toml`), with
the env's `seed_session_lengths` on or off (`--uncut`). It is how the shipped continuous SAC
trained before sessions were cut to the seed's lengths was found asking for 80-100 min of
HIIT-zone work.

    python benchmarks/continuous_sessions.py --run models/agents/sac-continuous \\
        --cohort COHORT.npz [--n 64] [--seed 12345] [--uncut] --out FILE.json
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import write_result  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a continuous-action run")
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--n", type=int, default=64, help="athletes (the cohort's first)")
    parser.add_argument("--seed", type=int, default=12345, help="episode seed")
    parser.add_argument("--uncut", action="store_true",
                        help="the env before 2026-12-07: sessions of any length")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from agents.training import load_agent
    from physiology_model.data.load import action_loads, continuous_loads
    from physiology_model.data.table import ACTIONS
    from simulator.cohort import Cohort
    from simulator.env import EnvConfig, Simulation, continuous_session, session_class

    policy = load_agent(args.run)
    if getattr(policy, "action_type", "discrete") != "continuous":
        raise SystemExit(f"{args.run}: not a continuous-action policy")
    cohort = Cohort.load(args.cohort)
    n = min(args.n, cohort.n)
    config = replace(EnvConfig(), action_type="continuous",
                     seed_session_lengths=not args.uncut)
    sim = Simulation(cohort, n, config)
    obs = sim.reset(args.seed)
    policy.reset(args.seed)
    asked = []
    for _ in range(config.episode_days):
        action = np.asarray(policy.act(obs, sim.agent_mask.copy()))
        asked.append(continuous_session(action, config))
        obs, _, _ = sim.step(action)
    sessions = np.concatenate(asked)
    zone = session_class(sessions)
    trimp = continuous_loads(sessions[:, 0], sessions[:, 1]).trimp
    nominal = action_loads(np.arange(len(ACTIONS))).trimp
    zones = {}
    for k, name in enumerate(ACTIONS):
        m = zone == k
        if not m.any():
            continue
        q = lambda x: [float(v) for v in np.percentile(x[m], [10, 50, 90])]  # noqa: E731
        zones[name] = {"share": float(m.mean()), "duration_min_p10_50_90": q(sessions[:, 0]),
                       "intensity_pct_hrmax_p10_50_90": q(sessions[:, 1]),
                       "trimp_p10_50_90": q(trimp), "nominal_trimp": float(nominal[k])}
    executed = sim.episode_summary()
    write_result(args.out, "continuous_sessions", {
        "command": "python benchmarks/continuous_sessions.py " + " ".join(argv or sys.argv[1:]),
        "run": str(args.run), "cohort": str(args.cohort), "n": n, "seed": args.seed,
        "seed_session_lengths": config.seed_session_lengths},
        {"requested": {"mean_trimp": float(trimp.mean()), "zones": zones},
         "executed": {"mean_load_trimp": float(np.mean(executed["mean_load_trimp"])),
                      "risky_days": float(np.mean(executed["risky_days"])),
                      "executed_violations": float(np.sum(executed["executed_violations"]))}})
    for name, z in zones.items():
        print(f"{name:16s} share {z['share']:.2f}  duration {z['duration_min_p10_50_90'][1]:5.0f} "
              f"min  intensity {z['intensity_pct_hrmax_p10_50_90'][1]:4.0f} %  TRIMP "
              f"{z['trimp_p10_50_90'][1]:5.0f} (nominal {z['nominal_trimp']:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
