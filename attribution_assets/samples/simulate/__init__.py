"""Instrument simulators: one truth event and overpass -> a carrier ``xarray.Dataset`` laid out as the
matching reader output in docs/carriers.md, ready for the writers in ``samples.formats``.

One module per instrument: ``emit``, ``tropomi``, ``ghgsat``, ``oco2``; each exposes
``<instrument>_scene(ev, op, era5, rng)``. The physics is documented in ``samples/README.md``. No dagster
and no file writing here: ``samples.generate`` writes the files.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_px: float) -> np.ndarray:
    """Spatially correlated Gaussian random field with unit standard deviation (``sigma_px`` pixels)."""
    field = gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return field / field.std()
