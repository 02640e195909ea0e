"""Adaptive tempered sequential Monte Carlo (SMC) for posteriors that are not one Gaussian-like mode.

Events with no source or a weak one have a posterior that NUTS explores badly: a "no plume" plateau
over which the source position and the winds keep their prior, next to narrow modes where a weak
plume explains part of the data. SMC (Del Moral, Doucet & Jasra 2006, JRSS B 68, 411) moves a
population of particles from a reference distribution ``q`` to the posterior ``pi`` through the
geometric path ``gamma_b = q^(1 - b) pi^b``, ``0 = b_0 < ... < b_T = 1``:

- each next ``b`` is chosen so that the effective sample size of the incremental weights is
  ``smc_ess_fraction`` of the particles (adaptive tempering, Jasra, Stephens, Doucet & Tsagaris
  2011, Scand. J. Stat. 38, 1);
- the particles are then resampled (systematic resampling) and moved by Metropolis-Hastings steps
  that leave ``gamma_b`` invariant: an independence proposal from a Gaussian mixture fitted to the
  particles, one component for those without a plume and one per k-means cluster of those with one
  (moves between the plateau and the plume modes, and between plume modes at different positions
  or wind directions; with one component for all plume particles, null and weak EMIT + TROPOMI
  scenes ended at R-hat 1.02-1.05), and a random walk whose covariance is
  one of the mixture's (moves within a mode; a mixture of symmetric kernels with fixed weights is
  symmetric).

The reference ``q`` is a mixture of the Laplace fits of the two presence components (the closed-form
no-source fit keeps the plume parameters at their prior), so few temperatures separate it from the
posterior. The particles form ``num_chains`` independent populations, each resampled on its own, so
the rank-normalised R-hat between populations checks the method as it checks NUTS chains, except
for a bias that all of them share because they start from the same reference
(:func:`smc_posterior`'s ``untrusted_reference``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.special import logsumexp

from attribution_assets.science.inversion.diagnostics import (
    SamplerDiagnostics,
    convergence_diagnostics,
    ess_target,
    is_converged,
)
from attribution_assets.science.inversion.laplace import LaplaceFit, cholesky
from attribution_assets.science.inversion.model import log_likelihood_batch, mixture_log_likelihood
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig
from attribution_assets.science.inversion.result import PosteriorDraws, sampled_posterior
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.inversion.streams import RandomStream

PROPOSAL_INFLATION = 1.5
"""Scale of the independence proposal's components over the particles' covariance: heavier tails
than the particles keep the Metropolis-Hastings ratio bounded (Chopin & Papaspiliopoulos 2020,
"An Introduction to Sequential Monte Carlo", section 17.2)."""
PRESENT_CLUSTERS = 8
"""Components at most of the fitted proposal for the particles with a plume."""
MIN_COMPONENT_WEIGHT = 0.1
"""Smallest weight of a component of the reference and of the independence proposal."""
RANDOM_WALK_SCALE = 2.38
"""Random-walk step over ``sqrt(P)`` posterior sd (Roberts, Gelman & Gilks 1997, Ann. Appl. Probab.
7, 110), adapted per temperature towards an acceptance of 0.25."""
MOVED_TARGET = 0.99
"""Share of particles that must have moved since the last resampling before the draws are returned."""
AGREEMENT_CHECK = 4
"""Move pairs at the posterior between two checks that the populations agree."""


class GaussianMixture:
    """A Gaussian mixture in the whitened coordinates ``z``: weights (K,), means (K, P), Cholesky
    factors (K, P, P) of the covariances."""

    def __init__(self, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> None:
        self.weights = np.asarray(weights, float) / np.sum(weights)
        self.means = np.asarray(means, float)
        self.chols = np.array([cholesky(c) for c in covs])

    def log_density(self, z: np.ndarray) -> np.ndarray:
        """Log density of points ``z`` (N, P), normalised."""
        dim = z.shape[-1]
        parts = []
        for w, mean, chol in zip(self.weights, self.means, self.chols, strict=True):
            u = np.linalg.solve(chol, (z - mean).T).T
            log_det = float(np.sum(np.log(np.diag(chol))))
            parts.append(np.log(w) - 0.5 * np.sum(u**2, axis=-1) - log_det - 0.5 * dim * np.log(2 * np.pi))
        return logsumexp(np.stack(parts), axis=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws (n, P)."""
        component = rng.choice(self.weights.size, size=n, p=self.weights)
        noise = rng.standard_normal((n, self.means.shape[1]))
        return self.means[component] + np.einsum("npq,nq->np", self.chols[component], noise)


def reference(present: Sequence[LaplaceFit], absent: LaplaceFit | None, p_source: float) -> GaussianMixture:
    """The SMC reference: the Laplace fits of the source-present model at its optima (weighted by
    their Laplace evidences) and of the no-source model, the two models weighted by the Laplace
    ``P(source | y)`` with at least ``MIN_COMPONENT_WEIGHT`` each (the present fits alone when the
    source is always present). Covariances are inflated by ``PROPOSAL_INFLATION``^2."""
    evidence = np.array([f.log_evidence for f in present])
    weights = np.exp(evidence - evidence.max())
    weights = np.maximum(weights / weights.sum(), MIN_COMPONENT_WEIGHT)
    fits = list(present)
    if absent is not None:
        w = float(np.clip(p_source, MIN_COMPONENT_WEIGHT, 1.0 - MIN_COMPONENT_WEIGHT))
        weights = np.append(w * weights / weights.sum(), 1.0 - w)
        fits.append(absent)
    return GaussianMixture(
        weights,
        np.stack([f.mean for f in fits]),
        PROPOSAL_INFLATION**2 * np.stack([f.cov for f in fits]),
    )


def _clusters(z: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """``group`` (a mask of ``z``'s rows) split into at most ``PRESENT_CLUSTERS`` k-means clusters
    (Lloyd's algorithm, k-means++ start) of at least ``2 P`` particles each; ``[group]`` when no split
    gives such clusters (k-means++ on particles that resampling has made copies of one another
    leaves clusters empty, which that check rejects)."""
    dim = z.shape[1]
    for k in range(min(PRESENT_CLUSTERS, int(group.sum()) // (2 * dim)), 1, -1):
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", UserWarning)
            _, label = kmeans2(z[group], k, minit="++", seed=rng)
        parts = [np.flatnonzero(group)[label == c] for c in range(k)]
        if all(part.size >= 2 * dim for part in parts):
            return [np.isin(np.arange(len(z)), part) for part in parts]
    return [group]


def fitted_mixture(
    z: np.ndarray, log_bf: np.ndarray, rng: np.random.Generator | None = None
) -> GaussianMixture:
    """A Gaussian mixture fitted to particles ``z`` (N, P): components for the particles whose plume
    explains the data (log Bayes factor > 0; with ``rng``, one per k-means cluster of them, as the
    plume modes are separate positions and wind directions) and one for the others, each with the
    particles' mean and covariance (inflated by ``PROPOSAL_INFLATION``^2); a component with fewer
    than ``2 P`` particles is left out."""
    dim = z.shape[1]
    present = log_bf > 0.0
    split = _clusters(z, present, rng) if rng is not None and present.sum() >= 4 * dim else [present]
    groups = [g for g in (*split, ~present) if g.sum() >= 2 * dim] or [np.ones(len(z), bool)]
    weights = np.array([max(g.mean(), MIN_COMPONENT_WEIGHT) for g in groups])
    means = np.stack([z[g].mean(axis=0) for g in groups])
    covs = np.stack(
        [PROPOSAL_INFLATION**2 * np.cov(z[g], rowvar=False) + 1e-9 * np.eye(dim) for g in groups]
    )
    return GaussianMixture(weights, means, covs)


@dataclass(frozen=True)
class SmcDraws:
    """The particles of one SMC run: whitened ``z`` (C, D, P) (C populations of D particles), their
    log Bayes factors of source presence (C, D), the temperatures, the mean acceptance of the random-walk
    moves and the move pairs made at the posterior after the last resampling."""

    z: np.ndarray
    log_bf: np.ndarray
    temperatures: tuple[float, ...]
    acceptance: float
    posterior_moves: int


class _Target:
    """The log posterior (constants dropped) and the log Bayes factor of particles, and the
    reference's log density."""

    def __init__(self, data: InversionProblem, config: ModelConfig, ref: GaussianMixture) -> None:
        self.data, self.config, self.ref = data, config, ref

    def __call__(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(log posterior, log Bayes factor, log reference density)`` of ``z`` (..., P)."""
        flat = z.reshape(-1, z.shape[-1])
        ll0, delta = log_likelihood_batch(flat, self.data, self.config)
        with np.errstate(invalid="ignore"):
            log_post = ll0 + mixture_log_likelihood(delta, self.data, self.config) - 0.5 * np.sum(flat**2, -1)
        log_post = np.where(np.isfinite(log_post), log_post, -np.inf)
        shape = z.shape[:-1]
        return log_post.reshape(shape), delta.reshape(shape), self.ref.log_density(flat).reshape(shape)


def _ess(log_w: np.ndarray) -> np.ndarray:
    """Effective sample size of each population's weights ``log_w`` (C, D)."""
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return w.sum(axis=1) ** 2 / np.sum(w**2, axis=1)


def next_temperature(increment: np.ndarray, beta: float, ess_fraction: float) -> float:
    """The next temperature: the largest ``b' <= 1`` whose incremental weights ``(b' - b) increment``
    keep every population's ESS at ``ess_fraction`` of its particles (bisection, 50 halvings)."""
    target = ess_fraction * increment.shape[1]
    if np.all(_ess((1.0 - beta) * increment) >= target):
        return 1.0
    low, high = 0.0, 1.0 - beta
    for _ in range(50):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if np.all(_ess(mid * increment) >= target) else (low, mid)
    return beta + max(low, 1e-12)


def _systematic(log_w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Systematic resampling (Carpenter, Clifford & Fearnhead 1999) within each population: the
    chosen particle indices (C, D)."""
    chains, n = log_w.shape
    w = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))
    cumulative = np.cumsum(w, axis=1)
    cumulative[:, -1] = 1.0
    points = (rng.uniform(size=(chains, 1)) + np.arange(n)) / n
    return np.stack([np.searchsorted(cumulative[c], points[c]) for c in range(chains)])


class _Particles:
    """Particles (C, D, P) with their log posterior, log Bayes factor and log reference density."""

    def __init__(self, z: np.ndarray, target: _Target) -> None:
        self.z = z
        self.log_post, self.log_bf, self.log_ref = target(z)
        self.moved = np.zeros(z.shape[:2], bool)

    def tempered(self, beta: float) -> np.ndarray:
        """``log gamma_b`` of every particle."""
        return beta * self.log_post + (1.0 - beta) * self.log_ref

    def take(self, index: np.ndarray) -> None:
        """Keep the particles ``index`` (C, D) of each population."""
        rows = np.arange(index.shape[0])[:, None]
        for name in ("z", "log_post", "log_bf", "log_ref"):
            setattr(self, name, getattr(self, name)[rows, index])
        self.moved = np.zeros(index.shape, bool)

    def metropolis(self, proposed: np.ndarray, log_q_ratio: np.ndarray, beta: float,
                   target: _Target, rng: np.random.Generator) -> float:
        """Accept ``proposed`` (C, D, P) with probability ``gamma_b(z') / gamma_b(z) * log_q_ratio``;
        returns the acceptance rate."""
        log_post, log_bf, log_ref = target(proposed)
        log_ratio = beta * log_post + (1.0 - beta) * log_ref - self.tempered(beta) + log_q_ratio
        accept = np.log(rng.uniform(size=log_ratio.shape)) < np.nan_to_num(log_ratio, nan=-np.inf)
        self.z = np.where(accept[..., None], proposed, self.z)
        for name, new in (("log_post", log_post), ("log_bf", log_bf), ("log_ref", log_ref)):
            setattr(self, name, np.where(accept, new, getattr(self, name)))
        self.moved |= accept
        return float(accept.mean())


def _move(particles: _Particles, beta: float, steps: int, scale: float, target: _Target,
          rng: np.random.Generator) -> tuple[float, float]:
    """``steps`` pairs of Metropolis-Hastings moves at temperature ``beta``: an independence
    proposal from the mixture fitted to the particles, then a random walk with one of its
    covariances (chosen at random, fixed weights). Returns the mean acceptance of the random walk
    and its adapted scale."""
    chains, n, dim = particles.z.shape
    accepted = []
    for _ in range(steps):
        mixture = fitted_mixture(particles.z.reshape(-1, dim), particles.log_bf.ravel(), rng)
        proposed = mixture.sample(rng, chains * n).reshape(chains, n, dim)
        log_q_ratio = (mixture.log_density(particles.z.reshape(-1, dim))
                       - mixture.log_density(proposed.reshape(-1, dim))).reshape(chains, n)
        particles.metropolis(proposed, log_q_ratio, beta, target, rng)
        component = rng.integers(mixture.weights.size, size=chains * n)
        noise = np.einsum("npq,nq->np", mixture.chols[component] / PROPOSAL_INFLATION,
                          rng.standard_normal((chains * n, dim)))
        proposed = particles.z + scale / np.sqrt(dim) * noise.reshape(chains, n, dim)
        rate = particles.metropolis(proposed, np.zeros((chains, n)), beta, target, rng)
        accepted.append(rate)
        scale *= float(np.exp(rate - 0.25))
    return float(np.mean(accepted)), scale


def sample_smc(
    data: InversionProblem,
    config: ModelConfig,
    ref: GaussianMixture,
    settings: InversionSettings,
    rng: np.random.Generator,
    agree: Callable[[np.ndarray], bool] = lambda z: True,
    min_final_moves: int = 0,
) -> SmcDraws:
    """Adaptive tempered SMC from the reference ``ref`` to the posterior of ``data`` (module
    docstring): ``settings.num_chains`` populations of ``settings.smc_particles // num_chains``
    particles, ``settings.smc_moves`` move pairs per temperature, then moves at the posterior until
    ``MOVED_TARGET`` of the particles have moved and ``agree(z)`` holds for the particles (C, D, P),
    checked every ``AGREEMENT_CHECK`` pairs after the first ``min_final_moves``, with at most
    ``min_final_moves + settings.smc_final_moves`` pairs.

    The time is bounded: the ``settings.smc_max_temperatures``-th step goes to temperature 1
    whatever the weights' ESS (the moves at the posterior then decide whether the populations
    agree, and the diagnostics report it), and a particle whose log posterior float32 cannot
    evaluate (inf or NaN far out in the reference's tails) has density zero."""
    chains = settings.num_chains
    n = max(settings.smc_particles // chains, 2 * config.dim)
    target = _Target(data, config, ref)
    particles = _Particles(ref.sample(rng, chains * n).reshape(chains, n, config.dim), target)
    beta, temperatures = 0.0, [0.0]
    scale, acceptance = RANDOM_WALK_SCALE, []
    while beta < 1.0:
        increment = particles.log_post - particles.log_ref
        last = len(temperatures) >= settings.smc_max_temperatures
        new_beta = 1.0 if last else next_temperature(increment, beta, settings.smc_ess_fraction)
        log_w = (new_beta - beta) * increment
        beta = new_beta
        temperatures.append(beta)
        particles.take(_systematic(log_w, rng))
        rate, scale = _move(particles, beta, settings.smc_moves, scale, target, rng)
        acceptance.append(rate)
    moves = settings.smc_moves
    for step in range(min_final_moves + settings.smc_final_moves):
        if (step >= min_final_moves and particles.moved.mean() >= MOVED_TARGET
                and step % AGREEMENT_CHECK == 0 and agree(particles.z)):
            break
        rate, scale = _move(particles, 1.0, 1, scale, target, rng)
        acceptance.append(rate)
        moves += 1
    return SmcDraws(
        z=particles.z,
        log_bf=particles.log_bf,
        temperatures=tuple(temperatures),
        acceptance=float(np.mean(acceptance)),
        posterior_moves=moves,
    )


def smc_posterior(
    data: InversionProblem,
    config: ModelConfig,
    ref: GaussianMixture,
    settings: InversionSettings,
    escalated: bool = False,
    untrusted_reference: bool = False,
) -> PosteriorDraws:
    """The SMC posterior (:func:`sample_smc` from ``ref``, ``SMC`` stream) with its diagnostics:
    R-hat and bulk/tail ESS between the particle populations, judged against the same ESS target
    as NUTS (the particles keep moving at the posterior until they pass it or the move budget is
    spent); ``escalated``: NUTS failed its diagnostics, or its warm-up saturated its trees, before.

    ``untrusted_reference``: the particles first make ``settings.smc_final_moves`` move pairs at the
    posterior, whether or not the populations agree sooner, then move until they agree (at most as
    many again). For a reference that cannot be trusted to have placed them (a Laplace fit that
    left Hessian directions unresolved, on a rate-wind ridge): every population starts from the
    same reference, so their agreement cannot show how far the particles still are from where it
    put them. On the model twin's seed-2 event 216 (21 t/h, three instruments) the median of the
    rate at the first agreement was 6.4 t/h from the reference, 5.8 and 28 t/h from references
    weighted to one or the other of its two optima (R-hat below 1.01 each time), and 12.6, 13.3 and
    13.1 t/h after 200 move pairs."""
    target = ess_target(settings.num_chains, settings.num_samples)

    def agree(z: np.ndarray) -> bool:
        diagnostics = convergence_diagnostics({"z": z}, np.zeros(z.shape[:2], bool))
        return is_converged(diagnostics, ess_threshold=target)

    draws = sample_smc(data, config, ref, settings, RandomStream.SMC.generator(settings.seed), agree,
                       settings.smc_final_moves if untrusted_reference else 0)
    diverging = np.zeros(draws.z.shape[:2], bool)
    convergence = convergence_diagnostics({"z": draws.z}, diverging)
    diagnostics = SamplerDiagnostics(
        **vars(convergence),
        converged=is_converged(convergence, ess_threshold=target),
        ess_target=target,
        sampler="smc",
        escalated=escalated,
        observations_evaluated=1.0,
        mean_leapfrog_steps=float("nan"),
        max_excluded_plume_sigma=0.0,
        smc_temperatures=len(draws.temperatures) - 1,
        smc_acceptance=draws.acceptance,
        smc_posterior_moves=draws.posterior_moves,
    )
    return sampled_posterior(draws.z, draws.log_bf, diverging, data, config, settings.seed, diagnostics)
