"""Population draws and the personalisation of a new athlete (`WorldModel.personalize`): see the
`world_model` module docstring for the method."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from physiology_model.dynamics.observation import (
    HRV_BLOCK,
    LINEAR_PARAMS,
    NOISE_PHI,
    NOISE_SIGMA,
    RHR_BLOCK,
    has_weekday,
    latent_states,
    weekday_table,
)
from physiology_model.dynamics.params import (
    NOISE_PARAMS,
    PARAM_NAMES,
    to_constrained,
    with_noise_defaults,
)
from physiology_model.features.batch import weekdays
from physiology_model.model.drift import NoiseComponents, noise_components
from physiology_model.model.forecast import AthleteSeries


def effective_sample_size(weights: np.ndarray) -> np.ndarray:
    """Kish's effective sample size 1/Σw² of normalised importance weights (along the last
    axis): of a posterior reweighting here, and of the planner's tested performance draws
    (`agents.mpc`)."""
    return 1.0 / np.sum(np.asarray(weights) ** 2, axis=-1)


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """Posterior draws of the population: for each athlete parameter its location per source
    (D, n_sources) and between-athlete scale (D,), both on the unconstrained scale, and the
    noise's population parameters (D, n_sources) in `phi`: the (fast) AR(1) coefficients
    `AR_PARAMS` and, in a fit that has them, the slow component's `SLOW_SHARE_PARAMS` and
    `PHI_SLOW_PARAMS` (the same for every source in a fit without
    `bayes.PriorConfig.noise_by_source`)."""

    sources: tuple[str, ...]
    loc: dict[str, np.ndarray]
    scale: dict[str, np.ndarray]
    phi: dict[str, np.ndarray]

    @property
    def n_draws(self) -> int:
        return len(next(iter(self.scale.values())))

    @classmethod
    def of_truth(cls, truth: dict, source: str, n_draws: int) -> Population:
        """The known population of a simulated cohort (`bayes.simulate_cohort`'s truth: `loc`
        and `scale` (P,) in `PARAM_NAMES` order, `phi` (3,)), as `n_draws` identical draws of
        one source: personalising against it measures the method without any error of a
        fitted population."""
        return cls((source,),
                   {name: np.full((n_draws, 1), truth["loc"][i])
                    for i, name in enumerate(PARAM_NAMES)},
                   {name: np.full(n_draws, truth["scale"][i])
                    for i, name in enumerate(PARAM_NAMES)},
                   {name: np.full((n_draws, 1), truth["phi"][k])
                    for k, name in enumerate(NOISE_PHI.values())})

    def _source_index(self, source: str | None, n: int, rng: np.random.Generator) -> np.ndarray:
        if source in self.sources:
            return np.full(n, self.sources.index(source))
        # an unknown device: a random known source per draw (a mixture over devices)
        return rng.integers(0, len(self.sources), size=n)

    def draw_unconstrained(self, n: int, rng: np.random.Generator, source: str | None = None
                           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                      dict[str, np.ndarray]]:
        """n draws of (athlete value, population loc, population scale), unconstrained."""
        raw, loc, scale, _, _ = _draw_proposals(self, n, rng, source, None)
        return raw, loc, scale


def constrained(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {name: to_constrained(name, raw[name]) for name in PARAM_NAMES}
    out.update({name: np.asarray(raw[name], dtype=float) for name in NOISE_PARAMS
                if name in raw})
    return with_noise_defaults(out)


def _prewhiten(y: np.ndarray, x: np.ndarray, phi: np.ndarray, row: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AR(1) prewhitening over observed days with gaps.

    y (T,) with NaN = unobserved (or (K, T) series with the same days unobserved, draw m's
    being y[row[m]]), x (M, p, T) regressors, phi (M,). Returns ỹ (M, n), x̃ (M, p, n) and
    log c (M, n), with ỹ_j = (y_j − φ^k y_{j−1}) / c_j, c_j = sqrt(1 − φ^{2k}) (c_1 = 1), so
    that the transformed noise is iid N(0, σ²) and log p(y) = log p(ỹ) − Σ log c. Days are the
    last axis because these element-wise products over (M, p, n) were 3-4 times slower with
    the p = 3-4 regressors innermost.
    """
    y = np.atleast_2d(y)
    t = np.flatnonzero(~np.isnan(y[0]))
    yo = y[:, t] if row is None else y[row][:, t]  # (1 or M, n)
    xo = x if len(t) == x.shape[2] else x[:, :, t]
    # φ^k and 1/c of each distinct gap k (most series have one: k = 1), then of each day
    gaps, day_gap = np.unique(np.diff(t), return_inverse=True)
    phik_of_gap = phi[:, None] ** gaps[None, :]
    inv_c_of_gap = 1.0 / np.sqrt(np.maximum(1.0 - phik_of_gap ** 2, 1e-12))
    phik, inv_c = phik_of_gap[:, day_gap], inv_c_of_gap[:, day_gap]  # (M, n-1)
    y_t = np.empty((len(phi), len(t)))
    y_t[:, 0] = yo[:, 0]
    y_t[:, 1:] = (yo[:, 1:] - phik * yo[:, :-1]) * inv_c
    x_t = np.empty(xo.shape)
    x_t[:, :, 0] = xo[:, :, 0]
    rest = x_t[:, :, 1:]
    np.multiply(xo[:, :, :-1], phik[:, None, :], out=rest)
    np.subtract(xo[:, :, 1:], rest, out=rest)
    rest *= inv_c[:, None, :]
    log_c = np.zeros((len(phi), len(t)))
    log_c[:, 1:] = -np.log(inv_c_of_gap)[:, day_gap]
    return y_t, x_t, log_c


def _kalman_gains(t: np.ndarray, components: NoiseComponents
                  ) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    """The Kalman filter's coefficients on the observed days `t` (n,) for each distinct noise
    setting (w, φ_s, φ_f) of the draws: they depend on the setting and the gaps only, not on
    the series, and the draws share few settings (the population's). Returns each draw's
    setting (M,), the coefficients of `_kalman_innovations` (a_f, c, ρ, g, sd: (n, U) each for
    the U settings) and log sd (n, U), the innovations' log SD in units of σ."""
    settings = np.stack([np.asarray(v, dtype=float) for v in
                         (components.share, components.phi_slow, components.phi_fast)], axis=1)
    distinct, setting = distinct_rows(settings)
    share, phi_s, phi_f = distinct.T
    # the components' decays from the previous observed day, per distinct gap k (most series
    # have one: k = 1), then per day; the first day has no previous one
    gaps, day_gap = np.unique(np.diff(t), return_inverse=True)
    a_s, a_f = np.zeros((len(t), len(share))), np.zeros((len(t), len(share)))
    a_s[1:] = (phi_s[None, :] ** gaps[:, None])[day_gap]
    a_f[1:] = (phi_f[None, :] ** gaps[:, None])[day_gap]
    # the covariance recursion of the predicted components (units of σ²), from stationarity
    decay_ss, decay_ff, decay_sf = a_s ** 2, a_f ** 2, a_s * a_f
    new_ss, new_ff = share * (1.0 - decay_ss), (1.0 - share) * (1.0 - decay_ff)
    total, g = np.empty(a_s.shape), np.empty(a_s.shape)
    p_ss, p_ff, p_sf = share.copy(), 1.0 - share, np.zeros(len(share))
    for j in range(len(t)):
        if j:
            p_ss = decay_ss[j] * p_ss + new_ss[j]
            p_ff = decay_ff[j] * p_ff + new_ff[j]
            p_sf = decay_sf[j] * p_sf
        total[j] = np.maximum(p_ss + p_ff + 2.0 * p_sf, 1e-12)
        g[j] = (p_ss + p_sf) / total[j]
        h = (p_ff + p_sf) / total[j]
        p_ss, p_ff, p_sf = (p_ss - g[j] ** 2 * total[j], p_ff - h ** 2 * total[j],
                            p_sf - g[j] * h * total[j])
    c = a_s - a_f
    return setting, (a_f, c, a_s - g * c, g, np.sqrt(total)), 0.5 * np.log(total)


def _kalman_innovations(series: np.ndarray, a_f: np.ndarray, c: np.ndarray, rho: np.ndarray,
                        g: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """The filter's standardised one-step innovations of `series` (n, C, K): n days, C series
    and K draws (or settings) with the coefficients (n, K) of `_kalman_gains`.

    The reading is exact (the noise is all in the process), so the filtered components sum to
    the reading, s_j, and the filter reduces to its slow component u_j: with the decays a_s,
    a_f from the previous observed day, the innovation is e_j = s_j − a_f s_{j−1} − c_j u_{j−1}
    with c = a_s − a_f, and u_j = ρ_j u_{j−1} + g_j (s_j − a_f s_{j−1}) with the slow gain g and
    ρ = a_s − g c. Only that first-order recursion runs day by day; with w = 0, u = 0 and e is
    the AR(1) prewhitening's."""
    a_f, c, rho, g, sd = (v[:, None, :] for v in (a_f, c, rho, g, sd))
    # in place: each pass over (n, C, K) costs about what a day's loop does
    out = np.empty(np.broadcast_shapes(series.shape, sd.shape))
    out[0] = series[0]
    np.multiply(a_f[1:], series[:-1], out=out[1:])
    np.subtract(series[1:], out[1:], out=out[1:])  # s_j − a_f s_{j−1}
    slow = np.multiply(g, out)
    step = np.empty(out.shape[1:])
    for j in range(1, len(out)):
        slow[j] += np.multiply(rho[j], slow[j - 1], out=step)
    np.multiply(c[1:], slow[:-1], out=slow[:-1])
    out[1:] -= slow[:-1]
    out /= sd
    return out


def _kalman_whiten(y: np.ndarray, x: np.ndarray, components: NoiseComponents,
                   row: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_prewhiten` for the two-component noise (`drift.py`): the same (ỹ, x̃, log c), from the
    Kalman filter's one-step innovations. With σ factored out, the filter's gains depend only on
    (w, φ_s, φ_f) and the gaps, so the innovations are one linear map of the series, applied to
    y and to every regressor alike; dividing each by the square root of its variance (in units
    of σ²) leaves iid N(0, σ²) noise, and log p(y) = log p(ỹ) − Σ log c as before. With w = 0 it
    equals the AR(1) prewhitening. The gains are computed once per distinct noise setting
    (`_kalman_gains`), and y, the same for every draw, is filtered once per setting (K series
    y (K, T), draw m's being y[row[m]]: each once per setting)."""
    y = np.atleast_2d(y)
    t = np.flatnonzero(~np.isnan(y[0]))
    setting, coefficients, log_sd = _kalman_gains(t, components)
    filtered = _kalman_innovations(y[:, t].T[:, :, None], *coefficients)  # (n, K, U)
    y_t = filtered[:, 0 if row is None else row, setting].T
    xo = np.ascontiguousarray((x if len(t) == x.shape[2] else x[:, :, t]).transpose(2, 1, 0))
    if len(log_sd[0]) > 1:  # the draws' own coefficients (one setting broadcasts)
        coefficients = tuple(v[:, setting] for v in coefficients)
    x_t = _kalman_innovations(xo, *coefficients)
    return (np.ascontiguousarray(y_t), np.ascontiguousarray(x_t.transpose(2, 1, 0)),
            np.ascontiguousarray(log_sd[:, setting].T))


def _whiten(y: np.ndarray, x: np.ndarray, p: dict[str, np.ndarray], target: str,
            weekday: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prewhiten a target's series and regressors under the draws' noise: the closed-form
    AR(1) where there is no slow component, else the Kalman filter's innovations. With the
    calendar `weekday` (T,), the draws' weekday offsets (`observation.weekday_offsets`, a
    known term of each draw's mean) are taken off the series: the draws share few offset
    tables (one per source), so the series less each distinct table's offsets is one series
    to whiten per table (and noise setting), and each draw takes its own."""
    row = None
    if weekday is not None:
        tables, row = distinct_rows(weekday_table(p, target))
        y = y[None, :] - tables[:, weekday]  # (K, T)
    components = noise_components(p, target)
    if not np.any(components.share > 0):
        return _prewhiten(y, x, p[NOISE_PHI[target]], row)
    return _kalman_whiten(y, x, components, row)


def distinct_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of `values` (M, C) and each row's index into them, (K, C) and (M,):
    a lexsort and a mark at each change (`np.unique(axis=0)` is about ten times slower)."""
    order = np.lexsort(values.T[::-1])
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(values[order[1:]] != values[order[:-1]], axis=1)
    index = np.empty(len(order), dtype=np.intp)
    index[order] = np.cumsum(first) - 1
    return values[order[first]], index


def _gaussian_linear(y_t: np.ndarray, x_t: np.ndarray, log_c: np.ndarray, sigma: np.ndarray,
                     m0: np.ndarray, s0: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conjugate update of β ~ N(m0, diag(s0²)) with ỹ = x̃ᵀβ + N(0, σ²), batched over M draws
    (x̃ (M, p, n) as `_prewhiten` gives it): `_joint_linear` with one series.

    Returns posterior mean (M, p), posterior precision (M, p, p) and the log marginal
    likelihood (M,) of the untransformed observations.
    """
    return _joint_linear([(y_t, x_t, log_c, sigma, None)], m0, s0)


def _joint_linear(series: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                     np.ndarray | None]],
                  m0: np.ndarray, s0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conjugate update of β ~ N(m0, diag(s0²)) (M, P) from several independent whitened
    series, batched over M draws: each (ỹ (M, n), x̃ (M, p, n), log c (M, n), σ (M,), A) with
    ỹ = (A x̃)ᵀβ + N(0, σ²), where A maps the series' p regressors onto the P coefficients:
    None (p = P, the identity), the p coefficients' indices (a block of β), or a matrix
    (M or 1, P, p). Only each series' p × p Gram matrix and p-vector x̃ỹ are formed from its
    days (the residuals from the prior mean are expanded, not formed), then mapped.

    Returns posterior mean (M, P), posterior precision (M, P, P) and the log marginal
    likelihood (M,) of all the untransformed observations, log N(y; X m0, σ²I + X S0 Xᵀ)
    summed over the series' noises (matrix determinant lemma). The precision, not the
    covariance: only the kept draws' is inverted (`personalize_series`), and the mean's shift
    solves with the Cholesky factor the log determinant needs anyway (inverting all M
    precisions took a third of this function).
    """
    prec = np.eye(m0.shape[1])[None] / (s0[:, :, None] ** 2)
    b = np.zeros(m0.shape)
    const = np.zeros(m0.shape[0])
    for y_t, x_t, log_c, sigma, a in series:
        inv_s2 = 1.0 / sigma ** 2
        if a is None:
            m0_own = m0
        elif a.ndim == 1:
            m0_own = m0[:, a]
        else:
            m0_own = (m0[:, None, :] @ a)[:, 0, :]  # (M, p)
        # batched matmul: several times faster than einsum here
        gram = x_t @ x_t.transpose(0, 2, 1)
        xy = (x_t @ y_t[:, :, None])[..., 0]
        gram_m0 = (gram @ m0_own[:, :, None])[..., 0]
        # x̃ (ỹ − x̃ᵀm0) and |ỹ − x̃ᵀm0|², in units of σ²
        b_own = (xy - gram_m0) * inv_s2[:, None]
        rss0 = (np.einsum("mn,mn->m", y_t, y_t) - 2.0 * np.einsum("mp,mp->m", m0_own, xy)
                + np.einsum("mp,mp->m", m0_own, gram_m0)) * inv_s2
        gram *= inv_s2[:, None, None]
        if a is None:
            prec = prec + gram
            b += b_own
        elif a.ndim == 1:
            prec[:, a[:, None], a[None, :]] += gram
            b[:, a] += b_own
        else:
            prec = prec + a @ gram @ a.transpose(0, 2, 1)
            b += (a @ b_own[:, :, None])[..., 0]
        n = y_t.shape[1]
        const += (-0.5 * n * np.log(2 * np.pi) - n * np.log(sigma) - 0.5 * rss0
                  - np.sum(log_c, axis=1))
    chol = np.linalg.cholesky(prec)
    delta = _cholesky_solve(chol, b)
    logdet_prec = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    logdet_s0 = 2.0 * np.sum(np.log(s0), axis=1)
    log_ml = (const - 0.5 * logdet_s0 - 0.5 * logdet_prec
              + 0.5 * np.einsum("mp,mp->m", b, delta))
    return m0 + delta, prec, log_ml


def _cholesky_solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with (L Lᵀ) x = b for lower-triangular L (M, P, P) and b (M, P), by forward and back
    substitution over the P rows, batched over M."""
    z = np.empty(b.shape)
    for i in range(b.shape[1]):
        z[:, i] = (b[:, i] - np.einsum("mk,mk->m", chol[:, i, :i], z[:, :i])) / chol[:, i, i]
    x = np.empty(b.shape)
    for i in reversed(range(b.shape[1])):
        x[:, i] = ((z[:, i] - np.einsum("mk,mk->m", chol[:, i + 1:, i], x[:, i + 1:]))
                   / chol[:, i, i])
    return x


@dataclass(frozen=True)
class Personalization:
    """Result of `WorldModel.personalize`: posterior draws and the quality of the weights."""

    params: dict[str, np.ndarray]
    ess: float
    n_proposals: int
    n_days: int
    log_evidence: float
    """Log of the importance-sampling estimate of p(history | the population posterior): the
    density of the athlete's whole history (ln HRV, RHR, logit recovery) under the fitted
    population, integrated over the athlete's parameters; for an athlete outside the fit a
    leave-athletes-out predictive density (unbiased in p, not in log; from the round that
    gave the draws)."""


@dataclass(frozen=True)
class _Proposal:
    """One round's proposal (module docstring): probabilities of the (population draw,
    source) pairs (D·S,) and a Gaussian over the free nonlinear parameters (`names`) on the
    unconstrained scale."""

    draw_probs: np.ndarray
    names: tuple[str, ...]
    mean: np.ndarray
    cov: np.ndarray


RECOVERY_GAINS: tuple[str, ...] = ("g_hrv", "g_rhr")
"""The recovery link's gains. Recovery's mean is mu_rec + g_hrv·(HRV loadings · states)
− g_rhr·(RHR loadings · states): linear in the gains given the loadings and in the loadings
given the gains, but not in both. `_weigh` therefore conditions on the gains, drawn and
weighted with the nonlinear parameters (a pooled gain is its population value, as before), and
updates the nine other linear parameters of the three targets jointly and exactly."""

_JOINT_NAMES: tuple[str, ...] = (
    (HRV_BLOCK[0],) + tuple(t[0] for t in HRV_BLOCK[1]) + (RHR_BLOCK[0],)
    + tuple(t[0] for t in RHR_BLOCK[1]) + ("mu_rec",))
"""The linear parameters updated jointly given the recovery gains, in `_weigh`'s order."""


PERSONALIZE_ROUNDS = 3
"""Rounds of proposal adaptation in `personalize_series` (the first draws from the population)."""
DEFENSIVE_SHARE = 0.1
"""Share of every adapted proposal that is the population itself."""


def _log_normal_pdf(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (x - mean) / sd
    return -0.5 * z ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def _index_prior(population: Population, source: str | None) -> np.ndarray:
    """Prior probability of each (population draw, source) pair, flattened (D·S,): a known
    source is certain, an unknown device is a uniform mixture over the known ones."""
    n_pop, n_src = population.n_draws, len(population.sources)
    if source in population.sources:
        prior = np.zeros((n_pop, n_src))
        prior[:, population.sources.index(source)] = 1.0 / n_pop
    else:
        prior = np.full((n_pop, n_src), 1.0 / (n_pop * n_src))
    return prior.ravel()


def _draw_proposals(population: Population, n: int, rng: np.random.Generator,
                    source: str | None, proposal: _Proposal | None
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                               dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """n proposals → (raw, loc, scale, (draw, source) index (n,), log prior/proposal (n,))."""
    n_src = len(population.sources)
    if proposal is None:
        d = rng.integers(0, population.n_draws, size=n)
        s = population._source_index(source, n, rng)
        log_ratio = np.zeros(n)
    else:
        prior = _index_prior(population, source)
        q = DEFENSIVE_SHARE * prior + (1.0 - DEFENSIVE_SHARE) * proposal.draw_probs
        k = rng.choice(len(q), size=n, p=q / q.sum())
        d, s = np.divmod(k, n_src)
        log_ratio = np.log(prior[k]) - np.log(q[k])
    raw, loc, scale = {}, {}, {}
    for name in PARAM_NAMES:
        loc[name] = population.loc[name][d, s]
        scale[name] = population.scale[name][d]
        raw[name] = loc[name] + scale[name] * rng.standard_normal(n)
    for name in population.phi:
        raw[name] = population.phi[name][d, s]
    if proposal is not None and proposal.names:
        dim = len(proposal.names)
        chol = np.linalg.cholesky(proposal.cov)
        adapted = proposal.mean + rng.standard_normal((n, dim)) @ chol.T
        from_population = rng.random(n) < DEFENSIVE_SHARE
        inv = np.linalg.inv(proposal.cov)
        _, logdet = np.linalg.slogdet(proposal.cov)
        log_prior = np.zeros(n)
        for j, name in enumerate(proposal.names):
            raw[name] = np.where(from_population, raw[name], adapted[:, j])
            log_prior += _log_normal_pdf(raw[name], loc[name], scale[name])
        u = np.stack([raw[name] for name in proposal.names], axis=1) - proposal.mean
        log_g = (-0.5 * np.einsum("np,pq,nq->n", u, inv, u) - 0.5 * logdet
                 - 0.5 * dim * np.log(2 * np.pi))
        log_q = np.logaddexp(np.log(DEFENSIVE_SHARE) + log_prior,
                             np.log(1.0 - DEFENSIVE_SHARE) + log_g)
        log_ratio = log_ratio + log_prior - log_q
    return raw, loc, scale, d * n_src + s, log_ratio


def _adapt(w: np.ndarray, index: np.ndarray, raw: dict[str, np.ndarray], n_index: int,
           free: tuple[str, ...], n_obs: int, prior_sd: np.ndarray) -> _Proposal:
    """The next round's proposal from this round's normalised weights (module docstring). The
    Gaussian's SDs are kept above 1.5 / sqrt(2·n_obs), 1.5 times the posterior SD of a log
    noise SD from n_obs observations, so a few heavy weights cannot collapse it, but at most
    `prior_sd` (len(free),): a recovery gain's between-athlete SD (`RECOVERY_GAINS`; inf for
    the others), since a gain on a smaller scale than a log SD (g_rhr, about 0.035 logit per
    bpm) would otherwise be proposed wider than its prior; the whole covariance is then widened
    1.5 times (correlations kept, at most ±0.95)."""
    draw_probs = np.bincount(index, weights=w, minlength=n_index)
    if not free:
        return _Proposal(draw_probs, (), np.zeros(0), np.zeros((0, 0)))
    u = np.stack([raw[name] for name in free], axis=1)
    mean = w @ u
    centred = u - mean
    cov = (centred * w[:, None]).T @ centred
    floor = np.minimum(1.5 / np.sqrt(2.0 * max(n_obs, 1)), prior_sd)
    sd = np.sqrt(np.maximum(np.diag(cov), floor ** 2))
    corr = cov / np.outer(np.sqrt(np.maximum(np.diag(cov), 1e-300)),
                          np.sqrt(np.maximum(np.diag(cov), 1e-300)))
    corr = np.clip(np.nan_to_num(corr), -0.95, 0.95)
    np.fill_diagonal(corr, 1.0)
    # clipping entry by entry can leave a matrix that is not positive definite (a few heavy
    # weights, e.g. a 7-10 day history): floor its eigenvalues and rescale to unit diagonal
    eigenvalues, vectors = np.linalg.eigh(corr)
    if eigenvalues.min() < 1e-3:
        corr = (vectors * np.maximum(eigenvalues, 1e-3)) @ vectors.T
        d = np.sqrt(np.diag(corr))
        corr = corr / np.outer(d, d)
    return _Proposal(draw_probs, free, mean, 1.5 ** 2 * corr * np.outer(sd, sd))


def personalize_series(population: Population, series: AthleteSeries, rng: np.random.Generator,
                       n_proposals: int = 2000, n_draws: int = 400,
                       rounds: int = PERSONALIZE_ROUNDS) -> Personalization:
    """A new athlete's posterior from its history (see the module docstring for the method):
    up to `rounds` rounds of `n_proposals` proposals each; the round with the largest effective
    sample size (each round's weights are a valid estimate on their own) gives the draws and
    the reported ESS, so adapting can only help. Adapting stops as soon as a round's ESS
    reaches `n_draws`: the weights are then worth as many independent draws as are kept, and
    most 14-day histories get there in the first round (a third of the time)."""
    if rounds < 1:
        raise ValueError(f"rounds must be ≥ 1, got {rounds}")
    # the weighted parameters that vary between athletes: the nonlinear ones and the
    # recovery gains (`RECOVERY_GAINS`)
    free = tuple(name for name in PARAM_NAMES
                 if (name not in LINEAR_PARAMS or name in RECOVERY_GAINS)
                 and np.all(population.scale[name] > 0))
    prior_sd = np.array([np.median(population.scale[name]) if name in RECOVERY_GAINS
                         else np.inf for name in free])
    n_obs = int(np.sum(~np.isnan(series.hrv) | ~np.isnan(series.rhr)))
    n_index = population.n_draws * len(population.sources)
    proposal, best = None, None
    for _ in range(rounds):
        raw, loc, scale, index, log_ratio = _draw_proposals(population, n_proposals, rng,
                                                            series.source, proposal)
        w, ess, posterior, p, log_evidence = _weigh(raw, loc, scale, series, log_ratio)
        if best is None or ess > best[1]:
            best = (w, ess, posterior, p, loc, scale, log_evidence)
        if ess >= n_draws:
            break
        proposal = _adapt(w, index, raw, n_index, free, n_obs, prior_sd)
    w, ess, posterior, p, loc, scale, log_evidence = best
    pick = _systematic_resample(w, n_draws, rng)
    out = {name: p[name][pick] for name in ("tau_fat_days", "tau_gap_days", "sigma_hrv",
                                            "sigma_rhr", "sigma_rec", *RECOVERY_GAINS,
                                            *NOISE_PARAMS)}
    for names, mean, prec in posterior.values():
        z = rng.standard_normal((n_draws, len(names)))
        cov = np.linalg.inv(prec[pick])
        beta = mean[pick] + np.einsum("npq,nq->np", np.linalg.cholesky(cov), z)
        for j, name in enumerate(names):
            # a pooled parameter (scale 0) is the population value itself, exactly
            out[name] = np.where(scale[name][pick] > 0, beta[:, j], loc[name][pick])
    return Personalization(out, ess, n_proposals, n_obs, log_evidence)


def _weigh(raw: dict[str, np.ndarray], loc: dict[str, np.ndarray],
           scale: dict[str, np.ndarray], series: AthleteSeries, log_ratio: np.ndarray):
    """Normalised weights, their ESS, the linear parameters' Gaussian posterior (mean,
    precision), the constrained parameters of one round's proposals and the log of the
    weights' mean (the estimate of the history's marginal likelihood).

    Given a proposal's time constants, noise and recovery gains, all three targets are linear
    in the HRV and RHR baselines and loadings and the recovery baseline (`RECOVERY_GAINS`):
    one conjugate update over the nine (`_joint_linear`, each target's series whitened under
    its own noise) gives their exact joint posterior and the marginal likelihood of all three
    series, which is the proposal's weight. The uncertainty of the HRV and RHR loadings thus
    reaches the recovery baseline (with the loadings' posterior means plugged into the
    recovery regression instead, its 90 % intervals covered about half the time), and the
    recovery series informs the loadings."""
    p = constrained(raw)
    lat = np.ascontiguousarray(latent_states(p, series.load, series.hi_load)
                               .transpose(0, 2, 1))  # (M, 3, T): see _prewhiten
    n_m, n_ch, n_t = lat.shape
    weekday = weekdays(series.dates) if has_weekday(p) else None
    column = {name: j for j, name in enumerate(_JOINT_NAMES)}
    parts = []
    # the recovery series' regressors are the HRV and RHR ones mapped through the gains:
    # x_rec = (1, states) and A_rec takes each state to the loadings times ±gain
    a_rec = np.zeros((n_m, len(_JOINT_NAMES), 1 + n_ch))
    a_rec[:, column["mu_rec"], 0] = 1.0
    for target, (intercept, terms), gain, y in (
            ("hrv", HRV_BLOCK, p["g_hrv"], series.hrv),
            ("rhr", RHR_BLOCK, -p["g_rhr"], series.rhr)):
        cols = [column[intercept]]
        x = np.empty((n_m, 1 + len(terms), n_t))
        x[:, 0] = 1.0
        for j, (name, ch, sign) in enumerate(terms, start=1):
            np.multiply(lat[:, ch], sign, out=x[:, j])
            a_rec[:, column[name], 1 + ch] = sign * gain
            cols.append(column[name])
        if np.any(~np.isnan(y)):
            parts.append((*_whiten(y, x, p, target, weekday), p[NOISE_SIGMA[target]],
                          np.array(cols)))
    if np.any(~np.isnan(series.recovery_logit)):
        x = np.empty((n_m, 1 + n_ch, n_t))
        x[:, 0] = 1.0
        x[:, 1:] = lat
        parts.append((*_whiten(series.recovery_logit, x, p, "recovery", weekday),
                      p["sigma_rec"], a_rec))
    m0 = np.stack([loc[nm] for nm in _JOINT_NAMES], axis=1)
    s0 = _prior_sd(np.stack([scale[nm] for nm in _JOINT_NAMES], axis=1))
    if parts:
        mean, prec, log_ml = _joint_linear(parts, m0, s0)
    else:
        mean, prec, log_ml = m0, np.eye(len(_JOINT_NAMES))[None] / s0[:, :, None] ** 2, 0.0
    posterior = {"linear": (_JOINT_NAMES, mean, prec)}

    log_w = log_ml + log_ratio
    w = np.exp(log_w - log_w.max())
    log_evidence = float(log_w.max() + np.log(w.mean()))
    w /= w.sum()
    return w, float(effective_sample_size(w)), posterior, p, log_evidence


POOLED_PRIOR_SD = 1e-6
"""Prior SD that stands in for a pooled parameter's zero scale in the conjugate update (the
parameter is then fixed at its population value up to terms of order 1e-12)."""


def _prior_sd(scale: np.ndarray) -> np.ndarray:
    """Between-athlete scales as prior SDs of the linear update: a pooled parameter's 0 becomes
    `POOLED_PRIOR_SD`, so its prior precision is huge but finite."""
    return np.where(scale > 0, scale, POOLED_PRIOR_SD)


def _systematic_resample(w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    positions = (rng.random() + np.arange(n)) / n
    return np.minimum(np.searchsorted(np.cumsum(w), positions), len(w) - 1)


# --------------------------------------------------------------------------------------------
# The WorldModel
# --------------------------------------------------------------------------------------------
