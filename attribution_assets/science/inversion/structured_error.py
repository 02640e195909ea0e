"""Structured retrieval error: how much more a block's residuals look like plumes than its noise does.

Retrieval errors are spatially correlated: surface clutter in matched-filter enhancements,
albedo-correlated biases in XCH4, regional gradients. A likelihood with independent errors then
reads a smooth artefact as hundreds of independent observations of a plume, and reports a source
(on the misspecified validation set, ``benchmarks/validation_misspecified.py``, 10 of 21 events
without a source were detected with independent errors, most through the GHGSat albedo artefact
and the EMIT clutter, before the albedo regression and the correlated-error field; with those two,
the 42 events without a source of its seed-1 set give no false alarm with or without this measure).

The inversion measures it after regressing out the albedo artefact of blocks that report a surface
albedo (:mod:`~attribution_assets.science.inversion.albedo`), which leaves a GHGSat scene of the
validation set its full likelihood, and under the error precision fitted to imager blocks
(:mod:`~attribution_assets.science.inversion.correlated_error`), which leaves an EMIT scene's
clutter to the likelihood: what this measure then finds is what those models miss. The measure is
the one the inversion is sensitive to. For ``TEMPLATES`` plume-shaped templates ``t_k`` (the
unit-rate plume at the met wind speed and stability, from sources drawn over the position prior, in
directions drawn uniformly), the matched projection of the block's residuals ``r = y - median(y)``,

    z_k = sum_i t'_ki r_i / s_i^2 / sqrt(sum_i t'_ki^2 / s_i^2),   t' = t - its weighted mean

(the template's mean goes into the block's background), is standard normal when the errors are
independent with the reported ``s_i`` (with a fitted error precision ``Q``,
``z_k = t'_k' Q r / sqrt(t'_k' Q t'_k)``, standard normal when ``Q`` is right). The sums run over
the block's quiet observations: residuals beyond ``PLUME_RESIDUAL_SD`` sds are a bright plume,
which through the centring projects onto every template, not retrieval error. The robust spread
of ``z`` over the templates (1.4826 x the median absolute deviation, insensitive to the templates
that cross a real plume) is the block's scale ``c_b``. Where it is significantly above 1
(``SIGNIFICANT_SCALE``), the block's log likelihood is tempered by ``1 / c_b^2``: a power
likelihood (Miller & Dunson 2019, JASA 114, 1113) with the magnitude adjustment of a composite
likelihood for dependent data (Varin, Reid & Firth 2011, Statistica Sinica 21, 5). It widens the
plume parameters' posterior by ``c_b`` and divides the log Bayes factor of a source by ``c_b^2``,
and leaves the noise-variance estimate as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock, jacobians
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import MAD_TO_SD

TEMPLATES = 96
"""Plume templates per block."""
SIGNIFICANT_SCALE = 1.3
"""Scale below which a block keeps its full likelihood: the robust sd of ``TEMPLATES`` standard
normal projections has a sampling sd of about 0.1 (1.3 is three of them above 1)."""
MIN_TEMPLATE_NORM = 1.0
"""Smallest ``sqrt(sum t'^2 / s^2)`` (a 1 kg/s plume, in units of the noise) of a template that
counts: one that leaves the block carries no information about it."""
PLUME_RESIDUAL_SD = 4.0
"""Residuals (from the block's median) beyond this many sds are a bright plume, not retrieval error,
and are left out of the projections: a strong plume projects onto most templates through their
centring, and with its pixels in, the scale of a GHGSat scene of an 11 t/h source was 47 (the
block's evidence for the source divided by 2,000) instead of 3; without them, the scales of events
without a source change by less than 0.3."""


def templates(
    block: ObservationBlock, wind: OverpassWind, centre_m: np.ndarray, sd_m: float, rng: np.random.Generator
) -> np.ndarray:
    """``TEMPLATES`` unit-rate plumes (K, n) in the block's units per kg s-1: sources within two
    prior sds of ``centre_m`` (m), directions uniform, the met wind speed and stability."""
    speed = max(wind.speed_m_s, 0.5)
    draws = [(rng.uniform(-2.0, 2.0, 2), rng.uniform(0.0, 2.0 * np.pi)) for _ in range(TEMPLATES)]
    sources = np.asarray(centre_m, float) + np.array([offset for offset, _ in draws]) * sd_m
    angles = np.array([angle for _, angle in draws])
    return jacobians(block, sources, speed * np.cos(angles), speed * np.sin(angles), wind.stability_index)


def quiet_observations(block: ObservationBlock) -> np.ndarray:
    """Mask (n,) of the observations that are not part of a bright plume: residual from the block's
    median within ``PLUME_RESIDUAL_SD`` of the larger of their sigma and the residuals' robust sd."""
    sigma = np.asarray(block.sigma, float)
    resid = np.asarray(block.y, float) - np.median(block.y)
    spread = MAD_TO_SD * float(np.median(np.abs(resid)))
    return np.abs(resid) <= PLUME_RESIDUAL_SD * np.maximum(sigma, spread)


def projections(block: ObservationBlock, plumes: np.ndarray) -> np.ndarray:
    """Matched projections ``z_k`` (module docstring) of the block's residuals onto ``plumes`` (K, n),
    over its quiet observations (:func:`quiet_observations`), under the block's error precision
    ``Q`` (:meth:`~attribution_assets.science.forward.operators.ObservationBlock.precision`;
    ``diag(1 / s^2)`` for independent errors: ``z_k = t' Q r / sqrt(t' Q t)``); NaN for a template
    whose norm there is below ``MIN_TEMPLATE_NORM``.

    The other observations are left out by zeroing their rows and columns of ``Q`` (``Q_m = D Q D``,
    ``D`` the quiet mask). The centring is expanded instead of formed: with ``u = t - (a / s) 1`` the
    centred template, ``a = t' Q_m 1``, ``s = 1' Q_m 1``, ``b = t' Q_m r`` and ``c = 1' Q_m r``,
    ``u' Q_m r = b - a c / s`` and ``u' Q_m u = t' Q_m t - a^2 / s``, so only products with ``Q``
    and the template matrix are computed (no (K, n) copies but the masked templates), and ``t' Q_m t``
    from the diagonal alone for independent errors.
    """
    mask = quiet_observations(block).astype(float)
    precision = block.precision()
    resid = (np.asarray(block.y, float) - np.median(block.y)) * mask
    masked = np.asarray(plumes, float) * mask
    q1, qr = (mask * (precision @ v) for v in (mask, resid))
    total, cross = float(q1.sum()), float(q1 @ resid)
    a, b = masked @ q1, masked @ qr
    diagonal = precision.diagonal()
    if precision.count_nonzero() == np.count_nonzero(diagonal):  # independent errors
        quadratic = (masked * masked) @ diagonal
    else:
        quadratic = np.einsum("kn,nk->k", masked, precision @ masked.T)
    norm = np.sqrt(np.maximum(quadratic - a * a / total, 0.0))
    z = (b - a * cross / total) / np.where(norm > 0, norm, 1.0)
    return np.where(norm >= MIN_TEMPLATE_NORM, z, np.nan)


def robust_scale(z: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of the finite projections ``z`` (their sd when they
    are normal, insensitive to the few templates that cross a real plume)."""
    z = z[np.isfinite(z)]
    return MAD_TO_SD * float(np.median(np.abs(z - np.median(z))))


def block_scale(z: np.ndarray) -> float:
    """``c_b``: the robust sd of the projections ``z`` (:func:`robust_scale`), or 1 when it is not
    significantly above 1 or fewer than a quarter of the templates count."""
    if np.isfinite(z).sum() < TEMPLATES // 4:
        return 1.0
    scale = robust_scale(z)
    return scale if scale > SIGNIFICANT_SCALE else 1.0


def block_weights(
    blocks: Sequence[ObservationBlock],
    winds: Sequence[OverpassWind],
    centre_m: np.ndarray,
    sd_m: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The likelihood weight ``1 / c_b^2`` (B,) of every block."""
    scales = []
    for block in blocks:
        plume_templates = templates(block, winds[block.overpass], centre_m, sd_m, rng)
        scales.append(block_scale(projections(block, plume_templates)))
    return 1.0 / np.square(scales)
