"""Daily recommendations for every athlete under a folder: `periodize recommend`.

A coach's platform plans for all its athletes each morning (seed §12.2, "daily batch
predictions for all users"). Every export under DATA (a folder holding files: one athlete's
export, or a file of several athletes, such as the canonical daily table) is read on its own,
and each athlete in it gets the plan `periodize plan` would give (`agents.recommend.
plan_from_history`, the same code): today's session, the 7-day plan, the predicted recovery
and HRV of the morning after each session with their 80 % intervals, and, today, the rule
that changed the planner's choice. The output is one parquet row per athlete and day
(`COLUMNS`).

An export that cannot be read, or an athlete who cannot be planned for (too few mornings, a
date in the future, ...), is one row with `status = "error"` and the reason, and the batch goes
on. The model and the policy are loaded once per worker process, which keeps them for every
task it runs (`analysis.parallel.worker_cache`); the exports are cut into tasks of
`EXPORTS_PER_TASK` and run in this process, in `--workers` local processes or on Ray
(`analysis.parallel`). A task plans its athletes together, in batches of the same history
length (`agents.recommend.plan_batch`), each athlete from its own random streams keyed by
`--seed` and its id. Rows come back in the order of the exports (sorted paths) whatever ran
them, each athlete's plan depends on `--seed` and its own data alone (not on the athletes
sharing its batch, the task size or the workers), and the file's metadata records the
model, the policy, the seed and the horizon, not the worker count: a rerun, with any number of
workers, writes the same bytes (written whole or not at all, `table.atomic_write`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agents.recommend import MIN_DAYS, PlanRequest, _data_notes, plan_batch
from analysis.parallel import check_workers, run_tasks, worker_cache
from physiology_model.data.loaders import _folders, load_exports
from physiology_model.data.table import atomic_write
from physiology_model.errors import DataError
from physiology_model.model.world_model import WorldModel

EXPORTS_PER_TASK = 32
"""Most exports per task: enough to amortise a task's dispatch and to plan its athletes in
batches (`agents.recommend.plan_batch`); fewer when that leaves a worker under four tasks, so
that the workers finish together. The rows do not depend on it."""

COLUMNS: dict[str, str] = {
    "athlete": "string",
    "export": "string",
    "status": "string",
    "error": "string",
    "day_index": "int32",
    "date": "string",
    "today": "bool",
    "session": "string",
    "load_trimp": "float64",
    "duration_min": "float64",
    "intensity_pct_hrmax": "float64",
    "recovery_pct": "float64",
    "recovery_pct_p10": "float64",
    "recovery_pct_p90": "float64",
    "hrv_ms": "float64",
    "hrv_ms_p10": "float64",
    "hrv_ms_p90": "float64",
    "reason": "string",
    "rules_today": "string",
    "this_morning": "string",
    "planner": "string",
    "notes": "string",
}
"""The output's columns and their types. One row per athlete and day (`day_index` 0 is today,
`today` true); an athlete that failed is one row with `status` "error", the reason in `error`
and no plan. Recovery (%) and HRV (ms) are the medians predicted for the morning after that
day's session, `_p10`/`_p90` the 80 % interval. `duration_min` and `intensity_pct_hrmax`: the
session a continuous policy asked for (null for the MPC, a discrete policy, or a session the
rules replaced). `reason`: the planner would have chosen another
session today but a hard rule forbade it (which rule and what it would have chosen);
`rules_today`: the rules that fired today without changing the choice. `export`: the folder
read, relative to DATA."""


@dataclass(frozen=True)
class RecommendSpec:
    """What every task needs to plan (plain data: it travels to the workers)."""

    model_dir: str
    policy_dir: str | None = None
    days: int = 7
    seed: int = 0


@dataclass(frozen=True)
class _Task:
    spec: RecommendSpec
    root: str
    exports: tuple[str, ...]


def find_exports(data: str | Path) -> list[Path]:
    """The folders under `data` (itself included) that hold export files, sorted; a file
    given as `data` is its own export. A missing or empty path is a `DataError`."""

    root = Path(data)
    if not root.exists():
        raise DataError(root, "no such file or directory")
    if root.is_file():
        return [root]
    found = [folder for folder, _files in _folders(root)]
    if not found:
        raise DataError(root, "no files under this folder")
    return found


def _context(spec: RecommendSpec) -> tuple[Any, Any]:
    """The world model and the policy (None: the MPC planner) of this worker."""

    def build():

        model = WorldModel.load(spec.model_dir)
        policy = None
        if spec.policy_dir is not None:
            from agents.training import load_agent

            policy = load_agent(spec.policy_dir, device="cpu", model=model)
        return model, policy

    return worker_cache(("recommend", spec.model_dir, spec.policy_dir), build)


def _error_row(athlete: str, export: str, reason: str) -> dict[str, Any]:
    return {"athlete": athlete, "export": export, "status": "error", "error": reason}


def _load_export(path: Path):
    """The table of one export folder: only the athletes whose files are directly in it (an
    export folder inside it is an export of its own)."""

    table = load_exports([path])
    if path.is_file():
        return table, sorted(set(table.frame["user_id"]))
    own = sorted({u for u, origin in table.origins
                  if Path(origin) == path or Path(origin).parent == path})
    return table, own


def _request(table, uid: str) -> PlanRequest | str:
    """The plan request of one athlete of an export, or why it cannot be planned."""
    frame = table.frame
    history = frame[frame["user_id"] == uid].sort_values("date").reset_index(drop=True)
    measured = int((history["hrv_rmssd_ms"].notna() | history["rhr_bpm"].notna()).sum())
    if measured < MIN_DAYS:
        return f"{measured} days of HRV or RHR; a plan needs {MIN_DAYS}"
    return PlanRequest(history, _data_notes(table.notes_for(uid)))


def _plan_rows(plan: dict[str, Any], uid: str, export: str) -> list[dict[str, Any]]:
    notes = "; ".join(plan["notes"]) or None
    rows = []
    for i, day in enumerate(plan["days"]):
        rec_lo, rec_hi = day["recovery_pct_interval"]
        hrv_lo, hrv_hi = day["hrv_ms_interval"]
        rows.append({
            "athlete": uid, "export": export, "status": "ok", "error": None,
            "day_index": i, "date": day["date"], "today": i == 0, "session": day["session"],
            "load_trimp": day["load_trimp"], "duration_min": day.get("duration_min"),
            "intensity_pct_hrmax": day.get("intensity_pct_hrmax"),
            "recovery_pct": day["recovery_pct"],
            "recovery_pct_p10": rec_lo, "recovery_pct_p90": rec_hi, "hrv_ms": day["hrv_ms"],
            "hrv_ms_p10": hrv_lo, "hrv_ms_p90": hrv_hi, "reason": day.get("reason"),
            "rules_today": "; ".join(day["rules_today"]) if day.get("rules_today") else None,
            "this_morning": day.get("why"), "planner": plan["planner"], "notes": notes})
    return rows


def _failure(uid: str, export: str, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, (DataError, ValueError)):
        return _error_row(uid, export, str(exc))
    return _error_row(uid, export, f"could not be planned ({type(exc).__name__}: {exc})")


def _run_task(task: _Task) -> list[dict[str, Any]]:
    """Every athlete of the task's exports (top-level: it runs in worker processes), planned
    together (`agents.recommend.plan_batch`: each athlete's plan is the one it gets alone)."""
    model, policy = _context(task.spec)
    slots: list[Any] = []  # per athlete, in export order: an error row or (uid, export, i)
    requests: list[PlanRequest] = []
    for name in task.exports:
        path = Path(task.root) / name if name != "." else Path(task.root)
        try:
            table, athletes = _load_export(path)
        except DataError as exc:
            slots.append(_error_row(name, name, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - one export never stops the batch
            slots.append(_error_row(name, name, f"could not be read ({type(exc).__name__}: "
                                                f"{exc})"))
            continue
        if not athletes:
            slots.append(_error_row(name, name, "no athlete's rows in this folder's own files"))
        for uid in athletes:
            try:
                request = _request(table, uid)
            except Exception as exc:  # noqa: BLE001
                slots.append(_failure(uid, name, exc))
                continue
            if isinstance(request, str):
                slots.append(_error_row(uid, name, request))
            else:
                slots.append((uid, name, len(requests)))
                requests.append(request)
    plans = plan_batch(model, requests, days=task.spec.days, policy=policy,
                       policy_dir=task.spec.policy_dir, seed=task.spec.seed) if requests else []
    rows: list[dict[str, Any]] = []
    for slot in slots:
        if isinstance(slot, dict):
            rows.append(slot)
            continue
        uid, name, i = slot
        if isinstance(plans[i], BaseException):
            rows.append(_failure(uid, name, plans[i]))
        else:
            rows.extend(_plan_rows(plans[i].plan, uid, name))
    return rows


def recommend(spec: RecommendSpec, data: str | Path, *, workers: int = 1,
              ray_address: str | None = None, progress: bool = True,
              exports_per_task: int | None = None) -> list[dict[str, Any]]:
    """The rows (`COLUMNS`) for every athlete under `data` (module docstring). The model and
    the policy are loaded here first, so that a bad `--model` or `--policy` is one error
    before any work is handed out."""

    if spec.days < 1:
        raise DataError("(arguments)", "--days must be at least 1")
    check_workers(workers, ray_address)
    _context(spec)
    root = Path(data)
    exports = find_exports(root)
    base = root if root.is_dir() else root.parent
    names = [os.path.relpath(p, base) for p in exports]
    if exports_per_task is None:  # at least four tasks a worker, so that they finish together
        exports_per_task = max(1, min(EXPORTS_PER_TASK, len(names) // (4 * workers)))
    tasks = [_Task(spec, str(base), tuple(names[i:i + exports_per_task]))
             for i in range(0, len(names), exports_per_task)]
    results = run_tasks(_run_task, tasks, workers=workers, ray_address=ray_address,
                        desc="exports", weights=[len(t.exports) for t in tasks],
                        progress=progress)
    return [row for rows in results for row in rows]


def write_recommendations(rows: list[dict[str, Any]], path: str | Path,
                          spec: RecommendSpec) -> None:
    """The rows as parquet with the `COLUMNS` schema and the spec in the file's metadata,
    written whole or not at all."""
    import pyarrow as pa
    import pyarrow.parquet as pq


    types = {"string": pa.string(), "int32": pa.int32(), "bool": pa.bool_(),
             "float64": pa.float64()}
    schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()],
                       metadata={"periodize.recommend": json.dumps(asdict(spec))})
    table = pa.Table.from_pylist([{c: row.get(c) for c in COLUMNS} for row in rows],
                                 schema=schema)
    atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def summarize_rows(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Athletes planned and athletes that failed."""
    ok = {r["athlete"] for r in rows if r["status"] == "ok"}
    failed = [r for r in rows if r["status"] == "error"]
    return {"planned": len(ok), "failed": len(failed)}
