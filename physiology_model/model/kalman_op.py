"""The two-component noise's Kalman-filter likelihood as one pytensor Op computed by JAX.

Written as a pytensor `scan`, the filter made each gradient of the fit many times slower
(docs/world_model.md has the measurement), because the scan's translation carries every
intermediate of every day through the backward pass. Here the filter is one `jax.lax.scan`
over every target and athlete at once, differentiated by JAX (`jax.vjp`), and pytensor sees
one Op with its gradient Op: nutpie's JAX backend calls the JAX functions directly
(`jax_funcify`), PyMC's own NUTS calls them through `perform`.

The filter itself is `bayes.noise_log_likelihood`'s (docstring there): the residual r = ℓ + a
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
    """The JAX function (residual (K, A), sigma (A,), phi, share, phi_slow, df) → (A,)."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import gammaln

    first = gap == 0
    k = np.maximum(gap, 1.0)

    def loglik(residual, sigma, phi, share, phi_slow, df):
        a_s = jnp.where(first, 0.0, phi_slow ** k)
        a_f = jnp.where(first, 0.0, phi ** k)
        var = sigma[None, :] ** 2
        q_s = share * var * (1.0 - a_s ** 2)
        q_f = (1.0 - share) * var * (1.0 - a_f ** 2)

        def day(carry, xs):
            m_s, m_f, p_ss, p_sf, p_ff = carry
            r, a_s_t, a_f_t, q_s_t, q_f_t, present_t = xs
            m_s1, m_f1 = a_s_t * m_s, a_f_t * m_f
            p_ss1 = a_s_t ** 2 * p_ss + q_s_t
            p_ff1 = a_f_t ** 2 * p_ff + q_f_t
            p_sf1 = a_s_t * a_f_t * p_sf
            total = p_ss1 + 2.0 * p_sf1 + p_ff1
            innovation = r - m_s1 - m_f1
            if student:
                logp = (gammaln((df + 1.0) / 2.0) - gammaln(df / 2.0)
                        - 0.5 * jnp.log(df * jnp.pi * total)
                        - (df + 1.0) / 2.0 * jnp.log1p(innovation ** 2 / (df * total)))
            else:
                logp = -0.5 * (jnp.log(2.0 * jnp.pi * total) + innovation ** 2 / total)
            g_s, g_f = (p_ss1 + p_sf1) / total, (p_sf1 + p_ff1) / total
            updated = (m_s1 + g_s * innovation, m_f1 + g_f * innovation,
                       p_ss1 - g_s ** 2 * total, p_sf1 - g_s * g_f * total,
                       p_ff1 - g_f ** 2 * total)
            carry = tuple(jnp.where(present_t, new, old) for new, old in zip(updated, carry))
            return carry, jnp.where(present_t, logp, 0.0)

        zeros = jnp.zeros_like(sigma)
        _, logp = jax.lax.scan(day, (zeros,) * 5, (residual, a_s, a_f, q_s, q_f, present))
        return logp.sum(axis=0)

    return loglik


class KalmanLogLik:
    """Builds the Op pair for one target's layout (`present`, `gap`: (K, A) from
    `bayes.padded_layout`) and innovation distribution."""

    def __init__(self, present: np.ndarray, gap: np.ndarray, student: bool = False):
        import jax

        jax.config.update("jax_enable_x64", True)  # the model is float64 throughout

        self.function = _jax_loglik(student, np.asarray(present, bool), np.asarray(gap, float))
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
