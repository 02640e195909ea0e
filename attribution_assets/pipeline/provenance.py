"""Provenance of a posterior row: everything the row can be reproduced from.

The inputs (path relative to their archive root, product version, fingerprint), the granules the
inversion used, the met source and met prior of every overpass, the inventory files with their
fingerprints, the sampler settings and seed, the priors (the emission prior with its per-gas median
resolved), the complete analysis settings, the code version (the package version), the software
versions and a hash of the package's code. Deterministic: the same inputs and settings give the same
JSON (keys sorted, no time stamps, no absolute paths of inputs).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import geopandas as gpd
import xarray as xr

from attribution_assets.pipeline.met import winds_from_dataset
from attribution_assets.pipeline.overpasses import catalogued
from attribution_assets.pipeline.settings import EventSettings
from attribution_assets.science.inversion.settings import (
    DEFAULT_Q_MEDIAN_KG_H,
    SAMPLER_SETTINGS,
    InversionSettings,
)

_PACKAGE = Path(__file__).resolve().parents[1]
"""The ``attribution_assets`` package folder."""
_DISTRIBUTION = "attribution-assets"
"""The package's distribution name (its version is the code version)."""
_VERSIONED = (_DISTRIBUTION, "dagster", "jax", "numpyro", "xarray", "netCDF4", "numpy")
PRIOR_SETTINGS = (
    "q_prior", "q_median_kg_h", "q_log_sd", "q_mean_kg_h", "q_sd_kg_h", "position_prior_xy_m",
    "position_sd_m", "stability_sd", "background_sd_factor", "noise_inflation_log_sd", "prior_p_source",
    "presence", "fix_wind", "fix_position", "fix_stability", "fix_noise_inflation", "urban",
)
"""The fields of :class:`InversionSettings` that define the priors (units in their names or help)."""


def code_version() -> str:
    """The package version: the ``code_version`` of every asset and the code version of every row."""
    try:
        return version(_DISTRIBUTION)
    except PackageNotFoundError:
        return "not installed"


@cache
def code_hash() -> str:
    """sha256 over the package's Python sources (sorted paths and contents): changes with any stage."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def versions() -> dict[str, str]:
    """Installed versions of the packages that shape a posterior."""
    found = {}
    for name in _VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


@cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def file_fingerprint(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes (cached per path, size and modification time)."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def relative_to_archive(path: str, archive: str | None) -> str:
    """``path`` relative to its archive root where it lies under it, else as given (POSIX form)."""
    if archive:
        try:
            return Path(path).resolve().relative_to(Path(archive).resolve()).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def inventory_files(settings: EventSettings, gas: str) -> list[dict[str, str]]:
    """The inventory files the attribution of a ``gas`` event reads: name and fingerprint."""
    paths = [settings.power_plants] if gas == "CO2" else [settings.facility_list, settings.edgar]
    return [{"file": Path(p).name, "fingerprint": file_fingerprint(p)} for p in paths if p]


def met_sources(met: xr.Dataset) -> list[dict[str, object]]:
    """The met source chosen for every overpass and the met prior it gave: granule, instrument, source,
    overpass time (UTC), wind towards east/north (m s-1), speed and direction sd (m s-1, rad),
    stability index (Pasquill-Gifford A..F as 0..5), boundary-layer height (m), surface pressure (Pa)."""
    winds = winds_from_dataset(met)
    return [
        {
            "granule": str(g),
            "instrument": str(i),
            "source": str(s),
            "time": f"{w.time:%Y-%m-%dT%H:%M:%SZ}",
            "u_m_s": round(w.u_m_s, 4),
            "v_m_s": round(w.v_m_s, 4),
            "speed_sd_m_s": round(w.speed_sd_m_s, 4),
            "direction_sd_rad": round(w.direction_sd_rad, 5),
            "stability_index": round(w.stability_index, 4),
            "pblh_m": round(w.pblh_m, 1),
            "surface_pressure_pa": round(w.surface_pressure_pa, 1),
        }
        for g, i, s, w in zip(met["granule"].values, met["instrument"].values, met["met_source"].values,
                              winds, strict=True)
    ]


def sampler_settings(inversion: InversionSettings) -> dict[str, object]:
    """The sampler settings and seed (sampler, chains, warm-up, draws, seed, escalation)."""
    return {name: getattr(inversion, name) for name in SAMPLER_SETTINGS}


def prior_settings(inversion: InversionSettings, gas: str) -> dict[str, object]:
    """The prior settings, with the emission prior's median (kg h-1) resolved for ``gas`` when the
    settings leave it to the per-gas default."""
    priors = {name: getattr(inversion, name) for name in PRIOR_SETTINGS}
    priors["position_prior_xy_m"] = list(inversion.position_prior_xy_m)
    if priors["q_median_kg_h"] is None:
        priors["q_median_kg_h"] = DEFAULT_Q_MEDIAN_KG_H[gas.upper()]
    return priors


def provenance_json(
    overpasses: gpd.GeoDataFrame,
    granules_used: list[str],
    met: xr.Dataset,
    settings: EventSettings,
    gas: str,
) -> str:
    """JSON with every catalogued input of the event (path relative to its archive, fingerprint,
    version), what the inversion used, the met source and prior per overpass, the inventory files, the
    sampler settings and seed, the priors, the analysis settings, the code version, the software
    versions and the code hash (``graph_hash``). Files the crawl rejected are no inputs (their fate is in
    the posterior row's ``instrument_outcomes``)."""
    overpasses = catalogued(overpasses)
    archives = overpasses["archive"] if "archive" in overpasses else [None] * len(overpasses)
    inputs = [
        {
            "instrument": row.instrument,
            "path": relative_to_archive(row.path, archive),
            "version": row.version,
            "fingerprint": row.fingerprint,
        }
        for row, archive in zip(overpasses.itertuples(), archives, strict=True)
    ]
    inputs = list({item["path"]: item for item in inputs}.values())
    return json.dumps(
        {
            "inputs": inputs,
            "granules_used": granules_used,
            "met_sources": met_sources(met),
            "inventories": inventory_files(settings, gas),
            "sampler": sampler_settings(settings.inversion),
            "priors": prior_settings(settings.inversion, gas),
            "settings": settings.as_dict() | {"facility_list": Path(settings.facility_list).name,
                                              "power_plants": Path(settings.power_plants).name,
                                              "edgar": Path(settings.edgar).name},
            "code_version": code_version(),
            "versions": versions(),
            "graph_hash": code_hash(),
        },
        sort_keys=True,
    )
