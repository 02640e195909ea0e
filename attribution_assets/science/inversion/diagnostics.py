"""MCMC convergence diagnostics: rank-normalised split R-hat, bulk and tail ESS, divergences.

R-hat and the effective sample sizes follow Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of
MCMC", Bayesian Analysis 16, 667, as implemented in ArviZ (Kumar et al. 2019, JOSS 4, 1143).
Their recommended targets are R-hat < 1.01 and bulk/tail ESS >= 400 (100 per chain for 4 chains);
any divergent Hamiltonian transition signals a biased sampler (Betancourt 2017, arXiv:1701.02434).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

R_HAT_THRESHOLD = 1.01
ESS_THRESHOLD = 400.0


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


def convergence_diagnostics(draws: Mapping[str, np.ndarray], divergences: np.ndarray) -> dict[str, float]:
    """Worst-case diagnostics over all sampled quantities.

    ``draws`` maps names to arrays (chain, draw, ...); ``divergences`` is the boolean (chain, draw)
    divergence flag of each transition. Returns ``r_hat_max`` (1), ``ess_bulk_min``,
    ``ess_tail_min`` (draws) and ``divergences`` (count). Constant variables are skipped.
    """
    varying = _varying(draws)
    n_div = int(np.sum(np.asarray(divergences, dtype=bool)))
    if not varying:
        return {"r_hat_max": float("nan"), "ess_bulk_min": float("nan"), "ess_tail_min": float("nan"),
                "divergences": n_div}
    return {
        "r_hat_max": _extreme(az.rhat(varying, method="rank"), np.max),
        "ess_bulk_min": _extreme(az.ess(varying, method="bulk"), np.min),
        "ess_tail_min": _extreme(az.ess(varying, method="tail"), np.min),
        "divergences": n_div,
    }


def is_converged(
    diagnostics: Mapping[str, float],
    r_hat_threshold: float = R_HAT_THRESHOLD,
    ess_threshold: float = ESS_THRESHOLD,
) -> bool:
    """True when R-hat < threshold, bulk and tail ESS >= threshold and there are no divergences."""
    r_hat = diagnostics["r_hat_max"]
    ess_bulk = diagnostics["ess_bulk_min"]
    ess_tail = diagnostics["ess_tail_min"]
    if not all(np.isfinite([r_hat, ess_bulk, ess_tail])):
        return False
    return bool(
        r_hat < r_hat_threshold
        and ess_bulk >= ess_threshold
        and ess_tail >= ess_threshold
        and diagnostics["divergences"] == 0
    )
