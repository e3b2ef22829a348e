"""Load units (DESIGN §4): nominal sessions, the action → load map, session inference, the WHOOP
strain calibration and the derived columns of the daily table."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from physiology_model.data.load import (
    CALIBRATE_COMMAND,
    DEFAULT_SESSION_TABLE,
    STRAIN_CALIBRATION_FILE,
    ZONE_COLUMNS,
    NominalSession,
    SessionRules,
    SessionTable,
    StrainCalibration,
    action_loads,
    continuous_loads,
    derive_load_columns,
    edwards_trimp,
    fit_strain_calibration,
    infer_session,
    load_session_table,
    read_strain_calibration,
    save_strain_calibration,
    shipped_strain_calibration,
    zone_mix,
)
from physiology_model.data.table import ACTIONS, NoteLog, empty_frame, validate_frame
from physiology_model.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
A = {name: i for i, name in enumerate(ACTIONS)}


# ---------------------------------------------------------------- zone function and sessions


def test_zone_mix_is_a_distribution_over_zones():
    mix = zone_mix(np.array([0.0, 55.0, 65.0, 75.0, 90.0, 130.0]))
    assert mix.shape == (6, 5)
    assert np.all(mix >= 0)
    assert np.all(mix.sum(axis=1) <= 1 + 1e-12)
    # far above 50 % nothing falls below zone 1; far below, nothing is in a zone
    np.testing.assert_allclose(mix[3:].sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(mix[0], 0.0, atol=1e-12)
    # above HRmax is zone 5
    np.testing.assert_allclose(mix[5], [0, 0, 0, 0, 1], atol=1e-12)
    # 65 % ± 5: one SD either side of the centre stays in zone 2
    np.testing.assert_allclose(mix[2], [0.1573, 0.6827, 0.1573, 0.0013, 0.0], atol=1e-3)


def test_continuous_loads_known_values():
    # 60 min centred in zone 2 symmetric ±1 zone: mean weight 2 less the mass below 50 %
    loads = continuous_loads(60.0, 65.0)
    assert loads.trimp == pytest.approx(60 * (0.1573 + 2 * 0.6827 + 3 * 0.1573 + 4 * 0.00135),
                                        rel=1e-3)
    assert loads.hi_min == pytest.approx(60 * 0.00135, rel=1e-2)
    assert loads.strength_min == 0
    # all-out: every minute in zone 5
    assert continuous_loads(20.0, 140.0).trimp == pytest.approx(100.0)
    assert continuous_loads(20.0, 140.0).hi_min == pytest.approx(20.0)
    # broadcasting and monotonicity in both arguments
    d, i = np.meshgrid(np.linspace(0, 120, 7), np.linspace(40, 100, 13))
    grid = continuous_loads(d, i)
    assert grid.trimp.shape == d.shape
    assert np.all(np.diff(grid.trimp, axis=0) >= -1e-9)
    assert np.all(np.diff(grid.trimp, axis=1) >= -1e-9)
    assert np.all(np.diff(grid.hi_min, axis=0) >= -1e-9)
    with pytest.raises(ValueError):
        continuous_loads(-1.0, 70.0)


@pytest.mark.parametrize("action", ACTIONS)
def test_nominal_session_equals_continuous_action(action):
    s = DEFAULT_SESSION_TABLE.session(action)
    discrete = action_loads(np.array([A[action]]))
    continuous = continuous_loads(s.duration_min, s.intensity_pct_hrmax,
                                  strength_min=s.strength_min)
    for got, want in zip(discrete, continuous):
        np.testing.assert_allclose(got[0], want, rtol=1e-12, atol=1e-12)


def test_nominal_sessions_follow_the_seed():
    t = DEFAULT_SESSION_TABLE
    mix = zone_mix(np.array([s.intensity_pct_hrmax for s in t.sessions()]))
    zone_of_peak = mix.argmax(axis=1) + 1
    assert zone_of_peak[A["active_recovery"]] == 1
    assert zone_of_peak[A["z2_aerobic"]] == 2
    assert zone_of_peak[A["tempo_threshold"]] in (3, 4)
    assert mix[A["hiit"], 4] >= 0.5 and mix[A["hiit"], 3:].sum() > 0.95
    assert 20 <= t.active_recovery.duration_min <= 40
    assert 45 <= t.z2_aerobic.duration_min <= 90
    assert 30 <= t.tempo_threshold.duration_min <= 60
    assert 20 <= t.hiit.duration_min <= 40
    loads = action_loads(np.arange(6))
    assert loads.trimp[A["rest"]] == 0 and loads.hi_min[A["rest"]] == 0
    assert loads.trimp[A["rest"]] < loads.trimp[A["active_recovery"]] < loads.trimp[A["z2_aerobic"]]
    # the fast-fatigue components: hi_min orders hiit > tempo > the rest, strength minutes
    # only for strength
    assert loads.hi_min[A["hiit"]] > loads.hi_min[A["tempo_threshold"]] > 5
    assert np.all(np.delete(loads.hi_min, [A["hiit"], A["tempo_threshold"]]) < 1)
    assert loads.strength_min[A["strength"]] > 0
    assert np.count_nonzero(loads.strength_min) == 1
    # a strength session carries less cardio load than an aerobic one (moderate cardio load)
    assert loads.trimp[A["strength"]] < loads.trimp[A["z2_aerobic"]]


def test_action_loads_is_batched_and_checks_its_input():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 6, size=(16_384,))
    loads = action_loads(actions)
    assert loads.trimp.shape == actions.shape
    nominal = DEFAULT_SESSION_TABLE.loads()
    np.testing.assert_array_equal(loads.trimp, nominal.trimp[actions])
    assert action_loads(np.array(3)).trimp.shape == ()
    assert action_loads(np.zeros((2, 3), dtype=np.int8)).trimp.shape == (2, 3)
    with pytest.raises(ValueError):
        action_loads(np.array([6]))
    with pytest.raises(ValueError):
        action_loads(np.array([-1]))
    with pytest.raises(ValueError):
        action_loads(np.array([1.0]))


def test_another_session_table_changes_the_loads():
    longer = replace(DEFAULT_SESSION_TABLE, z2_aerobic=NominalSession(90.0, 65.0))
    assert action_loads(np.array([2]), longer).trimp[0] == pytest.approx(
        action_loads(np.array([2])).trimp[0] * 90 / 67.5)


def test_nominal_session_rejects_impossible_values():
    with pytest.raises(ValueError):
        NominalSession(-5.0, 60.0)
    with pytest.raises(ValueError):
        NominalSession(30.0, 150.0)
    with pytest.raises(ValueError):
        NominalSession(30.0, 60.0, strength_min=45.0)


# ---------------------------------------------------------------- session table config


def test_shipped_toml_equals_the_defaults():
    assert load_session_table(ROOT / "configs" / "sessions.toml") == SessionTable()


def test_session_toml_partial_override(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("zone_spread_pct_hrmax = 7\n[hiit]\nduration_min = 40\n")
    table = load_session_table(path)
    assert table.hiit == NominalSession(40.0, 90.0)
    assert table.zone_spread_pct_hrmax == 7.0
    assert table.rest == DEFAULT_SESSION_TABLE.rest


@pytest.mark.parametrize("text, problem", [
    ("[sprint]\nduration_min = 10\n", "unknown keys"),
    ("[hiit]\nminutes = 10\n", "unknown keys"),
    ("[hiit]\nduration_min = 'long'\n", "must be a number"),
    ("[hiit]\nduration_min = -3\n", "duration_min"),
    ("zone_spread_pct_hrmax = 0\n", "positive"),
    ("[hiit\n", "not valid TOML"),
    ("hiit = 3\n", "must be a table"),
])
def test_session_toml_errors_name_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DataError, match=problem) as info:
        load_session_table(path)
    assert info.value.path == str(path)


# ---------------------------------------------------------------- session inference

NAN = np.nan


def _infer(days):
    zones = np.array([d[0] for d in days], dtype=float)
    strength = np.array([d[1] for d in days], dtype=float)
    load = np.array([d[2] for d in days], dtype=float)
    return list(infer_session(zones, strength, load))


def test_infer_session_hand_made_days():
    days = [  # (zone minutes Z1-5, strength min, load) → expected
        ([0, 0, 0, 0, 0], 0, 0),  # covered day without training
        ([6, 2, 0, 0, 0], NAN, NAN),  # a few incidental minutes
        ([25, 5, 0, 0, 0], NAN, NAN),  # easy 30 min
        ([10, 50, 10, 0, 0], NAN, NAN),  # an hour in zone 2
        ([5, 10, 25, 15, 0], NAN, NAN),  # threshold run
        ([5, 5, 5, 10, 10], NAN, NAN),  # intervals
        ([30, 15, 5, 0, 0], 60, NAN),  # weights, low cardio
        ([10, 60, 20, 5, 0], 20, NAN),  # a long ride plus a little lifting: cardio dominates
        ([NAN] * 5, 45, NAN),  # strength minutes alone decide
        ([NAN] * 5, NAN, 250),  # sRPE / TSS load without zones
        ([NAN] * 5, 0, 0),  # complete log, nothing done
        ([NAN] * 5, 5, NAN),  # a little lifting, nothing else known
        ([NAN] * 5, NAN, NAN),  # nothing known
        ([NAN, 40, NAN, NAN, NAN], NAN, NAN),  # partially reported zones count the rest as 0
        ([0, 0, 0, 3, 8], NAN, NAN),  # short sprint session: Z5 rules over tempo
    ]
    expected = ["rest", "rest", "active_recovery", "z2_aerobic", "tempo_threshold", "hiit",
                "strength", "z2_aerobic", "strength", "unknown", "rest", "unknown", None,
                "z2_aerobic", "hiit"]
    assert _infer(days) == expected


def test_infer_session_recognises_every_nominal_session():
    t = DEFAULT_SESSION_TABLE
    got = infer_session(t.zone_minutes(), np.array([s.strength_min for s in t.sessions()]),
                        t.loads().trimp)
    assert list(got) == list(ACTIONS)


def test_infer_session_thresholds_are_config():
    day = [([5, 5, 5, 10, 10], NAN, NAN)]
    assert _infer(day) == ["hiit"]
    zones = np.array([[5, 5, 5, 10, 10]], dtype=float)
    strict = SessionRules(hiit_min_z5_min=15.0)
    assert list(infer_session(zones, np.array([NAN]), np.array([NAN]), strict)) == [
        "tempo_threshold"]
    with pytest.raises(ValueError):
        infer_session(np.zeros((3, 4)), np.zeros(3), np.zeros(3))


# ---------------------------------------------------------------- strain calibration


def _synthetic_pairs(a=6.0, b=0.22, users=6, days=150, seed=1):
    """Frame of canonical rows with strain and zone minutes whose TRIMP is a·(e^{b·s}−1) times
    lognormal noise with mean 1, with a third of the low-strain days without a workout."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        strain = rng.uniform(2, 20, size=days)
        trimp = a * np.expm1(b * strain) * rng.lognormal(-0.5 * 0.3**2, 0.3, size=days)
        no_workout = (rng.uniform(size=days) < 0.3) & (strain < 9)
        trimp[no_workout] = 0.0
        zones = np.zeros((days, 5))
        zones[:, 1] = trimp / 2  # all in zone 2 → TRIMP = 2 × minutes
        frame = pd.DataFrame(zones, columns=list(ZONE_COLUMNS))
        frame.insert(0, "strain", strain)
        frame.insert(0, "date", pd.date_range("2024-01-01", periods=days))
        frame.insert(0, "user_id", f"whoop-s{u:02d}")
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def test_fit_strain_calibration_recovers_a_known_curve():
    frame = _synthetic_pairs()
    cal = fit_strain_calibration(frame)
    assert cal.n_days == len(frame) and cal.n_users == 6
    assert cal.b_per_strain == pytest.approx(0.22, abs=0.02)
    np.testing.assert_allclose(cal.predict(np.array([10.0, 18.0])),
                               6.0 * np.expm1(0.22 * np.array([10.0, 18.0])), rtol=0.1)
    assert cal.r2_trimp > 0.6 and cal.louo_r2_trimp > 0.6
    assert cal.louo_r2_trimp <= cal.r2_trimp + 0.02
    assert cal.residual_q10_trimp < 0 < cal.residual_q90_trimp
    assert cal.residual_sd_trimp > 0
    assert cal.users == tuple(f"whoop-s{u:02d}" for u in range(6))
    # monotone and 0 at strain 0
    grid = cal.predict(np.linspace(0, 21, 50))
    assert grid[0] == 0 and np.all(np.diff(grid) > 0)
    assert np.isnan(cal.predict(np.array([np.nan]))[0])


def test_fit_strain_calibration_ignores_strain_only_days_and_needs_enough_days():
    frame = _synthetic_pairs(users=2, days=40)
    frame.loc[:39, list(ZONE_COLUMNS)] = np.nan  # user 0: strain without zones
    cal = fit_strain_calibration(frame)
    assert cal.n_days == 40 and cal.n_users == 1
    assert np.isnan(cal.louo_r2_trimp)  # needs at least 2 users
    with pytest.raises(DataError, match="at least 30"):
        fit_strain_calibration(frame.iloc[:60])


def test_strain_calibration_json_round_trip(tmp_path):
    cal = fit_strain_calibration(_synthetic_pairs(users=2, days=40))
    path = tmp_path / "cal.json"
    save_strain_calibration(cal, path)
    back = read_strain_calibration(path)
    assert back.users == cal.users
    assert back.a_trimp == cal.a_trimp and back.b_per_strain == cal.b_per_strain
    assert back.r2_trimp == cal.r2_trimp and back.n_days == cal.n_days
    (tmp_path / "bad.json").write_text('{"a_trimp": 1}')
    with pytest.raises(DataError, match="not a strain calibration"):
        read_strain_calibration(tmp_path / "bad.json")


def test_shipped_calibration_is_sane():
    cal = shipped_strain_calibration()
    assert cal is not None, f"physiology_model/data/{STRAIN_CALIBRATION_FILE} is missing"
    data = json.loads((ROOT / "physiology_model" / "data" / STRAIN_CALIBRATION_FILE).read_text())
    assert StrainCalibration.from_dict(data) == cal
    assert cal.n_users >= 5 and cal.n_days >= 1000
    assert 0.4 < cal.r2_trimp <= 1 and 0.3 < cal.louo_r2_trimp <= cal.r2_trimp + 0.02
    # a rest-day strain (~5) is a light load, a hard day (~18) a few hundred TRIMP
    low, high = cal.predict(np.array([5.0, 18.0]))
    assert 0 < low < 40 and 150 < high < 600


def test_cli_calibrate_writes_and_reports(tmp_path, capsys):
    frame = _synthetic_pairs(users=3, days=40)
    folder = tmp_path / "exports"
    folder.mkdir()
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).to_csv(folder / "daily.csv",
                                                                    index=False)
    out = tmp_path / "cal.json"
    assert main(["data", "calibrate", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "leave-one-user-out" in printed and "120 days of 3 users" in printed
    assert read_strain_calibration(out).n_users == 3
    # too little data: one line on stderr, exit 2, no file
    small = tmp_path / "small"
    small.mkdir()
    frame.iloc[:10].assign(date=frame["date"].iloc[:10].dt.strftime("%Y-%m-%d")).to_csv(
        small / "daily.csv", index=False)
    out2 = tmp_path / "none.json"
    assert main(["data", "calibrate", str(small), "--out", str(out2)]) == 2
    assert "at least 30" in capsys.readouterr().err
    assert not out2.exists()


# ---------------------------------------------------------------- derived columns


def _table(rows):
    frame = pd.DataFrame(rows)
    frame.insert(0, "date", pd.date_range("2025-01-01", periods=len(frame)))
    frame.insert(0, "user_id", "u")
    return validate_frame(frame, "(test)", NoteLog())


def test_derive_load_columns_fills_each_kind_of_day():
    cal = StrainCalibration(a_trimp=6.0, b_per_strain=0.2, n_days=1, n_users=1, r2_trimp=1,
                            r2_log1p=1, residual_sd_trimp=0, residual_q10_trimp=0,
                            residual_q90_trimp=0, louo_r2_trimp=np.nan, louo_r2_log1p=np.nan)
    frame = _table([
        {"z1_min": 10, "z2_min": 40, "z3_min": 0, "z4_min": 0, "z5_min": 0, "strain": 12.0},
        {"strain": 10.0},
        {"load_trimp": 300.0, "load_basis": "srpe"},
        {"z1_min": 0, "z2_min": 0, "z3_min": 0, "z4_min": 0, "z5_min": 0, "strain": 4.0},
        {"strain": 8.0, "strength_min": 50.0},
        {"hrv_rmssd_ms": 60.0},
        {"load_trimp": 100.0, "load_basis": "tss", "session": "hiit"},
    ])
    before = frame.copy()
    log = NoteLog()
    out = derive_load_columns(frame, log, calibration=cal)
    pd.testing.assert_frame_equal(frame, before)  # input untouched
    assert list(out.columns) == list(frame.columns)
    np.testing.assert_allclose(
        out["load_trimp"], [90.0, 6.0 * np.expm1(2.0), 300.0, 0.0, 6.0 * np.expm1(1.6),
                            np.nan, 100.0])
    assert list(out["load_basis"]) == ["hr_zones", "strain_calibrated", "srpe", "hr_zones",
                                       "strain_calibrated", None, "tss"]
    assert list(out["session"]) == ["z2_aerobic", "unknown", "unknown", "rest", "strength",
                                    None, "hiit"]
    messages = {n.message.split(" (")[0]: n.count for n in log.notes}
    assert messages["load_trimp computed from HR-zone minutes"] == 2
    assert messages["load_trimp estimated from WHOOP day strain"] == 2
    assert messages["session inferred from zone minutes, strength minutes and load"] == 5
    # the result is still a valid canonical table
    validate_frame(out, "(test)", NoteLog())


def test_derive_load_columns_uses_the_shipped_calibration_by_default():
    out = derive_load_columns(_table([{"strain": 10.0}]), NoteLog())
    cal = shipped_strain_calibration()
    assert out["load_trimp"].iloc[0] == pytest.approx(cal.predict(np.array([10.0]))[0])


def test_derive_load_columns_on_a_large_frame():
    """Vectorised over 200,000 rows (speed is a benchmark's business, not a unit test's: a
    wall-time assertion here failed on a loaded machine)."""
    n = 200_000
    rng = np.random.default_rng(3)
    frame = empty_frame().reindex(range(n))
    frame["user_id"] = "u"
    frame["date"] = pd.Timestamp("2020-01-01")
    zones = rng.uniform(0, 30, size=(n, 5))
    zones[rng.uniform(size=n) < 0.5] = np.nan
    frame[list(ZONE_COLUMNS)] = zones
    frame["strain"] = rng.uniform(0, 21, size=n)
    out = derive_load_columns(frame, NoteLog())
    assert out["load_trimp"].notna().all() and out["session"].notna().all()
    np.testing.assert_allclose(out["load_trimp"].to_numpy()[~np.isnan(zones[:, 0])],
                               edwards_trimp(zones[~np.isnan(zones[:, 0])]))


def test_shipped_calibration_is_reproduced_by_its_command():
    """`CALIBRATE_COMMAND` on the shipped WHOOP exports gives the shipped file's numbers."""
    import importlib.util

    for name in ("whoop", "whoop_api"):
        if importlib.util.find_spec(f"physiology_model.data.loaders.{name}") is None:
            pytest.skip(f"loader {name} not available")
    from physiology_model.data.loaders import calibrate_strain

    shipped = shipped_strain_calibration()
    assert shipped.data_paths == ("data/real/whoop", "data/real/whoop_api"), (
        f"rerun `{CALIBRATE_COMMAND}`")
    refit = calibrate_strain([ROOT / p for p in shipped.data_paths])
    assert refit.n_days == shipped.n_days and refit.users == shipped.users
    assert refit.a_trimp == pytest.approx(shipped.a_trimp, rel=1e-6)
    assert refit.b_per_strain == pytest.approx(shipped.b_per_strain, rel=1e-6)
    assert refit.louo_r2_trimp == pytest.approx(shipped.louo_r2_trimp, rel=1e-6)
