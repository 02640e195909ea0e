"""The random streams of one inversion, each derived from ``InversionSettings.seed``.

Every random choice draws from its own stream, so changing how many numbers one step uses leaves
the others unchanged and the same seed always gives the same posterior.
"""

from __future__ import annotations

from enum import IntEnum

import jax
import numpy as np


class RandomStream(IntEnum):
    """Independent NumPy streams, ``numpy.random.default_rng([seed, stream])``."""

    LAPLACE_DRAWS = 1
    """Draws from the Laplace approximation and their source indicator."""
    PRESENCE = 2
    """The source indicator of every sampled (NUTS or SMC) draw, from its conditional probability."""
    CHAIN_INIT = 3
    """Starting offsets of the NUTS chains around the MAP."""
    SCREENING = 4
    """Widened Laplace draws that decide which observations NUTS evaluates."""
    SMC = 6
    """The reference draws, resampling and Metropolis-Hastings moves of SMC."""
    STRUCTURED_ERROR = 7
    """Sources and directions of the plume templates that measure structured retrieval error."""
    FLUX_FACTOR = 8
    """The source rate of every draw given the rate its plumes carry (the flux factor)."""

    def generator(self, seed: int) -> np.random.Generator:
        """This stream's generator for ``seed``."""
        return np.random.default_rng([seed, int(self)])


def nuts_key(seed: int) -> jax.Array:
    """JAX key of a NUTS run, ``PRNGKey(seed)`` (the chains' keys are split from it)."""
    return jax.random.PRNGKey(seed)
