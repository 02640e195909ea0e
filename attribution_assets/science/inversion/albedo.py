"""Surface-albedo artefacts: a linear dependence of a retrieval on the surface albedo, removed per block.

XCH4 retrievals carry a residual dependence on surface albedo: surface features leak into the
retrieved column (GHGSat, Jervis et al. 2021, AMT 14, 2127; TROPOMI before and after its a-posteriori
correction, Lorente et al. 2021, AMT 14, 665). Without a covariate the inversion can only see such an
artefact as spatially correlated error and temper the block for it
(:mod:`~attribution_assets.science.inversion.structured_error`), which costs a GHGSat scene most of
its sensitivity to weak plumes (a likelihood weight of about 1/6 on the misspecified validation set,
``benchmarks/structured_error_scales.py``). Where the retrieval reports the albedo it fitted
(``ObservationBlock.albedo``), the artefact is a regression on it instead:

    y_i = B + beta (a_i - a_bar) + plume_i + e_i,   e_i ~ N(0, s_i^2)

with ``beta`` (block units per unit albedo) estimated by weighted least squares over the block's
quiet observations (:func:`~attribution_assets.science.inversion.structured_error.quiet_observations`,
which leaves a bright plume out) and ``beta (a - a_bar)`` subtracted from every observation. For a
flat prior on ``beta`` this is the marginal likelihood of the linear nuisance up to the plume's own
projection on the albedo field, a share of about ``1 / n`` of its evidence for a plume uncorrelated
with the surface: negligible for a block of ``MIN_OBSERVATIONS`` or more, which is the rule for
applying it (a TROPOMI scene of tens of pixels, where a plume could take a noticeable share of the
fit, keeps its data). The fitted slope and its standard error are returned for the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion.structured_error import quiet_observations

MIN_OBSERVATIONS = 200
"""Fewest quiet observations with a finite albedo for which a block's albedo slope is fitted."""
MIN_ALBEDO_SD = 1e-4
"""Smallest weighted sd of the albedo over the quiet observations (1) that can carry a slope."""


@dataclass(frozen=True)
class AlbedoFit:
    """The albedo slope removed from one block: ``slope`` and its standard error ``slope_se`` (block
    ``units`` per unit albedo), about the weighted mean albedo ``mean_albedo``, over ``n`` observations."""

    instrument: str
    units: str
    slope: float
    slope_se: float
    mean_albedo: float
    n: int

    def describe(self) -> str:
        """One line for the log: instrument, slope +- its standard error, and the observations."""
        return (f"{self.instrument}: albedo artefact {self.slope:.1f} +- {self.slope_se:.1f} {self.units} "
                f"per unit albedo removed ({self.n} observations)")


def fit_albedo_slope(block: ObservationBlock) -> AlbedoFit | None:
    """The weighted least-squares slope of the block's observations on its albedo (module docstring),
    over its quiet observations with a finite albedo; None when the block reports no albedo, has fewer
    than ``MIN_OBSERVATIONS`` such observations or an albedo that hardly varies."""
    if block.albedo is None:
        return None
    albedo = np.asarray(block.albedo, float)
    use = quiet_observations(block) & np.isfinite(albedo)
    if use.sum() < MIN_OBSERVATIONS:
        return None
    weight = 1.0 / np.asarray(block.sigma, float)[use] ** 2
    a, y = albedo[use], np.asarray(block.y, float)[use]
    a_bar = float(np.sum(weight * a) / weight.sum())
    spread = float(np.sum(weight * (a - a_bar) ** 2))
    if np.sqrt(spread / weight.sum()) < MIN_ALBEDO_SD:
        return None
    slope = float(np.sum(weight * (a - a_bar) * y) / spread)
    resid = y - np.sum(weight * y) / weight.sum() - slope * (a - a_bar)
    chi2_per_dof = float(np.sum(weight * resid**2)) / max(use.sum() - 2, 1)
    slope_se = float(np.sqrt(max(chi2_per_dof, 1.0) / spread))
    return AlbedoFit(block.instrument, block.units, slope, slope_se, a_bar, int(use.sum()))


def remove_albedo_artefact(block: ObservationBlock) -> tuple[ObservationBlock, AlbedoFit | None]:
    """The block with its fitted albedo artefact ``slope (a - a_bar)`` subtracted (observations whose
    albedo is not finite keep their value) and the fit; the block unchanged and None where
    :func:`fit_albedo_slope` fits none."""
    fit = fit_albedo_slope(block)
    if fit is None:
        return block, None
    artefact = fit.slope * (np.asarray(block.albedo, float) - fit.mean_albedo)
    y = np.asarray(block.y, float) - np.where(np.isfinite(artefact), artefact, 0.0)
    return replace(block, y=y), fit


def remove_albedo_artefacts(
    blocks: Sequence[ObservationBlock],
) -> tuple[list[ObservationBlock], list[AlbedoFit | None]]:
    """:func:`remove_albedo_artefact` for every block: the blocks and, per block, its fit or None."""
    done = [remove_albedo_artefact(block) for block in blocks]
    return [block for block, _ in done], [fit for _, fit in done]
