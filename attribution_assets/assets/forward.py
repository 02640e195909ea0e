"""Gaussian-plume forward model: every instrument's observations as blocks with their Jacobian
(observation per kg s-1) at the met prior (:func:`attribution_assets.pipeline.forward.build_forward`),
and a figure of observed vs simulated."""

import pandas as pd
import xarray as xr
from dagster import AssetExecutionContext, MetadataValue, asset

from attribution_assets.assets.common import CODE_VERSION, event_of, figure_metadata, table_metadata
from attribution_assets.partitions import detection_events
from attribution_assets.resources import OutputStore


@asset(
    partitions_def=detection_events,
    group_name="forward",
    kinds={"jax", "xarray", "netcdf"},
    code_version=CODE_VERSION,
    description="Per-instrument observation blocks at native resolution with the Jacobian of each "
    "observation with respect to the emission rate (Gaussian plume, Briggs sigma, met prior).",
)
def plume_forward(
    context: AssetExecutionContext,
    met_conditions: xr.Dataset,
    emit_enhancement: dict[str, xr.Dataset],
    ghgsat_aoi: dict[str, xr.Dataset],
    tropomi_aoi: dict[str, xr.Dataset],
    oco2_aoi: dict[str, xr.Dataset],
    store: OutputStore,
) -> dict[str, xr.Dataset]:
    # the forward model is JAX: imported when the step runs, not when the code location loads
    from attribution_assets.pipeline.figures import observed_vs_simulated
    from attribution_assets.pipeline.forward import build_forward

    event = event_of(context)
    forward = build_forward(event, met_conditions, emit_enhancement, ghgsat_aoi, tropomi_aoi, oco2_aoi)
    for instrument, granule in forward.empty_granules:
        context.log.warning(f"{instrument}: 0 valid pixels in AOI ({granule}); "
                            "the instrument's granule is left out")
    metadata = {"blocks": len(forward.blocks), "valid_pixels": MetadataValue.json(forward.valid_pixels)}
    if not forward.blocks:
        context.log.warning(f"{event.key}: no instrument observed the event")
        context.add_output_metadata(metadata)
        return {}
    figure = observed_vs_simulated(forward, f"{event.key}: observed vs simulated at the met prior")
    context.add_output_metadata(
        {
            **metadata,
            "per_block": table_metadata(
                pd.DataFrame([{"block": name, **values} for name, values in forward.per_block().items()]),
                {"linear_rate_kg_h_at_alert_point": 1, "max_jacobian_per_kg_s": 6},
            ),
            **figure_metadata(figure, store.figure_path("plume_forward", event.key)),
        }
    )
    return forward.to_datasets()
