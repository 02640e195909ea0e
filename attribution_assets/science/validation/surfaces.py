"""Spatially correlated random fields: the surfaces (albedo) under the validation scenes.

A surface is white Gaussian noise smoothed by a Gaussian kernel of ``corr_px`` pixels and scaled to
unit standard deviation, the construction of the bundled sample scenes
(``attribution_assets.samples.simulate.smooth_field``). The noise is drawn on a grid padded by four
kernel widths on every side and cropped, so the field does not wrap around (the sample scenes wrap;
the small validation grids would then correlate opposite edges).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def correlated_field(rng: np.random.Generator, shape: tuple[int, int], corr_px: float) -> np.ndarray:
    """Gaussian random field of ``shape`` with zero mean and unit standard deviation over the grid.

    ``corr_px``: sd (pixels) of the smoothing kernel; the field's autocorrelation at lag ``r`` pixels
    is ``exp(-r^2 / (4 corr_px^2))``. ``corr_px = 0`` gives white noise.
    """
    pad = int(np.ceil(4.0 * corr_px))
    noise = rng.standard_normal((shape[0] + 2 * pad, shape[1] + 2 * pad))
    field = gaussian_filter(noise, corr_px, mode="reflect")[pad : pad + shape[0], pad : pad + shape[1]]
    field = field - field.mean()
    return field / max(float(field.std()), 1e-12)


def albedo_field(
    rng: np.random.Generator, shape: tuple[int, int], mean: float, sd: float, corr_px: float
) -> np.ndarray:
    """Surface albedo (1) on a grid: ``mean + sd * correlated_field``, clipped to [0.02, 0.9].

    The sample TROPOMI scenes use a SWIR albedo of 0.25 +- 0.04 (sd) correlated over ~3 pixels.
    """
    return np.clip(mean + sd * correlated_field(rng, shape, corr_px), 0.02, 0.9)
