"""The masked discrete SAC (agents/sac.py): normaliser, masking, soft targets, learning on a
toy problem with a known best action, checkpoints."""

from __future__ import annotations

import math
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from agents.policy import Policy
from agents.sac import (
    Batch,
    DiscreteSAC,
    FastDropout,
    NStepReturns,
    ReplayBuffer,
    RunningNormalizer,
    SACConfig,
    config_from_dict,
    masked_log_probs,
    target_entropy,
    train_sac,
)

N_FEATURES, N_ACTIONS = 48, 6
SMALL = SACConfig(hidden_sizes=(64, 64), batch_size=128, buffer_size=20_000, learning_starts=256,
                  replay_ratio=0.125, learning_rate=1e-3, gamma=0.5, actor_polyak=0.05)
"""Small networks and a short horizon so that the toy problem is learned in seconds (in ~340
gradient steps: the acting actor averages over the last ~20 of them, not the default's ~200)."""


class ContextBanditVecEnv(VecEnv):
    """A toy batched env whose best action is known: 4 when feature 0 is above its mean, else
    1; reward 1 for the best action, 0 otherwise. Both are always allowed, every other action
    is allowed with probability ½ (so masks vary). Raw features have wildly different offsets
    and scales (10^-2 … 10^3), as the real ones do, so the agent must normalise. Episodes of
    `episode_len` steps end by time limit (SB3 auto-reset, terminal obs and mask in infos).
    Asking for a masked action fails the test."""

    def __init__(self, n_envs: int = 16, seed: int = 0, episode_len: int = 10) -> None:
        self.rng = np.random.default_rng(seed)
        shape_rng = np.random.default_rng(12345)  # the same feature scales for every seed
        self.offset = shape_rng.normal(0.0, 100.0, N_FEATURES)
        self.scale = 10.0 ** shape_rng.uniform(-2.0, 3.0, N_FEATURES)
        self.episode_len, self.t = episode_len, 0
        self.render_mode = None
        super().__init__(n_envs, gym.spaces.Box(-np.inf, np.inf, (N_FEATURES,), np.float32),
                         gym.spaces.Discrete(N_ACTIONS))

    def _draw(self) -> np.ndarray:
        z = self.rng.normal(size=(self.num_envs, N_FEATURES))
        self.best = np.where(z[:, 0] > 0, 4, 1)
        self.mask = self.rng.random((self.num_envs, N_ACTIONS)) < 0.5
        self.mask[:, [1, 4]] = True
        return (self.offset + self.scale * z).astype(np.float32)

    def reset(self) -> np.ndarray:
        self.t = 0
        return self._draw()

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions)

    def step_wait(self):
        assert self.mask[np.arange(self.num_envs), self.actions].all(), "masked action asked"
        reward = (self.actions == self.best).astype(np.float32)
        self.t += 1
        obs = self._draw()
        done = self.t >= self.episode_len
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        if done:
            for i, info in enumerate(infos):
                info.update({"terminal_observation": obs[i],
                             "terminal_action_mask": self.mask[i].copy(),
                             "TimeLimit.truncated": True,
                             "episode": {"r": 0.0, "l": self.episode_len}})
            self.t = 0
            obs = self._draw()
        return obs, reward, np.full(self.num_envs, done), infos

    def action_masks(self) -> np.ndarray:
        return self.mask.copy()

    def close(self) -> None:
        pass

    def get_attr(self, attr_name, indices=None):
        return [getattr(self, attr_name)] * self.num_envs

    def set_attr(self, attr_name, value, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name, *args, indices=None, **kwargs):
        raise AttributeError(method_name)

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained() -> tuple[DiscreteSAC, float]:
    """SAC trained on the toy env (a few seconds), and the training wall time."""
    agent = DiscreteSAC(SMALL, seed=0)
    started = time.perf_counter()
    train_sac(agent, ContextBanditVecEnv(16, seed=0), 3_000, seed=0, progress=False)
    return agent, time.perf_counter() - started


def _toy_batch(n: int = 1_000, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    env = ContextBanditVecEnv(n, seed=seed)
    obs = env.reset()
    return obs, env.action_masks(), env.best


# -- building blocks -------------------------------------------------------------------------


def test_normalizer_merges_batches_like_one_pass_and_ignores_constant_features() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(50.0, 7.0, size=(1_000, 3))
    x[:, 2] = 420.0  # a feature that never varies (a simulator's constant fill)
    norm = RunningNormalizer(3)
    for chunk in np.array_split(x, 7):
        norm.update(torch.as_tensor(chunk))
    np.testing.assert_allclose(norm.mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), x.var(0), rtol=1e-10)
    probe = torch.tensor([[57.0, 43.0, 9_999.0]])
    z = norm(probe).numpy()[0]
    np.testing.assert_allclose(z[:2], (probe.numpy()[0, :2] - x.mean(0)[:2]) / x.std(0)[:2],
                               rtol=1e-5)
    assert z[2] == 0.0  # weight 0, not a clipped ±10
    assert norm(torch.tensor([[1e9, -1e9, 0.0]])).abs().max() == norm.clip
    again = RunningNormalizer(3)
    again.load_state_dict(norm.state_dict())
    assert torch.equal(again(probe), norm(probe))


def test_masked_policy_gives_disallowed_actions_zero_probability_and_finite_gradients() -> None:
    logits = torch.randn(5, N_ACTIONS, requires_grad=True)
    mask = torch.tensor([[True, False, True, False, False, False]] * 4
                        + [[False, False, False, False, False, True]])
    logp = masked_log_probs(logits, mask)
    p = logp.exp()
    assert torch.all(p[~mask] == 0)
    torch.testing.assert_close(p.sum(-1), torch.ones(5))
    entropy = -(p * torch.where(mask, logp, 0.0)).sum(-1)
    entropy.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert entropy[4] == 0
    expected = 0.5 * torch.log(mask.sum(-1).float())
    torch.testing.assert_close(target_entropy(mask, 0.5), expected)


def test_fast_dropout_drops_about_p_and_keeps_the_mean() -> None:
    layer = FastDropout(0.2)
    x = torch.ones(400, 500)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        y = layer(x)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - 51 / 256) < 0.005
    assert abs(float(y.mean()) - 1.0) < 0.01
    assert torch.equal(layer.eval()(x), x)


def test_replay_buffer_wraps_around_and_keeps_the_newest() -> None:
    buf = ReplayBuffer(5, 2, N_ACTIONS, torch.device("cpu"))
    for start in (0, 3):
        obs = torch.arange(start, start + 3, dtype=torch.float32)[:, None].repeat(1, 2)
        action = torch.arange(start, start + 3)
        buf.add(obs, action, action.float(), obs + 1, torch.zeros(3),
                torch.ones(3, N_ACTIONS, dtype=torch.bool),
                torch.ones(3, N_ACTIONS, dtype=torch.bool))
    assert buf.size == 5 and buf.position == 1
    assert sorted(buf.action.tolist()) == [1, 2, 3, 4, 5]
    g = torch.Generator().manual_seed(0)
    batch = buf.sample(64, g)
    torch.testing.assert_close(batch.obs[:, 0], batch.action.float())
    torch.testing.assert_close(batch.next_obs[:, 0], batch.action.float() + 1)


def test_soft_target_uses_the_next_states_mask_and_the_minimum_of_the_twin_targets() -> None:
    agent = DiscreteSAC(SMALL, seed=3)
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.normal(size=(4, N_FEATURES)), dtype=torch.float32)
    agent.normalizer.update(obs)
    only = torch.zeros(4, N_ACTIONS, dtype=torch.bool)
    only[torch.arange(4), torch.tensor([0, 2, 5, 3])] = True  # one allowed action each
    discount = torch.tensor([0.5, 0.25, 0.125, 0.0])  # γ^k of k-step transitions; 0: terminal
    batch = Batch(obs, torch.zeros(4, dtype=torch.int64), torch.tensor([1.0, 0.0, -1.0, 2.0]),
                  obs, discount, torch.ones_like(only), only)
    y = agent.soft_target(batch)
    with torch.no_grad():
        q_next = agent.critic_target(agent.normalizer(obs)).min(0).values
    chosen = q_next[only]
    # One allowed action: π = 1 there, log π = 0, so V(s') = min Q̄(s', that action).
    torch.testing.assert_close(y, batch.reward + discount * chosen)
    assert y[3] == batch.reward[3]  # terminal: no bootstrap


def _push(returns: NStepReturns, step: int, reward: list[float], done: bool,
          terminal: bool = False) -> list[tuple[torch.Tensor, ...]]:
    n = len(reward)
    obs = torch.full((n, 2), float(step))
    mask = torch.ones(n, N_ACTIONS, dtype=torch.bool)
    return returns.push(obs, torch.full((n,), step), mask, np.asarray(reward), obs + 1, mask,
                        np.full(n, float(terminal)), np.full(n, done))


def test_n_step_returns_sum_discounted_rewards_and_cut_at_episode_ends() -> None:
    returns = NStepReturns(3, 0.5)
    assert _push(returns, 0, [1.0, 2.0], False) == []
    assert _push(returns, 1, [1.0, 2.0], False) == []
    (_, action, reward, next_obs, discount, *_), = _push(returns, 2, [1.0, 2.0], False)
    assert action.tolist() == [0, 0]                      # the window opened at step 0
    torch.testing.assert_close(reward, torch.tensor([1.75, 3.5]))  # r + γ r + γ² r
    torch.testing.assert_close(discount, torch.tensor([0.125, 0.125]))
    assert next_obs[:, 0].tolist() == [3.0, 3.0]         # s_{t+3}
    # A time-limit end closes every open window with its partial sum and bootstraps from the
    # terminal observation; a terminal end would not bootstrap.
    ended = _push(returns, 3, [4.0, 4.0], True)
    assert [int(t[1][0]) for t in ended] == [1, 2, 3]
    torch.testing.assert_close(torch.stack([t[2][0] for t in ended]),
                               torch.tensor([1.0 + 0.5 + 1.0, 1.0 + 2.0, 4.0]))
    torch.testing.assert_close(torch.stack([t[4][0] for t in ended]),
                               torch.tensor([0.125, 0.25, 0.5]))
    assert all(t[3][0, 0] == 4.0 for t in ended)
    assert _push(returns, 4, [1.0, 1.0], True, terminal=True)[0][4].tolist() == [0.0, 0.0]
    one_step = NStepReturns(1, 0.9)
    (_, _, r, _, d, *_), = _push(one_step, 0, [2.0], False)
    assert r.tolist() == [2.0] and d.tolist() == pytest.approx([0.9])


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="gamma"):
        SACConfig(gamma=1.01)
    with pytest.raises(ValueError, match="target_entropy_scale"):
        SACConfig(target_entropy_scale=1.0)
    with pytest.raises(ValueError, match="unknown SACConfig fields"):
        config_from_dict(SACConfig, {"learning_rate": 1e-3, "lr": 1e-3})


# -- the policy ------------------------------------------------------------------------------


def test_agent_is_a_policy_and_never_asks_for_a_masked_action() -> None:
    agent = DiscreteSAC(SMALL, seed=0)
    assert isinstance(agent, Policy)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(500, N_FEATURES))
    mask = rng.random((500, N_ACTIONS)) < 0.3
    mask[np.arange(500), rng.integers(0, N_ACTIONS, 500)] = True
    for deterministic in (True, False):
        agent.deterministic = deterministic
        actions = agent.act(obs, mask)
        assert actions.dtype == np.int64 and actions.shape == (500,)
        assert mask[np.arange(500), actions].all()
    agent.reset(7)
    first = agent.act(obs, mask)
    agent.reset(7)
    assert np.array_equal(agent.act(obs, mask), first)
    with pytest.raises(ValueError, match="shape"):
        agent.act(obs[:, :10], mask)


def test_sac_learns_the_best_action_of_the_toy_problem(trained) -> None:
    agent, seconds = trained
    obs, mask, best = _toy_batch()
    actions = agent.act(obs, mask)
    assert mask[np.arange(len(actions)), actions].all()
    accuracy = float(np.mean(actions == best))
    # Uniform over the allowed actions would be right about 1 time in 3.5.
    assert accuracy >= 0.9, f"accuracy {accuracy:.3f} after {seconds:.1f} s"


def test_diagnostics_give_entropy_within_the_mask_and_a_small_q_gap(trained) -> None:
    agent, _ = trained
    obs, mask, _ = _toy_batch(200)
    entropy, gap = agent.diagnostics(obs, mask)
    assert entropy.shape == gap.shape == (200,)
    assert np.all(entropy >= -1e-6)
    assert np.all(entropy <= np.log(mask.sum(1)) + 1e-6)
    # Trained on 0/1 rewards with γ 0.5 (values ≤ 2): the twins agree to well under a reward.
    assert np.all(gap >= 0) and float(gap.mean()) < 0.5
    single = np.zeros_like(mask)
    single[:, 3] = True
    entropy_single, _ = agent.diagnostics(obs, single)
    np.testing.assert_allclose(entropy_single, 0.0, atol=1e-6)


def test_training_is_deterministic_for_a_seed_and_leaves_torch_global_state_alone() -> None:
    config = SACConfig(hidden_sizes=(32,), batch_size=32, buffer_size=1_000, learning_starts=64,
                       replay_ratio=0.25)
    state_before = torch.random.get_rng_state()
    weights = []
    for _ in range(2):
        agent = DiscreteSAC(config, seed=5)
        train_sac(agent, ContextBanditVecEnv(8, seed=2), 400, seed=5, progress=False)
        weights.append(torch.cat([p.detach().flatten() for p in agent.actor.parameters()]))
    assert torch.equal(weights[0], weights[1])
    assert torch.equal(torch.random.get_rng_state(), state_before)


# -- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_round_trip_gives_identical_actions(trained, tmp_path) -> None:
    agent, _ = trained
    agent.save(tmp_path / "ckpt")
    loaded = DiscreteSAC.load(tmp_path / "ckpt")
    obs, mask, _ = _toy_batch(300, seed=9)
    assert np.array_equal(loaded.act(obs, mask), agent.act(obs, mask))
    np.testing.assert_array_equal(loaded.action_probabilities(obs, mask),
                                  agent.action_probabilities(obs, mask))
    for a, b in zip(loaded.diagnostics(obs, mask), agent.diagnostics(obs, mask)):
        np.testing.assert_array_equal(a, b)
    assert math.isclose(loaded.alpha, agent.alpha)
    assert loaded.config == agent.config and loaded.gradient_steps == agent.gradient_steps
    for deterministic in (False,):
        loaded.deterministic = agent.deterministic = deterministic
        loaded.reset(3)
        agent.reset(3)
        assert np.array_equal(loaded.act(obs, mask), agent.act(obs, mask))
    agent.deterministic = True


def test_loading_something_else_fails_clearly(tmp_path) -> None:
    with pytest.raises(ValueError, match="missing"):
        DiscreteSAC.load(tmp_path)
    DiscreteSAC(SMALL).save(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a"):
        DiscreteSAC.load(tmp_path)


# -- issue 20: the objective, the asymmetric critic, the temperature ---------------------------


class DelayedRewardVecEnv(ContextBanditVecEnv):
    """A toy whose only reward comes on the last day of a `days`-day episode (the judging
    day), whatever the actions: the observation is the one-hot day (feature `day`), so the
    judging day's observation is day 0's, a state the critic knows. The true value of day 0
    is γ^(days−1); a critic that bootstraps past the judging day (the old time-limit flag)
    adds the next episode's value and converges to γ^(days−1) / (1 − γ^days) instead. It also
    has `critic_states()`: the day as a number plus noise features, as the simulator's
    latent state would be."""

    def __init__(self, n_envs: int = 16, days: int = 4, truncate: bool = False,
                 n_latent: int = 3) -> None:
        super().__init__(n_envs, seed=0, episode_len=days)
        self.days, self.truncate, self.n_latent = days, truncate, n_latent

    def _draw(self) -> np.ndarray:
        self.mask = np.ones((self.num_envs, N_ACTIONS), dtype=bool)
        obs = np.zeros((self.num_envs, N_FEATURES), dtype=np.float32)
        obs[:, self.t % self.days] = 1.0
        return obs

    def critic_states(self) -> np.ndarray:
        lat = self.rng.normal(size=(self.num_envs, self.n_latent)).astype(np.float32)
        lat[:, 0] = self.t
        return lat

    def step_wait(self):
        self.t += 1
        reward = np.full(self.num_envs, float(self.t == self.days), dtype=np.float32)
        obs = self._draw()
        done = self.t >= self.days
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        if done:
            terminal_latent = self.critic_states()
            for i, info in enumerate(infos):
                info.update({"terminal_observation": obs[i],
                             "terminal_action_mask": self.mask[i].copy(),
                             "terminal_critic_state": terminal_latent[i],
                             "TimeLimit.truncated": self.truncate,
                             "episode": {"r": 1.0, "l": self.days}})
            self.t = 0
            obs = self._draw()
        return obs, reward, np.full(self.num_envs, done), infos


def _value_of_day0(truncate: bool, n_latent: int = 0) -> float:
    gamma = 0.9
    config = SACConfig(hidden_sizes=(32, 32), batch_size=64, buffer_size=4_000,
                       learning_starts=64, replay_ratio=0.5, learning_rate=3e-3, gamma=gamma,
                       n_step=1, initial_alpha=1e-6, alpha_learning_rate=1e-6, dropout=0.0,
                       tau=0.05)
    agent = DiscreteSAC(config, n_latent=n_latent, seed=0)
    env = DelayedRewardVecEnv(8, days=4, truncate=truncate, n_latent=max(n_latent, 1))
    # 2,000 transitions (~970 gradient steps) reach the plateau: day 0's value after 2,000 /
    # 3,000 / 6,000 is 0.729 / 0.729 / 0.727 terminal and 2.10 / 2.11 / 2.11 truncated (seeds
    # 0-2 agree to 0.005); after 1,000 the truncated one is still climbing (1.89)
    train_sac(agent, env, 2_000, seed=0, progress=False)
    obs = env.reset()
    lat = torch.as_tensor(env.critic_states()) if n_latent else None
    with torch.no_grad():
        agent.critic.eval()
        x = agent.critic_input(agent.normalizer(torch.as_tensor(obs)), lat)
        return float(agent.critic(x).min(0).values.mean())


def test_a_terminal_judging_day_gives_the_true_value_and_a_truncated_one_does_not() -> None:
    true_value = 0.9 ** 3                           # the reward 3 days on, nothing after
    bootstrapped = true_value / (1.0 - 0.9 ** 4)    # plus every later episode's
    terminal = _value_of_day0(truncate=False)
    truncated = _value_of_day0(truncate=True)
    assert abs(terminal - true_value) < 0.1, terminal
    assert abs(truncated - bootstrapped) < 0.4 and truncated > 1.5, truncated
    # the asymmetric critic learns the same (true) value from [obs, latent]
    assert abs(_value_of_day0(truncate=False, n_latent=3) - true_value) < 0.1


def test_the_actor_sees_only_the_observation_and_the_buffer_keeps_the_latent() -> None:
    config = SACConfig(hidden_sizes=(16,), batch_size=32, buffer_size=2_000, learning_starts=32,
                       replay_ratio=0.25)
    agent = DiscreteSAC(config, n_latent=3, seed=0)
    first_actor = next(m for m in agent.actor if isinstance(m, torch.nn.Linear))
    assert first_actor.in_features == N_FEATURES                  # deployable: obs only
    assert agent.critic.net[0].weight.shape[1] == N_FEATURES + 3  # critic: [obs, latent]
    env = DelayedRewardVecEnv(8, days=4, n_latent=3)
    train_sac(agent, env, 400, seed=0, progress=False)
    # acting needs no latent: act() takes (obs, mask) only, and the probabilities depend on
    # the observation alone
    obs, mask = env.reset(), env.action_masks()
    assert agent.act(obs, mask).shape == (8,)
    # the stored latent is the env's: column 0 is the day the transition started on,
    # the next latent's the day after (4 = the judging day, kept before the auto-reset)
    buffer = ReplayBuffer(100, N_FEATURES, N_ACTIONS, torch.device("cpu"), n_latent=3)
    returns = NStepReturns(1, 0.9)
    obs = env.reset()
    lat = env.critic_states()
    for _ in range(4):
        next_obs, rewards, dones, infos = env.step(np.zeros(8, dtype=np.int64))
        next_lat = env.critic_states()
        if dones.any():
            next_lat = np.stack([i["terminal_critic_state"] for i in infos])
        for tr in returns.push(torch.as_tensor(obs), torch.zeros(8, dtype=torch.int64),
                               torch.ones(8, N_ACTIONS, dtype=torch.bool), rewards,
                               torch.as_tensor(next_obs), torch.ones(8, N_ACTIONS, dtype=bool),
                               np.zeros(8), dones, torch.as_tensor(lat),
                               torch.as_tensor(next_lat)):
            buffer.add(*tr)
        obs, lat = next_obs, env.critic_states()
    assert buffer.size == 32
    assert sorted(set(buffer.latent[:32, 0].tolist())) == [0.0, 1.0, 2.0, 3.0]
    torch.testing.assert_close(buffer.next_latent[:32, 0], buffer.latent[:32, 0] + 1)
    batch = buffer.sample(16, torch.Generator().manual_seed(0))
    assert batch.latent.shape == batch.next_latent.shape == (16, 3)
    with pytest.raises(ValueError, match="latent"):
        buffer.add(*tr[:7])
    # a training env without critic_states() is refused clearly
    with pytest.raises(ValueError, match="critic_states"):
        train_sac(DiscreteSAC(config, n_latent=3), ContextBanditVecEnv(8), 64, progress=False)


def test_asymmetric_checkpoint_round_trip(tmp_path) -> None:
    config = SACConfig(hidden_sizes=(16,), batch_size=32, buffer_size=2_000, learning_starts=32,
                       replay_ratio=0.25)
    agent = DiscreteSAC(config, n_latent=3, seed=0)
    env = DelayedRewardVecEnv(8, days=4, n_latent=3)
    train_sac(agent, env, 400, seed=0, progress=False)
    agent.save(tmp_path)
    loaded = DiscreteSAC.load(tmp_path)
    assert loaded.n_latent == 3
    obs, mask, _ = _toy_batch(50)
    np.testing.assert_array_equal(loaded.action_probabilities(obs, mask),
                                  agent.action_probabilities(obs, mask))
    lat = np.random.default_rng(0).normal(size=(50, 3))
    np.testing.assert_array_equal(loaded.diagnostics(obs, mask, lat)[1],
                                  agent.diagnostics(obs, mask, lat)[1])
    assert np.isnan(loaded.diagnostics(obs, mask)[1]).all()   # deployed: no latent, no Q-gap


def test_temperature_and_dropout_defaults() -> None:
    cfg = SACConfig()
    assert (cfg.initial_alpha, cfg.alpha_learning_rate, cfg.target_entropy_scale) == (
        0.02, 1e-3, 0.2)
    assert cfg.critic_dropout == 0.0 and cfg.dropout == 0.2 and cfg.asymmetric_critic
    assert cfg.gamma == 1.0 and cfg.critic_layer_norm
    agent = DiscreteSAC(cfg)
    assert math.isclose(agent.alpha, 0.02, rel_tol=1e-6)
    assert agent.alpha_optimizer.param_groups[0]["lr"] == 1e-3
    assert agent.actor_optimizer.param_groups[0]["lr"] == cfg.learning_rate
    assert any(isinstance(m, FastDropout) for m in agent.actor.modules())
    assert not any(isinstance(m, FastDropout) for m in agent.critic.modules())
    assert any(isinstance(m, torch.nn.LayerNorm) for m in agent.critic.modules())
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in agent.actor.modules())
    old = DiscreteSAC(SACConfig(critic_dropout=0.2))
    assert any(isinstance(m, FastDropout) for m in old.critic.modules())
    mask = torch.ones(1, N_ACTIONS, dtype=torch.bool)
    assert float(target_entropy(mask, cfg.target_entropy_scale)) == pytest.approx(
        0.2 * math.log(N_ACTIONS))
    with pytest.raises(ValueError, match="alpha_learning_rate"):
        SACConfig(alpha_learning_rate=0.0)
    with pytest.raises(ValueError, match="critic_dropout"):
        SACConfig(critic_dropout=1.0)


def test_a_version_1_checkpoint_still_loads_with_its_own_settings(tmp_path) -> None:
    import json

    agent = DiscreteSAC(SACConfig(hidden_sizes=(16,), critic_dropout=0.2, gamma=0.99,
                                  asymmetric_critic=False, critic_layer_norm=False), seed=0)
    agent.save(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["version"] = 1
    del meta["n_latent"]
    for key in ("alpha_learning_rate", "critic_dropout", "asymmetric_critic",
                "critic_layer_norm", "tests_every"):
        del meta["config"][key]
    (tmp_path / "config.json").write_text(json.dumps(meta))
    loaded = DiscreteSAC.load(tmp_path)
    assert loaded.n_latent == 0 and loaded.config.critic_dropout == 0.2
    # written before the tested SAC (today's default) existed: it was the wearable one
    assert SACConfig().tests_every > 0 and loaded.config.tests_every == 0
    assert loaded.config.alpha_learning_rate == loaded.config.learning_rate
    assert not loaded.config.asymmetric_critic and loaded.config.gamma == 0.99
    obs, mask, _ = _toy_batch(20)
    np.testing.assert_array_equal(loaded.act(obs, mask), agent.act(obs, mask))
