"""Warm start of the masked discrete SAC from a distilled student (issue 20, Deliver item 3).

The distilled planner (`agents.distill`) is a `DiscreteSAC` actor trained by cross-entropy on
the MPC planner's choices; its input is the observation and the planner's belief
(`AthleteBelief.features`: the personalised physiology, tracked states, residuals, the last
sessions and, for a student distilled with tests, the tests' summary). `SACConfig.warm_start`
names such a run; `agents.training` then

- builds the SAC with the student's input layout and computes the same belief in the training
  env (`agents.sac_tested.TestedTrainingEnv` with the student's belief settings and every
  belief feature; a tested student's athletes are tested every `tests_every` days, the test
  taken as that day's session as in the evaluation);
- copies the student's actor into the SAC's actor and its Polyak-averaged actor, and the
  student's observation normaliser, which then stays frozen (`warm_start` below);
- keeps a frozen copy of the student's actor as the target of the optional behaviour-cloning
  term (`SACConfig.bc_weight`, `bc_decay`), and lets the critics learn alone for
  `SACConfig.actor_delay` transitions;
- saves checkpoints as `DistilledPlanner`s (network + `belief.json`), so that `periodize
  evaluate --runs` and `periodize plan --policy` use them as they use the student.

Cost (`benchmarks/sac_warm_env_cost.py`, `benchmarks/results/sac_warm_env_cost.json`: one
90-day episode of 128 lanes with random actions, on the 2-core machine at a load average of
3.5-3.8): the env alone ran 12.8k env-steps/s, with the tests' part of the belief (the tested
SAC's) 1.4k/s, with the tested student's whole belief 244/s; 40 of its 47 s were the four
personalisation mornings (6-16 s each for 128 athletes). Affordable for runs of 10^5 steps
on this machine, not for 10^7 (there the cheaper summary, `agents.sac_tested`, or more
cores).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from agents.sac import DiscreteSAC


def student_directory(source: str | Path) -> Path:
    """The directory holding the student's checkpoint: `source/model` for a run directory
    (`run.json` + `model/`), else `source` itself (a checkpoint directory with
    `belief.json`). Raises `ValueError` naming `source` when neither holds a student."""
    d = Path(source)
    checkpoint = d / "model" if (d / "run.json").is_file() else d
    if not (checkpoint / "belief.json").is_file():
        raise ValueError(f"warm_start {source}: not a distilled student (no belief.json in "
                         f"{checkpoint}); train one with `periodize train --agent "
                         "mpc-distilled`")
    return checkpoint


def load_student(source: str | Path, model: Any = None) -> Any:
    """The `DistilledPlanner` of a distilled run (`student_directory`); its world model is
    `model` or the one its `belief.json` names."""
    from agents.distill import DistilledPlanner

    return DistilledPlanner.load(student_directory(source), model=model)


def _layout(agent: DiscreteSAC) -> tuple[int, int, tuple[int, ...], float]:
    cfg = agent.config
    return agent.n_features, agent.n_actions, tuple(cfg.hidden_sizes), cfg.dropout


def warm_start(agent: DiscreteSAC, student: DiscreteSAC, source: str | Path = "") -> None:
    """Start `agent` from `student` (both `DiscreteSAC`s): the student's observation
    normaliser (then frozen), its actor as the agent's online and averaged actor, and a frozen
    copy as the behaviour-cloning target. The inputs, actions, hidden sizes and dropout must
    match; otherwise one `ValueError` naming `source` and both layouts."""
    ours, theirs = _layout(agent), _layout(student)
    if ours != theirs:
        names = "inputs, actions, hidden sizes, dropout"
        raise ValueError(f"warm_start {source}: the student's actor ({names}: {theirs}) does "
                         f"not fit this SAC's ({ours}); give the SAC the student's "
                         "hidden_sizes and dropout")
    agent.normalizer.load_state_dict(student.normalizer.state_dict())
    agent.actor.load_state_dict(student.actor.state_dict())
    if agent.actor_average is not None:
        agent.actor_average.load_state_dict(student.actor.state_dict())
    agent.bc_actor = copy.deepcopy(student.actor).to(agent.device)
    agent.bc_actor.requires_grad_(False)
    agent.bc_actor.eval()
    agent.warm_started = True
