"""A plan for a real athlete: `periodize plan` (the recommendation a user actually sees).

The athlete's export is read into the daily table; the last row is this morning (its physiology
measured, its training not done yet: the day being planned). The observation is the same
feature vector the agents saw in simulation (simulator.observation), the mask comes from the same
safety module (constraints.mask_from_table), and the sessions come from the MPC planner
(agents.mpc, planning through the world model) or from a trained policy (`--policy RUN_DIR`,
rolled forward day by day on the world model's median prediction). The predicted HRV and
recovery, with 80 % intervals, come from `WorldModel.predict` for the chosen sessions (the
athlete's fitted or personalised posterior). The MPC planner, and a policy that keeps the same
belief (the distilled planner), first live through the athlete's past mornings and sessions
(`replay`), so they plan from its personalised posterior and its tracked fitness and fatigue
rather than from the population anchored to today's baselines.

`--event DATE` (a race) is the day performance should peak: the MPC's objective ends there and
a trained policy sees it in `days_to_event`. A policy trained with the judging day as its event
(`EnvConfig.judge_day_is_event`) read `days_to_event` between its episode length and 0 in
training; an athlete with no event within that many days is shown to it at the episode length
(the start of a block), not at the feature's cap, which it never saw; the MPC then plans a
block of the same length.

`--tests FILE` gives the athlete's performance tests (a time trial, a power test): a CSV with
the columns `date` and `result`, the result in any unit where higher is better (speed, power,
distance in a fixed time; for a time over a fixed distance give its inverse, e.g. km/h). The MPC
planner then draws the performance response (`MPCConfig.performance_draws`) and weighs the
draws by how well they predict the changes between the tests (`agents.mpc.
performance_test_weights`); what a monthly test is worth is measured by
`benchmarks/performance_tests.py` (docs/results.md). One test alone tells it nothing; the
planner assumes a test that repeats within 1.5 % (`MPCConfig.
performance_test_cv`, a 5-km time trial's). A `--policy` reads tests only when it is a planner
distilled with them (`agents.distill.DistillConfig.tests_every`); other policies refuse them.
Without `--tests`, the tests the export itself carries (intervals.icu tests and races, the
Section 11 FTP log; `physiology_model.data.loaders.performance_tests`) are used, and the plan lists
them in its notes.

A rule "changed the choice" when the planner, asked again without the hard rules, would pick a
different session today; the plan then says which rule fired.

Many athletes are planned at once by `plan_batch` (`periodize recommend`); `plan_from_history`
and `periodize plan` are its batch of one. Athletes with the same number of mornings are
planned together (the planners are vectorised over athletes), and every random number of an
athlete's plan comes from its own streams, keyed by `seed` and its id (`agents.lanes`): the
planner's (its population draws, CEM plans and noise paths) and the predictions'. An
athlete's plan is therefore the same whichever athletes share its batch; the same seed gives
two athletes different streams.

Each athlete is personalised once per plan: its posterior (`WorldModel.athlete_params`, the
world model's own personalisation of the export's rows, or the fitted posterior of an athlete
of the fit) is drawn first, and the planner's belief takes it in its replay (instead of
personalising on the past mornings again, `AthleteBelief.replay(posterior=)`), a trained
policy rolled forward day by day predicts each morning from it (`_MedianMornings`: what
`WorldModel.predict(params=)` gives, for the batch at once), the plan's intervals come from
the same draws (`WorldModel.predict_batch`), and so does the plan without the hard rules.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.lanes import athlete_seed
from agents.mpc import MPCConfig, MPCPlanner
from agents.plan_honesty import careful_mask, morning_facts
from agents.policy import reads_performance_tests
from physiology_model.data.load import SessionLoads, action_loads, actual_actions
from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders._io import read_csv, require_columns, to_datetime, to_number
from physiology_model.data.loaders.performance_tests import tests_for_athlete
from physiology_model.data.names import nearest_names
from physiology_model.data.table import ACTIONS, NoteLog
from physiology_model.dynamics.observation import logit_to_recovery, recovery_to_logit
from physiology_model.errors import DataError
from physiology_model.model.arrays import daily_loads
from physiology_model.model.forecast import (
    forecast_gaussians,
    plan_frame,
    sample_gaussians,
    series_from_frame,
    stack_athletes,
)
from physiology_model.model.world_model import WorldModel, resolve_model_dir
from simulator.constraints import enforce, mask_from_table
from simulator.env import EnvConfig, continuous_session, executed_loads, session_class
from simulator.observation import FEATURE_INDEX as F
from simulator.observation import observation_matrix, observations_from_table

MIN_DAYS = 7
TEST_DRAWS = 1024
"""Draws of the performance response the MPC weighs when the athlete has tests (as in
`benchmarks/performance_tests.py`, and the `mpc_tested` policy of `periodize evaluate`)."""


def read_performance_tests(path: str | Path) -> pd.Series:
    """The tests of a `--tests` CSV (module docstring): results (> 0) indexed by day, sorted.
    Anything else is one `DataError` naming the file."""

    path = Path(path)
    frame = read_csv(path, NoteLog())
    require_columns(frame, ["date", "result"], path)
    dates = to_datetime(frame, "date", path, required=True).dt.normalize()
    results = to_number(frame, "result", path)
    bad = ~(np.isfinite(results.to_numpy()) & (results.to_numpy() > 0))
    if bad.any():
        first = int(bad.nonzero()[0][0])
        raise DataError(path, f"column 'result': {int(bad.sum())} values are not results > 0 "
                              f"(e.g. {frame['result'].iloc[first]!r} in data row {first + 1}); "
                              f"give a speed or a power, higher is better")
    if dates.duplicated().any():
        raise DataError(path, f"two tests on {dates[dates.duplicated()].iloc[0].date()}: "
                              f"give one result per day")
    return pd.Series(results.to_numpy(), index=pd.DatetimeIndex(dates)).sort_index()


def _tests_by_morning(tests: pd.Series, dates: pd.Series, path: str,
                      notes: list[str]) -> np.ndarray:
    """The tests on the athlete's mornings, (D,) with NaN on untested mornings. Tests after
    today are an error; those before the first morning are left out with a note."""
    days = pd.DatetimeIndex(dates)
    if tests.index.max() > days[-1]:
        raise DataError(path, f"a test on {tests.index.max().date()} is after the last day of "
                              f"the data ({days[-1].date()})")
    kept = tests[tests.index >= days[0]]
    if len(kept) < len(tests):
        notes.append(f"{len(tests) - len(kept)} performance test(s) before the data's first "
                     f"day ({days[0].date()}) left out")
    at = days.get_indexer(kept.index)
    if np.any(at < 0):
        raise DataError(path, f"a test on {kept.index[at < 0][0].date()}, a day missing from "
                              f"the data")
    out = np.full(len(days), np.nan)
    out[at] = kept.to_numpy()
    return out


def _pick_athlete(frame: pd.DataFrame, athlete: str | None,
                  skipped_files: Sequence[Any] = ()) -> str:
    """The athlete to plan for: `athlete` (an unknown name lists the nearest ones), else the
    first with `MIN_DAYS` mornings of HRV or RHR (else an error naming any skipped files)."""
    if athlete is not None:
        if athlete not in set(frame["user_id"]):

            near = nearest_names(athlete, sorted(set(frame["user_id"].astype(str))))
            hint = (f"; did you mean {', '.join(near)}?" if near
                    else f"; the exports hold {_some_names(frame)}")
            raise DataError("(data)", f"no athlete {athlete!r} in the exports{hint}")
        return athlete
    counts = (frame.assign(obs=frame["hrv_rmssd_ms"].notna() | frame["rhr_bpm"].notna())
              .groupby("user_id")["obs"].sum())
    ok = counts[counts >= MIN_DAYS]
    if ok.empty:
        skipped = "".join(f"; skipped {n.path}: {n.message}" for n in skipped_files[:3])
        raise DataError("(data)", f"no athlete has {MIN_DAYS} days of HRV or RHR to plan from"
                                  f"{skipped}")
    return str(ok.index[0])


def _some_names(frame: pd.DataFrame, shown: int = 5) -> str:
    names = sorted(set(frame["user_id"].astype(str)))
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown
                                       else "")


def policy_event_horizon(run_dir: str | Path) -> int | None:
    """The longest `days_to_event` a trained policy saw (its episode length) when it was
    trained with the judging day as its event, else None (module docstring)."""
    meta_path = Path(run_dir) / "run.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(str(meta_path), f"cannot read the run's record: {exc}") from None
    if not isinstance(meta, dict):
        raise DataError(str(meta_path), f"not a run record (a JSON {type(meta).__name__})")
    env = meta.get("env_config") or {}
    if not isinstance(env, dict):
        raise DataError(str(meta_path), "field 'env_config' must be an object")
    if not env.get("judge_day_is_event"):
        return None
    days = env.get("episode_days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 10_000:
        raise DataError(str(meta_path), f"field 'env_config.episode_days' must be a whole "
                                        f"number of days, found {str(days)[:40]!r}")
    return days


def _policy_view(obs: np.ndarray, horizon: int | None) -> np.ndarray:
    """`obs` with `days_to_event` capped at `horizon` (None: unchanged)."""

    if horizon is None:
        return obs
    out = obs.copy()
    out[:, F["days_to_event"]] = np.minimum(out[:, F["days_to_event"]], horizon)
    return out


@dataclass
class _Sessions:
    """A plan's sessions (N, days) and their loads (`SessionLoads` of (N, days) arrays); with
    a continuous policy, the (duration min, intensity % HRmax) it asked for, (N, days, 2),
    whose own load a session executed as asked carries (`simulator.env.executed_loads`)."""

    actions: np.ndarray
    loads: SessionLoads
    asked: np.ndarray | None = None

    @classmethod
    def nominal(cls, actions: np.ndarray) -> "_Sessions":
        return cls(actions, action_loads(actions))

    def day(self, d: int) -> SessionLoads:
        """Day d's loads, (N,) each."""
        return SessionLoads(*(x[:, d] for x in self.loads))

    def of(self, i: int) -> SessionLoads:
        """Athlete i's loads over the plan, (days,) each."""
        return SessionLoads(*(x[i] for x in self.loads))


def _policy_sessions(policy, model, group: Sequence[Any], mask: np.ndarray, days: int,
                     rngs: Sequence[np.random.Generator], horizon: int | None,
                     params: Sequence[Any]) -> _Sessions:
    """A trained policy rolled forward on the world model's median mornings, for the athletes
    of `group` (`_Athlete`s) at once. A continuous policy's (duration, intensity) is the
    session of its zone band, executed under the day's rules and loaded as the simulator
    executes and loads it (`simulator.env.continuous_session`, `session_class`,
    `constraints.enforce`, `executed_loads`), so the roll-out's mornings follow the load the
    policy asked for. Each athlete's mornings are predicted from its posterior draws `params`
    (drawn once) with its own `rngs`; a predicted morning's features are built once, for the
    policy's observation and the rules."""

    rows = [a.history.copy() for a in group]
    n = len(group)
    obs, day_mask = np.concatenate([a.obs for a in group]), mask
    mornings = _MedianMornings(model, rows, params, days)
    # a continuous policy's (duration, intensity) → its session, then the day's rules
    continuous = (EnvConfig() if getattr(policy, "action_type", "discrete") == "continuous"
                  else None)
    out = _Sessions(np.empty((n, days), dtype=np.int64),
                    SessionLoads(*(np.empty((n, days)) for _ in range(3))),
                    None if continuous is None else np.empty((n, days, 2)))
    for d in range(days):
        action = np.asarray(policy.act(_policy_view(obs, horizon), day_mask))
        session = None
        if continuous is not None:
            session = continuous_session(action, continuous)
            out.asked[:, d] = session
            action, _ = enforce(session_class(session), day_mask)
        out.actions[:, d] = action
        for column, value in zip(out.loads, executed_loads(action, session)):
            column[:, d] = value
        if d == days - 1:
            break  # the last morning after is the plan's prediction, not the policy's input
        # the morning after today's session, predicted before today's load is written in
        today = out.day(d)
        medians = mornings.after(today, rows, rngs)
        rows = [_next_morning(r, int(action[i]), today, i, m)
                for i, (r, m) in enumerate(zip(rows, medians))]
        features = _last_features(rows, group)
        obs = observation_matrix(features)
        # the rules on the predicted morning
        day_mask = np.concatenate([mask_from_table(r, features=features.iloc[[i]]).mask
                                   for i, r in enumerate(rows)])
    return out


ROLLOUT_SAMPLES = 200
"""Predictive samples behind each median morning of a policy's roll-out."""


class _MedianMornings:
    """The predicted median mornings of a policy's roll-out (`_policy_sessions`), a day at a
    time for a batch of athletes: on day d, each athlete's morning after its session d is the
    median of what `WorldModel.predict` gives for that session from the athlete's rows so far
    (`ROLLOUT_SAMPLES` samples of its posterior draws, from its own stream, calibrated), and
    that median is then written in as the morning's reading.

    `predict` rebuilds the calendar frame and the series and runs the Banister states and the
    noise filter of one athlete per call. Here each athlete's series is built once with every
    day of the roll-out in it (rest days until chosen), a day's session and predicted morning
    are written into it as they come, and the draws of athletes with the same calendar are
    stacked (per-draw series, `forecast.forecast_gaussians`), so that one pass serves the
    batch. A forecast reads no load after its last day and no reading from its origin on, so
    the days not yet chosen change nothing: each athlete's samples, and the draws taken from
    its stream, are `predict`'s (tests/test_recommend.py). A model whose neural residual is on
    for a target predicts each athlete through `predict` itself."""

    def __init__(self, model, rows: Sequence[pd.DataFrame], params: Sequence[Any],
                 days: int) -> None:
        self.model, self.params, self.day = model, list(params), 0
        residual = getattr(model, "residual_", None)
        self.by_predict = residual is not None and any(residual.enabled.values())
        if self.by_predict:
            return
        rest = _planned(action_loads(np.zeros(days, dtype=np.int64)))
        self.groups: list[tuple] = []  # (start, members, draws, stacked series, bounds)
        built: dict[tuple[int, int], list[tuple[int, Any]]] = {}
        for i, r in enumerate(rows):
            frame, start = plan_frame(r, rest)
            series = series_from_frame(frame)
            built.setdefault((start, len(series.load)), []).append((i, series))
        for (start, _), members in built.items():
            p, stacked, bounds = stack_athletes([self.params[i] for i, _ in members],
                                                [x for _, x in members])
            self.groups.append((start, [i for i, _ in members], p, stacked, bounds))

    def after(self, loads: SessionLoads, rows: Sequence[pd.DataFrame],
              rngs: Sequence[np.random.Generator]) -> list[dict[str, float]]:
        """Each athlete's predicted median morning after today's session, whose loads are
        `loads` ((N,) each, one per athlete), as (ln HRV, RHR, recovery %), given its `rows`
        so far; advances the roll-out by one day."""
        if self.by_predict:
            preds = [self.model.predict(r, _planned(SessionLoads(*(x[i:i + 1] for x in loads))),
                                        n_samples=ROLLOUT_SAMPLES, rng=rng, params=p)
                     for i, (r, rng, p) in enumerate(zip(rows, rngs, self.params))]
            return [{k: float(np.median(v[:, 0])) for k, v in pred.samples.items()}
                    for pred in preds]
        w, u = daily_loads(_planned(loads))  # as a planned day of `predict` gets them
        out: list[Any] = [None] * len(rows)
        for start, members, p, series, bounds in self.groups:
            today = start + self.day
            for i, (lo, hi) in zip(members, bounds):
                series.load[lo:hi, today] = w[i]
                series.hi_load[lo:hi, today] = u[i]
            gaussians = forecast_gaussians(p, series, np.array([today + 1]), 1,
                                           self.model.drift_)
            for i, (lo, hi) in zip(members, bounds):
                samples = sample_gaussians({t: (m[:, lo:hi], sd[:, lo:hi])
                                            for t, (m, sd) in gaussians.items()},
                                           ROLLOUT_SAMPLES, rngs[i])
                samples["recovery"] = logit_to_recovery(samples["recovery"])
                calibration = self.model.interval_calibration(rows[i])
                if calibration is not None:
                    samples = calibration[0].apply(samples, calibration[1])
                # `predict` then draws its latents' draw indices: taken here too, so that the
                # athlete's stream goes on where `predict` leaves it
                rngs[i].integers(0, hi - lo, size=ROLLOUT_SAMPLES)
                median = {k: float(np.median(v[0, :, 0])) for k, v in samples.items()}
                out[i] = median
                series.hrv[lo:hi, today + 1] = np.log(np.exp(median["hrv"]))
                series.rhr[lo:hi, today + 1] = median["rhr"]
                series.recovery_logit[lo:hi, today + 1] = recovery_to_logit(
                    np.array([median["recovery"]]))[0]
        self.day += 1
        return out


def _last_features(rows: Sequence[pd.DataFrame], group: Sequence[Any]) -> pd.DataFrame:
    """The features of each athlete's last row (one row per athlete, in order), built in one
    `observations_from_table` for the batch: the feature builder computes each athlete on its
    own calendar row, so each athlete's are those it gets alone. The athletes are keyed by
    their place here (two exports may carry the same id)."""
    keys = [f"{i:08d}" for i in range(len(rows))]
    frame = pd.concat([r.assign(user_id=k) for r, k in zip(rows, keys)], ignore_index=True)
    events = {k: a.events[a.uid] for k, a in zip(keys, group) if a.events is not None}
    features = observations_from_table(frame, events=events or None)
    return features.groupby("user_id", sort=False).tail(1).reset_index(drop=True)


def _next_morning(rows: pd.DataFrame, a: int, loads: SessionLoads, i: int,
                  median: dict[str, float]) -> pd.DataFrame:
    """`rows` with today's session `a` of load `loads[i]` (`loads`: (N,) each) written in and
    the predicted `median` morning after (ln HRV, RHR, recovery %)."""
    today = {"load_trimp": float(loads.trimp[i]), "z4_min": float(loads.hi_min[i]),
             "z5_min": 0.0, "strength_min": float(loads.strength_min[i]),
             "session": ACTIONS[a]}
    tomorrow = {"load_trimp": np.nan, "z4_min": np.nan, "z5_min": np.nan,
                "strength_min": np.nan, "session": "unknown",
                "hrv_rmssd_ms": float(np.exp(median["hrv"])), "rhr_bpm": median["rhr"],
                "recovery_pct": median["recovery"]}
    out = pd.concat([rows, rows.iloc[-1:]], ignore_index=True)  # tomorrow: a copy of today
    last, new = len(rows) - 1, len(rows)
    for row, values in ((last, today), (new, tomorrow)):
        for column, value in values.items():
            out.iat[row, out.columns.get_loc(column)] = value
    date = out.columns.get_loc("date")
    out.iat[new, date] = out.iat[last, date] + pd.Timedelta(days=1)
    return out


def session_text(day: dict[str, Any]) -> str:
    """A plan day's session as a coach reads it: its name, with the duration and intensity a
    continuous policy asked for when it has them ("tempo_threshold, 55 min at 78 % HRmax")."""
    name = day["session"]
    if "duration_min" not in day:
        return name
    return f"{name}, {day['duration_min']:.0f} min at {day['intensity_pct_hrmax']:.0f} % HRmax"


def _planned(loads: SessionLoads) -> pd.DataFrame:
    """The planned days of `WorldModel.predict` whose loads are `loads` ((days,) each)."""
    return pd.DataFrame({"load_trimp": loads.trimp, "z4_min": loads.hi_min,
                         "z5_min": 0.0 * loads.hi_min, "strength_min": loads.strength_min})


def _days_to_event(event: str | None, today: pd.Timestamp) -> int | None:
    """Days from this morning to the event (None: no event); the event must be after today."""
    if event is None:
        return None
    try:
        day = pd.Timestamp(event).normalize()
    except (ValueError, TypeError):
        raise DataError("--event", f"{event!r} is not a date (YYYY-MM-DD)") from None
    days = int((day - today.normalize()).days)
    if days < 1:
        raise DataError("--event", f"{day.date()} is not after the last day of the export "
                                   f"({today.date()})")
    return days


DATA_NOTES_SHOWN = 8
"""Repairs and ignored files a plan lists before it points to `periodize data` for the rest."""


def _data_notes(notes: Sequence[Any]) -> list[str]:
    """What the loaders changed, skipped or doubt in the export (`table.Note` of kind repair,
    ignored or warning, warnings first), so that a plan never rests silently on repaired
    data."""
    chosen = ([n for n in notes if n.kind == "warning"]  # first: never cut off
              + [n for n in notes if n.kind in ("repair", "ignored")])
    shown = [f"{n.path}: {n.message}" + (f" ({n.count})" if n.count else "") for n in chosen]
    if len(shown) > DATA_NOTES_SHOWN:
        rest = (f"and {len(shown) - DATA_NOTES_SHOWN} more repairs or ignored files "
                "(`periodize data` lists them)")
        shown = [*shown[:DATA_NOTES_SHOWN], rest]
    return shown


def plan_for_athlete(model_dir: str, data: Sequence[str], *, athlete: str | None = None,
                     days: int = 7, policy_dir: str | None = None, seed: int = 0,
                     event: str | None = None, tests: str | None = None,
                     now: date | None = None) -> dict[str, Any]:
    """The plan as a JSON-ready dict (module docstring). `event` (a date after the export's
    last day, e.g. a race) is the day performance should peak: the MPC plans to it and a
    trained policy sees it in `days_to_event`. `tests`: a CSV of the athlete's performance
    tests, which the MPC planner (or a planner distilled with tests) learns the athlete's
    performance response from. `now`: today's date for the staleness warnings (default: UTC
    today); the plan itself starts from the export's last morning (`today` in the result),
    and says what it filled and what it could not check (agents.plan_honesty)."""
    return plan_details(model_dir, data, athlete=athlete, days=days, policy_dir=policy_dir,
                        seed=seed, event=event, tests=tests, now=now).plan


@dataclass
class PlanDetails:
    """A plan with what it was made from: `plan` (the JSON-ready dict of `plan_for_athlete`),
    `prediction` (the world model's samples for the mornings after each planned day),
    `history` (the athlete's rows up to this morning, the export cut at `today`), `observation`
    (this morning's feature vector) and `mask` (the hard rules' verdict this morning)."""

    plan: dict[str, Any]
    prediction: Any
    history: pd.DataFrame
    observation: np.ndarray
    mask: Any


TRAINING_COLUMNS = ("load_trimp", "strain", "z1_min", "z2_min", "z3_min", "z4_min", "z5_min",
                    "strength_min", "session", "load_basis")
"""The daily table's columns of the day's training (blank on the morning being planned)."""


DAYS_AFTER_EXPORT = 7
"""How far `today` may lie after the export's last day: a device that has not synced yet. Those
mornings are planned on missing data (the hard rules' safe sessions, with the reason); a later
date is taken for a mistake."""


def cut_at_morning(frame: pd.DataFrame, today: str | None) -> pd.DataFrame:
    """The rows up to the morning of `today` (YYYY-MM-DD; None: unchanged), that day's training
    blanked: what the export held when the athlete woke up that day. A date more than
    `DAYS_AFTER_EXPORT` days after the export's last day, or not a date, is one `DataError`."""
    if today is None:
        return frame
    try:
        day = pd.Timestamp(today).normalize()
    except (ValueError, TypeError):
        raise DataError("--date", f"{today!r} is not a date (YYYY-MM-DD)") from None
    dates = pd.to_datetime(frame["date"]).dt.normalize()
    if dates.empty or day > dates.max() + pd.Timedelta(days=DAYS_AFTER_EXPORT):
        last = "no days" if dates.empty else f"its last day is {dates.max().date()}"
        raise DataError("--date", f"{day.date()} is more than {DAYS_AFTER_EXPORT} days after "
                                  f"the export ({last})")
    out = frame[dates <= day].copy()
    on_day = pd.to_datetime(out["date"]).dt.normalize() == day
    for column in TRAINING_COLUMNS:
        if column in out.columns:
            out.loc[on_day, column] = None if out[column].dtype == object else np.nan
    return out.reset_index(drop=True)


def plan_details(model_dir: str | None, data: Sequence[str], *, athlete: str | None = None,
                 days: int = 7, policy_dir: str | None = None, seed: int = 0,
                 event: str | None = None, tests: str | None = None,
                 today: str | None = None, policy: Any = None, table: Any = None,
                 model: Any = None, now: date | None = None) -> PlanDetails:
    """`plan_for_athlete` with what the plan was made from (`PlanDetails`). `today` cuts the
    export at that morning (`cut_at_morning`); `policy` is a policy object (e.g. a baseline
    of `agents.baselines`) used instead of `policy_dir`'s or the MPC; `table` (an already
    loaded `DailyTable`) and `model` (a loaded `WorldModel`) spare reading them again."""
    if days < 1:
        raise DataError("(arguments)", "--days must be at least 1")
    test_results = None if tests is None else read_performance_tests(tests)
    model = WorldModel.load(resolve_model_dir(model_dir)) if model is None else model
    table = load_exports(data) if table is None else table
    frame = cut_at_morning(table.frame, today)
    uid = _pick_athlete(frame, athlete, [n for n in table.notes if n.kind == "ignored"])
    history = frame[frame["user_id"] == uid].sort_values("date").reset_index(drop=True)
    if today is not None and history["date"].iloc[-1] < pd.Timestamp(today).normalize():
        # no reading this morning yet: plan for today on missing data (the rules' safe set)
        blank = history.iloc[-1:].copy()
        for column in blank.columns:
            if column not in ("user_id", "source", "age", "sex"):
                blank[column] = None if blank[column].dtype == object else np.nan
        blank["date"] = pd.Timestamp(today).normalize()
        history = pd.concat([history, blank], ignore_index=True)
    if policy is None and policy_dir:
        from agents.training import load_agent  # torch: only when a trained policy is asked for

        policy = load_agent(policy_dir, device="cpu", model=model)
    return _plan(model, history, _data_notes(table.notes_for(uid)), days=days, policy=policy,
                 policy_dir=policy_dir, seed=seed, event=event, tests=test_results,
                 tests_path=tests, now=now, data=data)


def plan_from_history(model, history: pd.DataFrame, notes: list[str], *, days: int = 7,
                      policy=None, policy_dir: str | None = None, seed: int = 0,
                      event: str | None = None, tests: pd.Series | None = None,
                      tests_path: str | None = None, now: date | None = None,
                      data: Sequence[str] | None = None) -> dict[str, Any]:
    """The plan (as `plan_for_athlete` returns it) of one athlete whose daily rows are
    `history` (one `user_id`, sorted by date, the last row this morning), from a loaded
    world model and, when given, a loaded trained `policy` (read from `policy_dir`; None: the
    MPC planner). `notes` (the data notes about the athlete's files) are extended with the
    plan's own. `tests`: the athlete's performance tests (`read_performance_tests`, read from
    `tests_path`; without them, the tests the exports under `data` carry, if any). `now`:
    today's date for the staleness warnings (default: UTC today). The caller owns the
    loading, so a batch (`analysis.batch_recommend`) loads the model and the policy once for
    every athlete."""
    return _plan(model, history, notes, days=days, policy=policy, policy_dir=policy_dir,
                 seed=seed, event=event, tests=tests, tests_path=tests_path, now=now,
                 data=data).plan


ROUGH_POSTERIOR_NOTE = ("few of the world model's population draws fit this athlete's days "
                       "(a rough personalisation): the forecast intervals may be too narrow")


def _posterior(model, athlete: _Athlete, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The athlete's posterior draws (`WorldModel.athlete_params`); a rough personalisation
    is said in the athlete's notes, once, rather than warned on stderr for every athlete of a
    batch."""
    from physiology_model.model.world_model import RoughPosteriorWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RoughPosteriorWarning)
        params = model.athlete_params(athlete.history, rng)
    for w in caught:
        if issubclass(w.category, RoughPosteriorWarning):
            if ROUGH_POSTERIOR_NOTE not in athlete.notes:
                athlete.notes.append(ROUGH_POSTERIOR_NOTE)
        else:  # anything else goes on as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return params


def _plan(model, history: pd.DataFrame, notes: list[str], *, days: int, policy, policy_dir,
          seed: int, event, tests, tests_path, now, data) -> PlanDetails:
    """The plan of `plan_from_history`, with what it was made from: the batch path
    (`plan_batch`) with a batch of one."""
    request = PlanRequest(history, notes, event=event, tests=tests, tests_path=tests_path,
                          data=data)
    (out,) = plan_batch(model, [request], days=days, policy=policy, policy_dir=policy_dir,
                        seed=seed, now=now)
    if isinstance(out, BaseException):
        raise out
    return out


@dataclass
class PlanRequest:
    """One athlete of a batch (`plan_batch`): its daily rows (one `user_id`, sorted by date,
    the last row this morning), the data notes about its files, and, as for
    `plan_from_history`, its event, its performance tests and the exports they may come from."""

    history: pd.DataFrame
    notes: list[str]
    event: str | None = None
    tests: pd.Series | None = None
    tests_path: str | None = None
    data: Sequence[str] | None = None


@dataclass
class _Athlete:
    """What the plan of one athlete is made from, before any planning."""

    history: pd.DataFrame
    uid: str
    notes: list[str]
    event: str | None
    days_to_event: int | None
    events: dict[str, list[str]] | None
    mornings: np.ndarray
    done: np.ndarray | None
    test_results: pd.Series | None
    tested: np.ndarray | None
    verdict: Any
    facts: Any
    mask: np.ndarray
    reasons: list[str]

    @property
    def obs(self) -> np.ndarray:
        return self.mornings[-1:]

    def replays(self) -> bool:
        return self.done is not None and len(self.mornings) > 1


def _prepare(request: PlanRequest, now: date | None) -> _Athlete:
    """One athlete's features, mask, rules and notes (everything but the planning)."""
    history = request.history
    test_results, tests_path = request.tests, request.tests_path
    uid = str(history["user_id"].iloc[0])
    notes = list(request.notes)
    days_to_event = _days_to_event(request.event, history["date"].iloc[-1])
    events = None if request.event is None else {uid: [request.event]}
    features = observations_from_table(history, events=events)
    mornings = observation_matrix(features)
    # one morning per calendar day: days missing from the export are rows here too
    morning_dates = pd.to_datetime(features["date"]).reset_index(drop=True)
    done = actual_actions(history, len(mornings))
    absent = [name for column, name in (("hrv_rmssd_ms", "HRV"), ("rhr_bpm", "resting heart rate"))
              if not history[column].notna().any()]
    if absent:
        notes.append(f"this export has no {' and no '.join(absent)}: the plan rests on what it "
                     f"has, and the predicted {' and '.join(absent)} are the population's, not "
                     f"this athlete's")
    if test_results is None and request.data is not None:  # no --tests: the export's own
        test_results, tests_path = tests_for_athlete(request.data, uid, morning_dates, notes)
    tested = (None if test_results is None
              else _tests_by_morning(test_results, morning_dates, tests_path or "(tests)",
                                     notes))
    verdict = mask_from_table(history, features=features)
    facts = morning_facts(history, mornings[-1], now=now)
    notes.extend(facts.notes)
    mask, careful = careful_mask(verdict.mask, facts)
    reasons = verdict.explain(0) + ([careful] if careful else [])
    return _Athlete(history, uid, notes, request.event, days_to_event, events, mornings, done,
                    test_results, tested, verdict, facts, mask, reasons)


def _batchable(policy) -> bool:
    """Whether `policy` plans several athletes at once with one random stream each
    (`agents.lanes`): the MPC planner (None) and the distilled planner do, whatever its
    network is named (a SAC fine-tuned from a student, `agents.sac_warm`, is one too)."""
    from agents.distill import DistilledPlanner

    return policy is None or isinstance(policy, DistilledPlanner)


def _group_key(athlete: _Athlete, index: int, policy) -> tuple:
    """Athletes planned together: the same number of mornings to replay and the same planner
    settings. An athlete with performance tests, or under a policy that cannot keep one
    stream per athlete, is planned alone."""
    if athlete.tested is not None or not _batchable(policy):
        return ("alone", index)
    return ("batch", len(athlete.mornings), athlete.replays(), athlete.days_to_event)


def plan_batch(model, requests: Sequence[PlanRequest], *, days: int = 7, policy=None,
               policy_dir: str | None = None, seed: int = 0, now: date | None = None,
               ) -> list[PlanDetails | Exception]:
    """The plans (`PlanDetails`) of many athletes, planned together where they share the
    number of mornings and the planner's settings (the planners are vectorised over
    athletes). Each athlete's random numbers come from its own streams, keyed by `seed` and
    its id (`agents.lanes.athlete_seed`), so its plan is the one it gets alone, whichever
    athletes share its batch. An athlete that cannot be planned is its exception, in its
    place; the others are planned. `plan_from_history` is this with a batch of one."""
    if days < 1:
        raise DataError("(arguments)", "--days must be at least 1")
    results: list[Any] = [None] * len(requests)
    groups: dict[tuple, list[int]] = {}
    prepared: list[Any] = []
    for i, request in enumerate(requests):
        try:
            athlete = _prepare(request, now)
        except Exception as exc:  # noqa: BLE001 - one athlete never stops the others
            results[i] = exc
            prepared.append(None)
            continue
        prepared.append(athlete)
        groups.setdefault(_group_key(athlete, i, policy), []).append(i)
    for members in groups.values():
        try:
            planned = _plan_group(model, [prepared[i] for i in members], days=days,
                                  policy=policy, policy_dir=policy_dir, seed=seed)
        except Exception as exc:  # noqa: BLE001
            if len(members) == 1:
                results[members[0]] = exc
                continue
            planned = []
            for i in members:  # each alone: the error belongs to one athlete
                try:
                    planned.extend(_plan_group(model, [prepared[i]], days=days, policy=policy,
                                               policy_dir=policy_dir, seed=seed))
                except Exception as one:  # noqa: BLE001
                    planned.append(one)
        for i, details in zip(members, planned):
            results[i] = details
    return results


def _plan_group(model, group: list[_Athlete], *, days: int, policy, policy_dir,
                seed: int) -> list[PlanDetails]:
    """The plans of athletes planned together (`_group_key`), in their order."""
    n = len(group)
    first = group[0]
    tested = first.tested  # athletes with tests are planned alone

    def lanes(members: Sequence[int], batched: bool) -> Any:
        """The planner's seed: one stream per athlete, or (a policy that keeps one stream,
        planned alone) an int drawn from the athlete's."""
        seeds = [athlete_seed(seed, group[i].uid) for i in members]
        return seeds if batched else int(seeds[0].generate_state(1)[0])

    def start(planner, members: Sequence[int], horizon: int | None = None) -> None:
        """A new plan from today for `members`: the policy (or planner) learns the athletes
        from their past mornings (and tests) first when it keeps a belief (`replay`), taking
        their posterior `params` rather than personalising them again, else starts from
        today's features."""
        planner.reset(lanes(members, _batchable(planner if planner is policy else None)))
        if hasattr(planner, "replay") and first.replays():
            past = {} if tested is None else {"tests": tested[:-1, None]}
            planner.replay(np.stack([_policy_view(group[i].mornings[:-1], horizon)
                                     for i in members], axis=1),
                           np.stack([group[i].done[:-1] for i in members], axis=1), **past,
                           posterior=[params[i] for i in members])
        if tested is not None and np.isfinite(tested[-1]):
            planner.observe_performance(tested[-1:])

    def note_tests(planner, athlete: _Athlete) -> None:
        used = int(np.isfinite(tested if hasattr(planner, "replay") and athlete.replays()
                               else tested[-1:]).sum())
        ess = planner.belief.diagnostics["performance_ess"]
        draws = planner.belief.config.performance_draws
        athlete.notes.append(
            f"{used} of {len(athlete.test_results)} performance test(s) used" + (
                f"; they leave an effective {ess[-1]:.0f} of the {draws} drawn performance "
                f"responses (the fewer, the more they told)" if used > 1 and ess
                else "; one test alone says nothing about the response (it needs a second)"))

    obs = np.concatenate([a.obs for a in group])
    mask = np.concatenate([a.mask for a in group])
    predict_rngs = [np.random.default_rng(athlete_seed(seed, a.uid, 1)) for a in group]
    free_first: list[int | None] = [None] * n  # the choice without the rules, when one fired
    # each athlete's posterior, once: the planner's belief, every predicted morning of a
    # roll-out and the plan's intervals all use these draws
    params = [_posterior(model, a, r) for a, r in zip(group, predict_rngs)]
    if policy is not None:
        if tested is not None and not reads_performance_tests(policy):
            raise DataError("(arguments)", f"{policy_dir} does not read performance tests: "
                            "--tests needs the MPC planner (no --policy) or a planner "
                            "distilled with tests (DistillConfig.tests_every) or a SAC trained "
                            "with them (SACConfig.tests_every)")
        horizon = None if policy_dir is None else policy_event_horizon(policy_dir)
        start(policy, range(n), horizon)
        sessions = _policy_sessions(policy, model, group, mask, days, predict_rngs, horizon,
                                    params)
        planner_name = (f"policy {policy_dir}" if policy_dir
                        else f"baseline {getattr(policy, 'name', type(policy).__name__)}")
        again = [i for i, a in enumerate(group) if a.reasons or tested is not None]
        if again:
            start(policy, again, horizon)  # today again, for its choice without the rules
            free = np.asarray(policy.act(_policy_view(obs[again], horizon),
                                         np.ones_like(mask[again])))
            if getattr(policy, "action_type", "discrete") == "continuous":
                free = session_class(continuous_session(free, EnvConfig()))
            for j, i in enumerate(again):
                free_first[i] = int(free[j])
        if tested is not None:
            note_tests(policy, first)
        elif reads_performance_tests(policy):
            for a in group:
                a.notes.append("this policy reads performance tests, but the athlete's data "
                               "have none (give --tests CSV): it plans from the wearable "
                               "alone, as before a first test")
    else:
        # the block ends at the event; without one, as for a learned policy, today starts a
        # block of the default episode length
        config = (MPCConfig() if first.days_to_event is None
                  else MPCConfig(episode_days=first.days_to_event))
        if tested is not None:
            config = replace(config, performance_draws=TEST_DRAWS)
        planner = MPCPlanner(model, config, seed=lanes(range(n), True))
        start(planner, range(n))
        plan = planner.plan(obs, mask)
        sessions = _Sessions.nominal(plan.actions[:, :days])
        if sessions.actions.shape[1] < days:
            for a in group:
                a.notes.append(f"the planner's horizon is {sessions.actions.shape[1]} days"
                               + (" (up to the event)" if a.days_to_event is not None else ""))
        again = [i for i, a in enumerate(group) if a.reasons]
        if again:
            unconstrained = MPCPlanner(model, config, seed=lanes(again, True))
            start(unconstrained, again)
            free = unconstrained.plan(obs[again], np.ones_like(mask[again])).actions[:, 0]
            for j, i in enumerate(again):
                free_first[i] = int(free[j])
        planner_name = "mpc"
        if tested is not None:
            note_tests(planner, first)
    # the predicted mornings of every plan, forecast together
    preds = model.predict_batch([a.history for a in group],
                                [_planned(sessions.of(i)) for i in range(n)], n_samples=500,
                                rngs=predict_rngs, params=params)
    return [_details(a, sessions, i, free_first[i], planner_name, preds[i])
            for i, a in enumerate(group)]


def _details(athlete: _Athlete, planned: _Sessions, i: int, free_first: int | None,
             planner_name: str, pred) -> PlanDetails:
    """Athlete i's plan from its sessions (`planned`) and the predicted mornings after each
    (`pred`), with the rules. A continuous policy's day also says the duration and intensity
    it asked for when that session was executed as asked."""
    history, facts, reasons = athlete.history, athlete.facts, athlete.reasons
    samples = pred.samples
    sessions, loads = planned.actions[i], planned.of(i)
    out_days = []
    for d, a in enumerate(sessions):
        hrv = np.exp(samples["hrv"][:, d])
        rec = samples["recovery"][:, d]
        rhr = samples["rhr"][:, d]
        day = {"date": str((history["date"].iloc[-1] + pd.Timedelta(days=d)).date()),
               "session": ACTIONS[a], "load_trimp": float(loads.trimp[d]),
               "hrv_ms": float(np.median(hrv)),
               "hrv_ms_interval": [float(np.quantile(hrv, 0.1)), float(np.quantile(hrv, 0.9))],
               "recovery_pct": float(np.median(rec)),
               "recovery_pct_interval": [float(np.quantile(rec, 0.1)),
                                         float(np.quantile(rec, 0.9))],
               "rhr_bpm": float(np.median(rhr)),
               "rhr_bpm_interval": [float(np.quantile(rhr, 0.1)), float(np.quantile(rhr, 0.9))],
               "prediction_for": "the morning after this session"}
        if planned.asked is not None and session_class(planned.asked[i, d:d + 1])[0] == a:
            day["duration_min"], day["intensity_pct_hrmax"] = (
                round(float(x), 1) for x in planned.asked[i, d])
        if d == 0:
            day["why"] = facts.why
            if free_first != a and reasons:
                day["reason"] = (f"the planner would choose {ACTIONS[free_first]}, but: "
                                 + "; ".join(reasons))
            elif reasons:
                day["rules_today"] = reasons
        out_days.append(day)
    out = {"athlete": athlete.uid, "start": out_days[0]["date"], "today": facts.today,
           "planner": planner_name, "days": out_days, "notes": athlete.notes,
           "this_morning": facts.measured,
           "forecast_basis": {"hrv": "athlete" if facts.hrv_in_export else "model only",
                              "recovery": ("athlete" if facts.recovery_in_export
                                           else "model only")}}
    if athlete.event is not None:
        out["event"] = {"date": str(pd.Timestamp(athlete.event).date()),
                        "days_away": athlete.days_to_event}
    return PlanDetails(plan=out, prediction=pred, history=history,
                       observation=athlete.obs[0], mask=athlete.verdict)
