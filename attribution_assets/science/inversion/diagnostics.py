"""MCMC convergence diagnostics: rank-normalised split R-hat, bulk and tail ESS, divergences.

R-hat and the effective sample sizes follow Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of
MCMC", Bayesian Analysis 16, 667, as implemented in ArviZ (Kumar et al. 2019, JOSS 4, 1143).
Their recommended targets are R-hat < 1.01 and bulk/tail ESS >= 400 (100 per chain for 4 chains);
any divergent Hamiltonian transition signals a biased sampler (Betancourt 2017, arXiv:1701.02434).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from attribution_assets.science.arviz_import import az

R_HAT_THRESHOLD = 1.01
"""Largest R-hat of a converged run."""
ESS_THRESHOLD = 400.0
"""Smallest bulk and tail ESS of a converged run (draws)."""


def _varying(draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The draws (chain, draw, ...) as float arrays, leaving out variables that never change."""
    out = {}
    for name, value in draws.items():
        value = np.asarray(value, dtype=float)
        if value.ndim < 2:
            raise ValueError(f"{name}: draws must have shape (chain, draw, ...), got {value.shape}")
        if np.ptp(value) > 0:
            out[name] = value
    return out


def _extreme(dataset, reducer) -> float:
    """Max or min over every variable and element of an ArviZ diagnostic dataset (NaN ignored)."""
    values = [np.ravel(dataset[name].values) for name in dataset.data_vars]
    values = np.concatenate(values) if values else np.array([np.nan])
    finite = values[np.isfinite(values)]
    return float(reducer(finite)) if finite.size else float("nan")


@dataclass(frozen=True)
class ConvergenceDiagnostics:
    """Worst-case convergence diagnostics over all sampled quantities: rank-normalised split R-hat
    (1), bulk and tail effective sample sizes (draws) and the count of divergent transitions."""

    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int


@dataclass(frozen=True)
class SamplerDiagnostics(ConvergenceDiagnostics):
    """The diagnostics of one inversion's sampler (those of SMC when it replaced NUTS).

    R-hat and the ESS compare NUTS chains, or SMC's independent particle populations.
    ``converged``: :func:`is_converged` with ``ess_target`` (draws) as the ESS threshold;
    ``sampler``: the method that gave the draws ("nuts", "smc" or "laplace"); ``escalated``: NUTS
    failed its diagnostics, or its warm-up saturated its trees, and SMC replaced it;
    ``observations_evaluated``: fraction of the observations whose plume NUTS evaluated (the others
    entered through sufficient statistics);
    ``max_excluded_plume_sigma``: largest plume contribution of an excluded observation under
    posterior draws (in its sigma); ``mean_leapfrog_steps`` per NUTS draw; ``smc_temperatures`` and
    ``smc_acceptance``: SMC's tempering steps and mean random-walk acceptance;
    ``smc_posterior_moves``: SMC's move pairs at the posterior after its last resampling;
    ``map_laplace_s`` and ``sampling_s``: wall times (s) of MAP + Laplace and of the sampling.
    """

    converged: bool
    ess_target: float
    sampler: str
    escalated: bool
    observations_evaluated: float
    mean_leapfrog_steps: float
    max_excluded_plume_sigma: float
    smc_temperatures: int = 0
    smc_acceptance: float = float("nan")
    smc_posterior_moves: int = 0
    map_laplace_s: float = float("nan")
    sampling_s: float = float("nan")

    @classmethod
    def not_sampled(cls, ess_target: float) -> SamplerDiagnostics:
        """Diagnostics of draws from the Laplace approximation alone: no chains (NaN R-hat and ESS),
        not converged, every observation evaluated."""
        nan = float("nan")
        return cls(
            r_hat_max=nan,
            ess_bulk_min=nan,
            ess_tail_min=nan,
            divergences=0,
            converged=False,
            ess_target=ess_target,
            sampler="laplace",
            escalated=False,
            observations_evaluated=1.0,
            mean_leapfrog_steps=nan,
            max_excluded_plume_sigma=0.0,
        )


def ess_target(num_chains: int, num_samples: int) -> float:
    """Bulk/tail ESS required for convergence: ``ESS_THRESHOLD``, or a quarter of the draws for
    short test runs."""
    return min(ESS_THRESHOLD, 0.25 * num_chains * num_samples)


def convergence_diagnostics(
    draws: Mapping[str, np.ndarray], divergences: np.ndarray
) -> ConvergenceDiagnostics:
    """Worst-case diagnostics over all sampled quantities.

    ``draws`` maps names to arrays (chain, draw, ...); ``divergences`` is the boolean (chain, draw)
    divergence flag of each transition. Constant variables are skipped; with none left, R-hat and
    the ESS are NaN.
    """
    varying = _varying(draws)
    n_div = int(np.sum(np.asarray(divergences, dtype=bool)))
    if not varying:
        nan = float("nan")
        return ConvergenceDiagnostics(r_hat_max=nan, ess_bulk_min=nan, ess_tail_min=nan, divergences=n_div)
    return ConvergenceDiagnostics(
        r_hat_max=_extreme(az.rhat(varying, method="rank"), np.max),
        ess_bulk_min=_extreme(az.ess(varying, method="bulk"), np.min),
        ess_tail_min=_extreme(az.ess(varying, method="tail"), np.min),
        divergences=n_div,
    )


def is_converged(
    diagnostics: ConvergenceDiagnostics,
    r_hat_threshold: float = R_HAT_THRESHOLD,
    ess_threshold: float = ESS_THRESHOLD,
) -> bool:
    """True when R-hat < threshold, bulk and tail ESS >= threshold and there are no divergences."""
    r_hat, ess_bulk, ess_tail = diagnostics.r_hat_max, diagnostics.ess_bulk_min, diagnostics.ess_tail_min
    if not all(np.isfinite([r_hat, ess_bulk, ess_tail])):
        return False
    return bool(
        r_hat < r_hat_threshold
        and ess_bulk >= ess_threshold
        and ess_tail >= ess_threshold
        and diagnostics.divergences == 0
    )
