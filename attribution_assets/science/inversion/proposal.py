"""The mode-jumping independence proposal: a Gaussian mixture in the sampler's coordinates.

Every NUTS transition is followed by Metropolis-Hastings steps whose independence proposal is a
mixture of the Laplace fits (Tjelmeland & Hegstad 2001, Scand. J. Stat. 28, 205; see
:func:`~attribution_assets.science.inversion.sampler.chain_runner`), so that chains move between
modes no Hamiltonian trajectory connects, such as two candidate sources or a noise feature fitted
with a rotated wind. The escalated run adds a Gaussian per mode the previous run's chains visited
(:func:`draw_components`) and adapts the weights to the posterior by importance sampling
(:func:`adapted_weights`, the M-PMC update).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from attribution_assets.science.inversion.laplace import LaplaceFit, cholesky
from attribution_assets.science.inversion.model import log_posterior_batch
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig
from attribution_assets.science.inversion.streams import RandomStream

Gaussian = tuple[np.ndarray, np.ndarray]
"""(mean (P,), covariance (P, P)) of one proposal component."""

JUMP_WIDEN = 1.2
"""Standard-deviation factor of every mode-jumping proposal component (heavier tails than the
modes they approximate keep the independence proposal's weights bounded)."""
PROPOSAL_SLOTS = 32
"""Most components of a mode-jumping proposal (one compiled sampler for any number up to this)."""
ADAPT_ROUNDS = 3
"""Importance-sampling rounds of :func:`adapted_weights`."""
ADAPT_DRAWS = 1024
"""Proposal draws per round of :func:`adapted_weights`."""
MIN_PROPOSAL_WEIGHT = 0.01
"""Smallest adapted weight of a used component (so that no mode becomes unreachable)."""
CLUSTER_RADIUS = 1.0
"""Draws whose source position and wind directions are all within this many prior sd of a cluster's
leader belong to the same mode (:func:`draw_components`)."""
LAPLACE_COMPONENT_WEIGHT = 0.05
"""Weight of each Laplace fit in an escalated run's proposal, before adaptation."""


class JumpProposal(NamedTuple):
    """Mode-jumping proposal: a mixture of Gaussians in the preconditioned coordinates ``w`` (a JAX
    pytree). Unused slots have ``log_weights = -inf``, so every event of a given chain count has the
    same shapes and one compiled sampler."""

    means: jax.Array  # (K, P)
    chols: jax.Array  # (K, P, P) lower Cholesky factors of the component covariances
    inv_chols: jax.Array  # (K, P, P)
    log_dets: jax.Array  # (K,) sum of log diag(chols)
    log_weights: jax.Array  # (K,)


def build_proposal(components: Sequence[Gaussian], weights: Sequence[float] | None = None) -> JumpProposal:
    """The mixture of ``components`` ((mean, covariance) in ``w``; equal weights unless given), each
    widened by ``JUMP_WIDEN`` in sd, padded to ``PROPOSAL_SLOTS`` components (the first ones kept)."""
    dim, slots = components[0][0].size, PROPOSAL_SLOTS
    components = list(components)[:slots]
    weights = np.ones(len(components)) if weights is None else np.asarray(weights, float)[:slots]
    means, chols = np.zeros((slots, dim)), np.tile(np.eye(dim), (slots, 1, 1))
    log_weights = np.full(slots, -np.inf)
    log_weights[: len(components)] = np.log(weights / weights.sum())
    for k, (mean, cov) in enumerate(components):
        means[k], chols[k] = mean, JUMP_WIDEN * cholesky(cov)
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    return JumpProposal(
        means=f32(means),
        chols=f32(chols),
        inv_chols=f32(np.linalg.inv(chols)),
        log_dets=f32(np.log(np.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)),
        log_weights=f32(log_weights),
    )


def component_log_densities(w: jax.Array, proposal: JumpProposal) -> jax.Array:
    """Log density (K,) of each mixture component at ``w``, without its weight (constants dropped)."""
    white = jnp.einsum("kij,kj->ki", proposal.inv_chols, w[None, :] - proposal.means)
    return -proposal.log_dets - 0.5 * jnp.sum(white**2, axis=1)


def proposal_log_density(w: jax.Array, proposal: JumpProposal) -> jax.Array:
    """Log density of the mixture at ``w`` (constants, ``(P / 2) log 2 pi``, dropped)."""
    return jax.nn.logsumexp(proposal.log_weights + component_log_densities(w, proposal))


_batched_component_log_densities = jax.jit(jax.vmap(component_log_densities, in_axes=(0, None)))


def adapted_weights(
    proposal: JumpProposal,
    shift: np.ndarray,
    chol: np.ndarray,
    data: InversionProblem,
    config: ModelConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Weights of the mode-jumping mixture adapted to the posterior by importance sampling.

    An independence proposal mixes as well as its weights match the posterior mass of the modes
    its components cover: a mode given ``r`` times too little weight is entered ``r`` times too
    rarely and left with probability ``~r``. Each of ``ADAPT_ROUNDS`` rounds draws ``ADAPT_DRAWS``
    points from the mixture, weights them by ``p(w) / q(w)`` and sets every component's weight to the
    importance-weighted mean of its responsibility ``alpha_k q_k(w) / q(w)`` (the weight update of
    M-PMC, Cappe, Douc, Guillin, Marin & Robert 2008, Stat. Comput. 18, 447), kept above
    ``MIN_PROPOSAL_WEIGHT`` so that no mode becomes unreachable. ``data`` must be what the chains
    sample (``shift``, ``chol``: their preconditioning ``z = shift + chol @ w``).
    """
    means = np.asarray(proposal.means, float)
    chols = np.asarray(proposal.chols, float)
    alpha = np.exp(np.asarray(proposal.log_weights, float))
    used = alpha > 0
    for _ in range(ADAPT_ROUNDS):
        component = rng.choice(alpha.size, size=ADAPT_DRAWS, p=alpha / alpha.sum())
        noise = rng.standard_normal((ADAPT_DRAWS, means.shape[1]))
        w = means[component] + np.einsum("nij,nj->ni", chols[component], noise)
        densities = np.asarray(_batched_component_log_densities(jnp.asarray(w, jnp.float32), proposal), float)
        with np.errstate(divide="ignore"):
            log_qk = np.log(alpha)[None] + densities
        log_q = np.logaddexp.reduce(log_qk, axis=1)
        log_p = log_posterior_batch(shift + w @ chol.T, data, config)
        log_iw = np.where(np.isfinite(log_p), log_p - log_q, -np.inf)
        if not np.isfinite(log_iw).any():
            break
        iw = np.exp(log_iw - log_iw.max())
        responsibility = np.exp(log_qk - log_q[:, None])
        alpha = np.where(used, np.maximum((iw @ responsibility) / iw.sum(), MIN_PROPOSAL_WEIGHT), 0.0)
        alpha /= alpha.sum()
    return alpha


def adapt(
    proposal: JumpProposal, frame: LaplaceFit, data: InversionProblem, config: ModelConfig, seed: int
) -> JumpProposal:
    """``proposal`` with its weights adapted to the posterior (:func:`adapted_weights`; chains
    preconditioned by ``frame``), drawing from the ``WEIGHT_ADAPTATION`` stream of ``seed``."""
    rng = RandomStream.WEIGHT_ADAPTATION.generator(seed)
    alpha = adapted_weights(proposal, frame.mean, cholesky(frame.cov), data, config, rng)
    with np.errstate(divide="ignore"):
        return proposal._replace(log_weights=jnp.asarray(np.log(alpha), jnp.float32))


def in_coordinates(frame: LaplaceFit, other: LaplaceFit) -> Gaussian:
    """Mean and covariance of the Gaussian ``other`` in the preconditioned coordinates ``w`` of
    ``frame`` (``z = frame.mean + L w``)."""
    inv = np.linalg.inv(cholesky(frame.cov))
    return inv @ (other.mean - frame.mean), inv @ other.cov @ inv.T


def reexpressed(components: Sequence[Gaussian], old: LaplaceFit, new: LaplaceFit) -> list[Gaussian]:
    """Gaussians (mean, covariance) in the preconditioned coordinates of ``old`` expressed in those of
    ``new`` (``z = mean + L w`` for each)."""
    inv = np.linalg.inv(cholesky(new.cov))
    a, b = inv @ cholesky(old.cov), inv @ (old.mean - new.mean)
    return [(a @ m + b, a @ c @ a.T) for m, c in components]


def _leader_groups(features: np.ndarray, order: np.ndarray) -> list[np.ndarray]:
    """Leader clustering of the draws ``order`` (taken in that order) by ``features``: leaders more
    than ``CLUSTER_RADIUS`` apart, every draw in the group of its nearest leader."""
    leaders: list[int] = []
    for i in order:
        if not leaders or np.max(np.abs(features[i] - features[leaders]), axis=1).min() > CLUSTER_RADIUS:
            leaders.append(int(i))
    if not leaders:
        return []
    distance = np.max(np.abs(features[order][:, None, :] - features[leaders][None]), axis=2)
    label = np.argmin(distance, axis=1)
    return [order[label == k] for k in range(len(leaders))]


def draw_components(
    w: np.ndarray, z: np.ndarray, log_bf: np.ndarray, config: ModelConfig
) -> tuple[list[Gaussian], np.ndarray]:
    """Gaussian components (mean, covariance in ``w``) and weights describing a run's draws ``w``
    and ``z`` (C, D, P) with their log Bayes factors ``log_bf`` (C, D), for the mode-jumping
    proposal of the next run.

    The draws the no-source component explains better (log Bayes factor <= 0) form one component;
    the others are grouped by leader clustering in the whitened source position and wind directions
    (leaders taken in order of decreasing Bayes factor, ``CLUSTER_RADIUS`` apart), so every mode any
    chain visited becomes a component, whether or not the MAP found it. Each component's weight is
    its share of the draws; its covariance is that of its draws shrunk towards the covariance of all
    source-present draws with the weight of ``P + 2`` draws, so that a mode visited briefly still
    gets a full-rank Gaussian. The largest groups come first.
    """
    w = w.reshape(-1, w.shape[-1])
    z = z.reshape(-1, z.shape[-1])
    log_bf = log_bf.ravel()
    lay = config.layout()
    geometry = [lay[name] for name in ("position", "direction") if name in lay]
    features = np.concatenate([z[:, sl] for sl in geometry] or [np.zeros((z.shape[0], 1))], axis=1)
    present = log_bf > 0.0 if config.presence else np.ones(log_bf.size, bool)
    order = np.flatnonzero(present)[np.argsort(-log_bf[present], kind="stable")]
    groups = [np.flatnonzero(~present), *_leader_groups(features, order)]
    groups = sorted((g for g in groups if g.size), key=len, reverse=True)
    pooled = np.cov(w[present] if present.sum() > 1 else w, rowvar=False) + 1e-6 * np.eye(w.shape[1])
    prior_n = w.shape[1] + 2.0
    components = []
    for g in groups:
        scatter = (g.size - 1) * np.cov(w[g], rowvar=False) if g.size > 1 else 0.0
        components.append((w[g].mean(axis=0), (scatter + prior_n * pooled) / (g.size - 1 + prior_n)))
    return components, np.array([g.size for g in groups], float)


def escalation_proposal(
    fits: list[Gaussian], w: np.ndarray, z: np.ndarray, log_bf: np.ndarray, config: ModelConfig
) -> tuple[list[Gaussian], np.ndarray]:
    """Components and weights of an escalated run's mode-jumping proposal, in the coordinates of the
    previous run's draws ``w``: those draws (:func:`draw_components`, weighted by their share) and
    the Laplace fits ``fits`` (``LAPLACE_COMPONENT_WEIGHT`` each, so modes no chain visited can still
    be reached); :func:`adapted_weights` then matches the weights to the posterior."""
    drawn, share = draw_components(w, z, log_bf, config)
    room = PROPOSAL_SLOTS - len(fits)
    weights = np.r_[share[:room] / max(share[:room].sum(), 1.0), np.full(len(fits), LAPLACE_COMPONENT_WEIGHT)]
    return drawn[:room] + fits, weights
