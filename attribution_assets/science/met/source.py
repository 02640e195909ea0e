"""Which met source serves an overpass: WRF where a run covers the source and the time, else ERA5.

A regional WRF run resolves the local flow better than the 0.25 degree ERA5 reanalysis, so it is
preferred wherever its domain holds the source and its output spans the overpass time; ERA5 is the
global fallback. Pure selection over carriers already in memory: reading the files stays in the met
asset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xarray as xr

from attribution_assets.science.met.wind import ERA5, WRF, MetCarrier, OverpassWind, check_coverage, wind_at
from attribution_assets.times import iso_z


def coverage_error(ds: xr.Dataset, carrier: MetCarrier, lon: float, lat: float, time: Any) -> str | None:
    """Why ``ds`` cannot give the wind at (``lon``, ``lat``) degrees and ``time`` (UTC), or ``None``
    when it can (it has ``u10, v10`` and holds the point inside its grid and the time inside its range)."""
    try:
        check_coverage(ds, carrier, lon, lat, time)
    except ValueError as error:
        return str(error)
    return None


def covers(ds: xr.Dataset, carrier: MetCarrier, lon: float, lat: float, time: Any) -> bool:
    """Whether ``ds`` holds the point (degrees) inside its grid and the time (UTC) inside its range."""
    return coverage_error(ds, carrier, lon, lat, time) is None


def choose_met_source(
    lon: float,
    lat: float,
    time: Any,
    era5: Sequence[xr.Dataset] = (),
    wrf: Sequence[xr.Dataset] = (),
    unusable: Sequence[str] = (),
) -> tuple[MetCarrier, xr.Dataset]:
    """The carrier and dataset that serve (``lon``, ``lat``, ``time``): the first WRF run that covers
    them, else the first ERA5 file that does. ``unusable``: one line per met file that was not given
    because it could not be used (rejected, unreadable), saying which and why.

    Raises ``ValueError`` saying why each dataset was passed over and repeating ``unusable``, or, when
    there is neither, that neither an ERA5 nor a WRF dataset was given.
    """
    reasons = []
    for carrier, datasets in ((WRF, wrf), (ERA5, era5)):
        for ds in datasets:
            reason = coverage_error(ds, carrier, lon, lat, time)
            if reason is None:
                return carrier, ds
            reasons.append(reason)
    reasons.extend(unusable)
    raise ValueError(
        f"no met data covers ({lon:.4f}, {lat:.4f}) at {iso_z(time)}: "
        + ("; ".join(reasons) or "neither an ERA5 nor a WRF dataset was given")
    )


def choose_met(
    lon: float,
    lat: float,
    time: Any,
    era5: Sequence[xr.Dataset] = (),
    wrf: Sequence[xr.Dataset] = (),
    unusable: Sequence[str] = (),
) -> OverpassWind:
    """The met prior at (``lon``, ``lat``) degrees and ``time`` (UTC) from the source
    :func:`choose_met_source` picks (``unusable`` goes into its error)."""
    carrier, ds = choose_met_source(lon, lat, time, era5, wrf, unusable)
    return wind_at(ds, carrier, lon, lat, time)
