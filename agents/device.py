"""Where the learners run: CUDA when present, the CPU otherwise, from the same code (DESIGN §8).

Every learner asks `select_device` once and passes the answer to torch (our SAC) or to SB3
(`device=`); nothing else in `agents/` looks at CUDA.
"""

from __future__ import annotations

import torch

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def select_device(requested: str = "auto") -> torch.device:
    """The torch device to train and act on.

    `auto`: `cuda` when `torch.cuda.is_available()`, else `cpu`; `cpu`: always the CPU;
    `cuda`: the (first) GPU, and a `ValueError` saying so when torch sees none (a run that
    asked for a GPU must not fall back to a 50× slower CPU run silently). Any other string is
    a `ValueError` naming the choices.
    """
    if requested not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {requested!r}")
    if requested == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise ValueError("device 'cuda' was requested but torch sees no CUDA device "
                         f"(torch {torch.__version__}); use device='auto' or 'cpu'")
    return torch.device("cuda") if available else torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """A short human label for logs and benchmark records, e.g. `cpu (2 threads)` or the GPU's
    name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
