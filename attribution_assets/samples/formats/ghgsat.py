"""Write a GHGSat L2 carrier in the project's versioned HDF5 schema ``ghgsat_l2_v1``.

No public GHGSat L2 specification exists, so the project pins its own schema (HDF5 via h5py):
root attributes ``product="GHGSat_L2"``, ``schema_version="ghgsat_l2_v1"``, ``satellite``, ``target``,
``time_coverage_start/end`` (ISO 8601, Z) and ``crs="EPSG:4326"``; datasets
``/geolocation/latitude``, ``/geolocation/longitude`` (float32, y, x, degrees),
``/data/xch4`` and ``/data/xch4_precision`` (float32, y, x, ppb, NaN = no data) and
``/data/quality_flag`` (uint8, y, x, 0 = good); optionally ``/data/surface_albedo`` (float32, y, x,
units "1", the albedo the retrieval fitted).
"""

from __future__ import annotations

import os
import re
from datetime import datetime

import h5py
import xarray as xr

from attribution_assets.atomic import atomic_path
from attribution_assets.times import as_utc, iso_z

PRODUCT = "GHGSat_L2"
SCHEMA_VERSION = "ghgsat_l2_v1"
_DATASETS = (
    ("geolocation/latitude", "latitude", "f4", "degrees_north", "pixel centre latitude"),
    ("geolocation/longitude", "longitude", "f4", "degrees_east", "pixel centre longitude"),
    ("data/xch4", "xch4", "f4", "ppb", "column-averaged dry air mole fraction of methane"),
    ("data/xch4_precision", "xch4_precision", "f4", "ppb", "1-sigma precision of xch4"),
    ("data/quality_flag", "quality_flag", "u1", "1", "quality flag, 0 = good"),
)
_OPTIONAL_DATASETS = (
    ("data/surface_albedo", "surface_albedo", "f4", "1", "surface albedo fitted by the retrieval"),
)
_NAME_PART = re.compile(r"^[A-Za-z0-9-]+$")


def ghgsat_filename(satellite: str, start: datetime, target: str) -> str:
    """Delivery name ``GHGSat_L2_<satellite>_<YYYYMMDDTHHMMSSZ>_<target>.h5`` (start naive = UTC).

    ``satellite`` and ``target`` may hold letters, digits and ``-`` only, so the name parses back.
    """
    for label, value in (("satellite", satellite), ("target", target)):
        if not _NAME_PART.match(value):
            raise ValueError(f"GHGSat {label} must match [A-Za-z0-9-]+, got {value!r}")
    return f"GHGSat_L2_{satellite}_{as_utc(start):%Y%m%dT%H%M%SZ}_{target}.h5"


def write_ghgsat_l2(ds: xr.Dataset, path: str | os.PathLike[str], satellite: str, target: str) -> None:
    """Write a GHGSat carrier (dims ``y, x``) as a ``ghgsat_l2_v1`` HDF5 file.

    ``ds`` holds ``xch4`` and ``xch4_precision`` in ppb (NaN = no data), ``quality_flag`` (0 good) and
    ``latitude``/``longitude(y, x)`` in degrees, optionally ``surface_albedo`` (1), with attrs
    ``time_coverage_start/end`` (ISO 8601).
    ``satellite`` (e.g. "GHGSat-C2") and ``target`` (site name) go into the root attributes.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({
            "product": PRODUCT,
            "schema_version": SCHEMA_VERSION,
            "satellite": satellite,
            "target": target,
            "time_coverage_start": iso_z(ds.attrs["time_coverage_start"]),
            "time_coverage_end": iso_z(ds.attrs["time_coverage_end"]),
            "crs": "EPSG:4326",
        })
        optional = tuple(spec for spec in _OPTIONAL_DATASETS if spec[1] in ds)
        for h5_name, source, dtype, units, long_name in _DATASETS + optional:
            values = ds[source].transpose("y", "x").values.astype(dtype)
            dset = h5.create_dataset(h5_name, data=values, compression="gzip", compression_opts=4)
            dset.attrs["units"] = units
            dset.attrs["long_name"] = long_name
