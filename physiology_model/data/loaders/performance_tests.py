"""Performance tests carried by an export, for `periodize plan` when no `--tests FILE` is given.

A loader that can find tests in its format has a `performance_tests(files, user_hint, log)`
method returning `{user_id: results by day}` (higher is better, e.g. FTP in W). What counts as
a test is each loader's documented rule:

- intervals.icu activities (`intervals_icu.performance_tests_from_sessions`): activities marked
  as races or named as tests ("FTP test", "ramp test", "TT", ...), their eFTP (W);
- Section 11 `ftp_history.json` (`section11.read_ftp_history`): each dated FTP setting, one
  environment (outdoor unless indoor has more), a same-day indoor/outdoor pair counting once.

Daily eFTP estimates (intervals.icu `Ride_eftp`, `icu_eftp` of ordinary rides) are not tests.

`tests_for_athlete` keeps the tests that fall on days of the athlete's data (the planner can
only place a test on a morning it has) and says in notes which were left out and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from physiology_model.data.loaders import _folders, _registry
from physiology_model.data.table import NoteLog


def export_performance_tests(paths: Sequence[str | Path]) -> dict[str, tuple[pd.Series, str]]:
    """{user_id: (tests by day, the folder they came from)} for every export under `paths`."""

    loaders = _registry()
    log = NoteLog()
    found: dict[str, tuple[pd.Series, str]] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            continue
        for folder, files in _folders(path):
            groups: dict[int, list[Path]] = {}
            for f in files:
                index = next((i for i, ld in enumerate(loaders) if ld.claims(f)), None)
                if index is not None:
                    groups.setdefault(index, []).append(f)
            for index, claimed in groups.items():
                reader = getattr(loaders[index], "performance_tests", None)
                if reader is None:
                    continue
                for uid, tests in reader(claimed, folder.name, log).items():
                    if len(tests):
                        found[uid] = (tests.sort_index(), str(folder))
    return found


def tests_for_athlete(paths: Sequence[str | Path], uid: str, dates: pd.Series,
                      notes: list[str]) -> tuple[pd.Series | None, str]:
    """The athlete's export tests on days of its data (None when there are none), and where
    they came from; what was left out goes to `notes`."""
    found = export_performance_tests(paths).get(uid)
    if found is None:
        return None, ""
    tests, where = found
    days = pd.DatetimeIndex(pd.to_datetime(dates)).normalize()
    on_data = tests[tests.index.isin(days)]
    outside = tests[~tests.index.isin(days)]
    if len(outside):
        shown = ", ".join(f"{d:%Y-%m-%d}" for d in outside.index[:4])
        notes.append(f"{len(outside)} performance test(s) from the export fall on days outside "
                     f"the data ({shown}{', ...' if len(outside) > 4 else ''}) and are left out")
    if on_data.empty:
        return None, where
    shown = ", ".join(f"{d:%Y-%m-%d} {v:g}" for d, v in on_data.items())
    notes.append(f"performance tests read from the export ({where}): {shown}")
    return on_data, where
