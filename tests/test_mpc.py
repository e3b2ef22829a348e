"""The MPC planner and the oracle: the rollout model against the shared equations, legal plans,
the risk term, the warm start, determinism, and the planners against random training."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from agents.baselines import RandomPolicy
from agents.mpc import (
    AthleteBelief,
    CEMConfig,
    MPCConfig,
    MPCPlanner,
    OraclePlanner,
    PerformanceBlindOracle,
    oracle_start,
    performance_test_weights,
    sample_plans,
    shift_distribution,
)
from physiology_model.data.table import ACTIONS
from physiology_model.dynamics import banister
from physiology_model.dynamics.hazard import typical_hazard_params
from physiology_model.dynamics.observation import (
    channel_decays,
    observation_means,
    recovery_to_logit,
)
from physiology_model.dynamics.params import (
    LOAD_SCALE_TRIMP,
    PHI_SLOW_PARAMS,
    SLOW_SHARE_PARAMS,
    WEEKDAY_PARAMS,
    state_normaliser,
)
from physiology_model.dynamics.performance import (
    sample_performance_params,
    simulate_performance,
    typical_performance_params,
)
from physiology_model.model.world_model import WorldModel
from simulator.cohort import Cohort, generate_cohort
from simulator.constraints import (
    DEFAULT_SAFETY_CONFIG,
    REST,
    TRAINED_DAY,
    UNKNOWN_DAY,
    SafetyInputs,
    hard_mask,
)
from simulator.env import EnvConfig, Simulation
from simulator.observation import FEATURE_INDEX
from simulator.rollout import (
    ACTION_W,
    ObjectiveConfig,
    PreparedRollout,
    RolloutStart,
    draw_innovations,
    evaluate_sequences,
    history_mask_table,
    project_sequences,
)

HARD = np.isin(np.arange(6), [ACTIONS.index(a) for a in DEFAULT_SAFETY_CONFIG.hard_actions])
INJURY_OK = np.isin(np.arange(6), [ACTIONS.index(a) for a in DEFAULT_SAFETY_CONFIG.injury_allowed])


def _start(model: WorldModel, n: int = 3, s: int = 4, seed: int = 0, days_left: int = 10,
           injured: np.ndarray | None = None) -> RolloutStart:
    """A rollout start of n synthetic athletes with s population draws each, trained at
    their habitual load."""
    rng = np.random.default_rng(seed)
    draws = model.sample_athletes(n * s, rng)
    physiology = {k: np.asarray(v).reshape(n, s) for k, v in draws.items()}
    habitual = rng.uniform(0.5, 1.4, n)
    perf = sample_performance_params(n, rng, reference_load=habitual)
    perf = replace(perf, **{k: np.repeat(np.asarray(getattr(perf, k))[:, None], s, 1)
                            for k in ("fitness_gain", "fatigue_gain", "variable_fatigue_gain",
                                      "tau_fit_days", "tau_fat_days", "tau_gain_days",
                                      "baseline")})
    hazard = typical_hazard_params()
    hazard = replace(hazard, **{k: np.full((n, s), getattr(hazard, k)) for k in
                                ("intercept", "spike_coef", "low_recovery_coef",
                                 "monotony_coef")})
    state = banister.steady_morning_state(habitual[:, None], 0.2, channel_decays(physiology))
    perf_state = banister.steady_morning_state(habitual[:, None], 0.0, perf.decays())
    return RolloutStart(
        physiology=physiology, performance=perf, hazard=hazard, state=state,
        perf_state=perf_state, residual=rng.normal(0.0, 0.1, (n, s, 2)),
        load_ring=np.tile(habitual[:, None], (1, 28)),
        history=np.full((n, 6), UNKNOWN_DAY, dtype=np.int64),
        recovery_pct=np.full(n, 60.0), ln_hrv_baseline=physiology["mu_hrv"].mean(axis=1),
        ln_hrv_baseline_sd=np.full(n, 0.15), typical_recovery_pct=np.full((n, s), 60.0),
        injured_days=np.zeros(n, dtype=np.int64) if injured is None else injured,
        days_left=np.full(n, days_left, dtype=np.int64))


# --------------------------------------------------------------------------------------------
# the rollout model is the shared equations


@pytest.mark.parametrize("per_scenario", [False, True])
def test_rollout_performance_equals_simulate_performance(model, per_scenario):
    start = _start(model, days_left=8)
    draws = 1
    if per_scenario:  # 7 draws of the performance parameters (the other code path)
        draws = 7
        gains = start.performance.fitness_gain[:, :1] * np.linspace(0.5, 1.5, draws)[None, :]
        performance = replace(start.performance, **{
            k: np.repeat(np.asarray(v)[:, :1], draws, axis=1)
            for k, v in vars(start.performance).items() if np.ndim(v) == 2})
        start = replace(start, performance=replace(performance, fitness_gain=gains),
                        perf_state=np.repeat(start.perf_state[:, :1], draws, axis=1))
    plans = np.random.default_rng(1).integers(0, 6, (3, 5, 8))
    out = evaluate_sequences(start, plans, np.zeros((3, 4, 8, 4)), return_paths=True)
    for i in range(3):
        expected_delta = np.zeros(5)
        expected_path = np.zeros((5, 9))
        for d in range(draws):
            params = replace(start.performance, **{k: np.asarray(v)[i, d] for k, v in
                                                   vars(start.performance).items()
                                                   if np.ndim(v) == 2})
            for k in range(5):
                loads = np.append(ACTION_W[plans[i, k]], 0.0)  # P on morning 8 too
                expected = simulate_performance(loads, params, initial=start.perf_state[i, d])
                expected_path[k] += expected / draws
                expected_delta[k] += (expected[-1] - expected[0]) / draws
        # every scenario reads the mean over the performance draws
        for s in range(4):
            np.testing.assert_allclose(out.paths["performance"][i, s], expected_path,
                                       rtol=1e-10)
        # the episode ends with the plan: the objective's ΔP is the draws' mean P_8 − P_0
        np.testing.assert_allclose(out.delta_performance[i], expected_delta, rtol=1e-10)


def test_objective_beyond_the_plan_continues_at_the_optimal_steady_load(model):
    start = _start(model, days_left=30)
    plans = np.random.default_rng(2).integers(0, 6, (3, 4, 10))
    out = evaluate_sequences(start, plans, np.zeros((3, 4, 10, 4)))
    from simulator.rollout import continuation_load
    for i in range(3):
        params = replace(start.performance, **{k: np.asarray(v)[i, 0] for k, v in
                                               vars(start.performance).items()
                                               if np.ndim(v) == 2})
        tail = np.full(20, float(continuation_load(params)))
        for k in range(4):
            loads = np.concatenate([ACTION_W[plans[i, k]], tail, [0.0]])
            p = simulate_performance(loads, params, initial=start.perf_state[i, 0])
            assert out.delta_performance[i, k] == pytest.approx(p[30] - p[0], rel=1e-9)


def test_rollout_readings_equal_the_world_model_equations(model):
    start = _start(model, n=2, s=3)
    start = replace(start, residual=np.zeros((2, 3, 2)))
    plans = np.random.default_rng(3).integers(0, 6, (2, 4, 9))
    out = evaluate_sequences(start, plans, np.zeros((2, 3, 9, 4)), return_paths=True)
    from simulator.rollout import ACTION_U
    for i in range(2):
        p = {k: v[i] for k, v in start.physiology.items()}
        decays = channel_decays(p)
        for k in range(4):
            state = start.state[i]
            for h in range(9):
                state = banister.step_state(state, ACTION_W[plans[i, k, h]],
                                            ACTION_U[plans[i, k, h]], decays)
                lat = (state[:, :3] * state_normaliser(decays[:, :3]))[:, None, :]
                means = observation_means(p, lat)
                np.testing.assert_allclose(out.paths["ln_hrv"][i, :, k, h], means["hrv"][:, 0],
                                           rtol=1e-9)
                rec = 100.0 / (1.0 + np.exp(-means["recovery"][:, 0]))
                np.testing.assert_allclose(out.paths["recovery_pct"][i, :, k, h], rec,
                                           rtol=1e-9)


def _with_slow_noise(cohort: Cohort, share: float, phi_slow: float) -> Cohort:
    """The cohort with every signal's noise split into a slow component (share of the
    variance, coefficient) and the fast rest."""
    physiology = dict(cohort.physiology)
    for name in SLOW_SHARE_PARAMS:
        physiology[name] = np.full(cohort.n, share)
    for name in PHI_SLOW_PARAMS:
        physiology[name] = np.full(cohort.n, phi_slow)
    return replace(cohort, physiology=physiology)


@pytest.mark.parametrize("slow_share,weekly", [(0.0, False), (0.5, False), (0.0, True)])
def test_oracle_rollout_reproduces_the_simulator(model, cohort, slow_share, weekly):
    """Given the simulator's own next noise, the oracle's one-day rollout is the simulator's
    next morning: same ln HRV, recovery and performance (the planner and the env share every
    equation and its scaling), with or without a slow noise component and weekday offsets
    (the rollout reads today's weekday from the observation's calendar features)."""
    cohort = _with_slow_noise(cohort, slow_share, 0.9)
    if weekly:
        physiology = dict(cohort.physiology)
        for target, names in WEEKDAY_PARAMS.items():
            for day, name in enumerate(names):
                physiology[name] = np.full(cohort.n, (day - 3) * (0.02 if target == "hrv"
                                                                  else 0.1))
        cohort = replace(cohort, physiology=physiology)
    sim = Simulation(cohort, 16, EnvConfig(episode_days=30))
    obs = sim.reset(seed=4)
    policy = RandomPolicy()
    policy.reset(0)
    for _ in range(5):
        obs, _, _ = sim.step(policy.act(obs, sim.mask))
    view = sim.oracle_view()
    start = oracle_start(view, obs, 1)
    action = policy.act(obs, sim.mask)
    # the simulator's own pre-drawn innovations of today (fast, then slow components)
    e = sim.day_noise(sim.day)
    innovations = np.concatenate([e.fast[:, [0, 2]], e.slow[:, [0, 2]]], axis=1)
    innovations = innovations[:, None, None, :]
    sim.step(action)
    out = evaluate_sequences(start, action[:, None, None], innovations, return_paths=True)
    plain = (sim.injury_left == 0) & np.isfinite(sim.reading["hrv_rmssd_ms"]) \
        & (sim.reading["hrv_rmssd_ms"] > 3.0) & (sim.reading["hrv_rmssd_ms"] < 300.0)
    assert plain.sum() >= 10  # not ill, worn, inside the device's range
    np.testing.assert_allclose(out.paths["ln_hrv"][plain, 0, 0, 0],
                               np.log(sim.reading["hrv_rmssd_ms"][plain]), atol=1e-9)
    np.testing.assert_allclose(out.paths["recovery_pct"][plain, 0, 0, 0],
                               sim.reading["recovery_pct"][plain], atol=1e-7)
    np.testing.assert_allclose(out.paths["performance"][:, 0, 0, 1], sim.performance(),
                               rtol=1e-12)


def test_prepared_rollout_scores_like_a_fresh_one_and_checks_shapes(model):
    start = _start(model)
    eps = draw_innovations(3, 4, 7, np.random.default_rng(0), slow=start.has_slow_noise)
    plans = np.random.default_rng(4).integers(0, 6, (3, 6, 7))
    prepared = PreparedRollout(start, 7, eps)
    np.testing.assert_allclose(prepared.evaluate(plans).score,
                               evaluate_sequences(start, plans, eps).score)
    with pytest.raises(ValueError, match="actions must be integer plans"):
        prepared.evaluate(plans[:, :, :5])
    with pytest.raises(ValueError, match="innovations must have shape"):
        PreparedRollout(start, 7, eps[:, :, :3])
    with pytest.raises(ValueError, match="state must be"):
        replace(start, state=start.state[:, :, :3])
    with pytest.raises(ValueError, match="days_left"):
        replace(start, days_left=np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="lacks the parameters"):
        replace(start, physiology={k: v for k, v in start.physiology.items() if k != "a_fat"})


def test_cvar_premium_and_injury_cost(model):
    start = _start(model, s=8)
    eps = draw_innovations(3, 8, 10, np.random.default_rng(5), slow=start.has_slow_noise)
    plans = np.random.default_rng(6).integers(0, 6, (3, 8, 10))
    risky = evaluate_sequences(start, plans, eps)
    neutral = evaluate_sequences(start, plans, eps, ObjectiveConfig(risk_weight=0.0))
    assert np.all(risky.penalty_cvar >= risky.penalty - 1e-9)
    np.testing.assert_allclose(neutral.score, neutral.expected_return)
    assert np.all(risky.score <= neutral.score + 1e-12)
    assert np.any(risky.score < neutral.score - 1e-6)
    # an athlete already injured for the whole plan cannot start a new injury: no hazard cost
    injured = replace(start, injured_days=np.full(3, 10, dtype=np.int64))
    out = evaluate_sequences(injured, plans, eps, return_paths=True)
    assert np.all(out.paths["hazard"] == 0.0)


# --------------------------------------------------------------------------------------------
# legal plans


def test_history_table_is_the_hard_mask_of_the_actual_window():
    rng = np.random.default_rng(7)
    table = history_mask_table(DEFAULT_SAFETY_CONFIG)
    history = rng.choice([UNKNOWN_DAY, TRAINED_DAY, 0, 1, 2, 3, 4, 5], size=(4000, 6),
                         p=[0.05, 0.05, 0.1, 0.1, 0.2, 0.2, 0.15, 0.15]).astype(np.int64)
    injured = rng.random(4000) < 0.2
    n = len(history)
    inputs = SafetyInputs(np.full(n, 90.0), np.full(n, 90.0), np.full(n, 4.0),
                          np.full(n, np.nan), np.full(n, np.nan), np.full(n, 60.0),
                          injured.astype(float), history)
    from simulator.constraints import consecutive_hard_days, consecutive_non_rest_days
    looked_up = table[consecutive_hard_days(history), consecutive_non_rest_days(history),
                      injured.astype(int)]
    np.testing.assert_array_equal(looked_up, hard_mask(inputs).mask)


def test_projected_plans_obey_the_rules():
    rng = np.random.default_rng(8)
    n, k, horizon = 40, 16, 21
    history = rng.choice([UNKNOWN_DAY, 0, 2, 3, 4, 5], size=(n, 6)).astype(np.int64)
    history[:5] = ACTIONS.index("hiit")  # six hard days in a row: hard and rest rules fire
    injured = rng.integers(0, 4, n)
    # today's mask: the env's (history and injury rules) with some sessions also blocked
    inputs = SafetyInputs(np.full(n, 90.0), np.full(n, 90.0), np.full(n, 4.0),
                          np.full(n, np.nan), np.full(n, np.nan), np.full(n, 60.0),
                          (injured > 0).astype(float), history)
    mask = hard_mask(inputs).mask & (rng.random((n, 6)) < 0.7)
    mask[:, REST] = True
    plans = project_sequences(rng.integers(0, 6, (n, k, horizon)), history, mask, injured)
    assert plans.shape == (n, k, horizon)
    assert np.all(mask[np.arange(n)[:, None], plans[:, :, 0]])
    for i in range(n):
        for j in range(k):
            days = np.concatenate([history[i], plans[i, j]])
            known = days != UNKNOWN_DAY
            for t in range(6, len(days)):  # every planned day
                window = days[t - 6:t + 1]  # 7 consecutive days ending on planned day t
                if np.all(known[t - 6:t + 1]):
                    assert np.any(window == REST), (i, j, t)
                run = days[t - 3:t + 1]
                assert not np.all(HARD[np.where(run >= 0, run, 0)] & (run >= 0)), (i, j, t)
            for h in range(min(injured[i], horizon)):
                assert INJURY_OK[plans[i, j, h]]


def test_sampled_plans_respect_todays_mask():
    rng = np.random.default_rng(9)
    probs = rng.dirichlet(np.ones(6), size=(5, 10))
    mask = np.zeros((5, 6), dtype=bool)
    mask[:, REST] = True
    mask[0, 4] = True
    plans = sample_plans(probs, mask, 200, rng)
    assert plans.shape == (5, 200, 10) and plans.min() >= 0 and plans.max() <= 5
    assert np.all(mask[np.arange(5)[:, None], plans[:, :, 0]])
    assert set(np.unique(plans[0, :, 0])) == {REST, 4}
    assert len(np.unique(plans[:, :, 1:])) == 6


# --------------------------------------------------------------------------------------------
# the planners


def _small_mpc(model: WorldModel, seed: int = 0, **overrides) -> MPCPlanner:
    cem = CEMConfig(horizon_days=10, candidates=24, iterations=2, cold_start_iterations=3)
    config = MPCConfig(cem=cem, scenarios=4, personalize_days=(7,), episode_days=30,
                       **overrides)
    return MPCPlanner(model, config, seed=seed)


@pytest.fixture(scope="module")
def cohort(model):
    return generate_cohort(model, 16, seed=1234)


def test_mpc_warm_starts_from_yesterdays_shifted_plan(model, cohort):
    sim = Simulation(cohort, 4, EnvConfig(episode_days=30))
    obs = sim.reset(seed=3)
    mpc = _small_mpc(model)
    first = mpc.plan(obs, sim.mask)
    probs, best = mpc.warm_start.probs_.copy(), mpc.warm_start.best_.copy()
    np.testing.assert_array_equal(best, first.actions)
    obs, _, _ = sim.step(first.actions[:, 0])
    mpc.plan(obs, sim.mask)
    expected_probs, expected_best = shift_distribution(probs, best, 10, 0.1)
    np.testing.assert_allclose(mpc.warm_start.initial_probs_, expected_probs)
    np.testing.assert_array_equal(mpc.warm_start.initial_best_, expected_best)
    np.testing.assert_array_equal(expected_best[:, :9], first.actions[:, 1:])


@pytest.mark.parametrize("parameters", ["median", "draws"])
def test_mpc_plan_describes_a_legal_week_and_is_deterministic(model, cohort, parameters):
    sim = Simulation(cohort, 3, EnvConfig(episode_days=30))
    obs = sim.reset(seed=5)
    runs = []
    for seed in (11, 11, 12):
        mpc = _small_mpc(model, seed=seed, parameters=parameters)
        runs.append(mpc.plan(obs, sim.mask))
    plan = runs[0]
    assert plan.actions.shape == (3, 10)
    assert np.all(sim.mask[np.arange(3), plan.actions[:, 0]])
    assert np.all((plan.recovery_pct_q10 <= plan.recovery_pct + 1e-9)
                  & (plan.recovery_pct <= plan.recovery_pct_q90 + 1e-9))
    assert np.all((plan.recovery_pct > 0) & (plan.recovery_pct < 100))
    np.testing.assert_allclose(plan.hrv_ms, np.exp(plan.ln_hrv))
    assert plan.performance.shape == (3, 11) and len(plan.sessions(0)) == 10
    np.testing.assert_array_equal(runs[0].actions, runs[1].actions)
    np.testing.assert_array_equal(runs[0].recovery_pct, runs[1].recovery_pct)
    assert not np.array_equal(runs[0].recovery_pct, runs[2].recovery_pct)


def test_a_planner_told_the_truth_plans_with_it(model, cohort):
    """The diagnostic hooks (benchmarks/mpc_gap.py) replace the prior medians by the given
    performance and hazard parameters; by default the planner uses the priors."""
    sim = Simulation(cohort, 16, EnvConfig(episode_days=30))
    obs = sim.reset(seed=3)
    told, plain = _small_mpc(model), _small_mpc(model)
    told.belief.known_performance = cohort.performance_params()
    told.belief.known_hazard = cohort.hazard_params()
    told.act(obs, sim.mask)
    plain.act(obs, sim.mask)
    for key in ("fitness_gain", "tau_fit_days"):
        np.testing.assert_allclose(getattr(told.belief._performance, key)[:, 0],
                                   cohort.performance[key])
        assert np.ptp(getattr(plain.belief._performance, key)[:, 0] / cohort.performance[key]) > 0
    np.testing.assert_allclose(told.belief._hazard.intercept[:, 1], cohort.hazard["intercept"])
    assert np.ptp(plain.belief._hazard.intercept) == 0  # one prior median for everyone


def test_replayed_history_personalises_the_plan_of_today(model, cohort):
    """A real athlete's past (replay) is learned as if lived, the posterior is recomputed on
    all of it this morning, and the plan's objective counts from today."""
    sim = Simulation(cohort, 2, EnvConfig(episode_days=30))
    obs = sim.reset(seed=8)
    past_obs, past_actions = [], []
    for day in range(20):
        past_obs.append(obs)
        action = np.where(sim.mask[:, 2], 2, 0)  # zone-2 when allowed, else rest
        obs, _, _ = sim.step(action)
        past_actions.append(sim.last_executed.copy())
    mpc = _small_mpc(model)
    with pytest.raises(ValueError, match="replay"):
        mpc.replay(np.stack(past_obs)[:, 0], np.stack(past_actions))
    mpc.replay(np.stack(past_obs), np.stack(past_actions))
    assert mpc.day == 0 and len(mpc.diagnostics["personalize_ess"]) == 2  # day 7 of the past
    histories = []
    mpc.belief.model = type("Spy", (), {"personalize": staticmethod(
        lambda series, rng, **kw: histories.append(series)
        or model.personalize(series, rng, **kw))})()
    plan = mpc.plan(obs, sim.mask)
    assert [len(h.hrv) for h in histories] == [21, 21]  # every past morning and this one
    assert mpc.day == 1 and plan.actions.shape == (2, 10)
    assert mpc.belief.rollout_start(obs).days_left.tolist() == [30, 30]
    np.testing.assert_allclose(histories[0].load[:20] * LOAD_SCALE_TRIMP,
                               [o[0, FEATURE_INDEX["load_yesterday_trimp"]] for o in
                                [*past_obs[1:], obs]], rtol=1e-5)


def test_replay_with_the_posterior_takes_it_and_personalises_nothing(model, cohort):
    """Given the athletes' posterior (`replay(posterior=)`: what `periodize plan` has from
    `WorldModel.athlete_params`), the belief personalises nothing, plans from that posterior
    and tracks the past under it from the first morning: what it knows this morning does not
    depend on the population draws it lived the past with (its seed)."""
    sim = Simulation(cohort, 2, EnvConfig(episode_days=30))
    obs = sim.reset(seed=8)
    past_obs, past_actions = [], []
    for _ in range(20):
        past_obs.append(obs)
        obs, _, _ = sim.step(np.where(sim.mask[:, 2], 2, 0))
        past_actions.append(sim.last_executed.copy())
    rng = np.random.default_rng(5)
    posterior = [model.sample_athletes(40, rng) for _ in range(2)]  # any draws will do

    class Unpersonalised:
        def __getattr__(self, name):
            return getattr(model, name)

        def personalize(self, *args, **kwargs):
            raise AssertionError("the belief personalised although it was given the posterior")

    starts = []
    for seed in (1, 2):
        mpc = _small_mpc(model, seed=seed)
        mpc.belief.model = Unpersonalised()
        mpc.replay(np.stack(past_obs), np.stack(past_actions), posterior=posterior)
        mpc.plan(obs, sim.mask)
        assert mpc.diagnostics["personalize_ess"] == []
        starts.append(mpc.belief.rollout_start(obs))
    for i, draws in enumerate(posterior):
        for name, values in starts[0].physiology.items():
            np.testing.assert_allclose(values[i], np.median(draws[name]))
    # a belief that lived the same days with the posterior from its first morning on
    lived = MPCPlanner(model, replace(mpc.config, personalize_days=(60,))).belief
    lived.model = Unpersonalised()
    lived.observe(past_obs[0])
    lived._physiology = {k: v.copy() for k, v in starts[0].physiology.items()}
    lived._start_noise()
    lived._state = lived._initial_state()
    lived._update_residual(lived._readings[0], lived._state, 0)
    for day_obs, done in zip([*past_obs[1:], obs], past_actions):
        lived.record_executed(done)
        lived.observe(day_obs)
    expected = lived.rollout_start(obs)
    for start in starts:
        for field in ("state", "residual", "residual_slow", "perf_state"):
            np.testing.assert_allclose(getattr(start, field), getattr(expected, field),
                                       rtol=1e-6, atol=1e-9, err_msg=field)
    with pytest.raises(ValueError, match="one posterior per athlete"):
        mpc.replay(np.stack(past_obs), np.stack(past_actions), posterior=posterior[:1])


def test_mpc_personalises_on_schedule_from_what_it_observed(model, cohort):
    sim = Simulation(cohort, 2, EnvConfig(episode_days=30))
    obs = sim.reset(seed=8)
    mpc = _small_mpc(model)
    for _ in range(7):  # days 0-6
        last_obs, last_reading = obs, {k: v.copy() for k, v in sim.reading.items()}
        obs, _, _ = sim.step(mpc.act(obs, sim.mask))
    population = {k: v.copy() for k, v in mpc.belief._physiology.items()}
    series = mpc.belief._history_series(1)  # days 0-6, day 6's load not yet reported
    assert len(series.hrv) == 7 and series.source is None
    # each day's load as the next morning's features report it (day 6's filled as the world
    # model fills an unknown load: the median of the days before), the readings as measured
    np.testing.assert_allclose(series.load[-2] * LOAD_SCALE_TRIMP,
                               last_obs[1, FEATURE_INDEX["load_yesterday_trimp"]], rtol=1e-5)
    assert series.load[-1] == pytest.approx(np.median(series.load[:-1]))
    np.testing.assert_allclose(
        [series.hrv[-1], series.rhr[-1]],
        [np.log(last_reading["hrv_rmssd_ms"][1]), last_reading["rhr_bpm"][1]], rtol=1e-5)
    # the recovery score only with MPCConfig.personalize_on_recovery (off by default)
    assert np.isnan(series.recovery_logit).all()
    config = mpc.belief.config
    mpc.belief.config = replace(config, personalize_on_recovery=True)
    assert mpc.belief._history_series(1).recovery_logit[-1] == pytest.approx(
        recovery_to_logit(last_reading["recovery_pct"][1]), rel=1e-5)
    mpc.belief.config = config
    calls = []
    personalize = model.personalize

    def spy(frame, rng, **kwargs):
        calls.append(kwargs)
        return personalize(frame, rng, **kwargs)

    mpc.belief.model = type("Spy", (), {"personalize": staticmethod(spy)})()
    mpc.act(obs, sim.mask)  # day 7: the posterior replaces the population
    assert calls == [{"n_proposals": 1000, "n_draws": 200, "rounds": 1}] * 2
    assert len(mpc.diagnostics["personalize_ess"]) == 2
    assert not np.allclose(mpc.belief._physiology["mu_rec"], population["mu_rec"])


def test_mpc_rejects_bad_input(model):
    mpc = _small_mpc(model)
    with pytest.raises(ValueError, match="obs must have shape"):
        mpc.act(np.zeros((2, 5)), np.ones((2, 6), dtype=bool))
    with pytest.raises(ValueError, match="personalize_days"):
        MPCConfig(personalize_days=(3,))
    with pytest.raises(ValueError, match="personalize_rounds"):
        MPCConfig(personalize_rounds=0)
    with pytest.raises(ValueError, match="elite_fraction"):
        CEMConfig(candidates=4, elite_fraction=0.1)
    with pytest.raises(ValueError, match="parameters must be"):
        MPCConfig(parameters="mean")
    with pytest.raises(ValueError, match="oracle_view"):
        OraclePlanner(object())


def _episode(policy, cohort, n: int, config: EnvConfig) -> dict[str, np.ndarray]:
    sim = Simulation(cohort, n, config)
    obs = sim.reset(seed=21)
    if callable(policy):
        policy = policy(sim)
    policy.reset(0)
    done = False
    while not done:
        action = policy.act(obs, sim.mask)
        assert np.all(sim.mask[np.arange(n), action]), f"{policy.name} asked for a masked action"
        obs, _, done = sim.step(action)
    assert sim.stats["attempted_violations"].sum() == 0
    return sim.episode_summary()


def test_planners_beat_random_training_and_the_oracle_bounds_the_mpc(model, cohort):
    config = EnvConfig(episode_days=30)
    oracle_cem = CEMConfig(horizon_days=30, candidates=32, iterations=2,
                           cold_start_iterations=4)
    random = _episode(RandomPolicy(), cohort, 16, config)
    mpc = _episode(_small_mpc(model), cohort, 16, config)
    oracle = _episode(lambda sim: OraclePlanner(sim, oracle_cem, scenarios=2), cohort, 16,
                      config)
    r_random, r_mpc, r_oracle = (x["return"].mean() for x in (random, mpc, oracle))
    assert r_mpc > r_random + 0.5, (r_random, r_mpc)
    assert r_oracle > r_random + 0.5, (r_random, r_oracle)
    assert r_oracle >= r_mpc, (r_mpc, r_oracle)
    # and in fitness: performance gained over the episode (% of baseline)
    d_random, d_mpc, d_oracle = (x["delta_performance"].mean() for x in (random, mpc, oracle))
    assert d_mpc > d_random + 0.4, (d_random, d_mpc)
    assert d_oracle > d_random + 0.7, (d_random, d_oracle)
    # paired: the planners win for most athletes, not on average only
    assert np.mean(mpc["return"] > random["return"]) >= 0.75
    assert np.mean(oracle["return"] > random["return"]) >= 0.85


def test_the_blind_oracle_knows_all_but_the_performance_response(model, cohort, monkeypatch):
    """It plans from the truth (physiology, hazard, states) except the performance response:
    the prior medians at the habitual load, whose states follow the loads actually done."""
    import agents.mpc as mpc_module

    views = []

    def spy(view, obs, scenarios):
        views.append(view)
        return oracle_start(view, obs, scenarios)

    monkeypatch.setattr(mpc_module, "oracle_start", spy)
    sim = Simulation(cohort, 4, EnvConfig(episode_days=30))
    obs = sim.reset(seed=5)
    blind = PerformanceBlindOracle(sim, CEMConfig(horizon_days=10, candidates=16, iterations=1,
                                                  cold_start_iterations=1), scenarios=1)
    blind.reset(0)
    habitual = np.maximum(sim.habitual, 0.1)
    median = typical_performance_params(reference_load=habitual)
    decays = median.decays()
    expected = banister.steady_morning_state(habitual, np.zeros(4), decays)
    for _ in range(4):
        action = blind.act(obs, sim.mask)
        assert np.all(sim.mask[np.arange(4), action])
        view, truth = views[-1], sim.oracle_view()
        np.testing.assert_allclose(view["perf_state"], expected)
        assert view["performance"] is not truth["performance"]
        np.testing.assert_allclose(view["performance"].fitness_gain, median.fitness_gain)
        np.testing.assert_allclose(view["state"], truth["state"])
        assert view["hazard"] is truth["hazard"] and view["physiology"] is truth["physiology"]
        obs, _, _ = sim.step(action)
        expected = banister.step_state(expected, sim.oracle_view()["load_ring"][:, -1], None,
                                       decays)
    assert not np.allclose(expected, sim.oracle_view()["perf_state"])  # not the truth's
    blind.act(obs, sim.mask)
    blind.act(obs, sim.mask)  # planning twice on one morning moves the states once
    np.testing.assert_allclose(views[-1]["perf_state"], expected)


@pytest.mark.parametrize("variable", [True, False])
def test_performance_quadratic_is_the_rollout_of_any_loads(variable):
    """c0 + a·w + wᵀBw equals stepping the performance state through the loads, for Busso's
    model and for the linear one (dose gain and variable fatigue switched off)."""
    from simulator.rollout import performance_quadratic

    rng = np.random.default_rng(4)
    m, horizon = 6, 9
    decays = banister.decay_factors(rng.uniform(20, 60, m), rng.uniform(3, 15, m), None,
                                    rng.uniform(2, 8, m) if variable else None)
    state = rng.uniform(0, 2, (m, banister.N_CHANNELS)) * (decays > 0)
    coef, offset = rng.normal(0, 1, (m, banister.N_CHANNELS)), rng.normal(0, 1, m)
    c0, a, b = performance_quadratic(decays, state, coef, offset, horizon)
    for w in rng.uniform(0, 2.5, (4, horizon)):
        end = state
        for day in range(horizon):
            end = banister.step_state(end, np.full(m, w[day]), None, decays)
        np.testing.assert_allclose(c0 + a @ w + np.einsum("h,mhg,g->m", w, b, w),
                                   offset + np.sum(coef * end, axis=1), rtol=1e-10)
    # as the weighted mean over each athlete's draws (2 athletes × 3 draws), without the M B's
    weights = rng.dirichlet(np.ones(3), size=2)
    mean = performance_quadratic(decays, state, coef, offset, horizon, weights)
    for per_set, averaged in zip((c0, a, b), mean):
        expected = np.einsum("nd...,nd->n...", per_set.reshape((2, 3) + per_set.shape[1:]),
                             weights)
        np.testing.assert_allclose(averaged, expected, rtol=1e-10, atol=1e-14)


def test_mpc_with_performance_draws_plans_for_their_expectation(model, cohort):
    """D prior draws per athlete, separate from the S scenarios; the plan's ΔP is their mean."""
    sim = Simulation(cohort, 2, EnvConfig(episode_days=30))
    obs = sim.reset(seed=8)
    mpc = _small_mpc(model, performance_draws=6)
    plan = mpc.plan(obs, sim.mask)
    start = mpc.belief.rollout_start(obs)
    assert start.perf_state.shape == (2, 6, banister.N_CHANNELS)
    assert start.performance.fitness_gain.shape == (2, 6)
    assert np.unique(start.performance.fitness_gain[0]).size == 6  # six different draws
    assert start.state.shape[1] == 4 and sim.mask[np.arange(2), plan.actions[:, 0]].all()
    one = evaluate_sequences(start, plan.actions[:, None, :], np.zeros((2, 4, 10, 4)))
    each = []
    for d in range(6):
        draw = replace(start, performance=replace(start.performance, **{
            k: np.asarray(v)[:, d:d + 1] for k, v in vars(start.performance).items()
            if np.ndim(v) == 2}), perf_state=start.perf_state[:, d:d + 1],
            performance_weights=None)
        each.append(evaluate_sequences(draw, plan.actions[:, None, :],
                                       np.zeros((2, 4, 10, 4))).delta_performance)
    np.testing.assert_allclose(one.delta_performance, np.mean(each, axis=0), rtol=1e-10)
    with pytest.raises(ValueError, match="performance_draws"):
        MPCConfig(performance_draws=-1)


def _with_draws(start: RolloutStart, draws: int) -> RolloutStart:
    """`start` with `draws` performance draws per athlete (fitness gains 0.5-1.5 × the first)."""
    gains = start.performance.fitness_gain[:, :1] * np.linspace(0.5, 1.5, draws)[None, :]
    performance = replace(start.performance, **{
        k: np.repeat(np.asarray(v)[:, :1], draws, axis=1)
        for k, v in vars(start.performance).items() if np.ndim(v) == 2})
    return replace(start, performance=replace(performance, fitness_gain=gains),
                   perf_state=np.repeat(start.perf_state[:, :1], draws, axis=1))


def test_rollout_weighs_the_performance_draws(model):
    start = _with_draws(_start(model, days_left=8), 5)
    plans = np.random.default_rng(2).integers(0, 6, (3, 4, 8))
    noise = np.zeros((3, 4, 8, 4))
    weights = np.random.default_rng(3).dirichlet(np.ones(5), size=3)
    weighted = evaluate_sequences(replace(start, performance_weights=weights), plans, noise,
                                  return_paths=True)
    each = [evaluate_sequences(replace(start, performance=replace(start.performance, **{
        k: np.asarray(v)[:, d:d + 1] for k, v in vars(start.performance).items()
        if np.ndim(v) == 2}), perf_state=start.perf_state[:, d:d + 1]), plans, noise,
        return_paths=True) for d in range(5)]
    expected = np.einsum("dnk,nd->nk", np.stack([e.delta_performance for e in each]), weights)
    np.testing.assert_allclose(weighted.delta_performance, expected, rtol=1e-10)
    path = np.einsum("dnskh,nd->nskh", np.stack([e.paths["performance"] for e in each]),
                     weights)
    np.testing.assert_allclose(weighted.paths["performance"], path, rtol=1e-10)
    equal = evaluate_sequences(replace(start, performance_weights=np.full((3, 5), 0.2)),
                               plans, noise)
    np.testing.assert_allclose(equal.delta_performance,
                               evaluate_sequences(start, plans, noise).delta_performance,
                               rtol=1e-12)
    for bad in (np.full((3, 4), 0.25), np.full((3, 5), 0.3), -weights):
        with pytest.raises(ValueError, match="performance_weights"):
            replace(start, performance_weights=bad)


def test_performance_test_weights_find_the_draw_that_predicts_the_changes():
    rng = np.random.default_rng(0)
    log_p = np.log(100.0 + rng.normal(0.0, 3.0, (4, 50, 6)))  # 4 athletes, 50 draws, 6 tests
    truth = np.array([3, 17, 17, 42])
    offset = np.log([0.01, 1.0, 250.0, 3.6])[:, None]  # any unit: seconds, watts, km/h
    log_y = log_p[np.arange(4), truth] + offset + rng.normal(0.0, 0.002, (4, 6))
    w = performance_test_weights(log_p, log_y, cv=0.01)
    assert w.shape == (4, 50) and np.allclose(w.sum(axis=1), 1.0)
    assert np.array_equal(np.argmax(w, axis=1), truth) and np.all(w.max(axis=1) > 0.9)
    # one test says nothing about the response (its unit is unknown): equal weights
    np.testing.assert_allclose(performance_test_weights(log_p[..., :1], log_y[:, :1], 0.01),
                               1.0 / 50)
    # untested mornings (NaN) are left out; an athlete never tested keeps equal weights
    gaps = log_y.copy()
    gaps[0, 1:5] = np.nan
    gaps[1] = np.nan
    w_gaps = performance_test_weights(log_p, gaps, cv=0.01)
    np.testing.assert_allclose(w_gaps[0], performance_test_weights(
        log_p[:1][..., [0, 5]], log_y[:1][:, [0, 5]], cv=0.01)[0], rtol=1e-12)
    np.testing.assert_allclose(w_gaps[1], 1.0 / 50)
    # noisier tests spread the weight
    assert np.all(performance_test_weights(log_p, log_y, cv=0.05).max(axis=1) < w.max(axis=1))


def test_mpc_conditions_its_performance_draws_on_tests(model, cohort):
    sim = Simulation(cohort, 3, EnvConfig(episode_days=30))
    obs = sim.reset(seed=8)
    with pytest.raises(ValueError, match="performance_draws > 0"):
        _small_mpc(model).observe_performance(np.full(3, 100.0))
    mpc = _small_mpc(model, performance_draws=32, performance_test_cv=0.01)
    with pytest.raises(ValueError, match="> 0"):
        mpc.observe_performance(np.array([100.0, -1.0, 100.0]))
    rng = np.random.default_rng(5)
    for day in range(20):
        if day % 5 == 0:
            results = sim.performance_test(0.01, rng)
            results[2] = np.nan  # athlete 2 is never tested
            mpc.observe_performance(results)
        obs, _, _ = sim.step(mpc.act(obs, sim.mask))
        weights = mpc.belief.rollout_start(obs).performance_weights
        if day == 0:  # one test: nothing learnt yet
            np.testing.assert_allclose(weights, 1.0 / 32)
    np.testing.assert_allclose(weights[2], 1.0 / 32)
    # the four tests moved both tested athletes' weights off equal, and ruled some responses
    # out for at least one (the changes over 15 days are small: 1 % tests leave most draws
    # plausible, and for some athletes nearly all)
    assert np.all(np.abs(32 * weights[:2] - 1.0).max(axis=1) > 0.25)
    assert weights[:2].min() < 0.1 / 32
    assert len(mpc.diagnostics["performance_ess"]) == 4 * 2  # tested athletes only
    assert mpc.belief.predicted_performance().shape == (3, 32)
    with pytest.raises(ValueError, match="performance_test_cv"):
        MPCConfig(performance_test_cv=0.0)


def test_the_belief_splits_the_observed_noise_with_the_kalman_filter(model, cohort, monkeypatch):
    """With a slow noise component, the MPC's belief splits each draw's observed residual
    into slow and fast parts by the fit's two-component Kalman filter
    (`model.drift.filter_residuals` on the same residual series), and hands the slow part to
    the rollout; the parts add up to the residual it observed."""
    import agents.mpc as mpc_module
    from physiology_model.model.drift import SlowDrift, filter_residuals

    share, phi_slow = 0.5, 0.9
    sampled = model.sample_athletes

    def with_slow(n, rng, source=None):
        draws = dict(sampled(n, rng, source))
        for name in SLOW_SHARE_PARAMS:
            draws[name] = np.full(n, share)
        for name in PHI_SLOW_PARAMS:
            draws[name] = np.full(n, phi_slow)
        return draws

    monkeypatch.setattr(model, "sample_athletes", with_slow)
    observed = []
    split = mpc_module.split_residual

    def spy(residual, *args):
        observed.append(residual.copy())
        return split(residual, *args)

    monkeypatch.setattr(mpc_module, "split_residual", spy)
    sim = Simulation(_with_slow_noise(cohort, share, phi_slow), 2, EnvConfig(episode_days=30))
    obs = sim.reset(seed=3)
    belief = AthleteBelief(model, MPCConfig(scenarios=2), np.random.default_rng(0))
    policy = RandomPolicy()
    policy.reset(0)
    for _ in range(6):  # before the first personalisation (day 7): the parameters stay put
        belief.observe(obs)
        action = policy.act(obs, sim.mask)
        belief.record_executed(action)
        obs, _, _ = sim.step(action)
    start = belief.rollout_start(obs)
    series = np.stack(observed, axis=-1)  # (N, S, 3, days)
    p = belief._physiology
    for target, column in (("hrv", 0), ("rec", 2)):
        out = 0 if target == "hrv" else 1
        flat = series[:, :, column].reshape(-1, series.shape[-1])
        sigma, phi = p[f"sigma_{target}"].reshape(-1), p[f"phi_{target}"].reshape(-1)
        for row in range(len(flat)):  # one filter per draw (its own φ and missing days)
            expected = filter_residuals(flat[row:row + 1], sigma[row:row + 1],
                                        SlowDrift(fraction=share, phi_slow=phi_slow,
                                                  phi_fast=float(phi[row]))
                                        .components(phi[row:row + 1]))
            slow = start.residual_slow[..., out].reshape(-1)[row]
            total = start.residual[..., out].reshape(-1)[row]
            assert slow == pytest.approx(expected.mean[-1, 0, 0], rel=1e-9, abs=1e-12)
            assert total == pytest.approx(expected.mean[-1, 0].sum(), rel=1e-9, abs=1e-12)
        assert np.all(np.abs(start.residual_slow[..., out]) > 0)
