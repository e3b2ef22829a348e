"""`periodize recommend`: every athlete's plan in one parquet, bad exports listed, same bytes
on a rerun with any number of workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.recommend import plan_for_athlete
from analysis.batch_recommend import COLUMNS, RecommendSpec, recommend, write_recommendations
from analysis.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "models" / "shipped")


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    """Two good WHOOP exports and two bad ones (unreadable dates; too few mornings)."""
    root = tmp_path_factory.mktemp("exports")
    for user in ("u01", "u07"):
        shutil.copytree(ROOT / "data" / "real" / "whoop" / user, root / user)
    (root / "broken").mkdir()
    (root / "broken" / "daily.csv").write_text("date,hrv_rmssd_ms\n2024-13-45,abc\n")
    (root / "short").mkdir()
    (root / "short" / "daily.csv").write_text(
        "date,hrv_rmssd_ms,rhr_bpm\n2024-01-01,60,50\n2024-01-02,62,51\n")
    return root


@pytest.fixture(scope="module")
def recs(exports, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recs") / "recs.parquet"
    assert main(["recommend", "--model", MODEL, "--data", str(exports), "--out", str(out)]) == 0
    return out


def test_one_row_per_athlete_and_day_and_bad_exports_listed(recs):
    frame = pd.read_parquet(recs)
    assert list(frame.columns) == list(COLUMNS)
    ok = frame[frame["status"] == "ok"]
    assert sorted(ok["athlete"].unique()) == ["whoop-u01", "whoop-u07"]
    assert (ok.groupby("athlete")["day_index"].apply(list) == [list(range(7))] * 2).all()
    assert (ok["today"] == (ok["day_index"] == 0)).all()
    assert ((ok["recovery_pct_p10"] <= ok["recovery_pct"])
            & (ok["recovery_pct"] <= ok["recovery_pct_p90"])).all()
    errors = frame[frame["status"] == "error"].set_index("export")["error"]
    assert set(errors.index) == {"broken", "short"}
    assert "daily.csv" in errors["broken"] and "not dates" in errors["broken"]
    assert "days of HRV or RHR" in errors["short"]


def test_rows_are_the_plan_of_periodize_plan(recs):
    frame = pd.read_parquet(recs)
    mine = frame[frame["athlete"] == "whoop-u07"].sort_values("day_index")
    plan = plan_for_athlete(MODEL, [str(ROOT / "data" / "real" / "whoop" / "u07")])
    assert list(mine["session"]) == [d["session"] for d in plan["days"]]
    np.testing.assert_allclose(mine["recovery_pct"], [d["recovery_pct"] for d in plan["days"]])
    np.testing.assert_allclose(mine[["recovery_pct_p10", "recovery_pct_p90"]].to_numpy(),
                               [d["recovery_pct_interval"] for d in plan["days"]])
    assert mine["reason"].iloc[0] == plan["days"][0].get("reason")


def test_rerun_with_two_workers_writes_the_same_bytes(exports, recs, tmp_path):
    spec = RecommendSpec(MODEL)
    rows = recommend(spec, exports, workers=2, exports_per_task=1, progress=False)
    again = tmp_path / "again.parquet"
    write_recommendations(rows, again, spec)
    assert again.read_bytes() == recs.read_bytes()


def test_bad_model_is_one_error_and_no_file(exports, tmp_path, capsys):
    out = tmp_path / "recs.parquet"
    code = main(["recommend", "--model", str(tmp_path / "nope"), "--data", str(exports),
                 "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "nope" in capsys.readouterr().err
