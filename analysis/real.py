"""Checks on real athletes (DESIGN §9, real held-out): sim-to-real and policies in twins.

- Sim-to-real: each athlete's actual loads replayed through its digital twin
  (simulator.replay); measured vs simulated mean, SD, lag-1 autocorrelation and response to hard
  days of ln HRV, RHR and recovery.
- Policies in twins: every policy against the athlete's own actual plan over the same number of
  days, inside the athlete's twin (simulator.cohort.twin_cohort + the same Simulation as the
  synthetic benchmark). The actual plan is the athlete's first `days` recorded sessions; a day
  without a session label is classed by its load (≤ 20 TRIMP rest, otherwise Z2, the commonest
  training session), a day without any load as rest; where the safety rules forbid the actual
  session on a simulated day it is stepped down like any policy's (agents.policy.step_down).

Held-out athletes are those the world model was not fitted on (its saved split), unless
`include_fitted` is set. Any directory of exports works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from agents.policy import step_down
from analysis.benchmark import evaluate_policies
from physiology_model.data.load import actual_actions
from simulator.cohort import twin_cohort
from simulator.env import EnvConfig
from simulator.replay import describe_replay, replay_athlete


class ActualPlanPolicy:
    """Replays each athlete's own sessions, day by day (stepped down under the mask)."""

    name = "actual_plan"

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions, dtype=np.int64)
        self.day = 0

    def reset(self, seed: int | None = None) -> None:
        self.day = 0

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:

        planned = self.actions[:, min(self.day, self.actions.shape[1] - 1)]
        self.day += 1
        return step_down(planned, mask)


def held_out_athletes(model, frame: pd.DataFrame, include_fitted: bool = False) -> list[str]:
    users = sorted(frame["user_id"].astype(str).unique())
    return users if include_fitted else [u for u in users if u not in model.athletes_]


def sim_to_real(model, frame: pd.DataFrame, athletes: Sequence[str], *, n_replicates: int = 20,
                seed: int = 0, min_days: int = 28) -> list[dict[str, Any]]:
    """Measured vs simulated statistics per athlete × target × statistic."""
    import warnings


    rng = np.random.default_rng(seed)
    rows = []
    for uid in athletes:
        h = frame[frame["user_id"] == uid]
        n_obs = int((h["hrv_rmssd_ms"].notna() | h["rhr_bpm"].notna()).sum())
        if n_obs < min_days:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a rough personalisation is reported, not hidden
            rows += describe_replay(replay_athlete(model, h.tail(365), n_replicates, rng))
    return rows


def summarize_sim_to_real(rows: Sequence[dict]) -> list[dict[str, Any]]:
    """Per target × statistic: median measured, median simulated, and the correlation across
    athletes (does the twin put each athlete where they really are?)."""
    frame = pd.DataFrame(rows)
    out = []
    if frame.empty:
        return out
    for (target, stat), g in frame.groupby(["target", "statistic"], sort=False):
        g = g.dropna(subset=["measured", "simulated"])
        if len(g) < 2:
            continue
        corr = (float(np.corrcoef(g["measured"], g["simulated"])[0, 1])
                if g["measured"].std() > 0 and g["simulated"].std() > 0 else float("nan"))
        out.append({"target": target, "statistic": stat, "n_athletes": len(g),
                    "measured_median": float(g["measured"].median()),
                    "simulated_median": float(g["simulated"].median()),
                    "correlation_across_athletes": corr})
    return out


def policies_in_twins(model, frame: pd.DataFrame, athletes: Sequence[str],
                      factories: dict[str, Callable], *, days: int = 60, seed: int = 0,
                      progress: Callable[[str], None] | None = None):
    """Every policy and the athletes' actual plans in their twins, `days`-day episodes."""

    plans, keep = [], []
    for uid in athletes:
        a = actual_actions(frame[frame["user_id"] == uid], days)
        if a is not None:
            plans.append(a)
            keep.append(uid)
    if not keep:
        return None, [], []
    sub = frame[frame["user_id"].isin(keep)]
    cohort = twin_cohort(model, sub, seed, min_days=7)
    order = [keep.index(u) for u in cohort.meta["athlete_ids"]]
    actions = np.stack([plans[i] for i in order])
    all_factories = {"actual_plan": lambda sim: ActualPlanPolicy(actions), **factories}
    runs, records = evaluate_policies(all_factories, cohort, EnvConfig(episode_days=days),
                                      seed=seed, progress=progress, reference="actual_plan")
    return runs, records, cohort.meta["athlete_ids"]
