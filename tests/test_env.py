"""PeriodizationEnv and the batched env: API checkers, determinism, batched = single, safety."""

from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from physiology_model.data.table import ACTIONS
from physiology_model.features.batch import FEATURE_NAMES
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.constraints import consecutive_hard_days
from simulator.env import BatchedPeriodizationEnv, EnvConfig, PeriodizationEnv, Simulation

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "shipped"
SHORT = EnvConfig(episode_days=20, warmup_days=10)


@pytest.fixture(scope="module")
def cohort():
    return generate_cohort(WorldModel.load(MODEL_DIR), 12, seed=11)


def test_gymnasium_and_sb3_checkers_pass(cohort):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    check_env(PeriodizationEnv(cohort, SHORT), skip_render_check=True)
    sb3_check(PeriodizationEnv(cohort, SHORT), warn=True)
    check_env(PeriodizationEnv(cohort, EnvConfig(episode_days=20, warmup_days=10,
                                                 action_type="continuous")),
              skip_render_check=True)


def test_registered_and_makeable():
    import simulator  # noqa: F401  (registers the id)

    assert "Periodization-v0" in gym.registry
    env = gym.make("Periodization-v0")
    obs, info = env.reset(seed=0)
    assert obs.shape == (len(FEATURE_NAMES),) and "true_params" in info
    env.close()


def _rollout(env: PeriodizationEnv, seed: int, actions: np.ndarray):
    obs, info = env.reset(seed=seed)
    out = [obs]
    rewards = []
    for a in actions:
        obs, r, term, _trunc, info = env.step(int(a))
        out.append(obs)
        rewards.append(r)
        if term:
            break
    return np.array(out), np.array(rewards), info


def test_two_envs_with_one_seed_give_one_rollout(cohort):
    actions = np.random.default_rng(0).integers(0, 6, size=20)
    a = _rollout(PeriodizationEnv(cohort, SHORT), 7, actions)
    b = _rollout(PeriodizationEnv(cohort, SHORT), 7, actions)
    c = _rollout(PeriodizationEnv(cohort, SHORT), 8, actions)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[2]["episode_summary"]["days"] == 20


def test_batched_env_matches_single_envs_step_for_step(cohort):
    n = 5
    batched = BatchedPeriodizationEnv(cohort, n, SHORT, seed=3)
    singles = [PeriodizationEnv(cohort, SHORT, lane=i) for i in range(n)]
    obs_b = batched.reset()
    obs_s = np.stack([e.reset(seed=3)[0] for e in singles])
    np.testing.assert_allclose(obs_b, obs_s, rtol=0, atol=1e-6)
    rng = np.random.default_rng(1)
    for day in range(SHORT.episode_days):
        actions = rng.integers(0, 6, size=n)
        np.testing.assert_array_equal(batched.action_masks(),
                                      np.stack([e.action_masks() for e in singles]))
        obs_b, r_b, done_b, infos = batched.step(actions)
        steps = [e.step(int(a)) for e, a in zip(singles, actions)]
        r_s = np.array([s[1] for s in steps])
        np.testing.assert_allclose(r_b, r_s, rtol=1e-5, atol=1e-5)
        if day < SHORT.episode_days - 1:
            np.testing.assert_allclose(obs_b, np.stack([s[0] for s in steps]), atol=1e-5)
        else:  # SB3 auto-reset: the last observation is kept in the infos
            assert done_b.all() and all(s[2] for s in steps)
            term = np.stack([i["terminal_observation"] for i in infos])
            np.testing.assert_allclose(term, np.stack([s[0] for s in steps]), atol=1e-5)
            assert "episode" in infos[0]
            np.testing.assert_array_equal(np.stack([i["terminal_action_mask"] for i in infos]),
                                          np.stack([e.action_masks() for e in singles]))


def test_continuous_actions_map_to_sessions_and_respect_the_mask(cohort):
    sim = Simulation(cohort, 12, EnvConfig(episode_days=30, warmup_days=10,
                                           action_type="continuous"))
    sim.reset(0)
    for _ in range(30):
        sim.step(np.tile([1.0, 1.0], (12, 1)))  # 120 min at 95 % HRmax: HIIT every day
        assert sim.last_executed.max() <= ACTIONS.index("hiit")
    hist = sim.history.array()
    assert consecutive_hard_days(hist, sim.config.safety).max() <= 3
    assert sim.stats["attempted_violations"].sum() > 0
    assert sim.stats["executed_violations"].sum() == 0


def test_a_continuous_session_lasts_no_longer_than_the_seed_prescribes():
    """120 min asked at every intensity: each zone's session is cut to the seed's longest
    (§2.2), which keeps its zone; under 10 min is rest, without load."""
    from simulator.env import SESSION_MAX_MIN, continuous_session, session_class

    config = EnvConfig(action_type="continuous")
    intensity = np.linspace(-1.0, 1.0, 46)  # 50-95 % HRmax
    asked = np.column_stack([np.ones_like(intensity), intensity])
    session = continuous_session(asked, config)
    cls = session_class(session)
    longest = np.array([SESSION_MAX_MIN[ACTIONS[c]] for c in cls])
    np.testing.assert_array_equal(session[:, 0], longest)
    assert session[cls == ACTIONS.index("hiit"), 0].max() == 40.0
    np.testing.assert_array_equal(session_class(continuous_session(asked, replace(
        config, seed_session_lengths=False))), cls)  # the cut never changes the zone
    assert continuous_session(asked, replace(config, seed_session_lengths=False))[:, 0].min() \
        == 120.0
    short = continuous_session(np.array([[-0.9, 0.5]]), config)  # 6 min: rest
    assert session_class(short)[0] == ACTIONS.index("rest") and short[0, 0] == 0.0


def test_latents_and_parameters_only_in_info(cohort):
    env = PeriodizationEnv(cohort, SHORT)
    obs, info = env.reset(seed=0)
    assert set(info["latent"]) >= {"fitness", "fatigue", "performance"}
    assert info["true_params"]["tau_fat_days"] > 0
    assert obs.shape == (len(FEATURE_NAMES),)  # no latent leaks into the observation


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 31 - 1),
       requests=st.lists(st.integers(0, 5), min_size=40, max_size=40),
       adversarial=st.booleans())
def test_property_hard_rules_never_broken_and_values_physiological(cohort, seed, requests,
                                                                    adversarial):
    sim = Simulation(cohort, 12, EnvConfig(episode_days=40, warmup_days=10))
    sim.reset(seed)
    executed = []
    for req in requests:
        # adversarial: always ask for the hardest thing the rules forbid, if any
        if adversarial:
            forbidden = ~sim.mask
            action = np.where(forbidden[:, 4], 4, np.where(forbidden.any(1),
                                                            forbidden.argmax(1), 4))
        else:
            action = np.full(12, req)
        mask_before = sim.mask.copy()
        obs, reward, _ = sim.step(action)
        assert mask_before[np.arange(12), sim.last_executed].all()
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
        r = sim.reading
        for key, (lo, hi) in (("hrv_rmssd_ms", (3, 300)), ("rhr_bpm", (25, 120)),
                              ("recovery_pct", (0, 100))):
            v = r[key][np.isfinite(r[key])]
            assert ((v >= lo) & (v <= hi)).all(), key
        executed.append(sim.last_executed.copy())
    executed = np.array(executed).T  # (athletes, days)
    hard = np.isin(executed, [3, 4, 5])
    for row, hard_row in zip(executed, hard):
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, hard_row.astype(int), 0])))[::2]
        assert runs.size == 0 or runs.max() <= 3
        rest_days = np.flatnonzero(row == 0)
        gaps = np.diff(np.r_[-1, rest_days, len(row)])
        assert gaps.max() <= 7 or len(row) < 7
    assert sim.stats["executed_violations"].sum() == 0


def test_running_hazard_inputs_equal_the_hazard_module():
    from physiology_model.dynamics.hazard import acute_chronic_ratio, training_monotony
    from simulator.env import _acwr_and_monotony

    rng = np.random.default_rng(0)
    loads = rng.gamma(1.0, 1.0, size=(50, 40)) * (rng.random((50, 40)) < 0.7)
    loads[0, -7:] = 1.0   # a constant week: monotony capped
    loads[1, -7:] = 0.0   # no load: monotony 0
    for oldest in (0, 5, 27):
        ring = np.roll(loads[:, -28:], oldest, axis=1)
        acwr, mono = _acwr_and_monotony(ring, oldest)
        np.testing.assert_allclose(acwr, acute_chronic_ratio(loads)[:, -1], atol=1e-12)
        np.testing.assert_allclose(mono, training_monotony(loads[:, -7:])[:, -1], atol=1e-9)


def test_days_to_event_counts_down_to_the_judging_day_unless_the_athlete_has_an_event(cohort):
    from dataclasses import replace

    event = np.full(cohort.n, -1.0)
    event[0] = 7.0  # athlete 0 has a race on day 7
    own = replace(cohort, context={**cohort.context, "event_day": event})
    col = FEATURE_NAMES.index("days_to_event")

    def seen(config):
        sim = Simulation(own, own.n, config)
        rows = [sim.reset(3)[:, col]]
        for _ in range(5):
            rows.append(sim.step(np.zeros(own.n, dtype=int))[0][:, col])
        return np.array(rows)  # (day, athlete)

    days = np.arange(6.0)
    judged = seen(SHORT)
    np.testing.assert_array_equal(judged[:, 0], 7.0 - days)
    for athlete in range(1, own.n):
        np.testing.assert_array_equal(judged[:, athlete], SHORT.episode_days - days)
    hidden = seen(replace(SHORT, judge_day_is_event=False))
    np.testing.assert_array_equal(hidden[:, 0], 7.0 - days)
    assert np.all(hidden[:, 1:] == SHORT.features.days_to_event_cap)


def test_performance_test_is_the_latent_performance_with_the_stated_cv(cohort):
    sim = Simulation(cohort, 4, EnvConfig(episode_days=10))
    sim.reset(seed=3)
    truth = sim.performance()
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(sim.performance_test(0.0, rng), truth)
    ratios = np.log(np.stack([sim.performance_test(0.02, rng) for _ in range(4000)]) / truth)
    assert abs(ratios.std() - 0.02) < 0.001 and abs(ratios.mean()) < 0.001
    np.testing.assert_array_equal(sim.performance(), truth)  # a test changes nothing
    with pytest.raises(ValueError, match="cv"):
        sim.performance_test(-0.1, rng)
    # an overloaded athlete whose modelled P fell below 0 still gets a positive result
    sim.performance = lambda: np.array([-42.0, 0.5, 80.0, 100.0])
    np.testing.assert_array_equal(sim.performance_test(0.0, rng), [1.0, 1.0, 80.0, 100.0])


def _last_step(env_config, cohort, n=3):
    """The batched env's infos and the single envs' step results on the judging day."""
    batched = BatchedPeriodizationEnv(cohort, n, env_config, seed=5)
    singles = [PeriodizationEnv(cohort, env_config, lane=i) for i in range(n)]
    batched.reset()
    for e in singles:
        e.reset(seed=5)
    for _ in range(env_config.episode_days):
        _, _, dones, infos = batched.step(np.zeros(n, dtype=np.int64))
        steps = [e.step(0) for e in singles]
    assert dones.all()
    return infos, steps, batched


def test_judging_day_is_terminal_not_a_time_limit(cohort):
    infos, steps, _ = _last_step(SHORT, cohort)
    assert all(i["TimeLimit.truncated"] is False for i in infos)
    assert all(s[2] is True and s[3] is False for s in steps)  # terminated, not truncated
    old = EnvConfig(episode_days=20, warmup_days=10, judging_day_terminal=False)
    infos, steps, _ = _last_step(old, cohort)
    assert all(i["TimeLimit.truncated"] is True for i in infos)
    assert all(s[2] is False and s[3] is True for s in steps)


def test_sb3_replay_buffer_stores_the_judging_day_as_done(cohort):
    """SB3's off-policy buffers bootstrap when `TimeLimit.truncated`; the judging day must not."""
    from stable_baselines3.common.buffers import ReplayBuffer

    for terminal, expected in ((True, 1.0), (False, 0.0)):
        cfg = EnvConfig(episode_days=20, warmup_days=10, judging_day_terminal=terminal)
        env = BatchedPeriodizationEnv(cohort, 2, cfg, seed=1)
        buffer = ReplayBuffer(64, env.observation_space, env.action_space, n_envs=2,
                              handle_timeout_termination=True)
        obs = env.reset()
        for _ in range(cfg.episode_days):
            actions = np.zeros(2, dtype=np.int64)
            next_obs, rewards, dones, infos = env.step(actions)
            buffer.add(obs, next_obs, actions, rewards, dones, infos)
            obs = next_obs
        # SB3 samples done·(1 − timeout): the judging day's row (index 19) is done only when
        # it is terminal
        last = buffer._get_samples(np.array([19]))
        assert float(last.dones.max()) == expected


def test_maskable_ppo_does_not_bootstrap_past_the_judging_day(cohort):
    """sb3-contrib's rollout adds γ·V(terminal obs) to the last reward on a time-limit end;
    with the terminal judging day the stored last reward is the env's own."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    from agents.sac import RunningNormalizer
    from agents.sb3_agents import NormalizedVecEnv, PPOConfig, make_maskable_ppo

    class Recorder(VecEnvWrapper):
        def reset(self):
            self.rewards = []
            return self.venv.reset()

        def step_wait(self):
            out = self.venv.step_wait()
            self.rewards.append(np.asarray(out[1], dtype=np.float32).copy())
            return out

        def action_masks(self):
            return self.venv.action_masks()

    for terminal in (True, False):
        cfg = EnvConfig(episode_days=20, warmup_days=10, judging_day_terminal=terminal)
        rec = Recorder(BatchedPeriodizationEnv(cohort, 2, cfg, seed=1))
        venv = NormalizedVecEnv(rec, RunningNormalizer(len(FEATURE_NAMES)))
        model = make_maskable_ppo(venv, PPOConfig(n_steps=20, batch_size=40, n_epochs=1,
                                                  hidden_sizes=(8,)), seed=0)
        model.learn(total_timesteps=40)
        stored = model.rollout_buffer.rewards[-1]
        same = np.allclose(stored, rec.rewards[-1], atol=1e-6)
        assert same == terminal


def test_critic_state_is_training_only_and_kept_before_the_auto_reset(cohort):
    from simulator.env import CRITIC_STATE_NAMES

    infos, steps, batched = _last_step(SHORT, cohort)
    lat = batched.critic_states()
    assert lat.shape == (3, len(CRITIC_STATE_NAMES)) and np.isfinite(lat).all()
    days_left = CRITIC_STATE_NAMES.index("days_left")
    assert (lat[:, days_left] == SHORT.episode_days).all()          # the new episode's day 0
    terminal = np.stack([i["terminal_critic_state"] for i in infos])
    assert (terminal[:, days_left] == 0).all()                       # the judging day's
    np.testing.assert_allclose(terminal, np.stack([s[4]["critic_state"] for s in steps]),
                               rtol=1e-5, atol=1e-5)
    perf = CRITIC_STATE_NAMES.index("performance")
    np.testing.assert_allclose(terminal[:, perf], [s[4]["latent"]["performance"] for s in steps],
                               rtol=1e-5)
    assert batched.observation_space.shape == (len(FEATURE_NAMES),)  # the obs is unchanged


def test_expected_injury_cost_has_the_realised_cost_mean():
    """`RewardConfig(injury_cost="expected")` charges each night's onset hazard × the injured
    mornings it would bring: over many athletes its total is the realised injured mornings'
    (the same athletes, draws and actions; only the reward differs), and the dynamics are
    untouched."""
    from simulator.rewards import expected_injured_mornings

    lengths = 1 + np.floor(np.log(np.random.default_rng(0).uniform(size=200_000))
                           / np.log1p(-1 / 5.0))  # the simulator's episode lengths
    for k in (0, 1, 3, 10):
        assert expected_injured_mornings(5.0, k) == pytest.approx(
            np.minimum(lengths, k).mean(), rel=0.01, abs=1e-12)
    many = generate_cohort(WorldModel.load(MODEL_DIR), 400, seed=5)
    base = EnvConfig(episode_days=60, warmup_days=10)
    totals = {}
    for cost in ("realised", "expected"):
        cfg = replace(base, reward=replace(base.reward, injury_cost=cost, penalty_weight=1.0))
        sim = Simulation(many, many.n, cfg)
        sim.reset(3)
        rng = np.random.default_rng(1)
        injured = np.zeros(many.n)
        for _ in range(cfg.episode_days):
            sim.step(rng.integers(0, 6, many.n))
            injured += sim.injury_left > 0
        totals[cost] = (sim.stats["penalty"].sum(), injured.copy())
    realised_pen, injured_r = totals["realised"]
    expected_pen, injured_e = totals["expected"]
    np.testing.assert_array_equal(injured_r, injured_e)  # same athletes, same injuries
    injury_part = expected_pen - (realised_pen - 15.0 * injured_r.sum())
    assert injured_r.sum() > 300  # enough injured mornings to compare means
    assert injury_part == pytest.approx(15.0 * injured_r.sum(), rel=0.2)
