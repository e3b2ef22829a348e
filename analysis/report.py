"""The evaluation report: one static HTML file (plots embedded as PNG, no server, no scripts).

Sections: the seed's minimum-viable criteria (§13.1) as measured value vs threshold, pass or
fail; the headline table (mean ± SD, Wilcoxon p against the best baseline, % of the oracle);
fitness gain by policy with 95 % intervals; the action distribution; the mean performance
trajectory; a policy heatmap (most frequent action by recovery × TSB) for each learned policy;
training curves of trained runs (the episode returns in their `run.json`); and the world model's forecast skill on
real athletes and its interval calibration (from `periodize model evaluate`'s JSON).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.benchmark import BASELINES, HEADLINE
from analysis.interpret import distill
from physiology_model.data.table import ACTIONS, atomic_write
from simulator.constraints import longest_runs

_COLORS = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#937860",
           "#da8bc3", "#8c8c8c", "#b5b5b5")
_ACTION_COLORS = ("#d9d9d9", "#a6cee3", "#1f78b4", "#fdbf6f", "#e31a1c", "#6a3d9a")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return ('<img alt="plot" src="data:image/png;base64,'
            + base64.b64encode(buf.getvalue()).decode() + '">')


def _by(records: Sequence[dict], policy: str, metric: str) -> dict | None:
    return next((r for r in records if r["policy"] == policy and r["metric"] == metric), None)


def success_criteria(records: Sequence[dict], runs: dict) -> list[dict[str, Any]]:
    """Seed §13.1 as rows {criterion, value, threshold, passed} for the best learned policy
    (the non-baseline, non-oracle policy with the highest mean ΔP)."""

    learned = [n for n in runs if n not in BASELINES and n != "oracle"]
    if not learned:
        return []
    best = max(learned, key=lambda n: float(np.mean(runs[n].metrics["delta_performance"])))
    rows = []
    ret = _by(records, best, "return")
    rnd = _by(records, "random", "return")
    if ret:
        rows.append({"criterion": f"{best}: mean episode reward > 0", "value": ret["mean"],
                     "threshold": "> 0", "passed": ret["mean"] > 0})
    if ret and rnd:
        rows.append({"criterion": f"{best}: better than random (mean return)",
                     "value": ret["mean"] - rnd["mean"], "threshold": "> 0",
                     "passed": ret["mean"] > rnd["mean"]})
    dp = _by(records, best, "delta_performance")
    rule = _by(records, "seed_rule", "delta_performance")
    if dp and rule:
        gain = dp["mean"] - rule["mean"]
        rel = 100.0 * gain / abs(rule["mean"]) if rule["mean"] else float("inf")
        rows.append({"criterion": f"{best}: fitness gain (ΔP) ≥ 10 % better than the seed rule",
                     "value": rel, "threshold": "≥ 10 % (relative to |seed rule ΔP|)",
                     "passed": gain > 0 and rel >= 10.0})
    att = runs[best].metrics["attempted_violations"]
    rate = 100.0 * float(np.mean(att > 0))
    rows.append({"criterion": f"{best}: episodes with a hard-constraint violation attempt",
                 "value": rate, "threshold": "< 5 %", "passed": rate < 5.0})
    longest = _longest_injured_run(runs[best])
    # an episode's length is drawn at its onset (EnvConfig.injury_mean_days, geometric): a
    # policy changes how often athletes fall ill, not for how long, so the oracle is shown too
    reference = (f" (oracle: {_longest_injured_run(runs['oracle'])} days; an illness's length "
                 f"is drawn at its onset)" if "oracle" in runs else "")
    rows.append({"criterion": f"{best}: no athlete injured/ill > 7 days running{reference}",
                 "value": float(longest), "threshold": "≤ 7 days", "passed": longest <= 7})
    return rows


def _longest_injured_run(run) -> int:
    injured = run.extra.get("injured")
    if injured is None:
        return 0

    runs = longest_runs(injured)
    return int(runs.max()) if runs.size else 0


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not np.isfinite(v):
            return "n/a"
        if abs(v) < 1e-3 and v != 0:
            return f"{v:.1e}"
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _headline_table(records: Sequence[dict], policies: Sequence[str]) -> str:

    head = "".join(f"<th>{html.escape(m)}</th>" for m in HEADLINE)
    rows = []
    for p in policies:
        cells = []
        for m in HEADLINE:
            r = _by(records, p, m)
            if r is None:
                cells.append("<td></td>")
                continue
            extra = []
            if r.get("p_vs_best_baseline") is not None:
                extra.append(f"p={_fmt(r['p_vs_best_baseline'], 3)}")
            if r.get("pct_of_oracle") is not None:
                ci = r.get("pct_of_oracle_ci95")
                extra.append(f"{r['pct_of_oracle']:.0f}% of oracle"
                             + (f" [{ci[0]:.0f}, {ci[1]:.0f}]" if ci else ""))
            note = f"<br><small>{'; '.join(extra)}</small>" if extra else ""
            cells.append(f"<td>{_fmt(r['mean'])} ± {_fmt(r['std'])}{note}</td>")
        rows.append(f"<tr><th>{html.escape(p)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>policy</th>{head}</tr>{''.join(rows)}</table>"


def _bar_with_ci(runs: dict, metric: str, ylabel: str) -> str:
    import matplotlib.pyplot as plt

    names = list(runs)
    means = [float(np.mean(runs[n].metrics[metric])) for n in names]
    ci = [1.96 * float(np.std(runs[n].metrics[metric], ddof=1))
          / np.sqrt(len(runs[n].metrics[metric])) for n in names]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(names, means, yerr=ci, capsize=4, color=_COLORS[:len(names)])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel}: mean and 95 % interval over athletes")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return _png(fig)


def _action_shares(runs: dict) -> str:
    import matplotlib.pyplot as plt

    names = list(runs)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    bottom = np.zeros(len(names))
    for i, a in enumerate(ACTIONS):
        share = np.array([100 * float(np.mean(runs[n].metrics[f"share_{a}"])) for n in names])
        ax.bar(names, share, bottom=bottom, label=a, color=_ACTION_COLORS[i])
        bottom += share
    ax.axhline(60, color="k", ls="--", lw=0.8)
    ax.set_ylabel("% of days")
    ax.set_title("Executed sessions (dashed: 60 %, the realism limit for any one action)")
    ax.legend(ncol=3, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return _png(fig)


def _performance_paths(runs: dict) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, (n, run) in enumerate(runs.items()):
        change = run.performance - run.performance[:1]
        ax.plot(np.mean(change, axis=1), label=n, color=_COLORS[i % len(_COLORS)])
    ax.set_xlabel("day of the episode")
    ax.set_ylabel("mean ΔP (% of baseline)")
    ax.set_title("Latent performance relative to day 0, mean over athletes")
    ax.legend(fontsize=8, ncol=2)
    return _png(fig)


def _heatmap(run) -> str:
    """Most frequent executed action by recovery bin × TSB bin (colour = action)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    rec = run.recovery.ravel()
    tsb = run.tsb.ravel()
    act = run.actions.ravel().astype(int)
    ok = np.isfinite(rec)
    rec_edges = np.array([0, 20, 33, 45, 60, 70, 80, 101])
    tsb_edges = np.quantile(tsb[ok], np.linspace(0, 1, 7)) if ok.any() else np.arange(7)
    tsb_edges[-1] += 1e-9
    grid = np.full((len(rec_edges) - 1, len(tsb_edges) - 1), np.nan)
    for i in range(len(rec_edges) - 1):
        for j in range(len(tsb_edges) - 1):
            sel = ok & (rec >= rec_edges[i]) & (rec < rec_edges[i + 1]) & \
                (tsb >= tsb_edges[j]) & (tsb < tsb_edges[j + 1])
            if sel.sum() >= 5:
                grid[i, j] = np.bincount(act[sel], minlength=len(ACTIONS)).argmax()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.imshow(grid, origin="lower", aspect="auto", cmap=ListedColormap(_ACTION_COLORS),
              vmin=-0.5, vmax=len(ACTIONS) - 0.5)
    ax.set_yticks(range(len(rec_edges) - 1),
                  [f"{a}-{min(b, 100)}" for a, b in itertools.pairwise(rec_edges)])
    ax.set_xticks(range(len(tsb_edges) - 1),
                  [f"{a:.0f}..{b:.0f}" for a, b in itertools.pairwise(tsb_edges)],
                  rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("recovery this morning (%)")
    ax.set_xlabel("TSB = CTL − ATL (TRIMP/day), sextiles")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _ACTION_COLORS]
    ax.legend(handles, ACTIONS, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(f"{run.name}: most frequent session (blank: < 5 days)")
    return _png(fig)


def _tree_section(runs: dict) -> str:
    """The best learned policy (highest ΔP, not a baseline or the oracle) as a shallow tree."""
    import matplotlib.pyplot as plt
    from sklearn.tree import plot_tree


    learned = [n for n in runs if n not in BASELINES and n != "oracle"
               and "obs" in runs[n].extra]
    if not learned:
        return "<p>No learned policy in this run to distil.</p>"
    best = max(learned, key=lambda n: float(np.mean(runs[n].metrics["delta_performance"])))
    tree = distill(runs[best], depth=3)
    fig, ax = plt.subplots(figsize=(13, 5.5))
    plot_tree(tree.model, feature_names=None, class_names=[ACTIONS[c] for c in
                                                            tree.model.classes_],
              filled=True, impurity=False, fontsize=7, ax=ax,
              label="none")
    # feature names are long: show them in the rules text below instead
    ax.set_title(f"{best} distilled into a depth-3 tree")
    return (f"<p>{html.escape(best)} distilled into a depth-3 decision tree on half of the "
            f"athletes; on the other half it picks the policy's session on "
            f"<b>{100 * tree.fidelity:.0f} %</b> of days (always picking the policy's commonest "
            f"session: {100 * tree.majority_fidelity:.0f} %).</p>" + _png(fig)
            + f"<pre>{html.escape(tree.rules)}</pre>")


def _training_curves(run_dirs: Sequence[str]) -> str:
    import matplotlib.pyplot as plt

    curves, unreadable = [], []
    for d in run_dirs:
        path = Path(d) / "run.json"
        if not path.is_file():
            continue
        curve = _training_curve(path)
        if curve is None:
            unreadable.append(str(path))
        elif len(curve):
            curves.append((Path(d).name, curve))
    skipped = (f"<p>No readable training curve in {', '.join(map(html.escape, unreadable))}."
               f"</p>" if unreadable else "")
    if not curves:
        return skipped or "<p>No training curves (no trained run directory was given).</p>"
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for i, (name, frame) in enumerate(curves):
        ax.plot(frame["env_steps"], frame["episode_return"], label=name,
                color=_COLORS[i % len(_COLORS)])
    ax.set_xlabel("environment steps (athlete-days)")
    ax.set_ylabel("mean episode return")
    ax.set_title("Training curves")
    ax.legend(fontsize=8)
    return _png(fig) + skipped


def _training_curve(path: Path):
    """(env_steps, episode_return) of a run's `run.json`, empty when it has none, None when the
    file is not a readable run record (a damaged run directory must not end an evaluation)."""
    import pandas as pd

    try:
        run = json.loads(path.read_text(encoding="utf-8"))
        report = run.get("report") or {}
        returns = np.asarray(report.get("episode_returns") or [], dtype=float)
        # one entry per finished batch of episodes: n_envs lanes × episode_days steps
        n_envs = run.get("n_envs", 1)
        days = (run.get("env_config") or {}).get("episode_days", 90)
        if (returns.ndim != 1 or len(returns) > 10_000_000 or not np.isfinite(returns).all()
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10**7
                           for v in (n_envs, days))):
            return None
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError):
        return None
    return pd.DataFrame({"env_steps": n_envs * days * (1 + np.arange(len(returns))),
                         "episode_return": returns})


def _forecast_section(forecast_json: Path | None) -> str:
    import matplotlib.pyplot as plt

    if forecast_json is None or not Path(forecast_json).is_file():
        return "<p>No forecast evaluation given.</p>"
    recs = json.loads(Path(forecast_json).read_text())
    out = [(f"<p>From <code>{html.escape(str(forecast_json))}</code> (<code>periodize model "
            f"evaluate</code>): next-day and 7-day forecasts of real athletes, on held-out days "
            f"of fitted athletes (temporal) and on athletes the fit never saw (unseen).</p>")]
    for split in ("unseen", "temporal"):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
        sub = [r for r in recs if r["split"] == split and r["horizon"] == 1]
        methods = sorted({r["method"] for r in sub})
        for ax, target in zip(axes, ("hrv", "rhr")):
            rows = [next((r for r in sub if r["method"] == m and r["target"] == target), None)
                    for m in methods]
            crps = [r["crps"] if r else np.nan for r in rows]
            lo = [r["crps"] - r["crps_lo"] if r else 0 for r in rows]
            hi = [r["crps_hi"] - r["crps"] if r else 0 for r in rows]
            ax.barh(methods, crps, xerr=[lo, hi], color="#4c72b0", capsize=3)
            ax.set_title(f"{split}: next-day CRPS, {'ln HRV' if target == 'hrv' else 'RHR'}")
            ax.set_xlabel("CRPS (lower is better)")
        out.append(_png(fig))
        fig, ax = plt.subplots(figsize=(8, 3))
        rows = [r for r in sub if r["target"] in ("hrv", "rhr")]
        labels = [f"{r['method']} {r['target']}" for r in rows]
        ax.bar(np.arange(len(rows)) - 0.2, [r["cover50"] for r in rows], 0.4, label="50 %")
        ax.bar(np.arange(len(rows)) + 0.2, [r["cover90"] for r in rows], 0.4, label="90 %")
        ax.axhline(0.5, color="k", lw=0.8, ls=":")
        ax.axhline(0.9, color="k", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(rows)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("share of days inside")
        ax.set_title(f"{split}: calibration of the 50 % and 90 % intervals (lines: nominal)")
        ax.legend(fontsize=8)
        out.append(_png(fig))
    return "\n".join(out)


_CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;
padding:4px 6px;text-align:right;vertical-align:top}th{background:#f4f4f4}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#c62828;font-weight:bold}img{max-width:100%}"""


def _real_section(real: dict | None) -> str:
    import matplotlib.pyplot as plt

    if not real:
        return ("<p>No real athletes given (<code>--real PATH</code>): sim-to-real and the "
                "policies inside digital twins were not run.</p>")
    parts = [f"<p>{len(real['athletes'])} real athletes the world model was not fitted on.</p>",
             "<h3>Sim-to-real: actual loads replayed through each athlete's twin</h3>"]
    summary = real["sim_to_real_summary"]
    if summary:
        rows = "".join(
            f"<tr><td>{html.escape(r['target'])}</td><td>{html.escape(r['statistic'])}</td>"
            f"<td>{r['n_athletes']}</td><td>{_fmt(r['measured_median'], 3)}</td>"
            f"<td>{_fmt(r['simulated_median'], 3)}</td>"
            f"<td>{_fmt(r['correlation_across_athletes'], 2)}</td></tr>" for r in summary)
        parts.append("<table><tr><th>signal</th><th>statistic</th><th>athletes</th>"
                     "<th>measured (median)</th><th>simulated (median)</th>"
                     f"<th>correlation across athletes</th></tr>{rows}</table>")
        frame = real["sim_to_real"]
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
        for ax, stat in zip(axes, ("mean", "sd", "lag1", "hard_day_response")):
            pts = [r for r in frame if r["statistic"] == stat and r["target"] == "hrv"]
            x = [r["measured"] for r in pts]
            y = [r["simulated"] for r in pts]
            ax.scatter(x, y, s=14)
            finite = [v for v in x + y if v is not None and np.isfinite(v)]
            if finite:
                lo, hi = min(finite), max(finite)
                ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_title(f"ln HRV {stat}")
            ax.set_xlabel("measured")
            ax.set_ylabel("simulated")
        parts.append(_png(fig))
    twin = real.get("twin_records") or []
    if twin:
        parts.append(f"<h3>Policies inside the twins vs the athlete's actual plan "
                     f"({len(real['twin_athletes'])} athletes, {real['twin_days']} days)</h3>")
        parts.append("<p>p: Wilcoxon signed-rank against the actual plan.</p>")
        for r in twin:
            r.setdefault("p_vs_best_baseline", r.get("p_vs_actual_plan"))
        parts.append(_headline_table(twin, list(real["twin_runs"])))
        parts.append(_bar_with_ci(real["twin_runs"], "delta_performance",
                                  "ΔP in the twins, % of baseline"))
    return "\n".join(parts)


def _tests_note(tests: dict[str, Any] | None) -> str:
    """What the policies that read performance tests were handed (`--tests-every`)."""
    if not tests:
        return ""
    handed = ", ".join(tests["handed_to"]) or "no policy"
    how = (f"as that day's {tests['session']} session" if tests["session"]
           else "free (no session given up for it)")
    return (f"<p><b>Performance tests:</b> one every {tests['every_days']} days, CV "
            f"{100 * tests['cv']:.1f} %, {html.escape(how)}, handed to "
            f"{html.escape(handed)}; the other policies see the wearable only.</p>")


def write_report(path: Path, runs: dict, records: Sequence[dict], *, meta: dict[str, Any],
                 run_dirs: Sequence[str] = (), forecast_json: Path | None = None,
                 real: dict | None = None) -> None:
    """Write the HTML report (atomically: the file appears whole or not at all)."""

    policies = list(runs)
    criteria = success_criteria(records, runs)
    crit_rows = "".join(
        f"<tr><td style='text-align:left'>{html.escape(c['criterion'])}</td>"
        f"<td>{_fmt(c['value'])}</td><td>{html.escape(c['threshold'])}</td>"
        f"<td class='{'pass' if c['passed'] else 'fail'}'>{'pass' if c['passed'] else 'FAIL'}"
        f"</td></tr>" for c in criteria)
    learned = [n for n in runs if n not in BASELINES]
    parts = [
        (f"<!doctype html><html><head><meta charset='utf-8'><title>Adaptive periodization: "
         f"evaluation</title><style>{_CSS}</style></head><body>"),
        "<h1>Adaptive periodization: evaluation report</h1>",
        (f"<p><b>Command:</b> <code>{html.escape(str(meta.get('command', '')))}</code><br>"
         f"<b>Cohort:</b> {html.escape(str(meta.get('cohort', '')))} "
         f"({meta.get('n_athletes')} athletes, {meta.get('episode_days')} days, episode seed "
         f"{meta.get('seed')}); <b>model:</b> {html.escape(str(meta.get('model', '')))}</p>"),
        _tests_note(meta.get("performance_tests")),
        "<h2>Seed success criteria (§13.1)</h2>",
        (f"<table><tr><th>criterion</th><th>measured</th><th>threshold</th><th>result</th></tr>"
         f"{crit_rows}</table>" if criteria else
         "<p>No learned policy in this run: the criteria concern a learned agent.</p>"),
        "<h2>Every policy on the same athletes</h2>",
        ("<p>Mean ± SD over athletes; p: Wilcoxon signed-rank against the best baseline (highest "
         "mean ΔP); % of oracle: (policy − random)/(oracle − random) on the means.</p>"),
        _headline_table(records, policies),
        _bar_with_ci(runs, "delta_performance", "ΔP, % of baseline"),
        _bar_with_ci(runs, "return", "episode return"),
        _action_shares(runs),
        _performance_paths(runs),
        "<h2>What the policies do</h2>",
        *[_heatmap(runs[n]) for n in (learned or policies[:1])],
        "<h2>The best learned policy as rules</h2>", _tree_section(runs),
        "<h2>Training</h2>", _training_curves(run_dirs),
        "<h2>The world model on real athletes</h2>", _forecast_section(forecast_json),
        "<h2>Real athletes: sim-to-real and policies in digital twins</h2>",
        _real_section(real),
        ("<h2>All numbers</h2><p>Every metric of every policy is in <code>results.json</code> "
         "next to this file.</p></body></html>"),
    ]
    text = "\n".join(parts)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
