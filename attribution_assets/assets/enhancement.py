"""EMIT matched filter: CH4 enhancement (ppm·m) and its per-pixel uncertainty on the ortho grid
(:func:`attribution_assets.pipeline.enhancement.enhance_emit`)."""

import xarray as xr
from dagster import AssetExecutionContext, MetadataValue, asset

from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.enhancement import enhance_emit, enhancement_summary


@asset(
    partitions_def=detection_events,
    group_name="detection",
    description="Per-column CH4 matched filter (shrinkage covariance, second pass without plume pixels), "
    "orthorectified with the GLT: enhancement and 1-sigma uncertainty in ppm·m.",
)
def emit_enhancement(
    context: AssetExecutionContext, emit_aoi: dict[str, xr.Dataset]
) -> dict[str, xr.Dataset]:
    results = enhance_emit(emit_aoi)
    summary = {granule: enhancement_summary(enh) for granule, enh in results.items()}
    context.add_output_metadata({"granules": len(results), "summary": MetadataValue.json(summary)})
    return results
