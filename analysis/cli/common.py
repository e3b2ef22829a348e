"""What the sub-commands share: progress lines and loading the world model."""

from __future__ import annotations

import sys
import time


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _load_model(directory: str):
    from physiology_model.model.world_model import WorldModel, resolve_model_dir

    return WorldModel.load(resolve_model_dir(directory))


# -- cohort ------------------------------------------------------------------------------------
