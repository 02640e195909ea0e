"""Met preparation of one event: the wind, stability and boundary layer at the source for every
overpass, each granule with its own overpass time and wind.

The met source per overpass is chosen by :func:`~attribution_assets.science.met.source.choose_met`
(WRF where a run covers the source and the time, else ERA5). A met file that cannot be read is logged
and skipped; fill or NaN wind at the source raises an error naming the file and the variable. When no
met data serves an overpass, the error (:class:`MetDataError`) also names the met files the crawl
rejected for the event and those that could not be read, with their reasons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from attribution_assets.events import DetectionEvent
from attribution_assets.pipeline.overpasses import catalogued, rejected_files, rejection_text
from attribution_assets.readers.era5 import read_era5
from attribution_assets.readers.wrf import read_wrf
from attribution_assets.science.met.source import choose_met
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.times import as_utc, parse_time, to_datetime64

LOG = logging.getLogger(__name__)

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
"""The numeric fields of :class:`OverpassWind` stored per overpass, with their units."""
MET_ORDER = ("EMIT", "GHGSAT", "TROPOMI", "OCO2")
"""Order of the instruments' overpasses in the met dataset (granules sorted within each)."""


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
        name: ("overpass", np.array([getattr(w, name) for w in winds], float), {"units": units})
        for name, units in MET_UNITS.items()
    }
    data["stability_class"] = ("overpass", np.array([w.stability_class for w in winds], dtype=object))
    data["met_source"] = ("overpass", np.array([w.source for w in winds], dtype=object))
    data["notes"] = ("overpass", np.array([w.notes for w in winds], dtype=object))
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
                notes=str(row["notes"].values) if "notes" in row else "",
                **{name: float(row[name].values) for name in MET_UNITS},
            )
        )
    return winds


def granule_winds(met: xr.Dataset) -> dict[str, OverpassWind]:
    """The met prior of each granule (file stem -> wind)."""
    return dict(zip([str(g) for g in met["granule"].values], winds_from_dataset(met), strict=True))


class MetDataError(ValueError):
    """No usable met data for an overpass of the event: no ERA5 or WRF dataset covers the source and the
    overpass time, or the one that does holds no finite wind there. The message names the files that
    were tried, rejected by the crawl or unreadable, with their reasons."""


def _open_all(
    paths: list[str], reader: Callable[[str], xr.Dataset], source: str, unusable: list[str],
    log: logging.Logger,
) -> list[xr.Dataset]:
    """Every file of ``paths`` read by ``reader``; a file that cannot be read is logged, skipped and
    described in ``unusable`` (``source``: ERA5 or WRF)."""
    opened = []
    for path in paths:
        try:
            opened.append(reader(path))
        except (ValueError, OSError, LookupError) as error:
            log.error(f"skipping met file {path}: {error}")
            reason = str(error).replace(f"{path}: ", "")
            unusable.append(f"the {source} file {path} could not be read ({reason})")
    return opened


def prepare_met(
    event: DetectionEvent,
    overpasses: gpd.GeoDataFrame,
    aois: Mapping[str, Mapping[str, xr.Dataset]],
    log: logging.Logger = LOG,
) -> xr.Dataset:
    """The met prior of every overpass: ``aois`` maps an instrument to its AOI datasets per granule;
    the ERA5 and WRF files are those listed in ``overpasses``.

    Raises :class:`MetDataError` when an overpass has no usable met data, naming the met files the
    crawl rejected for the event (:func:`~attribution_assets.pipeline.overpasses.rejected_files`) and
    those that could not be read, each with its reason, or saying that the catalog lists none.
    """
    granule_rows = catalogued(overpasses)
    paths = {
        name: list(dict.fromkeys(granule_rows.loc[granule_rows["instrument"] == name, "path"]))
        for name in ("ERA5", "WRF")
    }
    broken = rejected_files(overpasses)
    unusable = [
        f"the {row.instrument} file {row.path} was rejected by the catalog crawl ({rejection_text(row)})"
        for row in broken[broken["instrument"].isin(("ERA5", "WRF"))].itertuples()
    ]
    if not paths["ERA5"] and not paths["WRF"] and not unusable:
        unusable.append("the catalog lists no ERA5 or WRF file whose grid covers the event's place within "
                        "its time window (add one to the archive and crawl it again, or set up CDS access)")
    era5 = _open_all(paths["ERA5"], read_era5, "ERA5", unusable, log)
    wrf = _open_all(paths["WRF"], read_wrf, "WRF", unusable, log)
    granules, instruments, winds = [], [], []
    for instrument in MET_ORDER:
        datasets = aois.get(instrument, {})
        for granule in sorted(datasets):
            time = overpass_time(datasets[granule])
            try:
                winds.append(choose_met(event.longitude, event.latitude, time, era5, wrf, unusable))
            except ValueError as error:
                raise MetDataError(str(error)) from error
            granules.append(granule)
            instruments.append(instrument)
    return winds_to_dataset(granules, instruments, winds)


def met_table(met: xr.Dataset) -> pd.DataFrame:
    """One row per overpass, rounded, with units in the column names: instrument, time, speed, wind
    direction (from, degrees), speed sd, stability class, boundary-layer height, source and notes."""
    winds = winds_from_dataset(met)
    return pd.DataFrame(
        {
            "instrument": [str(i) for i in met["instrument"].values],
            "time": [f"{w.time:%Y-%m-%d %H:%M}Z" for w in winds],
            "speed_m_s": [round(w.speed_m_s, 2) for w in winds],
            "from_deg": [round(w.wind_from_deg) for w in winds],
            "speed_sd_m_s": [round(w.speed_sd_m_s, 2) for w in winds],
            "stability": [w.stability_class for w in winds],
            "pblh_m": [round(w.pblh_m) for w in winds],
            "source": [w.source for w in winds],
            "notes": [w.notes or "-" for w in winds],
        }
    )
