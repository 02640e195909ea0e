"""EMIT matched filter: CH4 enhancement (ppm·m) and its per-pixel uncertainty on the ortho grid."""


import numpy as np
import xarray as xr
from dagster import AssetExecutionContext, MetadataValue, asset

from attribution_assets.partitions import detection_events
from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.science.detection.matched_filter import enhance_emit_scene


@asset(
    partitions_def=detection_events,
    group_name="detection",
    description="Per-column CH4 matched filter (shrinkage covariance, second pass without plume pixels), "
    "orthorectified with the GLT: enhancement and 1-sigma uncertainty in ppm·m.",
)
def emit_enhancement(
    context: AssetExecutionContext, emit_aoi: dict[str, xr.Dataset]
) -> dict[str, xr.Dataset]:
    results: dict[str, xr.Dataset] = {}
    summary = {}
    for granule, radiance in emit_aoi.items():
        enhancement = enhance_emit_scene(radiance, load_ch4_unit_absorption())
        valid = enhancement["valid"].values
        values = enhancement["ch4_enhancement_ppm_m"].values[valid]
        sd = enhancement["ch4_enhancement_sd_ppm_m"].values[valid]
        summary[granule] = {
            "valid_pixels": int(valid.sum()),
            "median_sd_ppm_m": round(float(np.median(sd)), 1) if sd.size else None,
            "max_enhancement_ppm_m": round(float(values.max()), 1) if values.size else None,
            "pixels_above_3_sigma": int((values > 3 * sd).sum()),
        }
        results[granule] = enhancement
    context.add_output_metadata({"granules": len(results), "summary": MetadataValue.json(summary or {})})
    return results
