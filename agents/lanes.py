"""One random stream per athlete (lane) of a batch, so that a batched planner draws for each
athlete exactly what it would draw for that athlete alone.

The planners (`agents.mpc`, `agents.distill`) are vectorised over N athletes and draw their
random numbers as arrays whose first axis is the athlete (`sample_plans`, `draw_innovations`).
With one `numpy.random.Generator` for the batch, athlete i's numbers depend on how many
athletes share the batch and where i sits in it. `LaneGenerator` holds one generator per
athlete and answers `random(shape)` and `standard_normal(shape)` with shape[0] == N by drawing
row i from lane i; the belief's per-athlete draws (population draws, personalisation) use
`lane(rng, i)`. A batch of one is then the single-athlete run, and a batch of N equals N
batches of one, athlete by athlete.

`athlete_seed(seed, athlete)` keys an athlete's streams by the run's seed and the athlete's id
only (never its position in a batch or the worker that plans it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


def athlete_seed(seed: int, athlete: str, stream: int = 0) -> np.random.SeedSequence:
    """The seed sequence of one athlete's stream number `stream`: (seed, sha256 of the id)."""
    digest = hashlib.sha256(str(athlete).encode("utf-8")).digest()
    key = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.SeedSequence(entropy=[int(seed) & 0xFFFFFFFF, *key], spawn_key=(stream,))


class LaneGenerator:
    """N independent generators answering batched draws row by row (module docstring)."""

    def __init__(self, seeds: Sequence[np.random.SeedSequence | int]) -> None:
        if not len(seeds):
            raise ValueError("a LaneGenerator needs at least one lane")
        self.lanes = [np.random.default_rng(s) for s in seeds]

    @property
    def n(self) -> int:
        return len(self.lanes)

    def _rows(self, size: Any, draw) -> np.ndarray:
        shape = (size,) if np.isscalar(size) else tuple(size)
        if not shape or shape[0] != self.n:
            raise ValueError(f"a draw over {self.n} lanes needs shape ({self.n}, ...), got "
                             f"{shape}")
        return np.stack([draw(g, shape[1:]) for g in self.lanes])

    def random(self, size: Any) -> np.ndarray:
        return self._rows(size, lambda g, s: g.random(s))

    def standard_normal(self, size: Any) -> np.ndarray:
        return self._rows(size, lambda g, s: g.standard_normal(s))


def lane(rng: Any, i: int) -> np.random.Generator:
    """The generator athlete `i` draws its own numbers from: lane i of a `LaneGenerator`, or
    the batch's one generator."""
    return rng.lanes[i] if isinstance(rng, LaneGenerator) else rng


def lane_rng(seed: Any) -> Any:
    """A planner's random stream for `seed`: an int (the batch's one generator, as before) or
    a sequence of per-athlete seed sequences (a `LaneGenerator`)."""
    if isinstance(seed, (list, tuple)):
        return LaneGenerator(seed)
    return np.random.default_rng(np.random.SeedSequence(int(seed)))
