"""Which observations NUTS evaluates: those the plume can reach under a widened Laplace fit.

The others enter the likelihood through their blocks' sufficient statistics
(:func:`~attribution_assets.science.inversion.problem.with_observations`), exact where the plume
term is zero. The largest plume contribution of an excluded observation under posterior draws is
reported in the diagnostics, so the approximation is checked on every event.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.groups import per_observation
from attribution_assets.science.inversion.laplace import LaplaceFit, cholesky
from attribution_assets.science.inversion.model import group_predict, unpack_latent
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig
from attribution_assets.science.inversion.streams import RandomStream

SCREENING_SIGMA = 1e-3
"""An observation is evaluated by NUTS when its plume contribution can reach this fraction of its
noise under the widened Laplace approximation."""
SCREENING_WIDEN = 2.5
"""Standard-deviation factor of the Laplace approximation the screening draws from."""
SCREENING_DRAWS = 64
"""Draws from the widened Laplace approximation that decide the screening."""
SCREENING_MIN_POINTS = 16_384
"""Problems with at most this many quadrature points are sampled whole: screening would save little,
and the screened subsets' varying sizes would make NUTS compile again for many events."""


def needs_screening(blocks: Sequence[ObservationBlock]) -> bool:
    """True when the blocks have more than ``SCREENING_MIN_POINTS`` quadrature points in all."""
    return sum(b.size * b.weights.shape[1] for b in blocks) > SCREENING_MIN_POINTS


@partial(jax.jit, static_argnames="config")
def _plume_sigma(z: jax.Array, data: InversionProblem, config: ModelConfig) -> tuple[jax.Array, ...]:
    """Plume contribution of every observation in units of its reported sigma, per group (n,)."""
    phys = unpack_latent(z, data, config)
    return tuple(jnp.abs(group_predict(phys, g, config)) / g.sigma for g in data.groups)


def max_plume_sigma(
    zs: np.ndarray, data: InversionProblem, config: ModelConfig, blocks: Sequence[ObservationBlock]
) -> list[np.ndarray]:
    """Largest plume contribution (in sigma) over the parameter draws ``zs`` (K, P), per block (n_b,).

    ``data`` must hold every observation (as built by
    :func:`~attribution_assets.science.inversion.problem.prepare`)."""
    worst = [np.zeros(b.size) for b in blocks]
    for z in zs:
        per_group = _plume_sigma(jnp.asarray(z, jnp.float32), data, config)
        worst = [np.maximum(w, per_observation(g, v, w.size))
                 for w, g, v in zip(worst, data.groups, per_group, strict=True)]
    return worst


def screen(
    data: InversionProblem,
    config: ModelConfig,
    fit: LaplaceFit,
    seed: int,
    blocks: Sequence[ObservationBlock],
) -> list[np.ndarray]:
    """Observations whose plume contribution can matter, per block: any of ``SCREENING_DRAWS`` draws
    from the Laplace approximation ``fit`` widened ``SCREENING_WIDEN`` times (``SCREENING`` stream of
    ``seed``) brings them above ``SCREENING_SIGMA``."""
    rng = RandomStream.SCREENING.generator(seed)
    chol = cholesky(fit.cov)
    w = SCREENING_WIDEN * rng.standard_normal((SCREENING_DRAWS, fit.mean.size))
    zs = np.vstack([fit.mean[None, :], fit.mean[None, :] + w @ chol.T])
    return [m > SCREENING_SIGMA for m in max_plume_sigma(zs, data, config, blocks)]
