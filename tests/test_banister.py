"""The Banister core: every implementation agrees, and the timing convention holds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from physiology_model.dynamics import banister as bn

N_ATHLETES, N_DAYS = 5, 120


@pytest.fixture(scope="module")
def cohort() -> dict[str, np.ndarray]:
    """Irregular loads (rest days, spikes) and per-athlete time constants, in days."""
    rng = np.random.default_rng(20250301)
    loads = rng.gamma(2.0, 60.0, (N_ATHLETES, N_DAYS)) * (rng.random((N_ATHLETES, N_DAYS)) > 0.3)
    hi_loads = rng.gamma(1.0, 15.0, (N_ATHLETES, N_DAYS)) * (rng.random((N_ATHLETES, N_DAYS)) > 0.6)
    return {
        "loads": loads,
        "hi_loads": hi_loads,
        "tau_fit": rng.uniform(25.0, 60.0, N_ATHLETES),
        "tau_fat": rng.uniform(4.0, 15.0, N_ATHLETES),
        "tau_fast": rng.uniform(0.5, 3.0, N_ATHLETES),
        "tau_gain": rng.uniform(1.0, 6.0, N_ATHLETES),
        "initial": rng.uniform(0.0, 500.0, (N_ATHLETES, bn.N_CHANNELS)),
    }


def _decays(c: dict[str, np.ndarray]) -> np.ndarray:
    return bn.decay_factors(c["tau_fit"], c["tau_fat"], c["tau_fast"], c["tau_gain"])


def _numpy_states(c: dict[str, np.ndarray]) -> np.ndarray:
    return bn.morning_states(c["loads"], c["hi_loads"], _decays(c), c["initial"])


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def test_recursion_equals_convolution(cohort):
    states = _numpy_states(cohort)
    assert states.shape == (N_ATHLETES, N_DAYS, bn.N_CHANNELS)
    for channel, tau, drive in [
        (bn.FITNESS, cohort["tau_fit"], cohort["loads"]),
        (bn.FATIGUE, cohort["tau_fat"], cohort["loads"]),
        (bn.FAST_FATIGUE, cohort["tau_fast"], cohort["hi_loads"]),
        (bn.DOSE_GAIN, cohort["tau_gain"], cohort["loads"]),
    ]:
        convolved = bn.convolve_states(drive, tau, cohort["initial"][:, channel])
        assert _relative_error(states[..., channel], convolved) < 1e-10, bn.CHANNELS[channel]
    # Busso's variable fatigue is a convolution of w·K_evening with the fatigue kernel.
    evening_gain = states[..., bn.DOSE_GAIN] + cohort["loads"]
    variable = bn.convolve_states(
        cohort["loads"] * evening_gain, cohort["tau_fat"], cohort["initial"][:, bn.VARIABLE_FATIGUE]
    )
    assert _relative_error(states[..., bn.VARIABLE_FATIGUE], variable) < 1e-10


def test_variable_fatigue_is_busso_double_sum():
    """V_n = Σ_{i<n} k2(i)/k3 · w_i · e^{-(n-i)/τ2}, k2(i)/k3 = Σ_{j≤i} w_j e^{-(i-j)/τ3}
    (Busso 2003), written out as explicit sums."""
    rng = np.random.default_rng(3)
    w = rng.uniform(0.0, 2.0, 30)
    tau_fat, tau_gain = 7.0, 3.0
    states = bn.morning_states(w, None, bn.decay_factors(40.0, tau_fat, None, tau_gain))
    for n in range(30):
        expected = sum(
            sum(w[j] * np.exp(-(i - j) / tau_gain) for j in range(i + 1))
            * w[i]
            * np.exp(-(n - i) / tau_fat)
            for i in range(n)
        )
        assert states[n, bn.VARIABLE_FATIGUE] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_single_impulse_decays_as_exp_minus_t_over_tau():
    tau = np.array([1.5, 7.0, 45.0])
    loads = np.zeros((3, 60))
    loads[:, 0] = 1.0
    states = bn.morning_states(loads, None, bn.decay_factors(tau, tau))
    days = np.arange(60)
    expected = np.where(days >= 1, np.exp(-days / tau[:, None]), 0.0)
    np.testing.assert_allclose(states[..., bn.FITNESS], expected, rtol=1e-13, atol=0)
    np.testing.assert_allclose(states[..., bn.FATIGUE], expected, rtol=1e-13, atol=0)
    np.testing.assert_allclose(bn.impulse_response(tau, 60), np.exp(-days / tau[:, None]))


def test_small_tau_is_stable():
    """τ = 0.05 days: exp(t/τ) overflows at t ≈ 35 days, the recursion must not."""
    loads = np.full(400, 100.0)
    states = bn.morning_states(loads, loads, bn.decay_factors(0.05, 0.05, 0.05, 0.05))
    assert np.all(np.isfinite(states))
    assert states[-1, bn.FITNESS] == pytest.approx(100.0 * np.exp(-20.0), rel=1e-9)


def test_batched_equals_loop_over_athletes(cohort):
    decays = _decays(cohort)
    batched = bn.morning_states(cohort["loads"], cohort["hi_loads"], decays, cohort["initial"])
    for a in range(N_ATHLETES):
        alone = bn.morning_states(
            cohort["loads"][a], cohort["hi_loads"][a], decays[a], cohort["initial"][a]
        )
        np.testing.assert_array_equal(batched[a], alone)


def test_stepping_equals_series_and_broadcasts_one_state_over_plans(cohort):
    decays = _decays(cohort)
    series = bn.morning_states(cohort["loads"], cohort["hi_loads"], decays, cohort["initial"])
    state = cohort["initial"]
    for day in range(N_DAYS):
        np.testing.assert_array_equal(state, series[:, day])
        state = bn.step_state(state, cohort["loads"][:, day], cohort["hi_loads"][:, day], decays)
    # The planner's case: one athlete's morning state against 7 candidate plans.
    plans = np.linspace(0.0, 300.0, 7)
    next_mornings = bn.step_state(series[0, -1], plans, None, decays[0])
    assert next_mornings.shape == (7, bn.N_CHANNELS)
    assert np.all(np.diff(next_mornings[:, bn.FITNESS]) > 0)


def test_morning_of_day_d_excludes_day_d_load(cohort):
    decays = _decays(cohort)
    base = bn.morning_states(cohort["loads"], cohort["hi_loads"], decays)
    day = 40
    for which in ("loads", "hi_loads"):
        changed = {k: cohort[k].copy() for k in ("loads", "hi_loads")}
        changed[which][:, day] += 250.0
        after = bn.morning_states(changed["loads"], changed["hi_loads"], decays)
        np.testing.assert_array_equal(after[:, : day + 1], base[:, : day + 1])
        assert np.all(after[:, day + 1] >= base[:, day + 1])
        assert np.any(after[:, day + 1] != base[:, day + 1])
    # Yesterday's load reaches this morning decayed by one day (Banister's lag ≥ 1).
    one = bn.morning_states(np.array([10.0, 0.0]), None, bn.decay_factors(20.0, 5.0))
    assert one[1, bn.FITNESS] == pytest.approx(10.0 * np.exp(-1 / 20.0))
    assert bn.add_load(one[0], 10.0)[bn.FITNESS] == pytest.approx(10.0)


def test_steady_state_of_constant_load():
    tau_fit, tau_fat, tau_fast, tau_gain = 42.0, 7.0, 2.0, 4.0
    w, u = 120.0, 30.0
    decays = bn.decay_factors(tau_fit, tau_fat, tau_fast, tau_gain)
    days = 2000
    states = bn.morning_states(np.full(days, w), np.full(days, u), decays)
    last_morning = states[-1]
    evening = bn.add_load(last_morning, w, u)
    assert evening[bn.FITNESS] == pytest.approx(w / (1 - np.exp(-1 / tau_fit)), rel=1e-12)
    assert evening[bn.FATIGUE] == pytest.approx(w / (1 - np.exp(-1 / tau_fat)), rel=1e-12)
    assert evening[bn.FAST_FATIGUE] == pytest.approx(u / (1 - np.exp(-1 / tau_fast)), rel=1e-12)
    np.testing.assert_allclose(bn.steady_morning_state(w, u, decays), last_morning, rtol=1e-12)


def test_switched_off_channels_stay_zero(cohort):
    decays = bn.decay_factors(cohort["tau_fit"], cohort["tau_fat"])
    states = bn.morning_states(cohort["loads"], cohort["hi_loads"], decays)
    off = [bn.FAST_FATIGUE, bn.DOSE_GAIN, bn.VARIABLE_FATIGUE]
    assert np.all(states[..., off] == 0.0)


@pytest.mark.parametrize("bad", [0.0, -3.0, np.nan])
def test_nonpositive_tau_is_rejected(bad):
    with pytest.raises(ValueError, match="positive"):
        bn.decay_factors(42.0, bad)


def test_performance_equation():
    states = np.array([[100.0, 40.0, 10.0, 5.0, 2000.0]])
    p = bn.performance(states, 50.0, 0.1, 0.2, 0.3, 0.001)
    assert p[0] == pytest.approx(50.0 + 0.1 * 100.0 - 0.2 * 40.0 - 0.3 * 10.0 - 0.001 * 2000.0)


def test_busso_has_an_optimal_load_linear_banister_does_not():
    """Steady-state performance under a constant daily load: Busso (2003) gives an inverted U,
    linear Banister increases without bound (the flaw optimisers exploit, Ceddia et al. 2025)."""
    daily_loads = np.linspace(0.0, 1000.0, 401)
    tau_fit, tau_fat, tau_gain = 42.0, 7.0, 4.0

    linear = bn.steady_morning_state(daily_loads, 0.0, bn.decay_factors(tau_fit, tau_fat))
    linear_p = bn.performance(linear, 100.0, 0.05, 0.1)
    assert np.all(np.diff(linear_p) > 0)

    busso_decays = bn.decay_factors(tau_fit, tau_fat, None, tau_gain)
    busso = bn.steady_morning_state(daily_loads, 0.0, busso_decays)
    busso_p = bn.performance(busso, 100.0, 0.05, 0.0, 0.0, 1e-4)
    best = int(np.argmax(busso_p))
    assert 0 < best < len(daily_loads) - 1
    assert np.all(np.diff(busso_p[: best + 1]) > 0)
    assert np.all(np.diff(busso_p[best:]) < 0)
    assert busso_p[-1] < busso_p[0]  # far past the optimum, training makes you worse
    # The steady state is what the recursion actually reaches.
    w = daily_loads[best]
    simulated = bn.morning_states(np.full(3000, w), None, busso_decays)[-1]
    np.testing.assert_allclose(simulated, busso[best], rtol=1e-10)


nonnegative_loads = arrays(
    np.float64, st.tuples(st.integers(1, 3), st.integers(0, 40)),
    elements=st.floats(0.0, 1e4, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(
    loads=nonnegative_loads,
    hi_scale=st.floats(0.0, 2.0),
    taus=st.lists(st.floats(0.01, 1e4), min_size=4, max_size=4),
    initial=st.floats(0.0, 1e4),
)
def test_states_are_nonnegative_for_nonnegative_loads(loads, hi_scale, taus, initial):
    decays = bn.decay_factors(*taus)
    states = bn.morning_states(loads, hi_scale * loads, decays, np.full(bn.N_CHANNELS, initial))
    assert states.shape == loads.shape + (bn.N_CHANNELS,)
    assert np.all(states >= 0.0)


# --- torch --------------------------------------------------------------------------------


def test_torch_matches_numpy_and_differentiates(cohort):
    torch = pytest.importorskip("torch")
    names = ("tau_fit", "tau_fat", "tau_fast", "tau_gain")
    taus = [torch.tensor(cohort[name], requires_grad=True) for name in names]
    loads = torch.tensor(cohort["loads"], requires_grad=True)
    states = bn.morning_states(
        loads, torch.tensor(cohort["hi_loads"]), bn.decay_factors(*taus),
        torch.tensor(cohort["initial"]),
    )
    assert isinstance(states, torch.Tensor) and states.dtype == torch.float64
    assert _relative_error(states.detach().numpy(), _numpy_states(cohort)) < 1e-12
    bn.performance(states, 0.0, 1.0, 2.0, 1.0, 1e-3).sum().backward()
    assert all(t.grad is not None and torch.all(torch.isfinite(t.grad)) for t in taus)
    assert loads.grad is not None and loads.grad.shape == loads.shape


def test_torch_gradients_are_exact():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    loads = torch.tensor(rng.uniform(0.0, 2.0, (2, 12)), requires_grad=True)
    hi = torch.tensor(rng.uniform(0.0, 1.0, (2, 12)))
    taus = torch.tensor(
        [[30.0, 6.0, 1.5, 3.0], [45.0, 9.0, 2.5, 5.0]], dtype=torch.float64, requires_grad=True
    )

    def perf(loads_, taus_):
        decays = bn.decay_factors(taus_[:, 0], taus_[:, 1], taus_[:, 2], taus_[:, 3])
        return bn.performance(bn.morning_states(loads_, hi, decays), 1.0, 0.5, 1.0, 0.7, 0.3)

    assert torch.autograd.gradcheck(perf, (loads, taus))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_available(), reason="no CUDA device")
def test_torch_on_cuda_matches_cpu(cohort):
    import torch

    def run(device: str) -> np.ndarray:
        decays = torch.tensor(_decays(cohort), device=device)
        states = bn.morning_states(
            torch.tensor(cohort["loads"], device=device),
            torch.tensor(cohort["hi_loads"], device=device),
            decays,
        )
        return states.cpu().numpy()

    assert _relative_error(run("cuda"), run("cpu")) < 1e-12


# --- pytensor (PyMC) ----------------------------------------------------------------------


def test_pytensor_matches_numpy(cohort):
    pytest.importorskip("pytensor")
    initial = cohort["initial"][:, :3]
    graph = bn.pytensor_states(
        cohort["loads"], cohort["tau_fit"], cohort["tau_fat"],
        cohort["hi_loads"], cohort["tau_fast"], initial,
    )
    expected = bn.morning_states(
        cohort["loads"], cohort["hi_loads"],
        bn.decay_factors(cohort["tau_fit"], cohort["tau_fat"], cohort["tau_fast"]),
        np.pad(initial, ((0, 0), (0, 2))),
    )[..., :3]
    assert _relative_error(graph.eval(), expected) < 1e-12
    two = bn.pytensor_states(cohort["loads"], 40.0, 10.0).eval()
    assert two.shape == (N_ATHLETES, N_DAYS, 2)


def test_pytensor_gradient_matches_torch(cohort):
    pytensor = pytest.importorskip("pytensor")
    torch = pytest.importorskip("torch")
    import pytensor.tensor as pt

    loads = cohort["loads"][:, :40]
    observed = np.random.default_rng(1).normal(0.0, 1.0, loads.shape)

    def loss(states, tensor_of):
        mu = bn.performance(states, 0.0, 0.01, 0.02)
        return -0.5 * ((tensor_of(observed) - mu) ** 2).sum()

    tau_fit, tau_fat = pt.dvector("tau_fit"), pt.dvector("tau_fat")
    graph_loss = loss(bn.pytensor_states(loads, tau_fit, tau_fat), pt.as_tensor_variable)
    gradient = pytensor.function([tau_fit, tau_fat], pytensor.grad(graph_loss, [tau_fit, tau_fat]))
    pt_grads = gradient(cohort["tau_fit"], cohort["tau_fat"])

    tf = torch.tensor(cohort["tau_fit"], requires_grad=True)
    ta = torch.tensor(cohort["tau_fat"], requires_grad=True)
    torch_states = bn.morning_states(torch.tensor(loads), None, bn.decay_factors(tf, ta))
    loss(torch_states, torch.tensor).backward()
    np.testing.assert_allclose(pt_grads[0], tf.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(pt_grads[1], ta.grad.numpy(), rtol=1e-9)


@pytest.mark.slow
def test_pymc_model_gradient_compiles(cohort):
    pm = pytest.importorskip("pymc")
    loads = cohort["loads"][:, :40]
    observed = np.random.default_rng(1).normal(0.0, 1.0, loads.shape)
    with pm.Model() as model:
        tau_fit = pm.LogNormal("tau_fit", np.log(40.0), 0.3, shape=N_ATHLETES)
        tau_fat = pm.LogNormal("tau_fat", np.log(8.0), 0.3, shape=N_ATHLETES)
        states = bn.pytensor_states(loads, tau_fit, tau_fat)
        pm.Normal("y", bn.performance(states, 0.0, 0.01, 0.02), 1.0, observed=observed)
    dlogp = model.compile_dlogp()(model.initial_point())
    assert dlogp.shape == (2 * N_ATHLETES,) and np.all(np.isfinite(dlogp))
