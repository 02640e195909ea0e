"""Provenance of a posterior row: everything the row can be reproduced from.

The inputs (path relative to their archive root, product version, fingerprint), the granules the
inversion used, the met source of every overpass, the inventory files with their fingerprints, the
analysis settings (sampler settings, seed and priors included), the software versions and a hash of the
package's code. Deterministic: the same inputs and settings give the same JSON.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import geopandas as gpd
import xarray as xr

from attribution_assets.pipeline.settings import EventSettings

_PACKAGE = Path(__file__).resolve().parents[1]
"""The ``attribution_assets`` package folder."""
_VERSIONED = ("attribution-assets", "dagster", "jax", "numpyro", "xarray", "netCDF4", "numpy")


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


def met_sources(met: xr.Dataset) -> list[dict[str, str]]:
    """The met source chosen for every overpass: granule, instrument, source."""
    return [
        {"granule": str(g), "instrument": str(i), "source": str(s)}
        for g, i, s in zip(met["granule"].values, met["instrument"].values, met["met_source"].values,
                           strict=True)
    ]


def provenance_json(
    overpasses: gpd.GeoDataFrame,
    granules_used: list[str],
    met: xr.Dataset,
    settings: EventSettings,
    gas: str,
) -> str:
    """JSON with every catalogued input of the event (path relative to its archive, fingerprint,
    version), what the inversion used, the met source per overpass, the inventory files, the analysis
    settings, the software versions and the code hash."""
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
            "settings": settings.as_dict() | {"facility_list": Path(settings.facility_list).name,
                                              "power_plants": Path(settings.power_plants).name,
                                              "edgar": Path(settings.edgar).name},
            "versions": versions(),
            "graph_hash": code_hash(),
        },
        sort_keys=True,
    )
