"""EMIT matched filter: CH4 enhancement (ppm·m) and its per-pixel uncertainty on the ortho grid
(:func:`attribution_assets.pipeline.enhancement.enhance_emit`)."""

import pandas as pd
import xarray as xr
from dagster import AssetExecutionContext, asset

from attribution_assets.assets.common import CODE_VERSION, NETCDF_KINDS, ROW_COUNT, table_metadata
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.enhancement import enhance_emit, enhancement_summary


@asset(
    partitions_def=detection_events,
    group_name="detection",
    kinds=NETCDF_KINDS,
    code_version=CODE_VERSION,
    description="Per-column CH4 matched filter (shrinkage covariance, second pass without plume pixels), "
    "orthorectified with the GLT: enhancement and 1-sigma uncertainty in ppm·m.",
)
def emit_enhancement(
    context: AssetExecutionContext, emit_aoi: dict[str, xr.Dataset]
) -> dict[str, xr.Dataset]:
    results = enhance_emit(emit_aoi)
    summary = pd.DataFrame(
        [{"granule": granule, **enhancement_summary(enh)} for granule, enh in results.items()],
        columns=[
            "granule", "valid_pixels", "median_sd_ppm_m", "max_enhancement_ppm_m", "pixels_above_3_sigma"
        ],
    )
    context.add_output_metadata(
        {"granules": len(results), "summary": table_metadata(summary), ROW_COUNT: len(summary)}
    )
    return results
