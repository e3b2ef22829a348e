"""The two-component noise's Kalman-filter likelihood as one pytensor Op computed by JAX.

Written as a pytensor `scan`, the filter made each gradient of the fit many times slower
(docs/world_model.md has the measurement), because the scan's translation carries every
intermediate of every day through the backward pass. Here the filter is one `jax.lax.scan`
over every target and athlete at once, differentiated by JAX (`jax.vjp`), and pytensor sees
one Op with its gradient Op: nutpie's JAX backend calls the JAX functions directly
(`jax_funcify`), PyMC's own NUTS calls them through `perform`.

The filter itself is `bayes.noise_log_likelihoods`'s (docstring there): the residual r = ℓ + a
of a target, ℓ a stationary AR(1) with variance w·σ² and coefficient φ_s, a one with
(1 − w)·σ² and φ, observed without error on the athlete's observed days; each athlete's
log-likelihood is the sum of its one-step innovation densities (Gaussian, or Student-t with
`df` degrees of freedom for `student`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


def _jax_loglik(student: bool, present: np.ndarray, gap: np.ndarray):
    """The JAX function (residual (K, A), sigma (A,), phi, share, phi_slow, df) → (A,).

    The filter in two numbers per series. The observation r = ℓ + a has no error, so after
    each update the state's mean sums to the observed r and its covariance is c·[[1, −1],
    [−1, 1]]: the state is (μ, c), μ the slow component's mean, and a − its mean = −(ℓ − μ).
    From the previous observation r' (k days before; a = φ^k, a_s = φ_s^k, d = a_s − a):

        innovation  v = r − a·r' − d·μ,      its variance  σ²·s,  s = c·d² + q_s + q_f,
        μ ← a_s·μ + (c·a_s·d + q_s)/s · v,   c ← (c·(a_s²·q_f + a²·q_s) + q_s·q_f)/s,

    with q_s = w·(1 − a_s²), q_f = (1 − w)·(1 − a²) the k-day innovation variances per σ²
    (c is per σ² too: it does not depend on σ or on the data). The first observation of a
    series has a = a_s = 0: its variance is σ². This is the two-state filter of
    `bayes.noise_log_likelihoods` exactly (tested against the multivariate normal), with a
    third of the operations per day, which is what the scan's cost is made of.
    """
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import gammaln

    first = gap == 0
    k = np.maximum(gap, 1.0)

    def loglik(residual, sigma, phi, share, phi_slow, df):
        a_s = jnp.where(first, 0.0, phi_slow ** k)
        a_f = jnp.where(first, 0.0, phi ** k)
        q_s = share * (1.0 - a_s ** 2)
        q_f = (1.0 - share) * (1.0 - a_f ** 2)
        previous = jnp.concatenate([jnp.zeros_like(residual[:1]), residual[:-1]])
        d = a_s - a_f

        def day(carry, xs):
            mu, c = carry
            x, a_s_t, d_t, dd, q_sum, a_s_d, q_s_t, c_gain, q_prod = xs
            s = c * dd + q_sum
            v = x - d_t * mu
            return ((a_s_t * mu + (c * a_s_d + q_s_t) / s * v, (c * c_gain + q_prod) / s),
                    (v, s))

        zeros = jnp.zeros_like(sigma)
        _, (v, s) = jax.lax.scan(day, (zeros, zeros), (
            residual - a_f * previous, a_s, d, d * d, q_s + q_f, a_s * d, q_s,
            a_s ** 2 * q_f + a_f ** 2 * q_s, q_s * q_f))
        total = sigma[None, :] ** 2 * s
        if student:
            logp = (gammaln((df + 1.0) / 2.0) - gammaln(df / 2.0)
                    - 0.5 * jnp.log(df * jnp.pi * total)
                    - (df + 1.0) / 2.0 * jnp.log1p(v ** 2 / (df * total)))
        else:
            logp = -0.5 * (jnp.log(2.0 * jnp.pi * total) + v ** 2 / total)
        # the days after a series' last observation (padding) hold the first-day variance
        # σ² and a residual of 0: finite, and left out here
        return jnp.where(present, logp, 0.0).sum(axis=0)

    return loglik


class KalmanLogLik:
    """Builds the Op pair for one target's layout (`present`, `gap`: (K, A) from
    `bayes.padded_layout`: each series' observations first, one per row, then padding) and
    innovation distribution."""

    def __init__(self, present: np.ndarray, gap: np.ndarray, student: bool = False):
        import jax

        present = np.asarray(present, bool)
        if np.any(present[1:] & ~present[:-1]):
            raise ValueError("each column's observations must come first (bayes.padded_layout)")

        jax.config.update("jax_enable_x64", True)  # the model is float64 throughout

        self.function = _jax_loglik(student, present, np.asarray(gap, float))
        self.jitted = jax.jit(self.function)

        def vjp(*args):
            *inputs, cotangent = args
            _, pullback = jax.vjp(self.function, *inputs)
            return pullback(cotangent)

        self.vjp_function = vjp
        self.jitted_vjp = jax.jit(vjp)

    def __call__(self, residual: Any, sigma: Any, phi: Any, share: Any, phi_slow: Any,
                 df: Any) -> Any:
        import pytensor.tensor as pt

        inputs = [pt.as_tensor_variable(v, dtype="float64") for v in
                  (residual, sigma, phi, share, phi_slow, df)]
        return _ops()[0](self)(*inputs)


@functools.cache
def _ops() -> tuple[type, type]:
    """The Op classes, built once (pytensor and JAX are imported only when a fit needs them)."""
    from pytensor.graph import Apply, Op
    from pytensor.link.jax.dispatch import jax_funcify

    class LogLikOp(Op):
        """(residual, sigma, phi, share, phi_slow, df) → each athlete's log-likelihood."""

        def __init__(self, spec: KalmanLogLik):
            self.spec = spec

        def make_node(self, *inputs):
            return Apply(self, list(inputs), [inputs[1].type()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = np.asarray(self.spec.jitted(*inputs), dtype="float64")

        def grad(self, inputs, output_gradients):
            return list(_ops()[1](self.spec)(*inputs, output_gradients[0]))

    class VjpOp(Op):
        """The gradients of `LogLikOp`'s output, weighted by a cotangent, for every input."""

        def __init__(self, spec: KalmanLogLik):
            self.spec = spec

        def make_node(self, *inputs):
            return Apply(self, list(inputs), [v.type() for v in inputs[:-1]])

        def perform(self, node, inputs, outputs):
            for out, value in zip(outputs, self.spec.jitted_vjp(*inputs)):
                out[0] = np.asarray(value, dtype="float64")

    @jax_funcify.register(LogLikOp)
    def _loglik_jax(op, **kwargs):
        return op.spec.function

    @jax_funcify.register(VjpOp)
    def _vjp_jax(op, **kwargs):
        return op.spec.vjp_function

    return LogLikOp, VjpOp
