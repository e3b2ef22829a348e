"""How much of the morning ln HRV / RHR day-to-day variation the night before explains (issue 24).

Beyond the training load, does what the exports say about the night (sleep duration, sleep
efficiency, sleeping respiratory rate, skin temperature) and what WHOOP's journal says about the
day before (alcohol, caffeine, feeling sick, ...) explain the next morning's ln HRV and RHR?

Data: the shipped exports (`load_exports(["data/real"])`, one row per user_id and date; the row
of date d holds the morning values of d, the sleep of the night that ended on d and the training
load of d) and, read here because the loaders do not, the WHOOP journals
`data/real/whoop/uNN/journal_entries*.csv` (folder uNN is user_id `whoop-uNN`).

Outcomes (per athlete a, morning d, on a full daily calendar)
    y_ad = v_ad - mean{ v_a,d-k : k = 1..7, v_a,d-k measured },   needs >= 4 of the 7 days,
with v = ln(hrv_rmssd_ms) or v = rhr_bpm (deviation from the athlete's own 7-day baseline,
today excluded).

Load controls: L1_ad = load_trimp_a,d-1 / 100, L2_ad = load_trimp_a,d-2 / 100 (both required).

Continuous covariates of the night that ended on morning d (same row):
    x_ad = c_ad - mean{ c_a,d-k : k = 1..28, measured },          needs >= 7 of the 28 days,
with c = sleep_min / 60 (hours), sleep_efficiency_pct, resp_rate_rpm, and skin temperature:
skin_temp_dev_c where the export gives it, else the absolute skin_temp_c (after subtracting the
athlete's own 28-day mean the two are the same deviation).

Within-athlete pooled regression (athlete fixed effects by demeaning each variable within the
athlete: z~ = z - mean_a(z)), on athletes with >= 28 usable days (outcome, both controls and the
covariate present):
    restricted:  y~ = b1 L1~ + b2 L2~ + e,           residual sum of squares RSS_r
    full:        y~ = b1 L1~ + b2 L2~ + g x~ + e,     residual sum of squares RSS_f
    partial R2 = (RSS_r - RSS_f) / RSS_r   (share of the outcome variance left after the load
                                            controls that the covariate explains)
Reported: g (per unit of the covariate), g x SD(x~) (the effect of a typical 1-SD night), the
partial R2, athletes and days; 95 % intervals are percentiles of a bootstrap over athletes
(athletes drawn with replacement, each with all its days; sums of each athlete's cross-product
matrix Z'Z, Z = [L1~, L2~, x~, y~], so each resample is exact OLS). The combined partial R2
puts all four continuous covariates in together, on the athletes with >= 28 days with all of
them.

Journal answers (yes = 1 / no = 0) for a WHOOP cycle are dated like the loader dates the cycle
(`whoop.cycle_dates`): w = the local date of the wake onset of the sleep that *starts* the cycle,
i.e. the row holding that sleep's morning HRV/RHR (midpoint or start date without a wake onset).
A cycle starts at sleep onset on the evening of day D (w = D + 1) or after midnight (w = start
date); the script counts how often w - start date is 0, 1 or other. WHOOP asks the journal on waking
about the day before and files the answers under the cycle that has just started, so an answer
about day D's behaviour sits in the cycle starting on the evening of D and should act on the
morning w = D + 1: the main alignment, "cycle_morning" (lag 0, same row as the cycle's
physiology). Checks: "next_morning" (lag +1, the answer read as being about the cycle's own
waking day, acting on the sleep that ends the cycle) and "previous_morning" (lag -1, a placebo:
the morning before the behaviour). The yes - no alcohol estimates of the three lags are the
empirical test of the alignment. Several answers mapped to one date are combined by "any yes".
Per question and athlete with >= 5 yes and >= 5 no usable mornings:
    D_a = mean(y_ad | yes) - mean(y_ad | no),   pooled D = mean_a D_a (each athlete weight 1),
with a bootstrap-over-athletes 95 % interval, and the regression above with x = yes/no
(coefficient, partial R2, bootstrap interval; its partial R2 is of the answered days of those
athletes). Every question with a qualifying athlete is reported at the main alignment, the
headline questions at the check alignments too. With 2-5 athletes the bootstrap over athletes
has few distinct resamples: its intervals are rough (with 1 athlete, degenerate). Alcohol,
caffeine ("Have any caffeine?" and "Consumed caffeine?" pooled), feeling sick, food close to
bedtime and screen in bed are the headline questions.

The day of the week (the weekly rhythm of work, sleep timing and weekends that the measured
series show as a lag-7 autocorrelation the simulator lacks, docs/world_model.md): the same
regression with six effect-coded weekday columns (morning d a Monday ... Saturday = 1, a Sunday
= -1, else 0), so each coefficient is that morning's deviation from the athlete's weekly mean,
beyond the two previous days' loads (Sunday's is minus their sum); partial R2 of the six together.

Reference effect of a hard training day (from the brief of issue 24, not measured here): about
-0.05 to -0.08 ln HRV and +0.6 to +0.8 bpm RHR next morning. The load coefficients b1, b2 of the
restricted models (and the R2 of the load controls alone, 1 - RSS_r / sum y~^2) are reported
for comparison. Writes benchmarks/results/night_covariates.json
(config with seed and thresholds, data counts, every estimate) and prints a short table.

    .venv/bin/python benchmarks/night_covariates.py [--seed 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "night_covariates.json"

BASELINE_DAYS = 7
BASELINE_MIN = 4
COVARIATE_DAYS = 28
COVARIATE_MIN = 7
MIN_DAYS = 28
MIN_YES = 5
MIN_NO = 5

OUTCOMES = ("ln_hrv", "rhr")
CONTINUOUS = ("sleep_h", "sleep_efficiency_pct", "resp_rate_rpm", "skin_temp")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
"""Effect-coded weekday columns (Sunday = -1 in each)."""
HEADLINE_QUESTIONS = {
    "alcohol": ("have any alcoholic drinks?",),
    "caffeine": ("have any caffeine?", "consumed caffeine?"),
    "sick": ("feeling sick or ill?",),
    "late_food": ("eat any food close to bedtime?",),
    "screen_in_bed": ("viewed a screen device in bed?",),
}


# ---------------------------------------------------------------------------------------------
# Daily panel
# ---------------------------------------------------------------------------------------------

def _trailing_mean(s: pd.Series, days: int, min_count: int) -> pd.Series:
    """Mean of the `days` calendar days before each date (today excluded), if >= min_count."""
    prev = s.shift(1)
    mean = prev.rolling(days, min_periods=min_count).mean()
    return mean


def daily_panel(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per athlete and calendar day: outcomes, load controls, covariate deviations."""
    parts = []
    for user, g in frame.groupby("user_id", sort=True):
        g = g.sort_values("date").drop_duplicates("date").set_index("date")
        g = g.reindex(pd.date_range(g.index.min(), g.index.max(), freq="D"))
        hrv = g["hrv_rmssd_ms"].where(g["hrv_rmssd_ms"] > 0)
        out = pd.DataFrame(index=g.index)
        out["user_id"] = user
        out["source"] = g["source"].dropna().iloc[0] if g["source"].notna().any() else None
        for name, v in (("ln_hrv", np.log(hrv)), ("rhr", g["rhr_bpm"])):
            out[name] = v - _trailing_mean(v, BASELINE_DAYS, BASELINE_MIN)
        load = g["load_trimp"] / 100.0
        out["L1"] = load.shift(1)
        out["L2"] = load.shift(2)
        skin = g["skin_temp_dev_c"].where(g["skin_temp_dev_c"].notna(), g["skin_temp_c"])
        raw = {"sleep_h": g["sleep_min"] / 60.0,
               "sleep_efficiency_pct": g["sleep_efficiency_pct"],
               "resp_rate_rpm": g["resp_rate_rpm"], "skin_temp": skin}
        for name, c in raw.items():
            out[name] = c - _trailing_mean(c, COVARIATE_DAYS, COVARIATE_MIN)
        weekday = out.index.dayofweek
        for k, name in enumerate(WEEKDAYS):
            out[name] = np.where(weekday == k, 1.0, np.where(weekday == 6, -1.0, 0.0))
        parts.append(out.rename_axis("date").reset_index())
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# WHOOP journal
# ---------------------------------------------------------------------------------------------

def _snake(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip().lower())


def _question_key(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).strip().lower())


def read_journals(whoop_dir: Path, user_ids: set[str]) -> tuple[pd.DataFrame, dict]:
    """Journal answers as (user_id, question, date w of the answer's cycle, yes)."""
    rows, counts = [], {}
    for folder in sorted(p for p in whoop_dir.iterdir() if p.is_dir()):
        journals = sorted(folder.glob("journal_entries*.csv"))
        cycles_files = sorted(folder.glob("physiological_cycles*.csv"))
        if not journals:
            continue
        user = f"whoop-{folder.name}"
        if user not in user_ids:
            raise SystemExit(f"{user} (from {folder}) is not a user_id of the loaded table")
        cycles = pd.concat([pd.read_csv(p) for p in cycles_files], ignore_index=True)
        cycles.columns = [_snake(c) for c in cycles.columns]
        start = pd.to_datetime(cycles["cycle_start_time"])
        end = pd.to_datetime(cycles["cycle_end_time"])
        wake = pd.to_datetime(cycles["wake_onset"])
        # The loader's rule (whoop.cycle_dates): wake-onset date, else midpoint, else start.
        fallback = (start + (end - start) / 2).where(end.notna(), start)
        date_of_start = pd.Series(wake.where(wake.notna(), fallback).dt.normalize().to_numpy(),
                                  index=start).groupby(level=0).first()
        j = pd.concat([pd.read_csv(p) for p in journals], ignore_index=True)
        jstart = pd.to_datetime(j["Cycle start time"])
        jend = pd.to_datetime(j["Cycle end time"])
        date = pd.Series(date_of_start.reindex(jstart).to_numpy(), index=j.index)
        missing = date.isna()
        own = (jstart + (jend - jstart) / 2).where(jend.notna(), jstart).dt.normalize()
        date = date.where(~missing, own)
        yes = j["Answered yes"].astype(str).str.strip().str.lower().map(
            {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "yes": 1.0, "no": 0.0})
        part = pd.DataFrame({"user_id": user, "question": j["Question text"].map(_question_key),
                             "w": pd.to_datetime(date), "yes": yes}).dropna()
        offset = (pd.to_datetime(date) - jstart.dt.normalize()).dt.days.astype("Int64")
        counts[user] = {"answers": len(part), "cycles_not_in_cycles_file": int(missing.sum()),
                        "answers_by_w_minus_start_date": {
                            str(k): int(v) for k, v in offset.value_counts().sort_index().items()}}
        rows.append(part)
    answers = pd.concat(rows, ignore_index=True)
    answers = answers.groupby(["user_id", "question", "w"], as_index=False)["yes"].max()
    return answers, counts


def question_groups(answers: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    groups = dict(HEADLINE_QUESTIONS)
    taken = {q for qs in groups.values() for q in qs}
    for q in sorted(set(answers["question"]) - taken):
        groups[q] = (q,)
    return groups


# ---------------------------------------------------------------------------------------------
# Estimation
# ---------------------------------------------------------------------------------------------

def _ols(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """OLS of the last column on the first k from cross-product matrices S (..., p, p):
    coefficients (..., k) and residual sums of squares (...)."""
    A, b = S[..., :k, :k], S[..., :k, -1]
    try:
        beta = np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        beta = np.stack([np.linalg.lstsq(a, v, rcond=None)[0]
                         for a, v in zip(A.reshape(-1, k, k), b.reshape(-1, k))])
        beta = beta.reshape(b.shape)
    return beta, S[..., -1, -1] - np.einsum("...k,...k->...", b, beta)


def _fit(S: np.ndarray, n_cov: int) -> dict:
    """Restricted (load controls only) and full fits from cross-product matrices (..., p, p)."""
    keep = [0, 1, S.shape[-1] - 1]
    beta_r, rss_r = _ols(S[..., keep, :][..., :, keep], 2)
    beta_f, rss_f = _ols(S, 2 + n_cov)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(rss_r > 0, (rss_r - rss_f) / rss_r, np.nan)
        load_r2 = np.where(S[..., -1, -1] > 0, 1.0 - rss_r / S[..., -1, -1], np.nan)
    return {"beta": beta_f, "beta_load": beta_r, "partial_r2": r2, "load_r2": load_r2}


def _ci(samples: np.ndarray) -> list[float]:
    return [float(np.nanpercentile(samples, 2.5)), float(np.nanpercentile(samples, 97.5))]


def regression(panel: pd.DataFrame, outcome: str, covs: list[str], rng: np.random.Generator,
               n_boot: int, min_days: int = MIN_DAYS, extra_filter=None) -> dict | None:
    """Within-athlete regression of `outcome` on L1, L2 and `covs`, bootstrap over athletes."""
    cols = ["L1", "L2", *covs, outcome]
    d = panel.dropna(subset=cols)
    if extra_filter is not None:
        d = extra_filter(d)
    sizes = d.groupby("user_id").size()
    keep = sizes[sizes >= min_days].index
    d = d[d["user_id"].isin(keep)]
    if len(keep) < 2:
        return None
    mats, n_days, sds, sources = [], [], [], {}
    for user, g in d.groupby("user_id"):
        Z = g[cols].to_numpy(float)
        Z = Z - Z.mean(axis=0)
        mats.append(Z.T @ Z)
        n_days.append(len(g))
        sds.append(Z[:, 2:2 + len(covs)])
        src = str(g["source"].iloc[0])
        sources[src] = sources.get(src, 0) + 1
    mats = np.stack(mats)
    pooled_sd = np.concatenate(sds).std(axis=0)
    point = _fit(mats.sum(axis=0), len(covs))
    n = len(mats)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                       for _ in range(n_boot)]).astype(float)
    boot = _fit(np.einsum("bn,nij->bij", counts, mats), len(covs))
    boot_beta, boot_load, boot_r2 = boot["beta"][:, 2:], boot["beta_load"], boot["partial_r2"]
    out = {
        "athletes": int(n), "days": int(sum(n_days)), "sources": sources,
        "partial_r2": float(point["partial_r2"]), "partial_r2_ci95": _ci(np.array(boot_r2)),
        "load_coef_restricted": {"L1_per_100trimp": float(point["beta_load"][0]),
                                 "L2_per_100trimp": float(point["beta_load"][1]),
                                 "L1_ci95": _ci(boot_load[:, 0]),
                                 "L2_ci95": _ci(boot_load[:, 1]),
                                 "r2_of_load_controls": float(point["load_r2"]),
                                 "r2_of_load_controls_ci95": _ci(boot["load_r2"])},
        "covariates": {},
    }
    for i, c in enumerate(covs):
        out["covariates"][c] = {
            "coef": float(point["beta"][2 + i]), "coef_ci95": _ci(boot_beta[:, i]),
            "sd_within": float(pooled_sd[i]),
            "effect_per_sd": float(point["beta"][2 + i] * pooled_sd[i]),
            "effect_per_sd_ci95": [v * float(pooled_sd[i]) for v in _ci(boot_beta[:, i])],
        }
    return out


def journal_panel(panel: pd.DataFrame, answers: pd.DataFrame, questions: tuple[str, ...],
                  lag_days: int) -> pd.DataFrame:
    """Panel rows of the WHOOP athletes with `answer` = the yes/no of `questions` dated w, put on
    the morning w + lag_days (any yes among the questions of one date)."""
    a = answers[answers["question"].isin(questions)]
    a = a.groupby(["user_id", "w"], as_index=False)["yes"].max()
    a["date"] = a["w"] + pd.Timedelta(days=lag_days)
    return panel.merge(a[["user_id", "date", "yes"]].rename(columns={"yes": "answer"}),
                       on=["user_id", "date"], how="inner")


def journal_estimates(panel: pd.DataFrame, answers: pd.DataFrame, questions: tuple[str, ...],
                      lag_days: int, rng: np.random.Generator, n_boot: int) -> dict:
    d = journal_panel(panel, answers, questions, lag_days)
    out = {"questions": list(questions)}
    for outcome in OUTCOMES:
        dd = d.dropna(subset=[outcome, "answer"])
        diffs, per = [], {}
        for user, g in dd.groupby("user_id"):
            n_yes = int((g["answer"] == 1).sum())
            n_no = int((g["answer"] == 0).sum())
            if n_yes >= MIN_YES and n_no >= MIN_NO:
                diff = float(g.loc[g["answer"] == 1, outcome].mean()
                             - g.loc[g["answer"] == 0, outcome].mean())
                diffs.append(diff)
                per[user] = {"yes": n_yes, "no": n_no, "diff": diff}
        res: dict = {"athletes": len(diffs), "per_athlete": per}
        if diffs:
            diffs_a = np.array(diffs)
            boot = diffs_a[rng.integers(0, len(diffs_a), (n_boot, len(diffs_a)))].mean(axis=1)
            res["mean_diff_yes_minus_no"] = float(diffs_a.mean())
            res["mean_diff_ci95"] = _ci(boot)
            res["days_yes"] = sum(v["yes"] for v in per.values())
            res["days_no"] = sum(v["no"] for v in per.values())
        users = set(per)

        def only(x, users=users):
            return x[x["user_id"].isin(users)]

        reg = regression(dd, outcome, ["answer"], rng, n_boot, min_days=MIN_YES + MIN_NO,
                         extra_filter=only) if len(users) >= 2 else None
        if reg is not None:
            c = reg["covariates"]["answer"]
            res["regression"] = {"coef_yes": c["coef"], "coef_ci95": c["coef_ci95"],
                                 "partial_r2": reg["partial_r2"],
                                 "partial_r2_ci95": reg["partial_r2_ci95"],
                                 "athletes": reg["athletes"], "days": reg["days"]}
        out[outcome] = res
    return out


# ---------------------------------------------------------------------------------------------

def _fmt_ci(v, ci, digits=3):
    return f"{v:+.{digits}f} [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "real")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.n_boot < 200:
        parser.error("--n-boot must be >= 200")

    from physiology_model.data.loaders import load_exports

    t0 = time.perf_counter()
    frame = load_exports([str(args.data)]).frame
    t_load = time.perf_counter() - t0
    panel = daily_panel(frame)
    rng = np.random.default_rng(args.seed)

    continuous: dict = {}
    for outcome in OUTCOMES:
        continuous[outcome] = {c: regression(panel, outcome, [c], rng, args.n_boot)
                               for c in CONTINUOUS}
        continuous[outcome]["all_four_combined"] = regression(panel, outcome, list(CONTINUOUS),
                                                              rng, args.n_boot)
    # its own stream, so the journal's intervals below stay those of the runs before it
    weekday_rng = np.random.default_rng([args.seed, 7])
    weekdays = {outcome: regression(panel, outcome, list(WEEKDAYS), weekday_rng, args.n_boot)
                for outcome in OUTCOMES}

    answers, journal_counts = read_journals(args.data / "whoop", set(frame["user_id"]))
    groups = question_groups(answers)
    alignments = {"cycle_morning": 0, "next_morning": 1, "previous_morning": -1}
    journal: dict = {name: {} for name in alignments}
    for name, lag in alignments.items():
        for key, qs in groups.items():
            if key not in HEADLINE_QUESTIONS and name != "cycle_morning":
                continue
            est = journal_estimates(panel, answers, qs, lag, rng, args.n_boot)
            if key in HEADLINE_QUESTIONS or any(est[o]["athletes"] > 0 for o in OUTCOMES):
                journal[name][key] = est

    counts = {
        "rows": len(frame), "athletes": int(frame["user_id"].nunique()),
        "athlete_days_with_outcome": {o: int(panel[o].notna().sum()) for o in OUTCOMES},
        "athlete_days_with_outcome_and_load_controls": {
            o: int(panel.dropna(subset=[o, "L1", "L2"]).shape[0]) for o in OUTCOMES},
        "journal_athletes": journal_counts,
        "journal_questions": int(answers["question"].nunique()),
    }
    result = {
        "benchmark": "night_covariates",
        "config": {"seed": args.seed, "n_boot": args.n_boot, "data": str(args.data),
                   "baseline_days": BASELINE_DAYS, "baseline_min_measured": BASELINE_MIN,
                   "covariate_baseline_days": COVARIATE_DAYS,
                   "covariate_baseline_min_measured": COVARIATE_MIN,
                   "min_usable_days_per_athlete": MIN_DAYS,
                   "journal_min_yes": MIN_YES, "journal_min_no": MIN_NO,
                   "load_controls": "load_trimp/100 of days d-1 and d-2",
                   "skin_temp": "skin_temp_dev_c, else skin_temp_c (28-day demeaned)",
                   "out": str(args.out)},
        "alignment": {
            "main": "cycle_morning",
            "lag_days": alignments,
            "rule": "a journal answer's cycle is dated like the WHOOP loader dates the cycle: w = "
                    "wake-onset date of the sleep that starts the cycle (the row holding that "
                    "morning's HRV/RHR); a cycle starting on the evening of D has w = D + 1, one "
                    "starting after midnight w = start date "
                    "(counts.journal_athletes.*.answers_by_w_minus_start_date). "
                    "WHOOP files the answers about day D (asked on waking) under the cycle that "
                    "starts on the evening of D (or after midnight), so they act on morning w "
                    "(lag 0, cycle_morning). "
                    "next_morning (w + 1) and previous_morning (w - 1, placebo) are checks; "
                    "alignment_test lists the alcohol estimate at each lag.",
        },
        "alignment_test": {
            name: {o: {k: journal[name]["alcohol"][o].get(k) for k in
                       ("mean_diff_yes_minus_no", "mean_diff_ci95", "athletes")}
                   for o in OUTCOMES} for name in alignments},
        "reference_hard_training_day": {"ln_hrv": [-0.08, -0.05], "rhr_bpm": [0.6, 0.8],
                                        "note": "from the issue brief, not measured here"},
        "counts": counts,
        "continuous": continuous,
        "weekday": weekdays,
        "journal": journal,
        "load_s": t_load,
        "wall_s": time.perf_counter() - t0,
        "load_average": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'outcome':7s} {'covariate':22s} {'coef [95% CI]':32s} {'per SD':>8s} "
          f"{'partial R2 [95% CI]':26s} {'ath':>4s} {'days':>6s}")
    for outcome in OUTCOMES:
        for c, r in continuous[outcome].items():
            if r is None:
                print(f"{outcome:7s} {c:22s} (no athletes)")
                continue
            if c == "all_four_combined":
                coef, per_sd = "", ""
            else:
                cc = r["covariates"][c]
                coef, per_sd = _fmt_ci(cc["coef"], cc["coef_ci95"]), f"{cc['effect_per_sd']:+.3f}"
            print(f"{outcome:7s} {c:22s} {coef:32s} {per_sd:>8s} "
                  f"{_fmt_ci(r['partial_r2'], r['partial_r2_ci95'], 3):26s} "
                  f"{r['athletes']:4d} {r['days']:6d}")
    print("\nday of the week, beyond the loads (deviation from the weekly mean [95% CI]; "
          "partial R2 of the six)")
    for outcome, r in weekdays.items():
        if r is None:
            continue
        days = " ".join(f"{d[:3]} {_fmt_ci(c['coef'], c['coef_ci95'])}"
                        for d, c in r["covariates"].items())
        print(f"{outcome:7s} {days} R2={_fmt_ci(r['partial_r2'], r['partial_r2_ci95'], 3)} "
              f"ath={r['athletes']}")
    for name in alignments:
        print(f"\njournal, {name}: yes - no (athlete-weighted mean diff; regression coef; "
              "partial R2)")
        for key, est in journal[name].items():
            if key not in HEADLINE_QUESTIONS and (name != "cycle_morning"
                                                  or est["ln_hrv"]["athletes"] < 2):
                continue
            for outcome in OUTCOMES:
                r = est[outcome]
                if not r["athletes"]:
                    print(f"{outcome:7s} {key[:34]:34s} (no athlete with >= {MIN_YES} yes/no)")
                    continue
                reg = r.get("regression")
                regs = (f"{_fmt_ci(reg['coef_yes'], reg['coef_ci95'])} R2={reg['partial_r2']:.3f}"
                        if reg else "")
                print(f"{outcome:7s} {key[:34]:34s} "
                      f"{_fmt_ci(r['mean_diff_yes_minus_no'], r['mean_diff_ci95'])} "
                      f"ath={r['athletes']} yes={r['days_yes']} no={r['days_no']} {regs}")
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s, load {t_load:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
