"""Provenance of a posterior row: the inputs, the software versions and a hash of the graph's code."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import geopandas as gpd

_PACKAGE = Path(__file__).resolve().parents[1]
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


def provenance_json(overpasses: gpd.GeoDataFrame, granules_used: list[str]) -> str:
    """JSON with every catalogued input of the event (path, fingerprint, version), what the inversion
    used, the software versions and the code hash."""
    inputs = [
        {
            "instrument": row.instrument,
            "path": row.path,
            "version": row.version,
            "fingerprint": row.fingerprint,
        }
        for row in overpasses.drop_duplicates("path").itertuples()
    ]
    return json.dumps(
        {"inputs": inputs, "granules_used": granules_used, "versions": versions(), "graph_hash": code_hash()},
        sort_keys=True,
    )
