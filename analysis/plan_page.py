"""The plan page (`periodize plan --html`) and the daily report page (`periodize daily --report
--html`): one static HTML file each, for a phone as much as a desk.

Everything is inside the file: the charts are matplotlib PNGs embedded as base64 data URIs, the
style is inline, and there is no script and no external link (a page handed to an athlete must
open offline and must not call anywhere). One column, a viewport meta tag, images that shrink to
the screen and tables that scroll sideways on their own make it readable on a 360-px phone.

The plan page shows:

- **PMC** (performance management chart): ATL (7-day) and CTL (42-day) exponentially weighted
  TRIMP and TSB = CTL − ATL, exactly as the policy's features compute them
  (`physiology_model.features.batch`: the EWMA of the days before each morning), over the last
  `HISTORY_DAYS` days and, dashed, the projection through the plan's days with the planned
  loads written in.
- **HRV and resting HR** measured mornings, the athlete's normal band (28-day baseline ± 2 SD of
  the days before: for HRV the feature builder's ln-scale baseline and SD that safety rule (b)
  reads, for RHR the same window on bpm, shown once 7 mornings are known), and the world
  model's 50 % and 90 % intervals for the mornings after each planned day.
- **The plan** with the predicted recovery, HRV and RHR (80 % intervals), why (this morning's
  state) and the rule that changed a choice, and the data notes.
- **Flags** over the last `FLAG_DAYS` days of the export: the seed's fail-safes that can be read
  from an export alone (`analysis.daily_report`: recovery < 20 % five days running, an HRV
  crash, a week without readings; the 99 %-band flag needs logged forecasts, see
  `periodize daily --report`).
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.recommend import session_text
from analysis.daily_report import compute_flags, daily_series, forecast_scores
from physiology_model.data.table import atomic_write
from simulator.observation import observations_from_table

HISTORY_DAYS = 60
FLAG_DAYS = 28
BAND_SD = 2.0
BAND_MIN_DAYS = 7

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:12px;
max-width:760px;margin:auto;color:#222;font-size:16px;line-height:1.4}
h1{font-size:1.35em;margin:.3em 0}h3{font-size:1em;margin:1em 0 .3em}h2{font-size:1.1em;margin:1.2em 0 .4em;border-bottom:1px solid
#ddd}img{max-width:100%;height:auto;display:block}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.9em;min-width:100%}td,th{padding:4px 6px;border-bottom:
1px solid #eee;text-align:left;vertical-align:top;white-space:nowrap}td.why{white-space:normal;
min-width:9em}.flag{background:#fdecea;border-left:4px solid #c0392b;padding:6px 8px;margin:
6px 0}.ok{background:#eaf7ee;border-left:4px solid #2e8b57;padding:6px 8px}.muted{color:#666;
font-size:.85em}
"""


def _png(fig, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # a chart of two or three days: matplotlib says it picked a default tick interval
        warnings.filterwarnings("ignore", message="AutoDateLocator was unable")
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
            + base64.b64encode(buf.getvalue()).decode() + '">')


def _page(title: str, body: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], why_column: int | None = None
           ) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    why = ' class="why"'
    body = "".join(
        "<tr>" + "".join(
            f"<td{why if j == why_column else ''}>{html.escape(str(c))}</td>"
            for j, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _flags_html(found: Sequence[dict[str, Any]], scope: str) -> str:
    if not found:
        return f'<div class="ok">No flags {html.escape(scope)}.</div>'
    return "".join(
        f'<div class="flag"><b>{html.escape(f["flag"])}</b>'
        f'{" (active)" if f["active"] else ""}: {html.escape(f["detail"])}</div>'
        for f in found)


FIGURE_WIDTH_IN = 4.6
"""Chart width: at 110 dpi about 500 px, so on a 360-px phone the text shrinks by a third, not
by half (it stays legible)."""


def _figure(height: float = 2.6):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, height))
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    locator = mdates.AutoDateLocator(maxticks=5)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return fig, ax


# -- the plan page ------------------------------------------------------------------------------
def pmc_frame(history: pd.DataFrame, sessions_trimp: Sequence[float]) -> pd.DataFrame:
    """ATL, CTL, TSB per morning (TRIMP/day) of the history and of the plan's days, the planned
    loads written in from today; column `planned` marks the projected mornings."""

    h = history.sort_values("date").copy()
    h["date"] = pd.to_datetime(h["date"]).dt.normalize()
    today = h["date"].iloc[-1]
    loads = list(sessions_trimp)
    future = pd.DataFrame({"date": today + pd.to_timedelta(np.arange(1, len(loads) + 1), "D"),
                           "user_id": h["user_id"].iloc[0]})
    frame = pd.concat([h, future], ignore_index=True)
    for i, load in enumerate(loads):
        frame.loc[frame["date"] == today + pd.Timedelta(days=i), "load_trimp"] = float(load)
    features = observations_from_table(frame)
    out = pd.DataFrame({"date": pd.to_datetime(features["date"]).to_numpy(),
                        "atl": features["atl_trimp"].to_numpy(),
                        "ctl": features["ctl_trimp"].to_numpy(),
                        "tsb": features["tsb_trimp"].to_numpy()})
    out["planned"] = out["date"] > today
    return out


def _pmc_chart(pmc: pd.DataFrame) -> str:
    fig, ax = _figure(2.8)
    past = pmc[~pmc["planned"]].tail(HISTORY_DAYS)
    ahead = pmc[pmc["planned"] | (pmc["date"] == past["date"].iloc[-1])]
    for column, color, label in (("ctl", "#1f77b4", "CTL (fitness, 42 d)"),
                                 ("atl", "#d62728", "ATL (fatigue, 7 d)"),
                                 ("tsb", "#2ca02c", "TSB = CTL − ATL (form)")):
        ax.plot(past["date"], past[column], color=color, label=label)
        ax.plot(ahead["date"], ahead[column], color=color, linestyle="--")
    ax.axhline(0, color="#888", lw=0.8)
    ax.axvspan(ahead["date"].iloc[0], ahead["date"].iloc[-1], color="#f2f2f2", zorder=-1)
    ax.set_ylabel("TRIMP / day")
    ax.set_title("PMC (dashed: the plan's projection)", fontsize=9)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2,
              frameon=False)
    return _png(fig, "PMC: ATL, CTL and TSB with the 7-day projection of the planned loads")


def normal_band(values: pd.Series, log: bool = False) -> tuple[pd.Series, pd.Series]:
    """28-day mean ± 2 SD of the days before each day (NaN until `BAND_MIN_DAYS` are known), on
    the log scale when `log`; `values` on a calendar `DatetimeIndex`."""
    x = np.log(values) if log else values
    roll = x.shift(1).rolling(28, min_periods=BAND_MIN_DAYS)
    mean, sd = roll.mean(), roll.std()
    lo, hi = mean - BAND_SD * sd, mean + BAND_SD * sd
    return (np.exp(lo), np.exp(hi)) if log else (lo, hi)


def normal_bands(history: pd.DataFrame) -> pd.DataFrame:
    """The normal bands of each calendar day of one athlete's history (module docstring):
    columns `hrv_lo`, `hrv_hi` (ms, the feature builder's ln baseline ± 2 SD) and `rhr_lo`,
    `rhr_hi` (bpm, `normal_band`)."""

    h = history.copy()
    h["date"] = pd.to_datetime(h["date"]).dt.normalize()
    calendar = pd.date_range(h["date"].min(), h["date"].max(), freq="D")
    feats = observations_from_table(h).set_index("date").reindex(calendar)
    base, sd = feats["ln_hrv_baseline_28d"], feats["ln_hrv_baseline_sd_28d"]
    rhr = pd.to_numeric(h.set_index("date")["rhr_bpm"], errors="coerce").reindex(calendar)
    rhr_lo, rhr_hi = normal_band(rhr)
    return pd.DataFrame({"hrv_lo": np.exp(base - BAND_SD * sd),
                         "hrv_hi": np.exp(base + BAND_SD * sd),
                         "rhr_lo": rhr_lo, "rhr_hi": rhr_hi}, index=calendar)


def _physiology_chart(measured: pd.Series, band: tuple[pd.Series, pd.Series],
                      forecast: pd.DataFrame | None, label: str, unit: str) -> str:
    """Measured mornings, the normal band, and the forecast's 50/90 % intervals and median."""
    fig, ax = _figure()
    lo, hi = band
    ax.fill_between(lo.index, lo.to_numpy(dtype=float), hi.to_numpy(dtype=float),
                    color="#9ecae1", alpha=0.35, label="normal (28-d ± 2 SD)", step="mid")
    ax.plot(measured.index, measured.to_numpy(dtype=float), "o-", color="#08519c", ms=3, lw=1,
            label="measured")
    if forecast is not None and len(forecast):
        d = pd.to_datetime(forecast["date"])
        ax.fill_between(d, forecast["q05"], forecast["q95"], color="#fdae6b", alpha=0.35,
                        label="forecast 90 %")
        ax.fill_between(d, forecast["q25"], forecast["q75"], color="#e6550d", alpha=0.35,
                        label="forecast 50 %")
        ax.plot(d, forecast["q50"], color="#a63603", lw=1.2, label="forecast median")
    ax.set_ylabel(unit)
    ax.set_title(label, fontsize=9)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2,
              frameon=False)
    return _png(fig, f"{label} with the normal band and forecast intervals")


def _forecast_quantiles(samples: np.ndarray, dates: Sequence[pd.Timestamp]) -> pd.DataFrame:
    q = np.quantile(samples, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    return pd.DataFrame({"date": list(dates), "q05": q[0], "q25": q[1], "q50": q[2],
                         "q75": q[3], "q95": q[4]})


def export_flags(history: pd.DataFrame) -> list[dict[str, Any]]:
    """The flags an export alone shows (module docstring), over its last `FLAG_DAYS` days."""

    h = history.copy()
    h["date"] = pd.to_datetime(h["date"]).dt.normalize()
    h = h.set_index("date").sort_index()
    days = pd.date_range(h.index.min(), h.index.max(), freq="D")
    h = h.reindex(days)
    feats = observations_from_table(h.rename_axis("date").reset_index().assign(
        user_id=str(history["user_id"].iloc[0]))).set_index("date")
    hrv = pd.to_numeric(h["hrv_rmssd_ms"], errors="coerce")
    series = pd.DataFrame({
        "hrv_ms": hrv, "rhr_bpm": pd.to_numeric(h["rhr_bpm"], errors="coerce"),
        "recovery_pct": pd.to_numeric(h["recovery_pct"], errors="coerce"),
        "ln_hrv_z": ((np.log(hrv) - feats["ln_hrv_baseline_28d"].reindex(days))
                     / feats["ln_hrv_baseline_sd_28d"].reindex(days))}, index=days)
    found = compute_flags(series.tail(FLAG_DAYS))
    return found


def plan_page(plan: dict[str, Any], details) -> str:
    """The plan page's HTML (module docstring); `details` is `agents.recommend.PlanDetails`."""
    history = details.history.copy()
    history["date"] = pd.to_datetime(history["date"]).dt.normalize()
    days = plan["days"]
    pmc = pmc_frame(history, [d["load_trimp"] for d in days])
    indexed = history.set_index("date").sort_index()
    calendar = pd.date_range(indexed.index.min(), indexed.index.max(), freq="D")
    indexed = indexed.reindex(calendar)
    hrv = pd.to_numeric(indexed["hrv_rmssd_ms"], errors="coerce")
    rhr = pd.to_numeric(indexed["rhr_bpm"], errors="coerce")
    bands = normal_bands(history)
    hrv_band, rhr_band = (bands["hrv_lo"], bands["hrv_hi"]), (bands["rhr_lo"], bands["rhr_hi"])
    mornings = [pd.Timestamp(d["date"]) + pd.Timedelta(days=1) for d in days]
    samples = details.prediction.samples
    hrv_fc = _forecast_quantiles(np.exp(samples["hrv"]), mornings)
    rhr_fc = _forecast_quantiles(samples["rhr"], mornings)
    recent = calendar[-HISTORY_DAYS:]
    first = days[0]
    body = [f"<h1>{len(days)}-day plan for {html.escape(plan['athlete'])}</h1>",
            f'<p class="muted">from {plan["start"]} · planner {html.escape(plan["planner"])}'
            + (f' · event {plan["event"]["date"]} ({plan["event"]["days_away"]} days)'
               if "event" in plan else "") + "</p>"]
    if first.get("why"):
        body.append(f"<p><b>This morning:</b> {html.escape(first['why'])}</p>")
    if first.get("reason"):
        body.append(f'<div class="flag"><b>A rule changed today\'s choice:</b> '
                    f'{html.escape(first["reason"])}</div>')
    for rule in first.get("rules_today", []):
        body.append(f'<p class="muted">Rule in force today: {html.escape(rule)}</p>')
    body.append("<h2>The plan</h2>")
    rows = []
    for d in days:
        lo, hi = d["recovery_pct_interval"]
        hl, hh = d["hrv_ms_interval"]
        rl, rh = d.get("rhr_bpm_interval", [np.nan, np.nan])
        day = pd.Timestamp(d["date"])
        rule = d.get("reason") or "; ".join(d.get("rules_today", []))
        rows.append(
            f"<tr><td class=\"why\"><span class=\"muted\">{day:%a %d %b}</span><br><b>"
            f"{html.escape(session_text(d).replace('_', ' '))}</b><br><span class=\"muted\">"
            f"{d['load_trimp']:.0f} TRIMP</span>"
            + (f"<br><span class=\"muted\">rule: {html.escape(rule)}</span>" if rule else "")
            + f"</td><td>recovery {d['recovery_pct']:.0f} % ({lo:.0f}–{hi:.0f})<br>HRV "
            f"{d['hrv_ms']:.0f} ms ({hl:.0f}–{hh:.0f})<br>RHR {d.get('rhr_bpm', np.nan):.0f} "
            f"bpm ({rl:.0f}–{rh:.0f})</td></tr>")
    body.append('<div class="scroll"><table><tr><th>day and session</th>'
                "<th>the morning after (80 %)</th></tr>" + "".join(rows) + "</table></div>")
    body.append('<p class="muted">Predictions are for the morning after each session, with '
                '80 % intervals, from the world model given the planned sessions.</p>')
    body.append("<h2>Flags</h2>")
    body.append(_flags_html(export_flags(details.history), f"in the last {FLAG_DAYS} days"))
    body.append("<h2>Training load</h2>")
    body.append(_pmc_chart(pmc))
    body.append("<h2>HRV and resting heart rate</h2>")
    body.append(_physiology_chart(hrv.reindex(recent), (hrv_band[0].reindex(recent),
                                                        hrv_band[1].reindex(recent)),
                                  hrv_fc, "HRV (RMSSD)", "ms"))
    body.append(_physiology_chart(rhr.reindex(recent), (rhr_band[0].reindex(recent),
                                                        rhr_band[1].reindex(recent)),
                                  rhr_fc, "Resting heart rate", "bpm"))
    if plan.get("notes"):
        body.append("<h2>Notes</h2><ul>" + "".join(
            f"<li>{html.escape(n)}</li>" for n in plan["notes"]) + "</ul>")
    body.append('<p class="muted">Decision support, not a medical device: see a physician '
                'about health concerns.</p>')
    return _page(f"Plan for {plan['athlete']} from {plan['start']}", body)


def write_plan_page(plan: dict[str, Any], details, path: str | Path) -> None:

    text = plan_page(plan, details)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# -- the daily report page ------------------------------------------------------------------------
def daily_page(store, rep: dict[str, Any]) -> str:
    """The daily report as HTML: per athlete the flags, coverage, CRPS over time, adherence,
    the measured mornings against their logged forecasts, and the latest plan."""

    body = ["<h1>Daily log report</h1>",
            (f'<p class="muted">{html.escape(Path(rep["store"]).name)} · schema version '
             f'{rep["schema_version"]} · {len(rep["athletes"])} athlete(s)</p>')]
    ab = rep.get("ab")
    if ab:
        line = ", ".join(f"{arm}: {ab[arm]['athletes']} athletes"
                         + ("" if ab[arm]["mean"] is None else f" (outcome {ab[arm]['mean']:+.2f})")
                         for arm in ("agent", "baseline"))
        if ab.get("difference") is not None:
            lo, hi = ab["interval95"]
            line += f"; agent − baseline {ab['difference']:+.2f} (95 % {lo:+.2f} to {hi:+.2f})"
        else:
            line += f"; {ab['note']}"
        body.append(f"<h2>A/B</h2><p>{html.escape(line)}</p>")
    for uid, r in rep["athletes"].items():
        body.append(f"<h2>{html.escape(uid)}</h2>")
        body.append(f'<p class="muted">{r["mornings"]} mornings {r["first"]} to {r["last"]} · '
                    f'{html.escape(r["policy"])}'
                    + (f" · arm {html.escape(r['arm'])}" if r["arm"] else "") + "</p>")
        body.append(_flags_html(r["flags"], "in the log"))
        cov = [[t, c["n"], "-" if c["coverage50"] is None else f"{100 * c['coverage50']:.0f} %",
                "-" if c["coverage90"] is None else f"{100 * c['coverage90']:.0f} %",
                "-" if c["crps_mean"] is None else f"{c['crps_mean']:.3g}"]
               for t, c in r["forecasts"].items()]
        body.append("<h3>Forecasts of the next morning</h3>")
        body.append(_table(["target", "mornings", "50 % coverage", "90 % coverage",
                            "mean CRPS"], cov))
        a = r["adherence"]
        share = ("-" if a["share_as_recommended"] is None
                 else f"{100 * a['share_as_recommended']:.0f} %")
        body.append(f"<h3>Adherence</h3><p>{a['days_known']} days known, "
                    f"{a['days_session_known']} with a session type, {share} as recommended."
                    "</p>")
        body.append(_table(["day", "recommended", "done", "TRIMP rec.", "TRIMP done"],
                           [[d["date"], d["recommended"], d["done"] or "-",
                             f"{d['recommended_trimp']:.0f}",
                             "-" if d["done_trimp"] is None else f"{d['done_trimp']:.0f}"]
                            for d in a["days"]]))
        scores = forecast_scores(store, uid)
        series = daily_series(store, uid)
        forecasts = pd.DataFrame(store.rows("forecasts", uid))
        for target, label, unit in (("hrv_ms", "HRV (RMSSD)", "ms"),
                                    ("rhr_bpm", "Resting heart rate", "bpm")):
            fc = forecasts[forecasts["target"] == target].rename(columns={"for_date": "x"})
            fc = fc.assign(date=pd.to_datetime(fc["x"]))[["date", "q05", "q25", "q50",
                                                          "q75", "q95"]]
            key = target.split("_")[0]
            band = (series[f"{key}_lo"], series[f"{key}_hi"])
            body.append(_physiology_chart(series[target], band, fc,
                                          f"{label}: measured vs logged forecasts", unit))
        if len(scores):
            fig, ax = _figure(2.4)
            for target, color in zip(("hrv_ms", "rhr_bpm", "recovery_pct"),
                                     ("#08519c", "#a63603", "#2ca02c")):
                s = scores[scores["target"] == target]
                ax.plot(pd.to_datetime(s["for_date"]), s["crps"], "o-", color=color, ms=3,
                        label=target)
            ax.set_ylabel("CRPS (target's unit)")
            ax.set_title("CRPS of each next-morning forecast", fontsize=9)
            ax.legend(fontsize=7.5)
            body.append(_png(fig, "CRPS over time"))
        latest = store.rows("mornings", uid)[-1]
        body.append(f"<h3>Latest plan ({latest['date']})</h3>")
        body.append(_table(["day", "session", "TRIMP", "why"],
                           [[d["date"], session_text(d).replace("_", " "),
                             f"{d['load_trimp']:.0f}", d.get("reason") or d.get("why", "")]
                            for d in latest["plan"]["days"]], why_column=3))
    body.append('<p class="muted">Decision support, not a medical device.</p>')
    return _page("Daily log report", body)


def write_daily_page(store, rep: dict[str, Any], path: str | Path) -> None:

    text = daily_page(store, rep)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
