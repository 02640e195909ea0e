"""Met preparation: the wind, stability and boundary layer at the source for every overpass.

A met file that cannot be read is logged and skipped; fill or NaN wind at the source fails the step
with an error naming the file and the variable (:func:`attribution_assets.science.met.wind.wind_at`);
a calm is noted per overpass in the ``overpasses`` metadata.
"""

from datetime import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from dagster import AssetExecutionContext, MetadataValue, asset

from attribution_assets.assets.common import event_of
from attribution_assets.partitions import detection_events
from attribution_assets.readers.era5 import read_era5
from attribution_assets.readers.wrf import read_wrf
from attribution_assets.science.met.source import choose_met
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.times import as_utc, parse_time, to_datetime64

MET_FIELDS = (
    "u_m_s",
    "v_m_s",
    "speed_sd_m_s",
    "direction_sd_rad",
    "stability_index",
    "pblh_m",
    "surface_pressure_pa",
    "u10_m_s",
    "v10_m_s",
    "u_pbl_m_s",
    "v_pbl_m_s",
)
MET_UNITS = {
    "u_m_s": "m s-1",
    "v_m_s": "m s-1",
    "speed_sd_m_s": "m s-1",
    "direction_sd_rad": "rad",
    "stability_index": "1",
    "pblh_m": "m",
    "surface_pressure_pa": "Pa",
    "u10_m_s": "m s-1",
    "v10_m_s": "m s-1",
    "u_pbl_m_s": "m s-1",
    "v_pbl_m_s": "m s-1",
}


def overpass_time(ds: xr.Dataset) -> datetime:
    """Observation time of a granule's AOI: mean pixel time where pixels carry one, else mid-coverage."""
    if "time" in ds.variables and np.issubdtype(ds["time"].dtype, np.datetime64):
        seconds = ds["time"].values.astype("datetime64[s]").astype(np.int64)
        return as_utc(np.datetime64(int(np.mean(seconds)), "s"))
    start = parse_time(str(ds.attrs["time_coverage_start"]))
    end = parse_time(str(ds.attrs.get("time_coverage_end", ds.attrs["time_coverage_start"])))
    return start + (end - start) / 2


def winds_to_dataset(granules: list[str], instruments: list[str], winds: list[OverpassWind]) -> xr.Dataset:
    """One row per overpass, dims ``overpass``."""
    data = {
        name: ("overpass", np.array([getattr(w, name) for w in winds], float), {"units": MET_UNITS[name]})
        for name in MET_FIELDS
    }
    data["stability_class"] = ("overpass", np.array([w.stability_class for w in winds], dtype=object))
    data["met_source"] = ("overpass", np.array([w.source for w in winds], dtype=object))
    times = np.array([to_datetime64(w.time) for w in winds], dtype="datetime64[ns]")
    coords = {
        "granule": ("overpass", np.array(granules, dtype=object)),
        "instrument": ("overpass", np.array(instruments, dtype=object)),
        "time": ("overpass", times),
    }
    return xr.Dataset(data, coords=coords)


def winds_from_dataset(ds: xr.Dataset) -> list[OverpassWind]:
    """Inverse of :func:`winds_to_dataset`."""
    winds = []
    for i in range(ds.sizes["overpass"]):
        row = ds.isel(overpass=i)
        winds.append(
            OverpassWind(
                time=as_utc(row["time"].values[()]),
                source=str(row["met_source"].values),
                stability_class=str(row["stability_class"].values),
                **{name: float(row[name].values) for name in MET_FIELDS},
            )
        )
    return winds


def _open_all(paths: list[str], reader, context: AssetExecutionContext) -> list[xr.Dataset]:
    opened = []
    for path in paths:
        try:
            opened.append(reader(path))
        except (ValueError, OSError, LookupError) as error:
            context.log.error(f"skipping met file {path}: {error}")
    return opened


@asset(
    partitions_def=detection_events,
    group_name="met",
    description="Wind at the source for each overpass (10 m and boundary-layer mean, interpolated in space "
    "and time from WRF where it covers the event, else ERA5), wind uncertainty, Pasquill-Gifford "
    "stability and boundary-layer height.",
)
def met_conditions(
    context: AssetExecutionContext,
    event_overpasses: gpd.GeoDataFrame,
    emit_aoi: dict[str, xr.Dataset],
    tropomi_aoi: dict[str, xr.Dataset],
    ghgsat_aoi: dict[str, xr.Dataset],
    oco2_aoi: dict[str, xr.Dataset],
) -> xr.Dataset:
    event = event_of(context)
    paths = {
        name: list(dict.fromkeys(event_overpasses.loc[event_overpasses["instrument"] == name, "path"]))
        for name in ("ERA5", "WRF")
    }
    era5 = _open_all(paths["ERA5"], read_era5, context)
    wrf = _open_all(paths["WRF"], read_wrf, context)
    granules, instruments, winds = [], [], []
    for instrument, datasets in (
        ("EMIT", emit_aoi),
        ("GHGSAT", ghgsat_aoi),
        ("TROPOMI", tropomi_aoi),
        ("OCO2", oco2_aoi),
    ):
        for granule in sorted(datasets):
            wind = choose_met(event.longitude, event.latitude, overpass_time(datasets[granule]), era5, wrf)
            granules.append(granule)
            instruments.append(instrument)
            winds.append(wind)
    result = winds_to_dataset(granules, instruments, winds)
    context.add_output_metadata(
        {
            "overpasses": MetadataValue.md(
                pd.DataFrame(
                    {
                        "instrument": instruments,
                        "time": [f"{w.time:%Y-%m-%d %H:%M}Z" for w in winds],
                        "speed_m_s": [round(w.speed_m_s, 2) for w in winds],
                        "from_deg": [round(w.wind_from_deg) for w in winds],
                        "speed_sd_m_s": [round(w.speed_sd_m_s, 2) for w in winds],
                        "stability": [w.stability_class for w in winds],
                        "pblh_m": [round(w.pblh_m) for w in winds],
                        "source": [w.source for w in winds],
                        "notes": [w.notes or "-" for w in winds],
                    }
                ).to_markdown(index=False)
                if winds
                else "no overpass"
            ),
        }
    )
    return result
