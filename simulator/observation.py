"""What the policy sees: the shared feature builder restricted to the signals the simulator makes.

The world model simulates morning HRV, resting HR and recovery, the training load (with its
Z4-5 and strength parts), injuries/illness and the static context (age, sex, optional cycle day
and event). Sleep stages, respiratory rate, skin temperature and SpO2 are not simulated. A policy
trained in the simulator must therefore see a real athlete through the same window: the real
history is cut down to `SIMULATED_COLUMNS` before `physiology_model.features.batch.build_features`, so
the features of unsimulated signals are their documented fills (indicator 0) in both worlds and
a policy cannot learn to lean on an input it never saw vary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from physiology_model.features.batch import FEATURE_NAMES, FeatureConfig, build_features

SIMULATED_COLUMNS: tuple[str, ...] = (
    "hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "load_trimp", "z4_min", "z5_min",
    "strength_min", "injury",
)
"""Daily-table signals the simulator produces (the others stay missing in simulation)."""

CONTEXT_COLUMNS: tuple[str, ...] = ("age", "sex", "session", "cycle_day", "days_to_event")
"""Context columns passed through when present."""

FEATURE_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
"""Position of each feature in the observation vector."""


def observations_from_table(frame: pd.DataFrame, *,
                            events: Mapping[str, Sequence[object]] | None = None,
                            config: FeatureConfig = FeatureConfig()) -> pd.DataFrame:
    """Observations of real athletes, one row per (user_id, calendar day), exactly as the
    simulator would compute them: `build_features` on the simulated signals only."""
    keep = ["user_id", "date"] + [c for c in SIMULATED_COLUMNS + CONTEXT_COLUMNS
                                  if c in frame.columns]
    return build_features(frame[keep], events=events, config=config)


def observation_matrix(features: pd.DataFrame) -> np.ndarray:
    """The (n_rows, n_features) float32 matrix of a `observations_from_table` frame."""
    return features[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
