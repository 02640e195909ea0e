"""Source attribution: which inventory facility (or an unlisted source) the posterior points to."""

import arviz as az
import geopandas as gpd
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, asset

from attribution_assets.assets.common import event_of
from attribution_assets.events import DetectionEvent
from attribution_assets.partitions import detection_events
from attribution_assets.readers.errors import EmptyAOIError
from attribution_assets.readers.inventory import (
    FACILITY_COLUMNS,
    edgar_candidates,
    read_edgar,
    read_facility_list,
    read_wri_gppd,
)
from attribution_assets.resources import AnalysisSettings
from attribution_assets.science.attribution import attribute_source, candidates_local_xy

EDGAR_MIN_EMISSION_KG_H = 100.0
EDGAR_TOP_N = 5


def load_candidates(event: DetectionEvent, settings: AnalysisSettings, context=None) -> pd.DataFrame:
    """Inventory candidates inside the attribution AOI for the event's gas.

    CO2: the power-plant database; CH4: the user facility list plus the strongest EDGAR cells. Every
    listed facility has prior weight 1 (unless the list says otherwise); the EDGAR cells share a total
    weight of 1, split in proportion to their emissions.
    """
    bbox = settings.bbox(event, settings.attribution_half_width_km)
    sources = (
        [(settings.power_plants, read_wri_gppd)]
        if event.gas == "CO2"
        else [(settings.facility_list, read_facility_list)]
    )
    frames = []
    for path, reader in sources:
        if not path:
            continue
        try:
            frames.append(reader(path, bbox))
        except EmptyAOIError:
            if context is not None:
                context.log.info(f"no inventory facility of {path} inside the attribution AOI")
    if event.gas == "CH4" and settings.edgar:
        try:
            cells = edgar_candidates(
                read_edgar(settings.edgar, bbox), bbox, EDGAR_MIN_EMISSION_KG_H, EDGAR_TOP_N
            )
            frames.append(cells.drop(columns="emission_kg_h"))
        except EmptyAOIError:
            pass
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(FACILITY_COLUMNS))
    candidates = pd.concat(frames, ignore_index=True)
    return candidates[candidates["gas"] == event.gas].reset_index(drop=True)


@asset(
    partitions_def=detection_events,
    group_name="inversion",
    description="Posterior probability that the source is each inventory facility inside the AOI (power "
    "plants for CO2; the facility list and EDGAR cells for CH4) or a source not in the inventory.",
)
def source_attribution(
    context: AssetExecutionContext, source_posterior: az.InferenceData, settings: AnalysisSettings
) -> gpd.GeoDataFrame:
    event = event_of(context)
    candidates = load_candidates(event, settings, context)
    posterior = source_posterior.posterior
    present = posterior["source_present"].values if "source_present" in posterior else None
    if present is not None and not np.any(present):
        context.log.info("no posterior draw has a source present: nothing to attribute")
        context.add_output_metadata({"candidates": len(candidates), "attributed": "no source"})
        return gpd.GeoDataFrame(
            columns=["facility_id", "name", "probability", "geometry"], geometry="geometry", crs="EPSG:4326"
        )
    prior = settings.inversion_settings()
    result = attribute_source(
        posterior["source_x_m"].values,
        posterior["source_y_m"].values,
        candidates_local_xy(candidates["longitude"], candidates["latitude"], event.longitude, event.latitude),
        position_prior_sd_m=prior.position_sd_m,
        position_prior_xy_m=prior.position_prior_xy_m,
        facility_ids=list(candidates["facility_id"]),
        names=list(candidates["name"]),
        prior_weights=candidates["prior_weight"].fillna(1.0).to_numpy(float),
        location_sd_m=candidates["location_sd_m"].fillna(settings.facility_location_sd_m).to_numpy(float),
        present=present,
        aoi_half_width_m=1000.0 * settings.attribution_half_width_km,
    )
    table = result.table.merge(
        candidates[["facility_id", "longitude", "latitude", "sector"]], on="facility_id", how="left"
    )
    geometry = gpd.points_from_xy(table["longitude"], table["latitude"])
    frame = gpd.GeoDataFrame(table, geometry=geometry, crs="EPSG:4326")
    context.add_output_metadata(
        {
            **{k: v for k, v in result.summary().items() if v is not None},
            "attributed_name": str(
                table.loc[table["facility_id"] == result.best_facility_id, "name"].squeeze()
            )
            if result.best_facility_id
            else "",
            "table": MetadataValue.md(
                table[["facility_id", "name", "distance_m", "probability"]].round(3).to_markdown(index=False)
            ),
        }
    )
    return frame
