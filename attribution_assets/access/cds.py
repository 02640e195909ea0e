"""ERA5 single levels from the Copernicus Climate Data Store through ``cdsapi``.

Request shape of the current CDS (ECMWF cdsapi README and the CDS "reanalysis-era5-single-levels"
download form): ``product_type``, ``variable``, ``year``/``month``/``day``/``time`` lists, ``area``
``[N, W, S, E]`` in degrees, ``data_format="netcdf"``, ``download_format="unarchived"``. A request that
mixes instantaneous and accumulated variables may still arrive as a zip of two NetCDF files; such a
download is stored with a ``.zip`` suffix, which the catalog crawl reads by content.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from attribution_assets.access.retry import DEFAULT_RETRY_ON, with_backoff
from attribution_assets.atomic import move_into_place, staging_dir
from attribution_assets.times import as_utc

ERA5_DATASET = "reanalysis-era5-single-levels"
DEFAULT_VARIABLES: tuple[str, ...] = (
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "100m_u_component_of_wind",
    "100m_v_component_of_wind",
    "boundary_layer_height",
    "surface_pressure",
    "2m_temperature",
    "total_cloud_cover",
    "forecast_surface_roughness",
    "surface_sensible_heat_flux",
)
"""CDS long names of u10, v10, u100, v100, blh, sp, t2m, tcc, fsr, sshf."""
HOW_TO = "set CDSAPI_URL and CDSAPI_KEY, or write ~/.cdsapirc (url: and key: lines)"
GRID_DEG = 0.25
PAD_DEG = 0.5


def era5_area(bbox: Sequence[float], pad_deg: float = PAD_DEG, grid_deg: float = GRID_DEG) -> list[float]:
    """CDS ``area`` ``[N, W, S, E]`` (degrees): ``bbox`` (west, south, east, north) padded by ``pad_deg``
    and snapped outwards to the ``grid_deg`` grid; latitudes clipped to [-90, 90]."""
    west, south, east, north = (float(v) for v in bbox)
    if not -90.0 <= south <= north <= 90.0:
        raise ValueError(f"bbox latitudes must satisfy -90 <= south <= north <= 90, got {tuple(bbox)!r}")

    def snap(value: float, rounding: Callable[[float], float]) -> float:
        return float(rounding(round(value / grid_deg, 9)) * grid_deg)

    return [
        min(snap(north + pad_deg, math.ceil), 90.0),
        snap(west - pad_deg, math.floor),
        max(snap(south - pad_deg, math.floor), -90.0),
        snap(east + pad_deg, math.ceil),
    ]


def _hours(t0: datetime, t1: datetime) -> list[datetime]:
    """Every whole UTC hour from ``t0`` rounded down to ``t1`` rounded up."""
    start = as_utc(t0).replace(minute=0, second=0, microsecond=0)
    end = as_utc(t1)
    if end != end.replace(minute=0, second=0, microsecond=0):
        end = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if end < start:
        raise ValueError(f"t1 {t1} is before t0 {t0}")
    count = int((end - start) / timedelta(hours=1)) + 1
    return [start + timedelta(hours=k) for k in range(count)]


def era5_request(
    bbox: Sequence[float], t0: datetime, t1: datetime, variables: Sequence[str] = DEFAULT_VARIABLES
) -> dict[str, Any]:
    """The CDS request for ``reanalysis-era5-single-levels`` covering ``bbox`` (west, south, east, north;
    degrees) and [``t0``, ``t1``] (naive = UTC) at hourly steps.

    ``year``/``month``/``day``/``time`` are sorted unique zero-padded strings; the CDS takes their
    cartesian product, so a window across midnight fetches the union of hours on each day spanned.
    """
    hours = _hours(t0, t1)
    return {
        "product_type": ["reanalysis"],
        "variable": list(variables),
        "year": sorted({f"{h:%Y}" for h in hours}),
        "month": sorted({f"{h:%m}" for h in hours}),
        "day": sorted({f"{h:%d}" for h in hours}),
        "time": sorted({f"{h:%H}:00" for h in hours}),
        "area": era5_area(bbox),
        "data_format": "netcdf",
        "download_format": "unarchived",
    }


def request_hash(request: Mapping[str, Any]) -> str:
    """First 8 hex digits of the sha256 of the request as canonical JSON (sorted keys)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def era5_target(archive_dir: str | os.PathLike[str], t0: datetime, request: Mapping[str, Any]) -> Path:
    """``<archive_dir>/era5/era5_single_levels_<YYYYMMDD of t0 UTC>_<request hash8>.nc``."""
    return Path(archive_dir) / "era5" / f"era5_single_levels_{as_utc(t0):%Y%m%d}_{request_hash(request)}.nc"


def era5_existing(
    archive_dir: str | os.PathLike[str], t0: datetime, request: Mapping[str, Any]
) -> Path | None:
    """The file a previous :func:`download_era5` of ``request`` left in the archive (``.nc`` or ``.zip``)."""
    target = era5_target(archive_dir, t0, request)
    return next((p for p in (target, target.with_suffix(".zip")) if p.is_file()), None)


def has_cds_credentials(environ: Mapping[str, str] | None = None, rc_path: Path | None = None) -> str | None:
    """Where cdsapi will find credentials: ``"environment"`` when ``CDSAPI_URL`` and ``CDSAPI_KEY`` are
    set, ``"<rc path>"`` when the cdsapi rc file exists (``CDSAPI_RC`` or ``~/.cdsapirc``), else ``None``."""
    env = os.environ if environ is None else environ
    if env.get("CDSAPI_URL") and env.get("CDSAPI_KEY"):
        return "environment"
    if rc_path is None:
        rc_path = Path(env.get("CDSAPI_RC") or Path.home() / ".cdsapirc")
    return str(rc_path) if rc_path.is_file() else None


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def download_era5(
    bbox: Sequence[float],
    t0: datetime,
    t1: datetime,
    archive_dir: str | os.PathLike[str],
    client_factory: Callable[[], Any] | None = None,
    *,
    variables: Sequence[str] = DEFAULT_VARIABLES,
    attempts: int = 4,
    base_s: float = 2.0,
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    sleep: Callable[[float], None] = time.sleep,
    log: logging.Logger | Callable[[str], None] | None = None,
) -> Path:
    """Retrieve ERA5 single levels for ``bbox`` and [``t0``, ``t1``] into the archive; return the file.

    ``client_factory()`` returns an object with cdsapi's ``retrieve(name, request, target)`` (default
    ``cdsapi.Client``, which reads ``CDSAPI_URL``/``CDSAPI_KEY`` or ``~/.cdsapirc``). The retrieve is
    retried with :func:`with_backoff` and writes into a hidden staging folder next to the target; the
    finished file is moved into place with ``atomic.move_into_place`` (a zip delivery as
    ``<target stem>.zip``), so the crawl never sees a partial file. An existing target is returned
    without a request.
    """
    request = era5_request(bbox, t0, t1, variables)
    target = era5_target(archive_dir, t0, request)
    existing = era5_existing(archive_dir, t0, request)
    if existing is not None:
        return existing
    if client_factory is None:
        import cdsapi

        client_factory = cdsapi.Client
    client = client_factory()
    with staging_dir(target.parent) as staging:
        staged = staging / target.name

        def retrieve() -> None:
            client.retrieve(ERA5_DATASET, request, str(staged))

        with_backoff(retrieve, attempts=attempts, base_s=base_s, retry_on=retry_on, sleep=sleep, log=log)
        if not staged.is_file():
            raise FileNotFoundError(f"CDS retrieve of {target.name} finished without writing {staged}")
        return move_into_place(staged, target.with_suffix(".zip") if _is_zip(staged) else target)
