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
    """The source indicator of every NUTS draw, from its conditional probability."""
    CHAIN_INIT = 3
    """Starting offsets of the NUTS chains around the MAP."""
    SCREENING = 4
    """Widened Laplace draws that decide which observations NUTS evaluates."""
    WEIGHT_ADAPTATION = 5
    """Importance-sampling draws that adapt the mode-jumping proposal's weights."""

    def generator(self, seed: int) -> np.random.Generator:
        """This stream's generator for ``seed``."""
        return np.random.default_rng([seed, int(self)])


def nuts_key(seed: int, escalation_stage: int | None = None) -> jax.Array:
    """JAX key of a NUTS run: ``PRNGKey(seed)`` for the first run, with ``1 + escalation_stage`` folded
    in for each run of the escalation (the chains' keys are split from it)."""
    key = jax.random.PRNGKey(seed)
    return key if escalation_stage is None else jax.random.fold_in(key, 1 + escalation_stage)
