"""EMIT matched filter of one event: CH4 enhancement (ppm·m) and its per-pixel uncertainty on the
orthorectified grid, per granule."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.science.detection.matched_filter import enhance_emit_scene


def enhance_emit(emit_aoi: Mapping[str, xr.Dataset]) -> dict[str, xr.Dataset]:
    """The matched-filter enhancement of every EMIT granule's AOI radiance, keyed like ``emit_aoi``."""
    absorption = load_ch4_unit_absorption()
    return {granule: enhance_emit_scene(radiance, absorption) for granule, radiance in emit_aoi.items()}


def enhancement_summary(enhancement: xr.Dataset) -> dict[str, object]:
    """Valid pixels, median 1-sigma (ppm·m), largest enhancement (ppm·m) and pixels above 3 sigma."""
    valid = enhancement["valid"].values
    values = enhancement["ch4_enhancement_ppm_m"].values[valid]
    sd = enhancement["ch4_enhancement_sd_ppm_m"].values[valid]
    return {
        "valid_pixels": int(valid.sum()),
        "median_sd_ppm_m": round(float(np.median(sd)), 1) if sd.size else None,
        "max_enhancement_ppm_m": round(float(values.max()), 1) if values.size else None,
        "pixels_above_3_sigma": int((values > 3 * sd).sum()),
    }
