"""GHGSat L2 XCH4 scenes in the project's pinned HDF5 schema ``ghgsat_l2_v1``.

GHGSat publishes no L2 specification; deliveries are converted to (or already match) this schema:
root attrs ``product="GHGSat_L2"``, ``schema_version="ghgsat_l2_v1"``, ``satellite``,
``time_coverage_start/end``, ``crs="EPSG:4326"``; ``/geolocation/latitude|longitude`` (y, x) degrees;
``/data/xch4``, ``/data/xch4_precision`` (y, x) ppb, NaN = no data; ``/data/quality_flag`` uint8, 0 = good.
Optional: ``/data/surface_albedo`` (y, x), units "1", the surface albedo the retrieval fitted (NaN = no
data); the inversion regresses the retrieval's albedo artefact on it
(:mod:`attribution_assets.science.inversion.albedo`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

import h5py
import numpy as np
import xarray as xr

from attribution_assets.readers.bbox import BBox, in_bbox
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.layout import Required, check_required
from attribution_assets.readers.template import provenance_attrs, read_product
from attribution_assets.readers.values import attribute_text as _text
from attribution_assets.times import iso_z

SCHEMA_VERSION = "ghgsat_l2_v1"
_REQUIRED_ATTRS = {"product": "GHGSat_L2", "schema_version": SCHEMA_VERSION}
_FIELDS = {
    "xch4": ("data/xch4", "ppb", "column-averaged dry air mole fraction of methane"),
    "xch4_precision": ("data/xch4_precision", "ppb", "1-sigma precision of xch4"),
    "quality_flag": ("data/quality_flag", "1", "quality flag, 0 = good"),
}
_GEO = {
    "latitude": ("geolocation/latitude", "degrees_north", "pixel centre latitude"),
    "longitude": ("geolocation/longitude", "degrees_east", "pixel centre longitude"),
}
_OPTIONAL_FIELDS = {
    "surface_albedo": ("data/surface_albedo", "1", "surface albedo fitted by the retrieval"),
}
_UNITS = {"data/xch4": "ppb", "data/xch4_precision": "ppb"}
REQUIRED_VARIABLES = tuple(
    Required(name, (_UNITS[name],) if name in _UNITS else None)
    for name, *_ in (*_FIELDS.values(), *_GEO.values())
)
"""The datasets (path, units, numeric values) without which :func:`read_ghgsat_l2` rejects a file."""


def _check_layout(h5: h5py.File, path: str | os.PathLike[str]) -> tuple[int, int]:
    """Validate root attributes, datasets, shapes and units; return the (y, x) shape."""
    for attr, expected in _REQUIRED_ATTRS.items():
        found = _text(h5.attrs[attr]) if attr in h5.attrs else None
        if found != expected:
            raise ProductFormatError(path, f"/@{attr}",
                                     f"root attribute {attr}={expected!r}, found {found!r}")
    for attr in ("time_coverage_start", "time_coverage_end"):
        if attr not in h5.attrs:
            raise ProductFormatError(path, f"/@{attr}", "root attribute present")
    shape = None
    for name, *_ in (*_FIELDS.values(), *_GEO.values()):
        if not isinstance(h5.get(name), h5py.Dataset):
            raise ProductFormatError(path, f"/{name}", "dataset present")
        shape = shape or h5[name].shape
        if h5[name].ndim != 2 or h5[name].shape != shape:
            raise ProductFormatError(path, f"/{name}", f"2-D (y, x) dataset of shape {shape}")
    for name, units in _UNITS.items():
        found = _text(h5[name].attrs.get("units", ""))
        if found != units:
            raise ProductFormatError(path, f"/{name}", f"units {units!r}, found {found!r}")
    check_required(h5, path, REQUIRED_VARIABLES)
    for name, units, _ in _OPTIONAL_FIELDS.values():
        if name not in h5:
            continue
        if not isinstance(h5[name], h5py.Dataset) or h5[name].shape != shape:
            raise ProductFormatError(path, f"/{name}", f"2-D (y, x) dataset of shape {shape}")
        found = _text(h5[name].attrs.get("units", ""))
        if found != units:
            raise ProductFormatError(path, f"/{name}", f"units {units!r}, found {found!r}")
    return shape


def _window(lat: np.ndarray, lon: np.ndarray, path: str | os.PathLike[str], bbox: BBox | None
            ) -> tuple[slice, slice]:
    """Row/column slices of the smallest rectangle holding every pixel centre inside ``bbox``."""
    if bbox is None:
        return slice(0, lat.shape[0]), slice(0, lat.shape[1])
    inside = in_bbox(lon, lat, bbox)
    if not inside.any():
        raise EmptyAOIError(path, bbox, "no GHGSat pixel centre inside the bbox")
    rows, cols = np.nonzero(inside)
    return slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)


def _build(h5: h5py.File, path: str | os.PathLike[str], bbox: BBox | None) -> xr.Dataset:
    lat = h5[_GEO["latitude"][0]][()].astype(np.float64)
    lon = h5[_GEO["longitude"][0]][()].astype(np.float64)
    rows, cols = _window(lat, lon, path, bbox)
    coords = {
        name: (("y", "x"), {"latitude": lat, "longitude": lon}[name][rows, cols],
               {"units": units, "long_name": long_name})
        for name, (_, units, long_name) in _GEO.items()
    }
    data = {}
    present = {name: spec for name, spec in _OPTIONAL_FIELDS.items() if spec[0] in h5}
    for name, (h5_name, units, long_name) in {**_FIELDS, **present}.items():
        values = h5[h5_name][rows, cols]
        if name != "quality_flag":
            values = values.astype(np.float32)
        data[name] = (("y", "x"), values, {"units": units, "long_name": long_name})
    attrs = {
        **provenance_attrs(
            path, _text(h5.attrs.get("product_version", SCHEMA_VERSION)), "GHGSAT",
            iso_z(_text(h5.attrs["time_coverage_start"])), iso_z(_text(h5.attrs["time_coverage_end"])),
        ),
        "schema_version": SCHEMA_VERSION,
        "satellite": _text(h5.attrs.get("satellite", "")),
        "target": _text(h5.attrs.get("target", "")),
        "window_offset_yx": [rows.start, cols.start],
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def read_ghgsat_l2(path: str | os.PathLike[str], bbox: Sequence[float] | None = None) -> xr.Dataset:
    """Read a ``ghgsat_l2_v1`` scene cropped to the rows/columns whose pixel centres fall in ``bbox``.

    ``bbox`` is (west, south, east, north) in degrees. Returns dims ``y, x`` with ``xch4`` and
    ``xch4_precision`` in ppb (NaN = no data), ``quality_flag`` (uint8, 0 good), ``surface_albedo``
    (1) where the file has it, and coords
    ``latitude``/``longitude`` in degrees, plus provenance attrs, ``satellite``, ``target`` and
    ``window_offset_yx`` (the crop's place in the file).

    Raises ProductFormatError naming the attribute or dataset that breaks the schema, EmptyAOIError
    when no pixel centre lies in the bbox.
    """
    return read_product(path, bbox, partial(h5py.File, mode="r"), "HDF5", _check_layout, _build)
