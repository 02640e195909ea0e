"""Source attribution of one event: which inventory facility (or an unlisted source) the posterior
points to, with the position prior the posterior actually ran with."""

from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from attribution_assets.events import DetectionEvent
from attribution_assets.pipeline.inversion import inversion_settings_of
from attribution_assets.pipeline.settings import EventSettings
from attribution_assets.readers.errors import EmptyAOIError
from attribution_assets.readers.inventory import (
    FACILITY_COLUMNS,
    edgar_candidates,
    read_edgar,
    read_facility_list,
    read_wri_gppd,
)
from attribution_assets.science.attribution import AttributionResult, attribute_source, candidates_local_xy

LOG = logging.getLogger(__name__)
EDGAR_MIN_EMISSION_KG_H = 100.0
"""EDGAR cells emitting less than this (kg h-1) are not candidates."""
EDGAR_TOP_N = 5
"""The strongest EDGAR cells inside the attribution AOI that are candidates."""
ATTRIBUTION_COLUMNS = ["facility_id", "name", "probability", "geometry"]


def load_candidates(
    event: DetectionEvent, settings: EventSettings, log: logging.Logger = LOG
) -> pd.DataFrame:
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
            log.info(f"no inventory facility of {path} inside the attribution AOI")
    if event.gas == "CH4" and settings.edgar:
        try:
            cells = edgar_candidates(
                read_edgar(settings.edgar, bbox), bbox, EDGAR_MIN_EMISSION_KG_H, EDGAR_TOP_N
            )
            frames.append(cells.drop(columns="emission_kg_h"))
        except EmptyAOIError:
            log.info(f"no EDGAR cell of {settings.edgar} above {EDGAR_MIN_EMISSION_KG_H} kg/h in the AOI")
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(FACILITY_COLUMNS))
    candidates = pd.concat(frames, ignore_index=True)
    return candidates[candidates["gas"] == event.gas].reset_index(drop=True)


def no_source_table() -> gpd.GeoDataFrame:
    """The attribution of a posterior in which no draw has a source: no row."""
    return gpd.GeoDataFrame(columns=ATTRIBUTION_COLUMNS, geometry="geometry", crs="EPSG:4326")


def attribute(
    event: DetectionEvent,
    inference_data: Any,
    candidates: pd.DataFrame,
    settings: EventSettings,
) -> tuple[gpd.GeoDataFrame, AttributionResult | None]:
    """Posterior probability of each candidate facility and of an unlisted source (one row each, with
    its location), and the attribution result; ``None`` and no row when no draw has a source.

    The position prior is the one the posterior ran with (recorded in ``inference_data``)."""
    posterior = inference_data.posterior
    present = posterior["source_present"].values if "source_present" in posterior else None
    if present is not None and not np.any(present):
        return no_source_table(), None
    prior = inversion_settings_of(inference_data, settings.inversion)
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
    return gpd.GeoDataFrame(table, geometry=geometry, crs="EPSG:4326"), result
