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

import requests

from attribution_assets.access.http import (
    AccessRefused,
    HTTPFailure,
    IncompleteDownload,
    ServerError,
    redact,
    require_https,
)
from attribution_assets.access.live import CredentialsError
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
SERVICE = "Copernicus CDS"
HOW_TO = "set CDSAPI_URL and CDSAPI_KEY, or write ~/.cdsapirc (url: and key: lines)"
FIX_REFUSED = (
    "check the personal access token in CDSAPI_KEY or the key: line of ~/.cdsapirc "
    "(https://cds.climate.copernicus.eu/profile) and accept the licence of "
    f"{ERA5_DATASET} on the dataset's download page"
)
MAGIC = (b"CDF\x01", b"CDF\x02", b"\x89HDF", b"PK\x03\x04")
"""First bytes of a NetCDF-3, NetCDF-4/HDF5 or zip delivery."""
GRID_DEG = 0.25
PAD_DEG = 0.5


def era5_area(bbox: Sequence[float], pad_deg: float = PAD_DEG, grid_deg: float = GRID_DEG) -> list[float]:
    """CDS ``area`` ``[N, W, S, E]`` (degrees): ``bbox`` (west, south, east, north) padded by ``pad_deg``
    and snapped outwards to the ``grid_deg`` grid; latitudes clipped to [-90, 90]; longitudes in
    [-180, 180], with W > E for an area across the antimeridian (MARS wraps such an area round the
    globe, ECMWF MARS user documentation, keyword ``area``), or -180 .. 180 when it spans the globe."""
    west, south, east, north = (float(v) for v in bbox)
    if not -90.0 <= south <= north <= 90.0:
        raise ValueError(f"bbox latitudes must satisfy -90 <= south <= north <= 90, got {tuple(bbox)!r}")

    def snap(value: float, rounding: Callable[[float], float]) -> float:
        return float(rounding(round(value / grid_deg, 9)) * grid_deg)

    if west > east:
        east += 360.0
    west, east = snap(west - pad_deg, math.floor), snap(east + pad_deg, math.ceil)
    if east - west >= 360.0:
        west, east = -180.0, 180.0
    elif not (west >= -180.0 and east <= 180.0):
        west, east = (west + 180.0) % 360.0 - 180.0, (east + 180.0) % 360.0 - 180.0
    north, south = min(snap(north + pad_deg, math.ceil), 90.0), max(snap(south - pad_deg, math.floor), -90.0)
    return [north, west, south, east]


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


def cds_url_and_key() -> tuple[str, str]:
    """The URL and key cdsapi will use (``CDSAPI_URL``/``CDSAPI_KEY``, else the rc file), read with
    cdsapi's own reader; raises :class:`CredentialsError` when either is missing."""
    from cdsapi.api import get_url_key_verify

    try:
        url, key, _ = get_url_key_verify(None, None, None)
    except Exception as error:  # cdsapi raises a bare Exception when nothing is configured
        raise CredentialsError(f"{SERVICE}: {redact(str(error))}; {HOW_TO}") from None
    return str(url), str(key)


def default_client(
    timeout_s: float = 60.0, poll_max_s: float = 30.0, log: Callable[[str], None] | None = None
) -> Any:
    """A ``cdsapi.Client`` for the configured URL and key, after checking the URL is ``https://``
    (:class:`~attribution_assets.access.http.InsecureURL` otherwise: the key is never sent).

    The client's own retries are off (``retry_max=1``; :func:`download_era5` retries with backoff);
    ``timeout_s`` (seconds) bounds each request, ``poll_max_s`` (seconds) the wait between status
    polls. Its debug and info messages (the debug one lists the key) are dropped; warnings go to
    ``log`` with secrets redacted.
    """
    import cdsapi

    url, key = cds_url_and_key()
    require_https(url, SERVICE, "CDSAPI_URL or the url: line of ~/.cdsapirc")

    def drop(*args: object, **kwargs: object) -> None:
        return None

    def warn(message: object, *args: object, **kwargs: object) -> None:
        if log is not None:
            log(redact(str(message) % args if args else str(message)))

    return cdsapi.Client(
        url=url,
        key=key,
        quiet=True,
        progress=False,
        timeout=timeout_s,
        retry_max=1,
        sleep_max=poll_max_s,
        debug_callback=drop,
        info_callback=drop,
        warning_callback=warn,
        error_callback=warn,
    )


def classify(error: BaseException) -> BaseException:
    """The project's error for a cdsapi failure: 401/403 -> ``AccessRefused`` (not retried), 5xx/408/429
    and connection errors -> ``ServerError`` (retried), other HTTP errors -> ``HTTPFailure``, a short
    download -> ``IncompleteDownload``; messages redacted. Other errors are returned unchanged."""
    text = redact(str(error))
    if isinstance(error, requests.HTTPError) and error.response is not None:
        status = error.response.status_code
        first = text.splitlines()[0] if text else ""
        if status in (401, 403):
            return AccessRefused(f"{SERVICE} refused the credentials (HTTP {status}: {first}); {FIX_REFUSED}")
        if status >= 500 or status in (408, 429):
            return ServerError(f"{SERVICE}: {first}")
        return HTTPFailure(f"{SERVICE}: {text}")
    if isinstance(error, requests.RequestException):
        return type(error)(f"{SERVICE}: {text}")
    if type(error).__name__ == "DownloadError":  # ecmwf.datastores: size differs from the published one
        return IncompleteDownload(f"{SERVICE}: {text}")
    return error


def _check_delivery(staged: Path) -> None:
    """Raise :class:`IncompleteDownload` unless ``staged`` exists and starts like NetCDF or zip."""
    if not staged.is_file():
        raise IncompleteDownload(f"{SERVICE}: the retrieve finished without writing {staged.name}")
    with open(staged, "rb") as handle:
        head = handle.read(4)
    if not any(head.startswith(magic) for magic in MAGIC):
        staged.unlink()
        raise IncompleteDownload(f"{SERVICE}: {staged.name} is not NetCDF or zip (starts {head!r})")


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
    timeout_s: float = 60.0,
) -> Path:
    """Retrieve ERA5 single levels for ``bbox`` and [``t0``, ``t1``] into the archive; return the file.

    ``client_factory()`` returns an object with cdsapi's ``retrieve(name, request, target)`` (default
    :func:`default_client`: ``cdsapi.Client`` on ``CDSAPI_URL``/``CDSAPI_KEY`` or ``~/.cdsapirc``,
    https only, ``timeout_s`` seconds per request). The retrieve is retried with :func:`with_backoff`
    on timeouts, connection errors, 5xx and short downloads; a refused credential (401/403) raises
    ``AccessRefused`` at once. It writes into a hidden staging folder next to the target (the client
    checks the size against the one the CDS publishes; the first bytes must be NetCDF or zip); the
    finished file is moved into place with ``atomic.move_into_place`` (a zip delivery as
    ``<target stem>.zip``), so the crawl never sees a partial file. An existing target is returned
    without a request. Error messages never hold the key.
    """
    request = era5_request(bbox, t0, t1, variables)
    target = era5_target(archive_dir, t0, request)
    existing = era5_existing(archive_dir, t0, request)
    if existing is not None:
        return existing
    if client_factory is None:
        warn = log.warning if isinstance(log, logging.Logger) else log
        client = default_client(timeout_s, log=warn)
    else:
        client = client_factory()
    with staging_dir(target.parent) as staging:
        staged = staging / target.name

        def retrieve() -> None:
            try:
                client.retrieve(ERA5_DATASET, request, str(staged))
            except Exception as error:
                mapped = classify(error)
                if mapped is error:
                    raise
                raise mapped from None
            _check_delivery(staged)

        with_backoff(retrieve, attempts=attempts, base_s=base_s, retry_on=retry_on, sleep=sleep, log=log)
        return move_into_place(staged, target.with_suffix(".zip") if _is_zip(staged) else target)
