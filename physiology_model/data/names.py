"""The names nearest to one a user typed (`--athlete`), for a "did you mean" hint."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence


def nearest_names(typed: str, known: Sequence[str], n: int = 3) -> list[str]:
    """Up to `n` of `known` that `typed` most likely meant: those whose id part (after the
    source prefix, e.g. `lifesnaps-4003096d`) occurs in `typed` or contains it (a raw device id
    pasted whole, or a prefix), then the closest spellings (difflib)."""
    t = typed.strip().lower()
    if not t:
        return []
    out: list[str] = []
    for name in known:
        tail = re.split(r"[-_]", name.lower(), maxsplit=1)[-1]
        if len(tail) >= 3 and (tail in t or (len(t) >= 3 and t in name.lower())):
            out.append(name)
    for name in difflib.get_close_matches(typed, list(known), n=n, cutoff=0.6):
        if name not in out:
            out.append(name)
    return out[:n]
