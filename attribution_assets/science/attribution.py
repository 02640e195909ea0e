"""Attribute an inverted plume origin to inventory facilities or to a source not in the inventory.

Model
-----
The true source position ``s`` (local frame, metres) comes from one of K + 1 hypotheses:

* ``H_k`` (k = 1..K): the source is inventory candidate ``k`` at ``c_k``. Inventory coordinates are
  imperfect and sources have an extent (a well pad, a stack yard), so under ``H_k`` the position is
  ``s ~ N(c_k, sd_k^2 I)`` with ``sd_k = location_sd_m`` (e.g. 100 m for a facility; about the cell
  width / sqrt(12) for an inventory grid cell). Prior ``P(H_k) = (1 - unlisted_prior) w_k / sum(w)``.
* ``H_0``: a source not in the inventory, uniform over the analysis area (density ``u`` per m2, by
  default ``1 / (2 h)^2`` on the square of half-width ``h = aoi_half_width_m`` around the inversion's
  position-prior centre). Prior ``P(H_0) = unlisted_prior``.

The inversion sampled ``s`` under its own position prior ``p0 = N(m0, sd0^2 I)`` (centre
``position_prior_xy_m``, sd ``position_prior_sd_m``), so its posterior is ``post(s) ∝ L(s) p0(s)``
where ``L`` is the likelihood of the observations. The marginal likelihood of a hypothesis with
position density ``g`` is ``∫ L(s) g(s) ds ∝ E_post[g(s) / p0(s)]``, estimated over the posterior
draws ``s_j``:

* ``H_k``: ``mean_j N(s_j - c_k; 0, sd_k^2 I) / p0(s_j)`` — a kernel-density estimate of the
  posterior at ``c_k`` with bandwidth ``sd_k``, with the inversion's position prior divided out so
  it is not counted twice (when ``sd_k << sd0`` this is ``KDE(c_k) / p0(c_k)``);
* ``H_0``: ``mean_j u 1[s_j in AOI] / p0(s_j)`` — the prior-predictive density ``u`` of an
  unlisted source, with the same prior correction.

The common proportionality constant cancels, so ``P(H | data) ∝ P(H) E_post[g_H(s) / p0(s)]``,
computed in log space. The estimator is reliable when the posterior position is narrower than the
inversion's position prior (the usual case once a plume is detected); the effective sample size of
the ``1 / p0`` weights is reported so a caller can flag the other case. With
``position_prior_sd_m=None`` the inversion prior is taken as flat and no correction is applied.
Draws of the no-source component (``present`` = 0) carry no information on the position and are
dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from attribution_assets.science.geometry import LocalFrame

UNLISTED_ID = "unlisted"
"""``facility_id`` of the "source not in the inventory" row of :attr:`AttributionResult.table`."""


@dataclass(frozen=True)
class AttributionResult:
    """Posterior attribution of one plume origin.

    ``table``: one row per candidate plus a final ``UNLISTED_ID`` row, sorted by decreasing
    probability: ``facility_id``, ``name``, ``x_m``, ``y_m`` (local frame, m), ``distance_m`` (from the
    posterior mean position, m; NaN for the unlisted row), ``location_sd_m`` (m), ``prior`` (1),
    ``log_marginal_likelihood`` (relative, natural log), ``probability`` (1, sums to 1).
    ``p_unlisted``: posterior probability of a source not in the inventory.
    ``best_facility_id`` / ``best_probability``: the most probable *listed* candidate and its
    probability (None / 0.0 without candidates). ``n_draws``: position draws used.
    ``prior_correction_ess``: effective sample size ``(Σ w)^2 / Σ w^2`` of the prior-correction weights
    ``w_j = 1 / p0(s_j)`` over the draws; well below ``n_draws`` (say < 100) means the posterior
    position is barely narrower than the inversion's prior and the probabilities are noisy.
    """

    table: pd.DataFrame
    p_unlisted: float
    best_facility_id: str | None
    best_probability: float
    n_draws: int
    prior_correction_ess: float
    method: str

    def summary(self) -> dict[str, object]:
        """Flat dict for an output row: best candidate, its probability, ``p_unlisted``, weight ESS."""
        return {
            "attributed_facility_id": self.best_facility_id,
            "attributed_probability": float(self.best_probability),
            "p_unlisted": float(self.p_unlisted),
            "attribution_ess": float(self.prior_correction_ess),
        }


def _log_normal2(dx: np.ndarray, dy: np.ndarray, sd: np.ndarray | float) -> np.ndarray:
    """Log density (1/m2) of an isotropic bivariate normal with sd ``sd`` (m) at offsets (m)."""
    var = np.asarray(sd, dtype=np.float64) ** 2
    return -(dx**2 + dy**2) / (2.0 * var) - np.log(2.0 * np.pi * var)


@dataclass(frozen=True)
class _Candidates:
    """Validated inventory candidates: ``xy`` (K, 2) positions (m), ids, display names, prior weights (1)
    and location-error sds (m)."""

    xy: np.ndarray
    ids: list[str]
    labels: list[str]
    weights: np.ndarray
    sds: np.ndarray

    @property
    def k(self) -> int:
        return self.xy.shape[0]


def _position_draws(
    source_x_m: np.ndarray, source_y_m: np.ndarray, present: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Flattened finite position draws (m), without those whose ``present`` indicator is 0."""
    x = np.ravel(np.asarray(source_x_m, dtype=np.float64))
    y = np.ravel(np.asarray(source_y_m, dtype=np.float64))
    if x.shape != y.shape:
        raise ValueError(f"source_x_m and source_y_m differ in size: {x.size} vs {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    if present is not None:
        pres = np.ravel(np.asarray(present))
        if pres.shape != x.shape:
            raise ValueError(f"present has {pres.size} draws, positions have {x.size}")
        keep &= pres.astype(bool)
    x, y = x[keep], y[keep]
    if x.size == 0:
        raise ValueError("no finite source-position draws (with the source present) to attribute")
    return x, y


def _candidates(
    candidates_xy_m: np.ndarray,
    facility_ids: Sequence[str] | None,
    names: Sequence[str] | None,
    prior_weights: np.ndarray | Sequence[float] | None,
    location_sd_m: float | np.ndarray | Sequence[float],
) -> _Candidates:
    """Check the candidates' positions (m), labels, weights and location sds (m); fill the defaults."""
    cand = np.asarray(candidates_xy_m, dtype=np.float64).reshape(-1, 2)
    k = cand.shape[0]
    if not np.all(np.isfinite(cand)):
        raise ValueError("candidates_xy_m must be finite")
    ids = [f"candidate-{i}" for i in range(k)] if facility_ids is None else [str(v) for v in facility_ids]
    labels = list(ids) if names is None else [str(v) for v in names]
    if len(ids) != k or len(labels) != k:
        raise ValueError(f"facility_ids/names must have {k} entries, one per candidate")
    weights = np.ones(k) if prior_weights is None else np.asarray(prior_weights, dtype=np.float64)
    if weights.shape != (k,) or np.any(~np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"prior_weights must be {k} finite non-negative numbers")
    sds = np.broadcast_to(np.asarray(location_sd_m, dtype=np.float64), (k,)).copy()
    if np.any(~np.isfinite(sds)) or np.any(sds <= 0):
        raise ValueError("location_sd_m must be finite and > 0")
    return _Candidates(xy=cand, ids=ids, labels=labels, weights=weights, sds=sds)


def _unlisted_density(
    unlisted_prior: float, aoi_half_width_m: float, unlisted_density_per_m2: float | None
) -> float:
    """Prior density (1/m2) of an unlisted source: the override, or uniform on the AOI square."""
    if not 0.0 <= unlisted_prior <= 1.0:
        raise ValueError(f"unlisted_prior must lie in [0, 1], got {unlisted_prior}")
    if aoi_half_width_m <= 0:
        raise ValueError(f"aoi_half_width_m must be > 0, got {aoi_half_width_m}")
    density = (
        1.0 / (2.0 * aoi_half_width_m) ** 2 if unlisted_density_per_m2 is None else unlisted_density_per_m2
    )
    if not density > 0:
        raise ValueError(f"unlisted_density_per_m2 must be > 0, got {density}")
    return density


def _hypothesis_priors(weights: np.ndarray, unlisted_prior: float) -> tuple[np.ndarray, float]:
    """``P(H_k)`` (K,) and ``P(H_0)``: the listed mass ``1 - unlisted_prior`` split by the weights; all the
    mass goes to ``H_0`` without candidates or with all-zero weights."""
    k = weights.shape[0]
    if k > 0 and weights.sum() > 0:
        listed_mass = 1.0 - unlisted_prior
        priors = listed_mass * weights / weights.sum()
    else:
        listed_mass = 0.0
        priors = np.zeros(k)
    return priors, 1.0 - listed_mass


def _log_position_prior(
    x: np.ndarray, y: np.ndarray, centre_xy_m: tuple[float, float], sd_m: float | None
) -> np.ndarray:
    """``log p0(s_j)`` (log 1/m2) of the inversion's position prior at the draws; 0 for a flat prior."""
    mx, my = (float(v) for v in centre_xy_m)
    if sd_m is None:
        return np.zeros_like(x)
    if not sd_m > 0:
        raise ValueError(f"position_prior_sd_m must be > 0 or None, got {sd_m}")
    return _log_normal2(x - mx, y - my, float(sd_m))


def _weights_ess(log_p0: np.ndarray) -> float:
    """Effective sample size ``(Σ w)^2 / Σ w^2`` of the prior-correction weights ``w_j = 1 / p0(s_j)``."""
    log_w = -log_p0 - np.max(-log_p0)
    return float(np.exp(2.0 * logsumexp(log_w) - logsumexp(2.0 * log_w)))


def _log_marginal_likelihoods(
    x: np.ndarray,
    y: np.ndarray,
    log_p0: np.ndarray,
    candidates: _Candidates,
    centre_xy_m: tuple[float, float],
    aoi_half_width_m: float,
    density: float,
    restrict_to_aoi: bool,
) -> tuple[np.ndarray, float]:
    """Relative log marginal likelihoods of ``H_k`` (K,) and ``H_0``: ``log mean_j g_H(s_j) / p0(s_j)``
    (see the module docstring); ``H_0`` is ``-inf`` when no draw falls where its density is non-zero."""
    cand, k = candidates.xy, candidates.k
    log_n = np.log(x.size)
    # (K, S) log kernel / prior, then log-mean over draws
    log_kern = _log_normal2(x[None, :] - cand[:, :1], y[None, :] - cand[:, 1:], candidates.sds[:, None])
    log_ml_listed = logsumexp(log_kern - log_p0[None, :], axis=1) - log_n if k else np.zeros(0)
    mx, my = (float(v) for v in centre_xy_m)
    inside = (np.abs(x - mx) <= aoi_half_width_m) & (np.abs(y - my) <= aoi_half_width_m)
    if not restrict_to_aoi:
        inside = np.ones_like(inside)
    log_ml_unlisted = (
        float(logsumexp(np.where(inside, -log_p0, -np.inf)) - log_n + np.log(density))
        if inside.any() else -np.inf
    )
    return log_ml_listed, log_ml_unlisted


def _posterior_probabilities(
    priors: np.ndarray, prior_unlisted: float, log_ml_listed: np.ndarray, log_ml_unlisted: float
) -> np.ndarray:
    """``P(H | data)`` (K + 1,), the unlisted hypothesis last, normalised in log space."""
    with np.errstate(divide="ignore"):
        log_post = np.concatenate([np.log(priors) + log_ml_listed,
                                   [np.log(prior_unlisted) + log_ml_unlisted]])
    if not np.isfinite(log_post).any():
        raise ValueError("every hypothesis has zero posterior mass (check priors and the AOI)")
    return np.exp(log_post - logsumexp(log_post))


def _result_table(
    candidates: _Candidates,
    mean_xy_m: tuple[float, float],
    priors: np.ndarray,
    prior_unlisted: float,
    log_ml_listed: np.ndarray,
    log_ml_unlisted: float,
    prob: np.ndarray,
) -> pd.DataFrame:
    """The :attr:`AttributionResult.table`, one row per hypothesis, by decreasing probability."""
    cand, sds = candidates.xy, candidates.sds
    mean_x, mean_y = mean_xy_m
    table = pd.DataFrame({
        "facility_id": [*candidates.ids, UNLISTED_ID],
        "name": [*candidates.labels, "source not in the inventory"],
        "x_m": np.append(cand[:, 0], np.nan),
        "y_m": np.append(cand[:, 1], np.nan),
        "distance_m": np.append(np.hypot(cand[:, 0] - mean_x, cand[:, 1] - mean_y), np.nan),
        "location_sd_m": np.append(sds, np.nan),
        "prior": np.append(priors, prior_unlisted),
        "log_marginal_likelihood": np.append(log_ml_listed, log_ml_unlisted),
        "probability": prob,
    })
    table = table.sort_values(["probability", "facility_id"], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True)


def attribute_source(
    source_x_m: np.ndarray,
    source_y_m: np.ndarray,
    candidates_xy_m: np.ndarray,
    *,
    position_prior_sd_m: float | None,
    position_prior_xy_m: tuple[float, float] = (0.0, 0.0),
    facility_ids: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    prior_weights: np.ndarray | Sequence[float] | None = None,
    location_sd_m: float | np.ndarray | Sequence[float] = 100.0,
    unlisted_prior: float = 0.2,
    aoi_half_width_m: float = 4000.0,
    unlisted_density_per_m2: float | None = None,
    present: np.ndarray | None = None,
) -> AttributionResult:
    """Posterior probability that the plume source is each candidate facility or an unlisted source.

    Args:
        source_x_m, source_y_m: posterior draws of the source position in the event's local frame
            (m east / north), any shape (e.g. (chain, draw)); flattened together.
        candidates_xy_m: (K, 2) candidate positions in the same frame (m); K may be 0.
        position_prior_sd_m: sd (m) of the inversion's isotropic Normal position prior
            (``InversionSettings.position_sd_m``); None for a flat prior (no correction).
        position_prior_xy_m: centre (m) of that prior (``InversionSettings.position_prior_xy_m``); also
            the centre of the unlisted-source area.
        facility_ids, names: K identifiers and display names (default ``"candidate-<i>"``).
        prior_weights: K non-negative weights (default equal); normalised to ``1 - unlisted_prior``.
        location_sd_m: facility-location error sd (m), scalar or one per candidate (> 0).
        unlisted_prior: prior probability of a source not in the inventory, in [0, 1].
        aoi_half_width_m: half-width (m) of the square area over which an unlisted source is uniform.
        unlisted_density_per_m2: override of the unlisted prior density (1/m2); default
            ``1 / (2 aoi_half_width_m)^2`` on the square; when given, the unlisted source is uniform
            with this density wherever the draws fall (no area restriction).
        present: optional 0/1 (or bool) draws of the source-present indicator, same shape as the
            positions; draws with 0 are dropped.

    Returns:
        :class:`AttributionResult`.

    Raises:
        ValueError: shapes disagree, no finite draws, negative/invalid weights or sds.
    """
    x, y = _position_draws(source_x_m, source_y_m, present)
    candidates = _candidates(candidates_xy_m, facility_ids, names, prior_weights, location_sd_m)
    density = _unlisted_density(unlisted_prior, aoi_half_width_m, unlisted_density_per_m2)
    priors, prior_unlisted = _hypothesis_priors(candidates.weights, unlisted_prior)
    log_p0 = _log_position_prior(x, y, position_prior_xy_m, position_prior_sd_m)
    log_ml_listed, log_ml_unlisted = _log_marginal_likelihoods(
        x, y, log_p0, candidates, position_prior_xy_m, aoi_half_width_m, density,
        restrict_to_aoi=unlisted_density_per_m2 is None,
    )
    prob = _posterior_probabilities(priors, prior_unlisted, log_ml_listed, log_ml_unlisted)
    table = _result_table(
        candidates, (float(np.mean(x)), float(np.mean(y))), priors, prior_unlisted, log_ml_listed,
        log_ml_unlisted, prob,
    )
    k = candidates.k
    if k:
        best = int(np.argmax(prob[:k]))
        best_id, best_p = candidates.ids[best], float(prob[best])
    else:
        best_id, best_p = None, 0.0
    method = (
        f"kernel attribution: location_sd_m={np.unique(candidates.sds).tolist()}, "
        f"unlisted_prior={unlisted_prior}, unlisted_density_per_m2={density:.3g}, "
        f"position_prior_sd_m={position_prior_sd_m}"
    )
    return AttributionResult(
        table=table, p_unlisted=float(prob[-1]), best_facility_id=best_id, best_probability=best_p,
        n_draws=int(x.size), prior_correction_ess=_weights_ess(log_p0), method=method,
    )


def candidates_local_xy(lon_deg: np.ndarray, lat_deg: np.ndarray, lon0_deg: float, lat0_deg: float
                        ) -> np.ndarray:
    """(K, 2) local-frame positions (m east, m north) of candidates around (``lon0_deg``, ``lat0_deg``)."""
    x, y = LocalFrame(float(lon0_deg), float(lat0_deg)).to_xy(np.asarray(lon_deg), np.asarray(lat_deg))
    return np.column_stack([np.atleast_1d(x), np.atleast_1d(y)]).reshape(-1, 2)
