"""The feature builder, one day at a time: `OnlineFeatures` (DESIGN §2, §6).

`physiology_model.features.batch.compute_features` turns whole histories `(n_athletes, n_days)` into
observations; a simulator that asks for the observation of every new day would recompute the
whole history each day (O(n_days) per day). `OnlineFeatures` keeps the state those features
need, so each new day costs O(n_athletes), vectorised across athletes:

- the 28-day baselines are running sums (count, Σz, Σz²) over a ring buffer of the last
  `baseline_days` days, re-added from the buffer once per turn of the ring so that the rounding
  of the add/subtract updates cannot accumulate over long runs;
- the 7-day slopes and SD are running sums too; when a day is added, the time-weighted sums
  (Σx, Σx², Σxz with x = −lag) shift by amounts known from the count and Σz (no matrix product:
  a threaded BLAS call took ~13 ms a day for 16k athletes on a loaded 2-core machine);
- ATL/CTL and the known-load share are the same recursion as `features.ewma_known`;
- carried-forward values keep the day they were measured on, `days_since_rest` is a counter.

It returns, for every day, the same numbers as `compute_features(full history)[:, d, :]` (up to
rounding, ~1e-12; `tests/test_online_features.py` checks every feature). The timing rule is the
same: the features of day d use the physiology of days ≤ d and the load of days < d only, so a
day is fed in two steps: `observe` (the morning's physiology → that day's features), then
`record_load` (the training done that day, once it is decided).

A signal that no athlete has ever shown (in the simulator: sleep, SpO2, skin temperature, …)
holds no state and costs nothing: its features are the documented constant fills until the
first finite value arrives, which gives exactly what `compute_features` gives.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from physiology_model.features.batch import _SIGNALS, FEATURE_NAMES, INPUT_COLUMNS, FeatureConfig

_NEVER = np.iinfo(np.int64).min // 4
"""`last seen` step of a value never seen: older than any carry-forward limit."""

_LOAD_COLUMNS: tuple[str, ...] = ("load_trimp", "strain", "z4_min", "z5_min", "strength_min",
                                  "rest_session")
"""Training of a day, known only after the day's decision: it enters the features of the next
day. `rest_session` is not a daily-table column but `compute_features`' separate argument."""

_SLOPE_FEATURES: Mapping[str, str] = {
    "ln_hrv": "ln_hrv_slope_7d", "rhr_bpm": "rhr_slope_7d", "sleep_min": "sleep_slope_7d"}
_Z_FEATURES: Mapping[str, tuple[str, str]] = {
    "ln_hrv": ("ln_hrv_z_28d", "ln_hrv_baseline_28d"), "rhr_bpm": ("rhr_z_28d", "rhr_baseline_bpm")}
_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
_DEFAULT_CONFIG = FeatureConfig()


class _RunningSums:
    """Sums of k per-athlete quantities over the last `length` pushed days.

    A ring buffer `(length, k, n)` plus running totals `(k, n)`. Each push subtracts the day that
    leaves and adds the new one; once per turn of the ring the totals are re-added from the buffer,
    so their rounding error stays that of a sum of `length` terms however long the run.
    """

    def __init__(self, length: int, k: int, n: int) -> None:
        # Written now rather than lazily zero-mapped: the first turn of the ring would otherwise
        # page-fault on every slot (~0.3 ms a day for 16k athletes).
        self._buffer = np.full((length, k, n), 0.0)
        self.sums = np.zeros((k, n))
        self._slot = 0

    def push(self, values: np.ndarray) -> None:
        """Append one day of values `(k, n)`; the oldest day leaves."""
        old = self._buffer[self._slot]
        self.sums -= old
        self.sums += values
        old[...] = values
        self._slot += 1
        if self._slot == self._buffer.shape[0]:
            self._slot = 0
            np.sum(self._buffer, axis=0, out=self.sums)

    def clear(self, which: np.ndarray) -> None:
        """Forget every day of the athletes where `which` is True."""
        self._buffer[:, :, which] = 0.0
        self.sums[:, which] = 0.0


class _TrendWindow:
    """The last `length` days (the newest included) of one centred signal, with the sums a
    least-squares slope against the day and a sample SD need (as `features._trailing_slope`,
    x = −lag, 0 for the newest day).

    Running sums, updated per day in O(n): when a day is added every day already in the window
    moves one day back (x → x − 1), which changes Σx, Σx² and Σxz by amounts known from n, Σx
    and Σz; the day that leaves is then taken out at x = −length. Counts and Σx, Σx² are whole
    numbers (exact); the sums of values are re-added from the ring once per turn of the ring, so
    their rounding cannot accumulate.
    """

    def __init__(self, length: int, k: int, n: int) -> None:
        # Written now rather than lazily zero-mapped: the first turn of the ring would otherwise
        # page-fault on every slot (~0.3 ms a day for 16k athletes).
        self._buffer = np.full((length, k, n), 0.0)
        self.plain = np.zeros((k, n))
        """Rows n, Σz[, Σz²]."""
        self.timed = np.zeros((3, n))
        """Rows Σx (over known days), Σx², Σxz."""
        self._slot = 0

    def push(self, values: np.ndarray) -> None:
        """Append one day: rows known (0/1), z (0 where unknown)[, z²] (extra rows ignored)."""
        length, k = self._buffer.shape[:2]
        count, sy = self.plain[0], self.plain[1]
        sx, sxx, sxy = self.timed
        # Every day in the window moves one day back: Σ(x−1)² = Σx² − 2Σx + n, Σ(x−1)z = Σxz − Σz.
        sxx -= sx
        sxx -= sx
        sxx += count
        sx -= count
        sxy -= sy
        old = self._buffer[self._slot]
        # The day that leaves now sits at x = −length.
        sx += length * old[0]
        sxx -= (length * length) * old[0]
        sxy += length * old[1]
        self.plain -= old
        self.plain += values[:k]
        old[...] = values[:k]
        self._slot += 1
        if self._slot == length:
            self._slot = 0
            self._resum()

    def _resum(self) -> None:
        """Exact sums from the ring, right after its last slot was written."""
        length = self._buffer.shape[0]
        np.sum(self._buffer, axis=0, out=self.plain)
        self.timed.fill(0.0)
        for j in range(length - 1):  # slot j holds the day of lag length − 1 − j
            x = float(j - (length - 1))
            known, z = self._buffer[j, 0], self._buffer[j, 1]
            self.timed[0] += x * known
            self.timed[1] += (x * x) * known
            self.timed[2] += x * z

    def sums(self) -> tuple[np.ndarray, ...]:
        """count, Σx, Σx², Σz, Σxz[, Σz²] over the window, each `(n,)` (views: read before the
        next push)."""
        return (self.plain[0], *self.timed[:2], self.plain[1], self.timed[2], *self.plain[2:])

    def clear(self, which: np.ndarray) -> None:
        """Forget every day of the athletes where `which` is True."""
        self._buffer[:, :, which] = 0.0
        self.plain[:, which] = 0.0
        self.timed[:, which] = 0.0


class _Signal:
    """State of one physiological signal: last measured value and day, trailing baseline sums,
    and (for HRV, RHR, sleep) the trend window."""

    def __init__(self, name: str, indicator: str, n: int, config: FeatureConfig) -> None:
        self.name = name
        self.indicator = indicator
        self.centre = float(config.reference[name])
        # HRV and RHR also need Σz² for the baseline SD and z-score; the other signals only a mean.
        self.with_sd = name in _Z_FEATURES
        self.baseline = _RunningSums(config.baseline_days, 3 if self.with_sd else 2, n)
        self.trend = (_TrendWindow(config.trend_days, 3 if name == "ln_hrv" else 2, n)
                      if name in _SLOPE_FEATURES else None)
        self.last_value = np.zeros(n)
        self.last_step = np.full(n, _NEVER, dtype=np.int64)

    def clear(self, which: np.ndarray) -> None:
        self.baseline.clear(which)
        if self.trend is not None:
            self.trend.clear(which)
        self.last_step[which] = _NEVER


def _as_vector(value: object, n: int, what: str) -> np.ndarray:
    """`value` as a float array `(n,)` (a scalar is broadcast); ValueError naming `what`."""
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: expected numbers, got {type(value).__name__} ({err})") from None
    if a.ndim == 0:
        return np.full(n, float(a))
    if a.shape != (n,):
        raise ValueError(f"{what}: expected shape ({n},), got {a.shape}")
    return a


_FLAT_VARIANCE = 1e-12
"""A window variance below this share of the window's mean square Σz²/n is rounding noise of
Σz² − (Σz)²/n (a flat line of equal readings), and is set to exactly 0."""


def _sample_variance(count: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Sample variance from (n, Σz, Σz²): (Σz² − (Σz)²/n)/(n − 1) in `features._trailing_stats`'
    order of operations, at least 0; 0 where n < 2.

    Unlike `_trailing_stats` it returns exactly 0 for a flat window: otherwise the cancellation
    leaves ~1e-17, whose square root (~1e-8 in the unfloored ln_hrv_sd_7d) would read as
    variability (the reference's prefix sums leave up to ~5e-8 there; see the tests).
    """
    var = (s2 - s1 * s1 / count) / (count - 1.0)
    # `var > noise` is False for NaN (n < 2), negative rounding and flat windows alike.
    return np.where((count > 1) & (var > _FLAT_VARIANCE * s2 / count), var, 0.0)


_TABLE_MAX = 1024
"""Whole-number arguments up to this use a lookup table for sin/cos."""


def _sin_cos(value: np.ndarray, shift: float, period: float,
             tables: dict[tuple[float, float], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """sin and cos of 2π·(value − shift)/period (`value` finite), computed as
    `features.compute_features` writes it.

    Weekdays and cycle days are whole numbers: a table of their few angles, taken per athlete,
    costs ~30 µs for 16k athletes where np.sin/np.cos cost ~0.3-1 ms each. `tables` caches the
    tables by (shift, period).
    """
    whole = value.astype(np.intp)
    if (whole == value).all() and whole.min() >= 0 and whole.max() < _TABLE_MAX:
        table = tables.get((shift, period))
        if table is None:
            angle = 2.0 * np.pi * (np.arange(_TABLE_MAX, dtype=float) - shift) / period
            table = tables[(shift, period)] = np.stack([np.sin(angle), np.cos(angle)])
        return table[0].take(whole), table[1].take(whole)
    angle = 2.0 * np.pi * (value - shift) / period
    return np.sin(angle), np.cos(angle)


class OnlineFeatures:
    """Incremental `compute_features` for `n_athletes` athletes advancing one day at a time.

    Each day: `observe(day, weekday)` with the morning's physiology (values of `INPUT_COLUMNS`,
    `(n_athletes,)` each, NaN = missing) returns that day's features `(n_athletes, n_features)`
    in `FEATURE_NAMES` order; then `record_load(load_trimp, ...)` sets the training done that day,
    which enters the features of the following days. `reset(which)` starts a new history for
    some athletes (their next `observe` is their day 0).

    `age_years` and `sex` (+1 female, −1 male, NaN unknown) are static, `(n_athletes,)`;
    `reset` can replace them for the athletes it restarts.

    This class checks the inputs; `_Engine` holds the state and does the arithmetic. (Splitting
    16k athletes into blocks of 1-8k to keep temporaries in cache was tried: it cost more CPU
    time in per-call overhead than it saved.)
    """

    def __init__(self, n_athletes: int, *, config: FeatureConfig = _DEFAULT_CONFIG,
                 age_years: np.ndarray | None = None,
                 sex: np.ndarray | None = None) -> None:
        if int(n_athletes) != n_athletes or n_athletes < 1:
            raise ValueError(f"n_athletes must be a positive whole number, got {n_athletes}")
        n = int(n_athletes)
        _check_config(config)
        self.n_athletes = n
        self.config = config
        self._has_day = np.zeros(n, dtype=bool)
        self._age_row = np.full(n, float(config.reference["age_years"]))
        self._sex_row = np.zeros(n)
        self._set_static(np.ones(n, dtype=bool), age_years, sex)
        self._engine = _Engine(n, config, self._age_row, self._sex_row)

    @property
    def n_features(self) -> int:
        return len(FEATURE_NAMES)

    def reset(self, which: np.ndarray | None = None, *, age_years: np.ndarray | None = None,
              sex: np.ndarray | None = None) -> None:
        """Forget the history of the athletes where `which` (`(n_athletes,)` bool) is True (all
        when None): their next `observe` is their day 0. `age_years`/`sex`, `(n_athletes,)`,
        replace the static context of those athletes (other entries are ignored); when not given
        they keep their age and sex."""
        n = self.n_athletes
        if which is None:
            mask = np.ones(n, dtype=bool)
        else:
            mask = np.asarray(which)
            if mask.dtype != bool or mask.shape != (n,):
                raise ValueError(f"which must be a bool array of shape ({n},), got "
                                 f"{mask.dtype} {mask.shape}")
        self._set_static(mask, age_years, sex)
        self._has_day[mask] = False
        if mask.any():
            self._engine.reset(mask)

    def record_load(self, load_trimp: np.ndarray, *, z4_min: np.ndarray | None = None,
                    z5_min: np.ndarray | None = None, strength_min: np.ndarray | None = None,
                    rest_session: np.ndarray | None = None) -> None:
        """Set the training done on the newest observed day (after that day's decision).

        Each argument is `(n_athletes,)` (or a scalar): `load_trimp` in TRIMP, `z4_min`, `z5_min`,
        `strength_min` in minutes, `rest_session` 1 where the session was labelled rest; NaN =
        unknown. An argument left None keeps what `observe` got for that column (NaN if nothing).
        Calling it again for the same day overwrites. Athletes reset since their last `observe`
        have no day to attach a load to: they must get NaN.
        """
        n = self.n_athletes
        if not self._has_day.any():
            raise ValueError("record_load before observe: there is no day to record a load for")
        given = {"load_trimp": load_trimp, "z4_min": z4_min, "z5_min": z5_min,
                 "strength_min": strength_min, "rest_session": rest_session}
        values = {c: _as_vector(v, n, c) for c, v in given.items() if v is not None}
        if not self._has_day.all():
            stray = [c for c, v in values.items() if np.isfinite(v[~self._has_day]).any()]
            if stray:
                raise ValueError(f"record_load: {stray} given for athletes reset since their last "
                                 "observe (they have no day yet); pass NaN for them")
        self._engine.record_load(values)

    def observe(self, day: Mapping[str, np.ndarray], weekday: np.ndarray, *,
                days_to_event: np.ndarray | None = None,
                cycle_day: np.ndarray | None = None) -> np.ndarray:
        """Append a new day for every athlete and return its features `(n_athletes, n_features)`,
        float64, columns in `FEATURE_NAMES` order.

        `day` maps `INPUT_COLUMNS` names (any subset; absent = missing) to `(n_athletes,)` values
        of the new day (NaN = missing). Load columns of the new day are normally absent (the
        training is not done yet); if given they count as that day's training, like values set
        by `record_load`. `weekday`: 0 = Monday … 6 = Sunday. `days_to_event`: days to the next
        planned event (NaN or < 0: none). `cycle_day`: 1 = first day of menses, NaN unknown.

        The result is a new array, a transposed view of a feature-major buffer: not C-contiguous
        (`astype(np.float32)` keeps that layout and is cheap; a row-major copy of 16k athletes
        costs ~6 ms, twice the whole update).
        """
        n = self.n_athletes
        unknown = set(day) - set(INPUT_COLUMNS)
        if unknown:
            raise ValueError(f"unknown signal columns {sorted(unknown)}; expected some of "
                             f"{INPUT_COLUMNS}")
        values = {c: _as_vector(v, n, c) for c, v in day.items()}
        weekday_v = _as_vector(weekday, n, "weekday")
        if not np.isfinite(weekday_v).all():
            raise ValueError("weekday must be finite (0 = Monday … 6 = Sunday)")
        dte = None if days_to_event is None else _as_vector(days_to_event, n, "days_to_event")
        cyc = None if cycle_day is None else _as_vector(cycle_day, n, "cycle_day")
        out = np.empty((len(FEATURE_NAMES), n))
        with np.errstate(invalid="ignore", divide="ignore"):
            self._engine.observe(values, weekday_v, dte, cyc, out)
        self._has_day[:] = True
        return out.T

    def _set_static(self, mask: np.ndarray, age_years: np.ndarray | None,
                    sex: np.ndarray | None) -> None:
        """Age and sex features of the athletes in `mask` (`features.compute_features` fills)."""
        n = self.n_athletes
        if age_years is not None:
            age = _as_vector(age_years, n, "age_years")
            self._age_row[mask] = np.where(np.isfinite(age), age,
                                           self.config.reference["age_years"])[mask]
        if sex is not None:
            s = _as_vector(sex, n, "sex")
            self._sex_row[mask] = np.where(np.isfinite(s), np.sign(s), 0.0)[mask]


def _check_config(config: FeatureConfig) -> None:
    """ValueError naming a fill the online builder lacks (`FeatureConfig` checks the rest)."""
    missing = ({name for name, _, _, _ in _SIGNALS}
               | {"load_trimp", "strain_yesterday", "z45_min_7d", "strength_min_7d",
                  "age_years", "ln_hrv_sd"}) - set(config.reference)
    if missing:
        raise ValueError(f"FeatureConfig.reference lacks {sorted(missing)}")


class _Engine:
    """The state and daily update of `OnlineFeatures` (inputs already checked). `age_row` and
    `sex_row` are `OnlineFeatures`' static rows (shared, not copied)."""

    def __init__(self, n: int, config: FeatureConfig, age_row: np.ndarray,
                 sex_row: np.ndarray) -> None:
        self.n_athletes = n
        self.config = config
        self._ref = config.reference
        self._signals: dict[str, _Signal | None] = {name: None for name, _, _, _ in _SIGNALS}
        self._indicator = {name: ind for name, _, _, ind in _SIGNALS}
        self._step = 0
        self._pending = {c: np.full(n, np.nan) for c in _LOAD_COLUMNS}
        decay = np.exp(-1.0 / np.array([[config.atl_days], [config.ctl_days]]))
        self._decay = decay
        self._alpha = 1.0 - decay
        self._ewma_sum = np.zeros((2, n))  # rows: ATL, CTL (`ewma_known`'s S)
        self._ewma_weight = np.zeros((2, n))  # `ewma_known`'s W
        self._days_since_rest = np.zeros(n)  # capped; 0 = "the day before day 0 was a rest day"
        self._session_sums: _RunningSums | None = None  # rows: z45 known, z45, strength known, …
        self._injury_value = np.zeros(n)
        self._injury_step: np.ndarray | None = None
        self._skin_ring: np.ndarray | None = None  # (skin_temp_median_days, n) of skin_temp_c
        self._skin_slot = 0
        self._tables: dict[tuple[float, float], np.ndarray] = {}  # `_sin_cos`' cache
        self._age_row = age_row
        self._sex_row = sex_row

    def reset(self, mask: np.ndarray) -> None:
        """Forget the history of the athletes where `mask` is True."""
        for state in self._signals.values():
            if state is not None:
                state.clear(mask)
        for pending in self._pending.values():
            pending[mask] = np.nan
        self._ewma_sum[:, mask] = 0.0
        self._ewma_weight[:, mask] = 0.0
        self._days_since_rest[mask] = 0.0
        if self._session_sums is not None:
            self._session_sums.clear(mask)
        if self._injury_step is not None:
            self._injury_step[mask] = _NEVER
        if self._skin_ring is not None:
            self._skin_ring[:, mask] = np.nan

    def record_load(self, values: Mapping[str, np.ndarray]) -> None:
        """Set the newest day's training columns given in `values`."""
        for c, v in values.items():
            self._pending[c][...] = v

    def observe(self, values: Mapping[str, np.ndarray], weekday: np.ndarray,
                days_to_event: np.ndarray | None, cycle_day: np.ndarray | None,
                out: np.ndarray) -> None:
        """Append a day and write its features into `out` `(n_features, n)`."""
        self._step += 1
        self._advance_load(out)
        raw = self._raw_physiology(values)
        filled_recovery = None
        for name, _, _, _ in _SIGNALS:
            filled = self._observe_signal(name, raw.get(name), out)
            if name == "recovery_pct":
                filled_recovery = filled
        self._write_context(out, values, weekday, days_to_event, cycle_day)
        rx = out[_INDEX["recovery_x_days_since_rest"]]
        if filled_recovery is None:
            np.multiply(self._days_since_rest, self._ref["recovery_pct"] / 100.0, out=rx)
        else:
            np.divide(filled_recovery, 100.0, out=rx)
            rx *= self._days_since_rest
        for c, pending in self._pending.items():
            if c in values:
                pending[...] = values[c]
            else:
                pending.fill(np.nan)

    def _advance_load(self, out: np.ndarray) -> None:
        """Fold the previous day's training into the load state and write the load features."""
        cfg, ref, p = self.config, self._ref, self._pending
        load = p["load_trimp"]
        known = np.isfinite(load)
        # Same arithmetic as `ewma_known`: S ← decay·S + α·x, W ← decay·W + α·m.
        self._ewma_sum *= self._decay
        self._ewma_sum += self._alpha * np.where(known, load, 0.0)
        self._ewma_weight *= self._decay
        self._ewma_weight += self._alpha * known
        s, w = self._ewma_sum, self._ewma_weight
        seen = w > 0
        atl = out[_INDEX["atl_trimp"]]
        ctl = out[_INDEX["ctl_trimp"]]
        atl[...] = np.where(seen[0], s[0] / w[0], ref["load_trimp"])
        ctl[...] = np.where(seen[1], s[1] / w[1], ref["load_trimp"])
        np.subtract(ctl, atl, out=out[_INDEX["tsb_trimp"]])
        out[_INDEX["load_known_share"]] = w[1]
        out[_INDEX["load_yesterday_trimp"]] = np.where(known, load, atl)
        strain = p["strain"]
        out[_INDEX["strain_yesterday"]] = np.where(np.isfinite(strain), strain,
                                                   ref["strain_yesterday"])
        rest = (load <= cfg.rest_max_trimp) & known
        rest |= p["rest_session"] == 1
        dsr = np.where(rest, 1.0, self._days_since_rest + 1.0)
        np.minimum(dsr, cfg.days_since_rest_cap, out=self._days_since_rest)
        out[_INDEX["days_since_rest"]] = self._days_since_rest
        self._advance_session_minutes(out)

    def _advance_session_minutes(self, out: np.ndarray) -> None:
        """z45_min_7d and strength_min_7d: window sums of the days d−7..d−1."""
        p = self._pending
        z4, z5, strength = p["z4_min"], p["z5_min"], p["strength_min"]
        rows = (_INDEX["z45_min_7d"], _INDEX["strength_min_7d"])
        if self._session_sums is None:
            if not (np.isfinite(z4).any() or np.isfinite(z5).any()
                    or np.isfinite(strength).any()):
                out[rows[0]] = self._ref["z45_min_7d"]
                out[rows[1]] = self._ref["strength_min_7d"]
                return
            self._session_sums = _RunningSums(self.config.load_window_days, 4, self.n_athletes)
        k4, k5, ks = np.isfinite(z4), np.isfinite(z5), np.isfinite(strength)
        v = np.empty((4, self.n_athletes))
        np.logical_or(k4, k5, out=v[0], casting="unsafe")
        # z4 + z5 with a missing part as 0 (`compute_features` uses nan_to_num).
        np.add(np.where(k4, z4, 0.0), np.where(k5, z5, 0.0), out=v[1])
        v[2] = ks
        v[3] = np.where(ks, strength, 0.0)
        self._session_sums.push(v)
        sums = self._session_sums.sums
        w = float(self.config.load_window_days)
        for (count, total), row, key in (((sums[0], sums[1]), rows[0], "z45_min_7d"),
                                          ((sums[2], sums[3]), rows[1], "strength_min_7d")):
            out[row] = np.where(count > 0, total / count * w, self._ref[key])

    def _raw_physiology(self, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The day's value of each physiological feature before fills (ln HRV; the skin
        temperature deviation derived from skin_temp_c where the device gives none)."""
        raw = {name: values[col] for name, col, _, _ in _SIGNALS if col in values}
        hrv = values.get("hrv_rmssd_ms")
        if hrv is not None:
            positive = hrv > 0
            raw["ln_hrv"] = np.where(positive, np.log(np.where(positive, hrv, 1.0)), np.nan)
        skin_c = values.get("skin_temp_c")
        if self._skin_ring is None and skin_c is not None and np.isfinite(skin_c).any():
            self._skin_ring = np.full((self.config.skin_temp_median_days, self.n_athletes),
                                      np.nan)
        if self._skin_ring is not None:
            if skin_c is None:
                skin_c = np.full(self.n_athletes, np.nan)
            derived = skin_c - self._trailing_skin_median()
            given = raw.get("skin_temp_dev_c")
            raw["skin_temp_dev_c"] = (derived if given is None
                                      else np.where(np.isfinite(given), given, derived))
            self._skin_ring[self._skin_slot] = skin_c
            self._skin_slot = (self._skin_slot + 1) % self._skin_ring.shape[0]
        return raw

    def _trailing_skin_median(self) -> np.ndarray:
        """Median skin_temp_c over the days before today (at least 3), as
        `features._trailing_median`; NaN where fewer are known."""
        stack = np.sort(self._skin_ring, axis=0)  # NaN sorts last
        count = np.isfinite(stack).sum(axis=0)
        lo = np.take_along_axis(stack, np.maximum((count - 1) // 2, 0)[None], axis=0)[0]
        hi = np.take_along_axis(stack, np.maximum(count // 2, 0)[None], axis=0)[0]
        return np.where(count >= 3, (lo + hi) / 2.0, np.nan)

    def _observe_signal(self, name: str, y: np.ndarray | None, out: np.ndarray
                        ) -> np.ndarray | None:
        """Write the features of one physiological signal for today; returns its filled value
        (None while the signal has never been seen: its features are the constant fills)."""
        state = self._signals[name]
        if state is None:
            if y is None or not np.isfinite(y).any():
                self._write_unseen(name, out)
                return None
            state = self._signals[name] = _Signal(name, self._indicator[name],
                                                  self.n_athletes, self.config)
        cfg = self.config
        n = self.n_athletes
        if y is None:
            y = np.full(n, np.nan)
        known = np.isfinite(y)
        k = 3 if state.with_sd else 2
        today = np.empty((k, n))
        today[0] = known
        today[1] = np.where(known, y - state.centre, 0.0)
        if k == 3:
            np.multiply(today[1], today[1], out=today[2])

        # The baseline window holds the days before today: read it, then add today.
        sums = state.baseline.sums
        count = sums[0]
        mean = np.where(count > 0, sums[1] / count + state.centre, self._ref[name])
        state.last_value = np.where(known, y, state.last_value)
        state.last_step = np.where(known, self._step, state.last_step)
        fresh = state.last_step >= self._step - cfg.ffill_limit_days
        filled = out[_INDEX[name]]
        filled[...] = np.where(fresh, state.last_value, mean)
        out[_INDEX[state.indicator]] = known
        if state.with_sd:
            self._write_baseline(name, sums, mean, filled, out)
        state.baseline.push(today)

        if state.trend is not None:
            state.trend.push(today)
            self._write_trend(name, state.trend.sums(), out)
        return filled

    def _write_baseline(self, name: str, sums: np.ndarray, mean: np.ndarray,
                        filled: np.ndarray, out: np.ndarray) -> None:
        """z-score and baseline of HRV/RHR against the `baseline_days` before today."""
        cfg = self.config
        count, s1, s2 = sums
        ok = count >= cfg.min_baseline_days
        floor = cfg.sd_floor_ln_hrv if name == "ln_hrv" else cfg.sd_floor_rhr_bpm
        sd = np.sqrt(np.where(ok, _sample_variance(count, s1, s2), 0.0))
        np.maximum(sd, floor, out=sd)
        z = (filled - mean) / sd
        np.clip(z, -cfg.z_clip, cfg.z_clip, out=z)
        z_name, base_name = _Z_FEATURES[name]
        out[_INDEX[z_name]] = np.where(ok, z, 0.0)
        out[_INDEX[base_name]] = np.where(ok, mean, filled)
        if name == "ln_hrv":
            out[_INDEX["ln_hrv_baseline_sd_28d"]] = np.where(ok, sd, self._ref["ln_hrv_sd"])

    def _write_trend(self, name: str, sums: tuple[np.ndarray, ...], out: np.ndarray) -> None:
        """Least-squares slope over the trend window (and, for HRV, its 7-day SD), with
        `features._trailing_slope`'s formulas and thresholds."""
        cfg = self.config
        count, sx, sxx, sy, sxy = sums[:5]  # `_TrendWindow.sums`
        den = sxx - sx * sx / count
        slope = (sxy - sx * sy / count) / den
        ok = (count >= max(cfg.min_trend_days, 2)) & (den > 1e-9)
        out[_INDEX[_SLOPE_FEATURES[name]]] = np.where(ok, slope, 0.0)
        if name == "ln_hrv":
            sd7 = np.sqrt(_sample_variance(count, sy, sums[5]))
            out[_INDEX["ln_hrv_sd_7d"]] = np.where(count >= cfg.min_trend_days, sd7,
                                                   self._ref["ln_hrv_sd"])

    def _write_unseen(self, name: str, out: np.ndarray) -> None:
        """Features of a signal no athlete has shown yet: the documented fills."""
        ref = self._ref[name]
        out[_INDEX[name]] = ref
        out[_INDEX[self._indicator[name]]] = 0.0
        if name in _Z_FEATURES:
            z_name, base_name = _Z_FEATURES[name]
            out[_INDEX[z_name]] = 0.0
            out[_INDEX[base_name]] = ref
        if name in _SLOPE_FEATURES:
            out[_INDEX[_SLOPE_FEATURES[name]]] = 0.0
        if name == "ln_hrv":
            out[_INDEX["ln_hrv_baseline_sd_28d"]] = self._ref["ln_hrv_sd"]
            out[_INDEX["ln_hrv_sd_7d"]] = self._ref["ln_hrv_sd"]

    def _write_context(self, out: np.ndarray, values: Mapping[str, np.ndarray],
                       weekday: np.ndarray, days_to_event: np.ndarray | None,
                       cycle_day: np.ndarray | None) -> None:
        """Weekday, event, injury, cycle, age and sex of today."""
        cfg = self.config
        out[_INDEX["dow_sin"]], out[_INDEX["dow_cos"]] = _sin_cos(weekday, 0.0, 7.0,
                                                                  self._tables)
        if days_to_event is None:
            out[_INDEX["days_to_event"]] = cfg.days_to_event_cap
        else:
            ev = days_to_event
            # NaN, negative (no event) and far events all read as the cap.
            out[_INDEX["days_to_event"]] = np.where(ev >= 0, np.minimum(ev, cfg.days_to_event_cap),
                                                    cfg.days_to_event_cap)
        self._write_injury(out, values.get("injury"))
        rows = [_INDEX[k] for k in ("cycle_sin", "cycle_cos", "cycle_observed")]
        if cycle_day is None:
            out[rows] = 0.0
        else:
            cyc = cycle_day
            known = np.isfinite(cyc)
            sin_, cos_ = _sin_cos(np.where(known, cyc, 1.0), 1.0, cfg.cycle_length_days,
                                  self._tables)
            # × 0/1 rather than np.where: exact for these finite values, and 3× cheaper.
            np.multiply(sin_, known, out=out[rows[0]])
            np.multiply(cos_, known, out=out[rows[1]])
            out[rows[2]] = known
        out[_INDEX["age_years"]] = self._age_row
        out[_INDEX["sex"]] = self._sex_row

    def _write_injury(self, out: np.ndarray, injury: np.ndarray | None) -> None:
        """Last injury report within `ffill_limit_days` (> 0 → 1), else 0."""
        dst = out[_INDEX["injury"]]
        if self._injury_step is None:
            if injury is None or not np.isfinite(injury).any():
                dst.fill(0.0)
                return
            self._injury_step = np.full(self.n_athletes, _NEVER, dtype=np.int64)
        if injury is not None:
            known = np.isfinite(injury)
            self._injury_value = np.where(known, injury, self._injury_value)
            self._injury_step = np.where(known, self._step, self._injury_step)
        fresh = self._injury_step >= self._step - self.config.ffill_limit_days
        np.logical_and(fresh, self._injury_value > 0, out=dst, casting="unsafe")
