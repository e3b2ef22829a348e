"""A masked discrete Soft Actor-Critic in torch (DESIGN §8; seed §3, §5.4).

SB3's SAC accepts only `Box` actions, so the discrete, masked learner is written here, after
Christodoulou 2019 ("Soft Actor-Critic for Discrete Action Settings", arXiv:1910.07207): with a
finite action set the policy's expectations are computed exactly over the actions instead of
through the reparameterisation trick. For a batch of transitions (s, a, r, s', d) with masks
m(s), m(s') (allowed actions), temperature α and discount γ:

- the policy is a categorical over the allowed actions: logits of disallowed actions are set to
  a large negative number, so π(a|s) = 0 and they add nothing to any sum below;
- soft state value of the next state, from the twin target critics (minimum taken, Fujimoto et
  al. 2018) and the next state's own mask (stored in the replay buffer):
  V(s') = Σ_a π(a|s') [min_i Q̄_i(s', a) − α log π(a|s')];
- critic targets y = R + γ^k (1 − d) V(s'), with R the discounted sum of the k ≤ n rewards
  from s to s' (`NStepReturns`; k = 1 is the paper's one-step target); loss
  ½ Σ_i (Q_i(s, a) − y)²;
- actor loss Σ_a π(a|s) [α log π(a|s) − min_i Q_i(s, a)];
- temperature loss log α · (H(π(·|s)) − H̄(s)) (Haarnoja et al. 2018, arXiv:1812.05905,
  automatic entropy adjustment, in the discrete form of Christodoulou eq. 11);
- Polyak targets Q̄ ← (1 − τ) Q̄ + τ Q.

Target entropy. Christodoulou used H̄ = 0.98·log|A|, which pins the policy close to uniform;
later work found that too high for most tasks (Xu et al. 2021, "Target Entropy Annealing for
Discrete Soft Actor-Critic", arXiv:2112.02852). A mask also shrinks the entropy a policy can
have: with k allowed actions the maximum is log k (0 when only rest is allowed). So the target
here is per state, H̄(s) = `target_entropy_scale` · log k(s), with scale 0.5 by default: about
80 % of the probability on the preferred session of six, never more than the state allows.

Networks (seed §3.2): actor and critics are MLPs 256-128-64, ReLU, dropout 0.2 after the first
two layers of the actor (the critics' is `critic_dropout`, 0 by default). Each critic maps a state to the Q-values of all six actions (the discrete form of
the seed's Q(state, action); one forward gives every action's value, which the exact
expectations need). The twin critics are one module with stacked weights, so both run in one
batched matrix product. Dropout is active in gradient steps only; acting and diagnostics use
`eval()` mode.

Observations are the raw 48 features (very different scales: ms, bpm, TRIMP, −1..1), so the
agent normalises them itself with running mean and variance (`RunningNormalizer`, saved in the
checkpoint) and the same normaliser acts at inference.

Speed: the batched env yields N transitions per step; they go into a replay buffer of
preallocated torch tensors on the training device, and `replay_ratio` gradient steps are taken
per transition collected (default one batch of 256 per 32 transitions).

Asymmetric critic (issue 20). The day's reward (ΔP) is mostly that day's fatigue, which the
wearable shows only through noise; a critic that sees only the observation regressed on noise
and its twins disagreed by more than the actions differed. During training the critics also
see the simulator's latent state and the athlete's parameters (`n_latent` > 0:
`simulator.env.Simulation.critic_state`, normalised by its own `RunningNormalizer`, stored in
the replay buffer beside each transition): Q(s, z, a) with z the latent state. The actor, and
so the deployed policy, sees only the observation (Pinto et al. 2018, "Asymmetric Actor
Critic for Image-Based Robot Learning", arXiv:1710.06542); its policy gradient stays unbiased
because the critic's extra input is information about the same state, not about the future.

Stability and information (issue 20): the policy that acts outside training is a
Polyak average of the actor (`actor_polyak`, the default); a critic ensemble (`n_critics`)
is offered but lost in the measurements; with `tests_every` the athletes are tested monthly
and the actor reads the tests (`agents.sac_tested`); with `warm_start` the SAC starts from a
distilled student and reads its belief (`agents.sac_warm`). Each field's docstring gives its
measurements.

Hyperparameters: seed §5.4 (learning rate 3e-4 for actor and critics, τ 0.005, batch 256,
buffer 100 000), with the issue-20 fixes: the judging day is terminal, so γ = 1 (the return is
the episode's ΔP plus the recovery and penalty terms); initial α 0.02 with its own learning
rate 1e-3; target entropy 0.2·log k; no critic dropout (the actor keeps the seed's 0.2);
LayerNorm in the critics (steadier scores).
`benchmarks/sac_fixes.py` measures them against the old defaults. Not from the seed: 20-step
targets. A
day's training changes performance over weeks, and with one-step targets and τ 0.005 the
critics carried that back too slowly: in a few minutes of training the one-step agent learned
to avoid the immediate penalties and lost more performance than uniform random did
(`SACConfig.n_step` gives the numbers).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agents.checkpoint_io import (
    CheckpointError,
    check_count,
    check_hidden_sizes,
    load_module_state,
    read_settings,
    read_weights,
    required_field,
)
from agents.policy import N_FEATURES, check_batch, masked_choice, masked_sample
from physiology_model.data.table import ACTIONS, N_ACTIONS

SAC_FORMAT = "adaptive-periodization.DiscreteSAC"
SAC_VERSION = 2
"""2: `n_latent` (asymmetric critic) and the issue-20 config fields; version 1 still loads."""
_VERSION_1_DEFAULTS: dict[str, Any] = {"gamma": 0.99, "initial_alpha": 0.2,
                                       "target_entropy_scale": 0.5,
                                       "asymmetric_critic": False, "critic_layer_norm": False}
"""Config values a version-1 checkpoint did not write (the defaults of its day)."""
_MASKED_LOGIT = -1e8
"""Logit of a disallowed action: finite (so 0·log π stays 0, not NaN), and exp of it is 0."""


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a frozen config dataclass written by `asdict` (JSON turns tuples into lists);
    an unknown field raises `ValueError` naming it. Used for every learner's config."""
    unknown = sorted(set(values) - set(cls.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}")
    v = {k: tuple(x) if isinstance(x, list) else x for k, x in values.items()}
    return cls(**v)


@dataclass(frozen=True)
class SACConfig:
    """Hyperparameters of the masked discrete SAC (module docstring; defaults from seed §5.4)."""

    learning_rate: float = 3e-4
    """Adam step size of the actor and the critics."""
    alpha_learning_rate: float = 1e-3
    """Adam step size of the temperature (its own: at the shared 3e-4 α followed the
    entropy target too slowly from its start, issue 20)."""
    gamma: float = 1.0
    """Discount per day. The judging day ends the episode as a terminal state
    (`EnvConfig.judging_day_terminal`), so γ = 1 is sound: the return of an episode is then
    exactly its ΔP plus the recovery and penalty terms (rewards.py), which is what the
    policy is judged on; γ < 1 weights the next weeks over the judging day (measured, same
    runs as `critic_layer_norm` without it: γ 0.99 kept 14 % of the oracle's gain, γ 1 66 %)."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    batch_size: int = 256
    """Transitions per gradient step."""
    buffer_size: int = 100_000
    """Replay capacity, transitions (the oldest are overwritten)."""
    hidden_sizes: tuple[int, ...] = (256, 128, 64)
    """Hidden layer widths of actor and critics."""
    dropout: float = 0.2
    """Dropout of the actor after every hidden layer but the last (seed §3.2); 0 for the
    no-dropout ablation."""
    critic_dropout: float = 0.0
    """Dropout of the critics (same places). 0: dropout noise in the critics' targets drowned
    the small per-day reward (issue 20); the seed's 0.2 was the old default."""
    initial_alpha: float = 0.02
    """Starting entropy temperature, tuned automatically from there. The seed's 0.2 is 5-50×
    the per-day reward (% of performance) and drowned it (issue 20)."""
    target_entropy_scale: float = 0.2
    """H̄(s) = scale · log(number of allowed actions in s) (module docstring); in [0, 1).
    0.2: about 95 % of the probability on the preferred session of six (0.5 was the old
    default)."""
    asymmetric_critic: bool = True
    """The critics also see the simulator's latent state and the athlete's parameters
    (`simulator.env.Simulation.critic_state`, training only); the actor sees only the
    wearable's observation, so a checkpoint's policy needs nothing a wearable lacks."""
    critic_layer_norm: bool = True
    """LayerNorm after each hidden linear layer of the critics (its gain and bias shared by
    the twins). Measured (`benchmarks/sac_fixes.py`, 120k steps, 256 training athletes, 48
    held-out): the share of the oracle's ΔP gain over the last four evaluations averaged 74,
    53 and 58 % with it (seeds 0-2), 61 and 44 % without (seeds 0-1); consecutive evaluations
    swung by at most 2, 8 and 19 points with it, 17 and 23 without. Indicative (short runs,
    few seeds)."""
    learning_starts: int = 5_000
    """Transitions of uniform masked-random actions before the first gradient step."""
    replay_ratio: float = 1.0 / 32.0
    """Gradient steps per transition collected (with 64 lanes: 2 steps per env step)."""
    n_step: int = 20
    """Rewards summed per stored transition before bootstrapping (`NStepReturns`); 1 is the
    one-step SAC of Christodoulou 2019. A day's training moves performance over weeks (the
    fatigue of a session fades over 1-2 weeks, its fitness over 6); 20 days spans the fatigue
    and most of the crossover. Measured on the shipped world model (512 training athletes,
    400 000 transitions, 200 held-out athletes): n = 1, 5, 20 gave mean returns −5.36, −5.13,
    −4.44 against −4.92 for uniform masked random."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before learning (the env's rewards are % of
    performance per day)."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip of actor and critics (guards against a rare exploding step)."""
    obs_clip: float = 10.0
    """Normalised observations are clipped to ± this many standard deviations."""
    n_critics: int = 2
    """Critics in the ensemble (stability, issue 20). 2: the twin critics (targets from
    their minimum, the actor from their minimum). More: REDQ (Chen et al. 2021,
    arXiv:2101.05982): each target is the minimum of a random pair of target critics, the
    actor follows the ensemble's mean; every critic regresses on the same target."""
    actor_polyak: float = 0.005
    """Stability (issue 20): when > 0, the policy that acts outside training (evaluation,
    checkpoints, deployment) is a Polyak average of the actor's weights, updated at this rate
    after every gradient step (as the target critics are with `tau`); exploration still draws
    from the online actor. 0: the online actor acts (checkpoints written before this field
    load with 0). Measured (`benchmarks/sac_fixes.py`, 120k steps, 256 training / 48
    held-out athletes, short CPU runs; `benchmarks/results/sac_stability*.json`): the final
    model kept 76 and 63 % of the oracle's ΔP gain with it, 73 and 51 % without (seeds 0, 1);
    over the last four evaluations 75 and 55 % against 74 and 53 %; the largest swing between
    them was not smaller (3.4 and 11.6 points against 1.9 and 8.2). In the same runs four
    times the gradient steps per transition kept 48 % and a 4-critic ensemble 56 % (seed 0)."""
    tests_every: int = 28
    """The tested athlete (`agents.sac_tested`): days between the training athletes'
    performance tests (0: none, the wearable only). With tests the actor also reads the
    tests' summary (`agents.mpc.PERFORMANCE_FEATURE_NAMES`) and the checkpoint is a
    `TestedSAC` that `periodize evaluate --tests-every` and `periodize plan --tests` hand
    tests to (without any it plans from the wearable alone). The default since 2026-12-07:
    agents are judged with a monthly test taken as that day's session, and at 1 M steps the
    tested SAC beat the wearable one in each of three seeds (`benchmarks/sac_fixes.py
    --variants default default-tested --max-steps 1000000`, 256 training / 48 held-out
    athletes, `benchmarks/results/sac_1m_default*.json`): final model 68.1, 81.8 and 72.3 %
    of the oracle's ΔP gain against 64.5, 62.7 and 59.7 %; mean of the last ten evaluations
    74.0, 73.3, 72.0 against 65.6, 64.9, 61.2 (at 120k steps it was not better yet)."""
    test_session: str | None = "tempo_threshold"
    """The action a test is (that day's session; None: a free test)."""
    test_draws: int = 1024
    """Performance responses the tests weigh (`MPCConfig.performance_draws`)."""
    warm_start: str | None = None
    """Warm start (issue 20, `agents.sac_warm`): a distilled run directory (`periodize train
    --agent mpc-distilled`) whose student's actor weights and observation normaliser this
    SAC starts from. The actor's inputs are then the student's (the observation and the
    belief features of `agents.distill`, computed in the training env from the student's
    own belief settings), the normaliser stays the student's (frozen: the weights mean
    something only with its scaling), the student acts from the first transition (no
    uniform-random phase), and the checkpoint is a `DistilledPlanner` whose network is this
    SAC's averaged actor. A student distilled with tests needs `tests_every` > 0 (and
    `test_draws` equal to its performance draws), one without needs 0. None: a cold start.
    Measured (`benchmarks/sac_fixes.py --warm-start`, 120k steps, 256 training / 48 held-out
    athletes, monthly test as the session, seed 0, `benchmarks/results/sac_warm*.json`): the
    student alone kept 84 % [68, 101] of the oracle's ΔP gain, the SAC fine-tuned from it
    76 % [64, 87] (final model; 44 % after 35k steps; seed 1: 68 % [52, 80]); no variant
    below beat the student."""
    actor_delay: int = 0
    """Transitions after `learning_starts` during which only the critics learn (the actor
    and α wait), so that a warm-started actor is not moved by critics that know nothing
    yet. Measured (as `warm_start`): 20,000 gave 76 % [62, 92] at the end, the early dip
    62-65 % instead of 44 %."""
    bc_weight: float = 0.0
    """Weight of a behaviour-cloning term in the actor's loss: the cross-entropy of the
    actor's policy against the warm-start student's action (its argmax under the mask,
    frozen at the start). Used only by a warm-started agent."""
    bc_decay: int = 0
    """Transitions over which `bc_weight` falls linearly to 0, counted from when the actor
    starts learning (`learning_starts` + `actor_delay`); 0: it never falls. Measured (as
    `warm_start`): weight 1 falling over 60,000 kept 83 % while it lasted and fell to 13 %
    once it ended (69 % [57, 81] at the end); weight 1 kept throughout 82, 84, 78 and 79 %
    over the last four evaluations (79 % [58, 99] at the end; seed 1: 84, 79, 80, 79 %),
    near the student's 84 %, not above it. The shipped models/agents/sac is weight 1 kept
    throughout, 300k steps from the student of models/agents/mpc-distilled-tested: 93 % of the
    oracle's gain on 1,000 held-out athletes in three seeds, its student's share
    (benchmarks/full_evaluation.py, `sac-warm`; docs/results.md)."""

    hazard_margin: float | None = None
    """The injury guard of a warm-started SAC (`agents.distill.guarded_mask`): when it acts
    (evaluation, plans; not in the training env, whose mask stays the hard rules'), sessions
    whose onset hazard tonight exceeds the lowest allowed session's by more than this
    probability are left out. None: no guard. Needs `warm_start` (the student's belief
    tracks the loads it reads)."""

    def __post_init__(self) -> None:
        checks = {
            "learning_rate": self.learning_rate > 0, "gamma": 0.0 <= self.gamma <= 1.0,
            "alpha_learning_rate": self.alpha_learning_rate > 0,
            "critic_dropout": 0.0 <= self.critic_dropout < 1.0,
            "tau": 0.0 < self.tau <= 1.0, "batch_size": self.batch_size >= 1,
            "buffer_size": self.buffer_size >= self.batch_size,
            "hidden_sizes": len(self.hidden_sizes) >= 1 and min(self.hidden_sizes) >= 1,
            "dropout": 0.0 <= self.dropout < 1.0, "initial_alpha": self.initial_alpha > 0,
            "target_entropy_scale": 0.0 <= self.target_entropy_scale < 1.0,
            "learning_starts": self.learning_starts >= 0, "replay_ratio": self.replay_ratio > 0,
            "reward_scale": self.reward_scale > 0, "n_step": self.n_step >= 1, "max_grad_norm": self.max_grad_norm > 0,
            "obs_clip": self.obs_clip > 0, "actor_polyak": 0.0 <= self.actor_polyak <= 1.0,
            "n_critics": self.n_critics >= 2,
            "tests_every": self.tests_every >= 0,
            "test_draws": self.test_draws >= 1,
            "test_session": self.test_session is None or self.test_session in ACTIONS,
            "actor_delay": self.actor_delay >= 0, "bc_weight": self.bc_weight >= 0.0,
            "bc_decay": self.bc_decay >= 0,
            "hazard_margin": self.hazard_margin is None or (
                not isinstance(self.hazard_margin, bool)
                and isinstance(self.hazard_margin, (int, float))
                and 0.0 <= self.hazard_margin <= 1.0),
            "warm_start": self.warm_start is None or (isinstance(self.warm_start, str)
                                                      and self.warm_start != ""),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid SACConfig {bad[0]}={getattr(self, bad[0])!r} "
                             "(see the field's docstring for its range)")


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


class RunningNormalizer(nn.Module):
    """Per-feature running mean and variance of observations, and the z-scores they give.

    Batches are merged with Chan, Golub & LeVeque's parallel update (1979), in float64 so that
    millions of rows do not lose precision. The statistics are buffers, so they travel in the
    agent's `state_dict`.

    A feature that never varied in what the agent saw (the simulator fills sleep, SpO2, skin
    temperature, … with constants) gets weight 0 rather than 1/σ ≈ ∞: the networks cannot have
    learned anything from it, and a real user whose device does report it must not push the
    input to the clip. "Never varied": σ ≤ `rel_tol` · (1 + |mean|).
    """

    def __init__(self, n_features: int, clip: float = 10.0, rel_tol: float = 1e-6) -> None:
        super().__init__()
        self.clip, self.rel_tol = clip, rel_tol
        self.register_buffer("mean", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("var", torch.ones(n_features, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self._refresh()

    def _refresh(self) -> None:
        std = self.var.clamp_min(0.0).sqrt()
        varies = std > self.rel_tol * (1.0 + self.mean.abs())
        self._shift = self.mean.float()
        self._scale = torch.where(varies, 1.0 / torch.where(varies, std, 1.0), 0.0).float()

    def update(self, x: torch.Tensor) -> None:
        """Merge a batch (B, F) of raw observations into the statistics."""
        x = x.detach().to(torch.float64)
        n = float(x.shape[0])
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        m2 = self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)
        self._refresh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """z-scores of raw observations (B, F), float32, clipped to ± `clip`."""
        return ((x - self._shift) * self._scale).clamp_(-self.clip, self.clip)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> RunningNormalizer:
        out = super()._apply(fn, *args, **kwargs)
        self._refresh()  # keep the float32 caches on the module's device
        return out


class FastDropout(nn.Module):
    """Inverted dropout whose CPU random draw costs a fraction of `nn.Dropout`'s.

    On the CPU, `nn.Dropout` draws one Bernoulli variate per element and took as long as the
    layer's matrix product (2.1 ms vs 0.6 ms for a 512 × 256 batch, 1 thread); here each element
    gets one random byte, cut from 64-bit integers (8 bytes per draw), and is kept when the byte
    is ≥ round(256·p). The dropout rate is therefore p rounded to 1/256 (0.2 → 0.199). On CUDA
    it is `F.dropout`. Identity in eval mode. Randomness comes from torch's current generator.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = p
        self._threshold = round(256 * p)
        self._scale = 256.0 / (256 - self._threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self._threshold == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self._threshold / 256.0, training=True)
        n = x.numel()
        words = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-2 ** 63, 2 ** 63 - 1)
        keep = words.view(torch.uint8)[:n].view(x.shape) >= self._threshold
        return x * keep.to(x.dtype).mul_(self._scale)

    def extra_repr(self) -> str:
        return f"p={self._threshold}/256"


def build_mlp(n_in: int, n_out: int, hidden: tuple[int, ...], dropout: float) -> nn.Sequential:
    """Linear → ReLU (→ Dropout, on every hidden layer but the last) → … → Linear(n_out)."""
    layers: list[nn.Module] = []
    width = n_in
    for i, h in enumerate(hidden):
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0 and i < len(hidden) - 1:
            layers.append(FastDropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class StackedLinear(nn.Module):
    """k independent linear layers applied in one batched product: (k, B, n_in) → (k, B, n_out).

    Initialised like `nn.Linear` (uniform ±1/√n_in for weights and biases).
    """

    def __init__(self, k: int, n_in: int, n_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(k, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, 1, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class TwinQ(nn.Module):
    """k critics (two by default, Q_1 and Q_2): state (B, F) → Q-values of every action
    (k, B, A)."""

    def __init__(self, n_in: int, n_actions: int, hidden: tuple[int, ...],
                 dropout: float, layer_norm: bool = False, n_critics: int = 2) -> None:
        super().__init__()
        self.k = n_critics
        layers: list[nn.Module] = []
        width = n_in
        for i, h in enumerate(hidden):
            layers.append(StackedLinear(n_critics, width, h))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(nn.ReLU())
            if dropout > 0 and i < len(hidden) - 1:
                layers.append(FastDropout(dropout))
            width = h
        layers.append(StackedLinear(n_critics, width, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.unsqueeze(0).expand(self.k, -1, -1))


def masked_log_probs(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log π(a|s) of the categorical restricted to `mask` (B, A) bool; disallowed actions get a
    log-probability of about −1e8 (probability exactly 0)."""
    return torch.log_softmax(logits.masked_fill(~mask, _MASKED_LOGIT), dim=-1)


def target_entropy(mask: torch.Tensor, scale: float) -> torch.Tensor:
    """H̄(s) = scale · log(allowed actions of s), nats, (B,) (module docstring)."""
    return scale * torch.log(mask.sum(-1).clamp_min(1).to(torch.float32))


class Batch(NamedTuple):
    """Transitions sampled from the replay buffer (raw observations)."""

    obs: torch.Tensor          # (B, F) float32
    action: torch.Tensor       # (B,) int64
    reward: torch.Tensor       # (B,) float32
    next_obs: torch.Tensor     # (B, F) float32
    discount: torch.Tensor     # (B,) float32: γ^k of the bootstrap from s' (0 if terminal)
    mask: torch.Tensor         # (B, A) bool, allowed actions in s
    next_mask: torch.Tensor    # (B, A) bool, allowed actions in s'
    latent: torch.Tensor | None = None       # (B, L) float32: critic-only state of s
    next_latent: torch.Tensor | None = None  # (B, L) float32: critic-only state of s'


class ReplayBuffer:
    """A ring of preallocated torch tensors on the training device (raw observations, so that
    the normaliser in use at sampling time applies). With `n_latent` > 0 it also keeps each
    transition's critic-only latent state of s and s' (`Simulation.critic_state`)."""

    def __init__(self, capacity: int, n_features: int, n_actions: int,
                 device: torch.device, n_latent: int = 0) -> None:
        if capacity < 1:
            raise ValueError("replay capacity must be at least 1")
        self.capacity, self.device, self.n_latent = capacity, device, n_latent
        self.latent = torch.zeros((capacity, n_latent), dtype=torch.float32, device=device)
        self.next_latent = torch.zeros_like(self.latent)
        self.obs = torch.zeros((capacity, n_features), dtype=torch.float32, device=device)
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.reward = torch.zeros(capacity, dtype=torch.float32, device=device)
        self.discount = torch.zeros(capacity, dtype=torch.float32, device=device)
        self.mask = torch.ones((capacity, n_actions), dtype=torch.bool, device=device)
        self.next_mask = torch.ones_like(self.mask)
        self.position = 0
        self.size = 0

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
            next_obs: torch.Tensor, discount: torch.Tensor, mask: torch.Tensor,
            next_mask: torch.Tensor, latent: torch.Tensor | None = None,
            next_latent: torch.Tensor | None = None) -> None:
        """Store N transitions (tensors on the buffer's device, first axis N); `latent` and
        `next_latent` (N, n_latent) are required when the buffer keeps latents."""
        n = obs.shape[0]
        if n > self.capacity:
            raise ValueError(f"{n} transitions do not fit a buffer of {self.capacity}")
        stores = [(self.obs, obs), (self.action, action), (self.reward, reward),
                  (self.next_obs, next_obs), (self.discount, discount),
                  (self.mask, mask), (self.next_mask, next_mask)]
        if self.n_latent:
            if latent is None or next_latent is None:
                raise ValueError("this replay buffer keeps latent states: pass latent and "
                                 "next_latent")
            stores += [(self.latent, latent), (self.next_latent, next_latent)]
        idx = (self.position + torch.arange(n, device=self.device)) % self.capacity
        for store, value in stores:
            store[idx] = value
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """`batch_size` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device,
                            generator=generator)
        latent = (self.latent[idx], self.next_latent[idx]) if self.n_latent else (None, None)
        return Batch(self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx],
                     self.discount[idx], self.mask[idx], self.next_mask[idx], *latent)


@dataclass
class _Window:
    """An n-step window opened at one env step, for all lanes."""

    obs: torch.Tensor
    action: torch.Tensor
    mask: torch.Tensor
    reward: np.ndarray     # (N,) discounted sum so far
    discount: np.ndarray   # (N,) γ^k after k rewards
    open: np.ndarray       # (N,) bool: lanes not yet emitted
    latent: torch.Tensor | None = None


class NStepReturns:
    """Turns the one-step transitions of N lanes into k-step ones (k ≤ n): each stored
    transition is (s_t, a_t, R = Σ_{j<k} γ^j r_{t+j}, s_{t+k}, γ^k, masks), with k = n, or less
    where the episode ended first (then s_{t+k} is the terminal observation and γ^k becomes 0
    if the end was terminal, not a time limit). n-step targets carry a delayed reward back n
    days per backup instead of one (Sutton & Barto 2018, §7.1; used with off-policy replay
    by Rainbow, Hessel et al. 2018); as there, the targets are not corrected for the policy
    having changed since the data were collected, and the entropy bonus of the n − 1
    intermediate steps is left out (α is small once trained). n = 1 is the one-step SAC."""

    def __init__(self, n_step: int, gamma: float) -> None:
        if n_step < 1:
            raise ValueError(f"n_step must be ≥ 1, got {n_step}")
        self.n_step, self.gamma = n_step, gamma
        self._windows: list[_Window] = []

    def push(self, obs: torch.Tensor, action: torch.Tensor, mask: torch.Tensor,
             reward: np.ndarray, next_obs: torch.Tensor, next_mask: torch.Tensor,
             terminal: np.ndarray, done: np.ndarray, latent: torch.Tensor | None = None,
             next_latent: torch.Tensor | None = None) -> list[tuple[torch.Tensor | None, ...]]:
        """Add one env step of all lanes (tensors on the buffer's device, `reward`,
        `terminal`, `done` numpy (N,); `latent`/`next_latent` the critic-only states of s and
        s', or None); returns the transitions completed by it, each as the arguments of
        `ReplayBuffer.add` (obs, action, R, s', γ^k, mask, next mask, latent, next latent)."""
        n = len(reward)
        self._windows.append(_Window(obs, action, mask, np.zeros(n), np.ones(n),
                                     np.ones(n, dtype=bool), latent))
        for w in self._windows:
            w.reward += np.where(w.open, w.discount * reward, 0.0)
            w.discount = np.where(w.open, w.discount * self.gamma, w.discount)
        completed = []
        full = len(self._windows) == self.n_step
        for i, w in enumerate(self._windows):
            close = w.open & (done | (full and i == 0))
            if not close.any():
                continue
            discount = np.where(terminal > 0, 0.0, w.discount)
            rows = (slice(None) if close.all()
                    else torch.as_tensor(np.flatnonzero(close), device=obs.device))
            device = obs.device
            completed.append((w.obs[rows], w.action[rows],
                              torch.as_tensor(w.reward[close], dtype=torch.float32,
                                              device=device),
                              next_obs[rows],
                              torch.as_tensor(discount[close], dtype=torch.float32,
                                              device=device),
                              w.mask[rows], next_mask[rows],
                              None if w.latent is None else w.latent[rows],
                              None if next_latent is None else next_latent[rows]))
            w.open = w.open & ~close
        while self._windows and not self._windows[0].open.any():
            self._windows.pop(0)
        return completed


def _adam(params: Any, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, foreach=True)


# --------------------------------------------------------------------------------------------
# The agent
# --------------------------------------------------------------------------------------------


class DiscreteSAC:
    """The masked discrete SAC agent: networks, normaliser, temperature, one gradient step, and
    the `agents.policy.Policy` interface.

    Policy: `act(obs (N, 48) raw, mask (N, 6) bool) -> (N,) int64`, always allowed by the mask;
    the argmax of π over the allowed actions when `deterministic` (the default, for evaluation),
    else a draw from π restricted to the mask with the agent's own generator (`reset(seed)`
    reseeds it). The training loop is `train_sac`, outside this class.
    """

    def __init__(self, config: SACConfig = SACConfig(), *, n_features: int = N_FEATURES,
                 n_actions: int = N_ACTIONS, n_latent: int = 0,
                 device: torch.device | str = "cpu", seed: int = 0, name: str = "sac") -> None:
        if n_latent < 0:
            raise ValueError(f"n_latent must be ≥ 0, got {n_latent}")
        self.config, self.n_features, self.n_actions = config, n_features, n_actions
        self.n_latent = n_latent
        self.device = torch.device(device)
        self.name = name
        self.deterministic = True
        self._rng = np.random.default_rng(seed)
        # Initialise from `seed` without touching torch's global generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.normalizer = RunningNormalizer(n_features, clip=config.obs_clip)
            self.latent_normalizer = RunningNormalizer(n_latent, clip=config.obs_clip)
            self.actor = build_mlp(n_features, n_actions, config.hidden_sizes, config.dropout)
            critic_args = (n_features + n_latent, n_actions, config.hidden_sizes,
                           config.critic_dropout, config.critic_layer_norm, config.n_critics)
            self.critic = TwinQ(*critic_args)
            self.critic_target = TwinQ(*critic_args)
            self.actor_average: nn.Module | None = None
            if config.actor_polyak > 0:  # a copy of the actor (its draws are overwritten)
                self.actor_average = build_mlp(n_features, n_actions, config.hidden_sizes,
                                               config.dropout)
        if self.actor_average is not None:
            self.actor_average.load_state_dict(self.actor.state_dict())
            self.actor_average.requires_grad_(False)
            self.actor_average.eval()
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.initial_alpha), device=self.device,
                                      requires_grad=True)
        for module in self._modules():
            module.to(self.device)
        self.critic_target.eval()
        self.actor_optimizer = _adam(self.actor.parameters(), config.learning_rate)
        self.critic_optimizer = _adam(self.critic.parameters(), config.learning_rate)
        self.alpha_optimizer = _adam([self.log_alpha], config.alpha_learning_rate)
        self.gradient_steps = 0
        self.transitions_seen = 0
        self.warm_started = False
        """Set by `agents.sac_warm.warm_start`: the actor and normaliser are a student's (the
        normaliser is then frozen and the actor acts from the first transition)."""
        self.bc_actor: nn.Module | None = None
        """The warm-start student's actor, frozen (the behaviour-cloning target), or None."""

    @property
    def actor_learning(self) -> bool:
        """Whether the actor and α learn yet (`learning_starts` + `actor_delay` transitions
        seen)."""
        return self.transitions_seen >= self.config.learning_starts + self.config.actor_delay

    def bc_weight(self) -> float:
        """The behaviour-cloning weight now (`SACConfig.bc_weight`, `bc_decay`): 0 without a
        warm-start student."""
        cfg = self.config
        if self.bc_actor is None or cfg.bc_weight == 0.0:
            return 0.0
        if cfg.bc_decay == 0:
            return cfg.bc_weight
        learned = self.transitions_seen - cfg.learning_starts - cfg.actor_delay
        return cfg.bc_weight * min(1.0, max(0.0, 1.0 - learned / cfg.bc_decay))

    def _modules(self) -> tuple[nn.Module, ...]:
        extra = () if self.actor_average is None else (self.actor_average,)
        return (self.normalizer, self.latent_normalizer, self.actor, self.critic,
                self.critic_target, *extra)

    @property
    def policy_actor(self) -> nn.Module:
        """The actor that acts outside training: the Polyak average when
        `config.actor_polyak` > 0, else the online actor."""
        return self.actor if self.actor_average is None else self.actor_average

    def critic_input(self, obs_normalised: torch.Tensor,
                     latent: torch.Tensor | None) -> torch.Tensor:
        """The critics' input: the normalised observation, and with an asymmetric critic the
        normalised raw latent state (B, n_latent) after it."""
        if not self.n_latent:
            return obs_normalised
        if latent is None:
            raise ValueError("this agent's critic needs the latent state (n_latent "
                             f"{self.n_latent}); the batch has none")
        return torch.cat([obs_normalised, self.latent_normalizer(latent)], dim=-1)

    @property
    def alpha(self) -> float:
        """Current entropy temperature α."""
        return float(self.log_alpha.detach().exp())

    # -- Policy protocol ------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Start an episode (the policy keeps no per-episode state); reseed its sampler."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Today's action per athlete (class docstring): obs (N, 48), mask (N, 6) → (N,)."""
        o, m = check_batch(obs, mask, self.n_features)
        probs = self.action_probabilities(o, m)
        if self.deterministic:
            return masked_choice(probs, m)
        return masked_sample(probs, m, self._rng)

    @torch.no_grad()
    def action_probabilities(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """π(a|s) restricted to the mask, (N, 6) float64 (rows sum to 1; eval mode)."""
        o = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        m = torch.as_tensor(np.asarray(mask, dtype=bool), device=self.device)
        actor = self.policy_actor
        actor.eval()
        logp = masked_log_probs(actor(self.normalizer(o)), m)
        return logp.exp().double().cpu().numpy()

    @torch.no_grad()
    def diagnostics(self, obs: np.ndarray, mask: np.ndarray,
                    latent: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(policy entropy, Q1/Q2 gap) per observation, each (N,) float64, in eval mode.
        An asymmetric critic needs the latent state (N, n_latent) for the gap; without it
        (deployment) the gap is NaN.

        Entropy H(π(·|s)) in nats of the masked policy (seed §6.1: should fall but not collapse).
        Q-gap Σ_a π(a|s)·|Q_1(s, a) − Q_2(s, a)|, reward units: the twin critics' disagreement
        on the actions the policy takes (seed §6.1: should stay small).
        """
        o, m = check_batch(obs, mask, self.n_features)
        ot = self.normalizer(torch.as_tensor(o, dtype=torch.float32, device=self.device))
        mt = torch.as_tensor(m, device=self.device)
        actor = self.policy_actor
        actor.eval()
        self.critic.eval()
        logp = masked_log_probs(actor(ot), mt)
        p = logp.exp()
        entropy = -(p * logp).sum(-1)
        if self.n_latent and latent is None:
            return entropy.double().cpu().numpy(), np.full(len(o), np.nan)
        lt = None if latent is None else torch.as_tensor(np.asarray(latent, np.float32),
                                                         device=self.device)
        q = self.critic(self.critic_input(ot, lt))
        gap = (p * (q[0] - q[1]).abs()).sum(-1)
        return entropy.double().cpu().numpy(), gap.double().cpu().numpy()

    # -- learning -------------------------------------------------------------------------------
    def sample_actions(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Exploration actions for training: draws from π (eval mode, no dropout), (N,) on the
        agent's device; uses torch's current generator (seeded by `train_sac`)."""
        with torch.no_grad():
            self.actor.eval()
            logp = masked_log_probs(self.actor(self.normalizer(obs)), mask)
            return torch.multinomial(logp.exp(), 1).squeeze(-1)

    @torch.no_grad()
    def _soft_target(self, batch: Batch, next_obs: torch.Tensor, next_logp: torch.Tensor,
                     alpha: torch.Tensor) -> torch.Tensor:
        """y = R·scale + γ^k (1 − d) Σ_a π(a|s')[min_i Q̄_i(s', a) − α log π(a|s')], with π
        and the sum restricted to the next state's mask (R, s', γ^k(1 − d) as stored: k-step);
        `next_obs` normalised, `next_logp` the masked log-policy at s'."""
        cfg = self.config
        q_all = self.critic_target(self.critic_input(next_obs, batch.next_latent))
        if q_all.shape[0] > 2:  # an ensemble: the minimum of a random pair (REDQ)
            q_all = q_all[torch.randperm(q_all.shape[0], device=q_all.device)[:2]]
        q_next = q_all.min(0).values
        soft = torch.where(batch.next_mask, q_next - alpha * next_logp, 0.0)
        v_next = (next_logp.exp() * soft).sum(-1)
        return cfg.reward_scale * batch.reward + batch.discount * v_next

    def soft_target(self, batch: Batch) -> torch.Tensor:
        """The critics' regression target of `batch` (B,), in eval mode (for inspection and
        tests; `update` computes the same with the actor in training mode)."""
        with torch.no_grad():
            self.actor.eval()
            next_obs = self.normalizer(batch.next_obs)
            next_logp = masked_log_probs(self.actor(next_obs), batch.next_mask)
            return self._soft_target(batch, next_obs, next_logp, self.log_alpha.exp())

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step of critics, actor and temperature on `batch` (module docstring).
        Returns the step's scalars as 0-d tensors (no device sync)."""
        cfg = self.config
        self.actor.train()
        self.critic.train()
        obs = self.normalizer(batch.obs)
        next_obs = self.normalizer(batch.next_obs)
        alpha = self.log_alpha.detach().exp()
        # One actor forward for s and s' (the s' half only feeds the detached target).
        logits = self.actor(torch.cat([obs, next_obs]))
        logp_all = masked_log_probs(logits, torch.cat([batch.mask, batch.next_mask]))
        logp, next_logp = logp_all[: obs.shape[0]], logp_all[obs.shape[0]:].detach()
        y = self._soft_target(batch, next_obs, next_logp, alpha)
        q = self.critic(self.critic_input(obs, batch.latent))          # (2, B, A)
        k = q.shape[0]
        q_taken = q.gather(-1, batch.action.view(1, -1, 1).expand(k, -1, 1)).squeeze(-1)
        critic_loss = 0.5 * F.mse_loss(q_taken, y.expand(k, -1), reduction="none").mean(1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm, foreach=True)
        self.critic_optimizer.step()

        # the actor follows the twins' minimum, or an ensemble's mean (REDQ)
        q_min = q.detach().min(0).values if k == 2 else q.detach().mean(0)
        p = logp.exp()
        inner = torch.where(batch.mask, alpha * logp - q_min, 0.0)
        actor_loss = (p * inner).sum(-1).mean()
        entropy = -(p.detach() * torch.where(batch.mask, logp.detach(), 0.0)).sum(-1)
        alpha_loss = (self.log_alpha * (entropy - target_entropy(batch.mask,
                                                                cfg.target_entropy_scale))).mean()
        bc_weight = self.bc_weight()
        bc_loss = torch.zeros((), device=obs.device)
        if self.actor_learning:
            if bc_weight > 0.0:  # cross-entropy against the frozen student's choice
                with torch.no_grad():
                    self.bc_actor.eval()
                    target = masked_log_probs(self.bc_actor(obs), batch.mask).argmax(-1)
                bc_loss = F.nll_loss(logp, target)
                actor_loss = actor_loss + bc_weight * bc_loss
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.max_grad_norm, foreach=True)
            self.actor_optimizer.step()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()

        with torch.no_grad():
            torch._foreach_lerp_(list(self.critic_target.parameters()),
                                 list(self.critic.parameters()), cfg.tau)
            if self.actor_average is not None and self.actor_learning:
                torch._foreach_lerp_(list(self.actor_average.parameters()),
                                     list(self.actor.parameters()), cfg.actor_polyak)
        self.gradient_steps += 1
        qd = q.detach()
        return {"loss/critic": critic_loss.detach(), "loss/actor": actor_loss.detach(),
                "loss/alpha": alpha_loss.detach(), "alpha": alpha,
                "policy/entropy": entropy.mean(), "loss/bc": bc_loss.detach(),
                "bc_weight": bc_weight,
                "q/mean": (p.detach() * torch.where(batch.mask, q_min, 0.0)).sum(-1).mean(),
                "q/gap": (p.detach() * (qd[0] - qd[1]).abs()).sum(-1).mean()}

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write `config.json` and `weights.pt` (state dicts only) into `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"format": SAC_FORMAT, "version": SAC_VERSION, "name": self.name,
                "n_features": self.n_features, "n_actions": self.n_actions,
                "n_latent": self.n_latent,
                "gradient_steps": self.gradient_steps,
                "transitions_seen": self.transitions_seen, "config": asdict(self.config)}
        state = {"normalizer": self.normalizer.state_dict(),
                 "latent_normalizer": self.latent_normalizer.state_dict(),
                 "actor": self.actor.state_dict(),
                 "critic": self.critic.state_dict(),
                 "critic_target": self.critic_target.state_dict(),
                 "log_alpha": self.log_alpha.detach().cpu(),
                 "actor_optimizer": self.actor_optimizer.state_dict(),
                 "critic_optimizer": self.critic_optimizer.state_dict(),
                 "alpha_optimizer": self.alpha_optimizer.state_dict()}
        if self.actor_average is not None:
            state["actor_average"] = self.actor_average.state_dict()
        tmp = d / "weights.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(d / "weights.pt")
        (d / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str = "cpu") -> DiscreteSAC:
        """The agent saved by `save` (weights read with `weights_only=True`), in eval mode."""

        d = Path(directory)
        config_path, weights_path = d / "config.json", d / "weights.pt"
        for path in (config_path, weights_path):
            if not path.is_file():
                raise ValueError(f"{path} is missing: not a DiscreteSAC checkpoint")
        meta = read_settings(config_path)
        if meta.get("format") != SAC_FORMAT:
            raise CheckpointError(config_path, f"not a {SAC_FORMAT} checkpoint "
                                         f"(format {str(meta.get('format'))[:60]!r})")
        version = meta.get("version")
        if version not in (1, SAC_VERSION):
            raise CheckpointError(config_path, f"checkpoint version {str(version)[:20]} is not "
                                               f"a supported one (1, {SAC_VERSION})")
        values = dict(required_field(meta, "config", dict, config_path))
        check_hidden_sizes(values.get("hidden_sizes"), config_path, "config.hidden_sizes")
        values.setdefault("actor_polyak", 0.0)  # written before the averaged actor existed
        values.setdefault("tests_every", 0)  # written before the tested SAC existed
        if version == 1:  # before issue 20: one learning rate, critic dropout = actor's
            values = {**_VERSION_1_DEFAULTS, "critic_dropout": values.get("dropout", 0.2),
                      "alpha_learning_rate": values.get("learning_rate", 3e-4), **values}
        try:
            config = config_from_dict(SACConfig, values)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(config_path, f"field 'config': {exc}") from None
        n_features = check_count(meta.get("n_features"), config_path, "n_features")
        n_actions = check_count(meta.get("n_actions"), config_path, "n_actions", limit=64)
        n_latent = meta.get("n_latent", 0)
        if n_latent != 0:  # an asymmetric critic's training-only inputs
            n_latent = check_count(n_latent, config_path, "n_latent")
        name = meta.get("name", "sac")
        if not isinstance(name, str):
            raise CheckpointError(config_path, "field 'name' must be a string")
        agent = cls(config, n_features=n_features, n_actions=n_actions, n_latent=n_latent,
                    device=device, name=name)
        state = tensor_dict_of_states(read_weights(weights_path, agent.device), weights_path)
        load_module_state(agent.normalizer, state["normalizer"], weights_path,
                          "the normaliser's statistics")
        if "latent_normalizer" in state:
            load_module_state(agent.latent_normalizer, state["latent_normalizer"], weights_path,
                              "the critic's latent normaliser")
        load_module_state(agent.actor, state["actor"], weights_path, "the actor's weights")
        if agent.actor_average is not None:
            if "actor_average" not in state:
                raise CheckpointError(weights_path, "key 'actor_average' is missing (the "
                                                    "config has actor_polyak > 0)")
            load_module_state(agent.actor_average, state["actor_average"], weights_path,
                              "the averaged actor's weights")
        load_module_state(agent.critic, state["critic"], weights_path, "the critics' weights")
        load_module_state(agent.critic_target, state["critic_target"], weights_path,
                          "the target critics' weights")
        log_alpha = state["log_alpha"]
        if (not isinstance(log_alpha, torch.Tensor) or log_alpha.shape != agent.log_alpha.shape
                or not torch.isfinite(log_alpha).all()):
            raise CheckpointError(weights_path, "'log_alpha' must be one finite number")
        with torch.no_grad():
            agent.log_alpha.copy_(log_alpha.to(agent.device))
        try:
            agent.actor_optimizer.load_state_dict(state["actor_optimizer"])
            agent.critic_optimizer.load_state_dict(state["critic_optimizer"])
            agent.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(weights_path, f"the optimisers' states do not fit the networks "
                                          f"({str(exc)[:200]})") from None
        for key in ("gradient_steps", "transitions_seen"):
            value = meta.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise CheckpointError(config_path, f"field {key!r} must be an integer ≥ 0")
        agent.gradient_steps = int(meta.get("gradient_steps", 0))
        agent.transitions_seen = int(meta.get("transitions_seen", 0))
        agent.actor.eval()
        agent.critic.eval()
        return agent


def tensor_dict_of_states(value: Any, path: Path) -> dict[str, Any]:
    """The top level of a `DiscreteSAC` weights file: the keys `save` writes, each present."""

    keys = ("normalizer", "actor", "critic", "critic_target", "log_alpha", "actor_optimizer",
            "critic_optimizer", "alpha_optimizer")
    if not isinstance(value, dict):
        raise CheckpointError(path, f"expected a dict of state dicts, found {type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise CheckpointError(path, f"key {missing[0]!r} is missing: not a DiscreteSAC checkpoint")
    return value


# --------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------


@dataclass
class TrainingReport:
    """What one `train_sac` call did."""

    env_steps: int = 0
    """Transitions collected (batched-env steps × lanes)."""
    gradient_steps: int = 0
    wall_seconds: float = 0.0
    episode_returns: list[float] = field(default_factory=list)
    """Mean return over the lanes of each finished batch of episodes, in order."""
    last_metrics: dict[str, float] = field(default_factory=dict)
    learning_env_steps: int = 0
    """Transitions collected from the first gradient step on (the steady state)."""
    learning_seconds: float = 0.0
    """Wall time from the first gradient step on."""

    @property
    def env_steps_per_second(self) -> float:
        """Transitions per second over the whole call (warm-up included)."""
        return self.env_steps / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    @property
    def learning_env_steps_per_second(self) -> float:
        """Transitions per second while learning (gradient steps included)."""
        return (self.learning_env_steps / self.learning_seconds if self.learning_seconds > 0
                else float("nan"))


def _terminal_transition(next_obs: np.ndarray, next_mask: np.ndarray, dones: np.ndarray,
                         infos: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """At episode ends (SB3 auto-reset) the real s' is in `infos[i]["terminal_observation"]`;
    its mask in `infos[i]["terminal_action_mask"]` when the env gives it, else all actions
    (one transition in 90, bootstrapped from the unrestricted policy). A time-limit end
    (`TimeLimit.truncated`) bootstraps; any other end is terminal. Returns (s', mask(s'),
    terminal float)."""
    real_next, real_mask = next_obs.copy(), next_mask.copy()
    terminal = np.zeros(len(dones), dtype=np.float32)
    for i in np.flatnonzero(dones):
        info = infos[i]
        if "terminal_observation" not in info:
            raise ValueError("the env ended an episode without infos[i]['terminal_observation'] "
                             "(SB3's VecEnv auto-reset convention)")
        real_next[i] = info["terminal_observation"]
        real_mask[i] = info.get("terminal_action_mask", True)
        terminal[i] = 0.0 if info.get("TimeLimit.truncated", False) else 1.0
    return real_next, real_mask, terminal


def _env_latents(env: Any, n_latent: int) -> np.ndarray:
    """The env's critic-only latent states (N, n_latent) float32 (`critic_states()`)."""
    if not callable(getattr(env, "critic_states", None)):
        raise ValueError(  # noqa: TRY004 (a setting the user chose, not a programming error)
            "an asymmetric critic needs an env with critic_states() (the simulator's latent "
            "state, training only); for other envs build the agent with n_latent=0 "
            "(SACConfig(asymmetric_critic=False) in agents.training)")
    lat = np.asarray(env.critic_states(), dtype=np.float32)
    if lat.shape != (env.num_envs, n_latent) or not np.isfinite(lat).all():
        raise ValueError(f"env.critic_states() must give finite ({env.num_envs}, {n_latent}) "
                         f"values, got {lat.shape}")
    return lat


def _terminal_latents(next_latent: np.ndarray, dones: np.ndarray,
                      infos: list[dict[str, Any]]) -> np.ndarray:
    """The latent state of s' with the judging day's at episode ends (auto-reset: kept in
    `infos[i]["terminal_critic_state"]`, as the terminal observation is)."""
    real = next_latent.copy()
    for i in np.flatnonzero(dones):
        if "terminal_critic_state" not in infos[i]:
            raise ValueError("the env ended an episode without "
                             "infos[i]['terminal_critic_state'] (asymmetric critic)")
        real[i] = infos[i]["terminal_critic_state"]
    return real


def _env_masks(env: Any) -> np.ndarray:
    masks = np.asarray(env.action_masks(), dtype=bool)
    if masks.shape != (env.num_envs, N_ACTIONS):
        raise ValueError(f"env.action_masks() must give ({env.num_envs}, {N_ACTIONS}) booleans, "
                         f"got {masks.shape}")
    return masks


def train_sac(agent: DiscreteSAC, env: Any, total_steps: int, *, seed: int = 0,
              writer: Any | None = None, progress: bool = True, log_every: int = 200,
              on_episode_end: Callable[[int], None] | None = None,
              max_seconds: float | None = None) -> TrainingReport:
    """Train `agent` on a discrete, masked SB3 `VecEnv` for `total_steps` transitions.

    `env` has `Discrete(6)` actions, `action_masks() -> (N, 6)` and SB3's auto-reset; each env
    step adds N transitions to the agent's replay buffer (created on the agent's device) and
    the agent takes `replay_ratio · N` gradient steps (fractions carried over). The first
    `learning_starts` transitions use uniform masked-random actions (a warm-started
    agent's actor acts from the first one, `agents.sac_warm`). `writer` (a TensorBoard
    `SummaryWriter`) gets the training scalars every `log_every` gradient steps and the mean
    episode return whenever the lanes finish an episode; a tqdm bar shows progress.
    `on_episode_end(env_steps)` is called after each finished batch of episodes (checkpoints).
    `max_seconds` stops the loop early after that much wall time (benchmarks). An agent
    with `n_latent` > 0 (asymmetric critic) needs `env.critic_states() -> (N, n_latent)` and,
    at episode ends, `infos[i]["terminal_critic_state"]`; they go into the replay buffer
    beside the observations and only the critics read them. Deterministic
    for a given `seed` on the CPU; torch's global random state is left as it was.
    """
    from tqdm.auto import tqdm

    if total_steps < 1:
        raise ValueError(f"total_steps must be ≥ 1, got {total_steps}")
    n = int(env.num_envs)
    cfg, dev = agent.config, agent.device
    if n > cfg.buffer_size:
        raise ValueError(f"{n} lanes do not fit a replay buffer of {cfg.buffer_size}")
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    buffer = ReplayBuffer(cfg.buffer_size, agent.n_features, agent.n_actions, dev,
                          n_latent=agent.n_latent)
    returns = NStepReturns(cfg.n_step, cfg.gamma)
    sampler = torch.Generator(device=dev)
    sampler.manual_seed(seed)
    report = TrainingReport()
    credit = 0.0
    started = time.perf_counter()
    metrics_sum: dict[str, torch.Tensor | float] = {}
    metrics_count = 0
    learn_started: float | None = None
    learn_steps_before = 0
    gpus = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus), \
            tqdm(total=total_steps, unit="step", disable=not progress, desc="SAC") as bar:
        torch.manual_seed(seed)
        obs = np.asarray(env.reset(), dtype=np.float32)
        mask = _env_masks(env)
        latent = _env_latents(env, agent.n_latent) if agent.n_latent else None
        while report.env_steps < total_steps:
            obs_t = torch.as_tensor(obs, device=dev)
            mask_t = torch.as_tensor(mask, device=dev)
            if not np.isfinite(obs).all():
                raise ValueError("the env returned a non-finite observation")
            if not agent.warm_started:  # a student's normaliser stays as it was trained
                agent.normalizer.update(obs_t)
            latent_t = next_latent_t = None
            if latent is not None:
                latent_t = torch.as_tensor(latent, device=dev)
                agent.latent_normalizer.update(latent_t)
            if agent.transitions_seen < cfg.learning_starts and not agent.warm_started:
                actions = masked_sample(mask.astype(float), mask, rng)
            else:
                actions = agent.sample_actions(obs_t, mask_t).cpu().numpy()
            next_obs, rewards, dones, infos = env.step(actions)
            next_obs = np.asarray(next_obs, dtype=np.float32)
            next_mask = _env_masks(env)
            real_next, real_mask, terminal = _terminal_transition(next_obs, next_mask,
                                                                  np.asarray(dones), infos)
            next_latent = None
            if latent is not None:
                next_latent = _env_latents(env, agent.n_latent)
                next_latent_t = torch.as_tensor(
                    _terminal_latents(next_latent, np.asarray(dones), infos), device=dev)
            for transition in returns.push(
                    obs_t, torch.as_tensor(actions, device=dev), mask_t,
                    np.asarray(rewards, dtype=np.float64), torch.as_tensor(real_next, device=dev),
                    torch.as_tensor(real_mask, device=dev), terminal, np.asarray(dones, bool),
                    latent_t, next_latent_t):
                buffer.add(*transition)
            agent.transitions_seen += n
            report.env_steps += n
            if agent.transitions_seen >= cfg.learning_starts and buffer.size >= cfg.batch_size:
                if learn_started is None:
                    learn_started = time.perf_counter()
                    learn_steps_before = report.env_steps - n
                credit += n * cfg.replay_ratio
                while credit >= 1.0:
                    credit -= 1.0
                    step_metrics = agent.update(buffer.sample(cfg.batch_size, sampler))
                    for k, v in step_metrics.items():
                        metrics_sum[k] = metrics_sum.get(k, 0.0) + v
                    metrics_count += 1
                    report.gradient_steps += 1
                    if metrics_count >= log_every:
                        report.last_metrics = {k: float(v) / metrics_count
                                               for k, v in metrics_sum.items()}
                        _log_scalars(writer, report.last_metrics, agent.transitions_seen)
                        metrics_sum, metrics_count = {}, 0
            if np.any(dones):
                episode_return = float(np.mean([infos[i]["episode"]["r"]
                                                for i in np.flatnonzero(dones)
                                                if "episode" in infos[i]] or [np.nan]))
                report.episode_returns.append(episode_return)
                if writer is not None:
                    writer.add_scalar("episode/return", episode_return, agent.transitions_seen)
                    writer.add_scalar("time/env_steps_per_s", report.env_steps
                                      / (time.perf_counter() - started), agent.transitions_seen)
                if on_episode_end is not None:
                    on_episode_end(report.env_steps)
                bar.set_postfix(ret=f"{episode_return:.3g}", alpha=f"{agent.alpha:.3g}")
            obs, mask, latent = next_obs, next_mask, next_latent
            bar.update(n)
            if max_seconds is not None and time.perf_counter() - started >= max_seconds:
                break
    finished = time.perf_counter()
    report.wall_seconds = finished - started
    if learn_started is not None:
        report.learning_seconds = finished - learn_started
        report.learning_env_steps = report.env_steps - learn_steps_before
    if metrics_count:
        report.last_metrics = {k: float(v) / metrics_count for k, v in metrics_sum.items()}
    return report


def _log_scalars(writer: Any | None, scalars: dict[str, float], step: int) -> None:
    if writer is None:
        return
    for k, v in scalars.items():
        writer.add_scalar(k, v, step)
