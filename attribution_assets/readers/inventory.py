"""Emission inventories: facility lists (WRI GPPD, user lists) and EDGAR gridded emissions.

Facility readers return a :class:`pandas.DataFrame` with the standard columns :data:`FACILITY_COLUMNS`:
``facility_id`` (str, unique), ``name``, ``latitude``, ``longitude`` (degrees, longitude in
[-180, 180)), ``gas`` ("CH4" | "CO2"), ``sector``, ``capacity_mw`` (MW, NaN when unknown), ``source``
(where the row comes from), ``prior_weight`` (relative prior weight for attribution, >= 0),
``location_sd_m`` (facility-location error sd in m, NaN = use the attribution default). Provenance
attributes are in ``DataFrame.attrs``.

Sources:
* WRI Global Power Plant Database v1.3.0 (Global Energy Observatory, Google, KTH, University of
  Groningen, WRI, 2021; Byers et al. 2018), CC BY 4.0: one CSV row per plant.
* EDGAR (Emissions Database for Global Atmospheric Research, European Commission JRC; Crippa et al.)
  gridded annual NetCDF at 0.1°: v8+ ``emissions(lat, lon)`` in t cell-1 yr-1, the ``*_flx.nc``
  variant ``fluxes`` and older releases ``emi_ch4`` in kg m-2 s-1.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from attribution_assets.readers.bbox import BBox, in_bbox, normalise_lon, overlaps_bbox, validate_bbox
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.template import provenance_attrs
from attribution_assets.science.units import EARTH_RADIUS_M, kg_s_to_kg_h

FACILITY_COLUMNS = (
    "facility_id", "name", "latitude", "longitude", "gas", "sector", "capacity_mw", "source",
    "prior_weight", "location_sd_m",
)
SECONDS_PER_YEAR = 365.25 * 86_400.0
"""Julian year, s, for converting annual totals to rates."""

GPPD_REQUIRED = ("country", "name", "gppd_idnr", "capacity_mw", "latitude", "longitude", "primary_fuel")
_GASES = ("CH4", "CO2")
_EDGAR_VARIABLES = {"emissions": "t/cell/yr", "fluxes": "kg m-2 s-1", "emi_ch4": "kg m-2 s-1"}
_TONNES_UNITS = {"t", "ton", "tons", "tonne", "tonnes", "t/cell/yr", "t/cell/year", "tcell-1yr-1",
                 "t/yr", "t/year", "tonnes/year", "tonnes/cell/year", "tonnes/yr", "ton/cell/yr"}
_FLUX_UNITS = {"kgm-2s-1", "kg/m2/s", "kg/m^2/s", "kgm**-2s**-1", "kg/(m2s)", "kgm^-2s^-1"}


def _fail(path: str | os.PathLike[str], variable: str, expected: str) -> ProductFormatError:
    return ProductFormatError(path, variable, expected)


def _numeric(frame: pd.DataFrame, column: str, path: str | os.PathLike[str], *, lo: float, hi: float,
             allow_nan: bool = False) -> np.ndarray:
    """Column as float64, every value in [lo, hi] (NaN allowed when ``allow_nan``); error names the row."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    bad = ~((values >= lo) & (values <= hi))
    if allow_nan:
        bad &= ~np.isnan(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        found = frame[column].iloc[row]
        raise _fail(path, column, f"numbers in [{lo}, {hi}]; data row {row + 1} has {found!r}")
    return values


def _finish(frame: pd.DataFrame, path: str | os.PathLike[str], box: BBox | None, attrs: dict[str, str]
            ) -> pd.DataFrame:
    """Check unique ids, subset to the bbox, order columns, attach provenance."""
    dup = frame["facility_id"].duplicated()
    if dup.any():
        raise _fail(path, "facility_id", f"unique ids; {frame['facility_id'][dup].iloc[0]!r} repeats")
    frame["longitude"] = normalise_lon(frame["longitude"].to_numpy(np.float64))
    if box is not None:
        frame = frame[in_bbox(frame["longitude"].to_numpy(), frame["latitude"].to_numpy(), box)]
        if frame.empty:
            raise EmptyAOIError(path, box, "no facility inside the bbox")
    out = frame.loc[:, list(FACILITY_COLUMNS)].reset_index(drop=True)
    out.attrs = dict(attrs)
    return out


def read_wri_gppd(path: str | os.PathLike[str], bbox: Sequence[float] | None = None) -> pd.DataFrame:
    """Read a WRI Global Power Plant Database CSV (v1.3.0 columns) as standard facility rows.

    Args:
        path: the GPPD CSV (``global_power_plant_database.csv`` or a subset with the same columns).
        bbox: (west, south, east, north) in degrees; rows outside are dropped.

    Returns:
        :data:`FACILITY_COLUMNS` with ``facility_id = "GPPD:<gppd_idnr>"``, ``gas = "CO2"``,
        ``sector = "power:<primary_fuel>"`` (lower case), ``capacity_mw`` in MW, ``source`` naming the
        database and the row's original source, ``prior_weight = 1``, ``location_sd_m`` NaN.
        ``attrs``: provenance (``instrument = "WRI GPPD"``).

    Raises:
        ProductFormatError: unreadable file, a missing required column, or a bad latitude/longitude/
            capacity (names the column and data row). EmptyAOIError: no plant inside ``bbox``.
    """
    box = validate_bbox(path, bbox)
    try:
        raw = pd.read_csv(path, dtype={"gppd_idnr": str, "country": str, "name": str}, low_memory=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise _fail(path, "<file>", f"a readable WRI GPPD CSV ({exc})") from exc
    for column in GPPD_REQUIRED:
        if column not in raw.columns:
            raise _fail(path, column, "WRI GPPD v1.3.0 column present")
    lat = _numeric(raw, "latitude", path, lo=-90.0, hi=90.0)
    lon = _numeric(raw, "longitude", path, lo=-180.0, hi=360.0)
    capacity = _numeric(raw, "capacity_mw", path, lo=0.0, hi=1e6, allow_nan=True)
    fuel = raw["primary_fuel"].fillna("unknown").astype(str).str.strip().str.lower()
    origin = raw["source"] if "source" in raw.columns else pd.Series("", index=raw.index)
    origin = origin.fillna("").astype(str)
    frame = pd.DataFrame({
        "facility_id": "GPPD:" + raw["gppd_idnr"].astype(str).str.strip(),
        "name": raw["name"].astype(str),
        "latitude": lat,
        "longitude": lon,
        "gas": "CO2",
        "sector": "power:" + fuel,
        "capacity_mw": capacity,
        "source": ("WRI GPPD v1.3.0; " + origin).str.rstrip("; "),
        "prior_weight": 1.0,
        "location_sd_m": np.nan,
    })
    years = []
    if "year_of_capacity_data" in raw.columns:
        years = pd.to_numeric(raw["year_of_capacity_data"], errors="coerce").dropna().astype(int).tolist()
    start = f"{min(years):04d}-01-01T00:00:00Z" if years else ""
    end = f"{max(years):04d}-12-31T23:59:59Z" if years else ""
    attrs = provenance_attrs(path, "WRI GPPD v1.3.0", "WRI GPPD", start, end)
    return _finish(frame, path, box, attrs)


def _load_geojson(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Point features of a GeoJSON FeatureCollection as a table (properties + latitude/longitude)."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, ValueError) as exc:
        raise _fail(path, "<file>", f"a readable GeoJSON file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise _fail(path, "type", "a GeoJSON FeatureCollection")
    rows = []
    for i, feature in enumerate(doc.get("features") or []):
        geometry = (feature or {}).get("geometry") or {}
        coords = geometry.get("coordinates")
        if geometry.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2:
            raise _fail(path, f"features[{i}].geometry", "a Point with [longitude, latitude]")
        props = dict(feature.get("properties") or {})
        props["longitude"], props["latitude"] = coords[0], coords[1]
        rows.append(props)
    return pd.DataFrame(rows)


def read_facility_list(path: str | os.PathLike[str], bbox: Sequence[float] | None = None) -> pd.DataFrame:
    """Read a user facility list (CSV, or GeoJSON with Point features) as standard facility rows.

    Required fields: ``facility_id``, ``name``, ``latitude``, ``longitude`` (degrees; in GeoJSON from
    the Point geometry). Optional: ``gas`` ("CH4" default, or "CO2"), ``sector`` (default
    "unspecified"), ``capacity_mw`` (MW), ``prior_weight`` (>= 0, default 1), ``location_sd_m``
    (> 0 m, default NaN = the attribution default), ``source`` (default the file name).

    Raises:
        ProductFormatError: unreadable file, missing field, bad value, unknown gas or repeated id
            (names the column and data row). EmptyAOIError: no facility inside ``bbox``.
    """
    box = validate_bbox(path, bbox)
    if Path(path).suffix.lower() in (".geojson", ".json"):
        raw = _load_geojson(path)
    else:
        try:
            raw = pd.read_csv(path, comment="#", dtype={"facility_id": str, "name": str})
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise _fail(path, "<file>", f"a readable facility CSV ({exc})") from exc
    for column in ("facility_id", "name", "latitude", "longitude"):
        if column not in raw.columns:
            raise _fail(path, column, "facility list column present")
    n = len(raw)

    def optional(column: str, default: object) -> pd.Series:
        if column not in raw.columns:
            return pd.Series([default] * n, index=raw.index, dtype=object)
        return raw[column].where(raw[column].notna(), default)

    gas = optional("gas", "CH4").astype(str).str.strip().str.upper()
    bad_gas = ~gas.isin(_GASES)
    if bad_gas.any():
        row = int(np.flatnonzero(bad_gas.to_numpy())[0])
        raise _fail(path, "gas", f"one of {_GASES}; data row {row + 1} has {gas.iloc[row]!r}")
    ids = raw["facility_id"].astype(str).str.strip()
    if (ids == "").any() or raw["facility_id"].isna().any():
        raise _fail(path, "facility_id", "a non-empty id on every row")
    frame = pd.DataFrame({
        "facility_id": ids,
        "name": raw["name"].fillna("").astype(str),
        "latitude": _numeric(raw, "latitude", path, lo=-90.0, hi=90.0),
        "longitude": _numeric(raw, "longitude", path, lo=-180.0, hi=360.0),
        "gas": gas,
        "sector": optional("sector", "unspecified").astype(str),
        "capacity_mw": _numeric(raw, "capacity_mw", path, lo=0.0, hi=1e6, allow_nan=True)
        if "capacity_mw" in raw.columns else np.nan,
        "source": optional("source", f"facility list {Path(path).name}").astype(str),
        "prior_weight": _numeric(raw, "prior_weight", path, lo=0.0, hi=np.inf, allow_nan=True)
        if "prior_weight" in raw.columns else 1.0,
        "location_sd_m": _numeric(raw, "location_sd_m", path, lo=1e-3, hi=1e6, allow_nan=True)
        if "location_sd_m" in raw.columns else np.nan,
    })
    frame["prior_weight"] = frame["prior_weight"].fillna(1.0)
    attrs = provenance_attrs(path, "facility list", "facility list", "", "")
    return _finish(frame, path, box, attrs)


# ----------------------------------------------------------------------------------------------
# EDGAR
# ----------------------------------------------------------------------------------------------


def _norm_units(units: str) -> str:
    return re.sub(r"[\s·.]", "", units).lower()


def _coord_name(ds: xr.Dataset, names: tuple[str, ...], path: str | os.PathLike[str]) -> str:
    for name in names:
        if name in ds.variables:
            return name
    raise _fail(path, names[0], f"a coordinate named one of {names}")


def _spacing(values: np.ndarray, path: str | os.PathLike[str], name: str) -> float:
    """Grid step (degrees) of a regular axis, possibly with gaps (a subset): the smallest step."""
    steps = np.diff(np.sort(values))
    steps = steps[steps > 0]
    if steps.size == 0:
        raise _fail(path, name, "at least two distinct grid values")
    return float(steps.min())


def grid_cell_area_m2(lat_deg: np.ndarray, dlat_deg: float, dlon_deg: float) -> np.ndarray:
    """Area (m2) of spherical grid cells centred at ``lat_deg`` with steps ``dlat_deg`` x ``dlon_deg``.

    ``A = R^2 dλ (sin φ_n - sin φ_s)`` with R = 6 371 008.8 m, edges clipped to ±90°.
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    north = np.radians(np.clip(lat + dlat_deg / 2.0, -90.0, 90.0))
    south = np.radians(np.clip(lat - dlat_deg / 2.0, -90.0, 90.0))
    return EARTH_RADIUS_M**2 * np.radians(dlon_deg) * (np.sin(north) - np.sin(south))


def read_edgar(path: str | os.PathLike[str], bbox: Sequence[float] | None = None) -> xr.Dataset:
    """Read an EDGAR gridded annual emission NetCDF as fluxes and per-cell rates.

    Accepted layouts: ``emissions(lat, lon)`` in t cell-1 yr-1 (v8+), ``fluxes(lat, lon)`` (``*_flx.nc``)
    or ``emi_ch4(lat, lon)`` (older releases) in kg m-2 s-1, checked against the ``units`` attribute.
    Singleton extra dimensions (e.g. ``time``) are dropped. Longitudes are normalised to [-180, 180)
    and sorted; latitudes increase.

    Returns:
        Dataset on ``lat(lat)``, ``lon(lon)`` (cell centres, degrees) with ``flux_kg_m2_s`` (kg m-2 s-1),
        ``emission_kg_h`` (kg h-1 per cell), ``cell_area_m2`` (m2, spherical, R = 6 371 008.8 m);
        attrs: provenance (``instrument = "EDGAR"``), ``gas``, ``edgar_variable``,
        ``grid_step_deg``. Annual totals convert with a Julian year (365.25 d).

    Raises:
        ProductFormatError: unreadable file, no known variable, wrong units (names the variable),
            non-2-D data. EmptyAOIError: no grid cell touches ``bbox``.
    """
    box = validate_bbox(path, bbox)
    try:
        ds = xr.open_dataset(path, engine="netcdf4", decode_times=False)
    except (OSError, ValueError) as exc:
        raise _fail(path, "<file>", f"a readable EDGAR NetCDF file ({exc})") from exc
    try:
        return _build_edgar(ds, path, box)
    except (KeyError, RuntimeError) as exc:
        raise _fail(path, "<file>", f"readable contents ({exc})") from exc
    finally:
        ds.close()


def _build_edgar(ds: xr.Dataset, path: str | os.PathLike[str], box: BBox | None) -> xr.Dataset:
    name = next((v for v in _EDGAR_VARIABLES if v in ds.data_vars), None)
    if name is None:
        raise _fail(path, "emissions", f"one of the variables {tuple(_EDGAR_VARIABLES)}")
    var = ds[name]
    units = str(var.attrs.get("units", ""))
    accepted = _TONNES_UNITS if _EDGAR_VARIABLES[name] == "t/cell/yr" else _FLUX_UNITS
    if _norm_units(units) not in {_norm_units(u) for u in accepted}:
        raise _fail(path, name, f"units {_EDGAR_VARIABLES[name]!r}, found {units!r}")
    lat_name = _coord_name(ds, ("lat", "latitude"), path)
    lon_name = _coord_name(ds, ("lon", "longitude"), path)
    extra = [d for d in var.dims if d not in (lat_name, lon_name)]
    if any(var.sizes[d] != 1 for d in extra) or set(var.dims) - set(extra) != {lat_name, lon_name}:
        raise _fail(path, name, f"dimensions ({lat_name}, {lon_name}), found {var.dims}")
    var = var.isel({d: 0 for d in extra}).transpose(lat_name, lon_name)
    lat = np.asarray(ds[lat_name].values, dtype=np.float64)
    lon = normalise_lon(np.asarray(ds[lon_name].values, dtype=np.float64))
    dlat = _spacing(lat, path, lat_name)
    dlon = _spacing(lon, path, lon_name)
    lat_order = np.argsort(lat, kind="stable")
    lon_order = np.argsort(lon, kind="stable")
    lat, lon = lat[lat_order], lon[lon_order]
    if box is not None:
        lat_keep = (lat + dlat / 2 >= box[1]) & (lat - dlat / 2 <= box[3])
        lon_keep = overlaps_bbox(lon - dlon / 2, lon + dlon / 2, np.full_like(lon, box[1]),
                                 np.full_like(lon, box[1]), box)
        lat_order, lat = lat_order[lat_keep], lat[lat_keep]
        lon_order, lon = lon_order[lon_keep], lon[lon_keep]
        if lat.size == 0 or lon.size == 0:
            raise EmptyAOIError(path, box, "no EDGAR grid cell touches the bbox")
    values = np.asarray(var.values, dtype=np.float64)[np.ix_(lat_order, lon_order)]
    values = np.where(np.isfinite(values), values, 0.0)
    area = np.broadcast_to(grid_cell_area_m2(lat, dlat, dlon)[:, None], values.shape)
    flux = values * 1000.0 / (area * SECONDS_PER_YEAR) if name == "emissions" else values
    rate = kg_s_to_kg_h(flux * area)
    gas = str(ds.attrs.get("substance", ds.attrs.get("gas", "CH4" if name == "emi_ch4" else ""))).upper()
    if not gas:
        found_gas = re.search(r"(?:^|_)(CH4|CO2)(?:_|\.)", Path(path).name, flags=re.IGNORECASE)
        gas = found_gas.group(1).upper() if found_gas else ""
    year = str(ds.attrs.get("year", ""))
    match = re.search(r"_((?:19|20)\d\d)_", Path(path).name)
    if not year and match:
        year = match.group(1)
    start = f"{int(year):04d}-01-01T00:00:00Z" if year.isdigit() else ""
    end = f"{int(year):04d}-12-31T23:59:59Z" if year.isdigit() else ""
    version = str(ds.attrs.get("product_version") or ds.attrs.get("version") or "")
    if not version:
        found = re.match(r"(v\d+(?:\.\d+)?)", Path(path).name)
        version = f"EDGAR {found.group(1)}" if found else "EDGAR"
    coords = {
        "lat": ("lat", lat, {"units": "degrees_north", "long_name": "grid-cell centre latitude"}),
        "lon": ("lon", lon, {"units": "degrees_east", "long_name": "grid-cell centre longitude"}),
    }
    out = xr.Dataset(
        {
            "flux_kg_m2_s": (("lat", "lon"), flux,
                             {"units": "kg m-2 s-1", "long_name": f"{gas} emission flux".strip()}),
            "emission_kg_h": (("lat", "lon"), rate,
                              {"units": "kg h-1", "long_name": f"{gas} emission rate per grid cell".strip()}),
            "cell_area_m2": (("lat", "lon"), np.array(area),
                             {"units": "m2", "long_name": "grid-cell area on the sphere"}),
        },
        coords=coords,
    )
    out.attrs = {
        **provenance_attrs(path, version, "EDGAR", start, end),
        "gas": gas, "edgar_variable": name, "edgar_units": units,
        "grid_step_deg": f"{dlat:g} x {dlon:g}",
    }
    return out


def edgar_candidates(
    ds: xr.Dataset,
    bbox: Sequence[float] | None = None,
    min_emission_kg_h: float = 0.0,
    top_n: int = 10,
) -> pd.DataFrame:
    """The strongest EDGAR grid cells as attribution candidates.

    Args:
        ds: output of :func:`read_edgar`.
        bbox: (west, south, east, north) degrees; cells whose centre lies inside are considered.
        min_emission_kg_h: keep cells emitting more than this (kg h-1 per cell).
        top_n: keep at most this many, strongest first.

    Returns:
        :data:`FACILITY_COLUMNS` plus ``emission_kg_h``: ``facility_id = "EDGAR:<lat>,<lon>"`` (cell
        centre, 4 decimals), ``sector = "EDGAR grid cell"``, ``prior_weight`` ∝ emission (sums to 1),
        ``location_sd_m`` = the cell's east-west and north-south widths' root-mean-square / sqrt(12) (m),
        the sd of a uniform position within the cell. Empty (with the columns) when no cell qualifies.
    """
    box = validate_bbox("<EDGAR dataset>", bbox)
    rate = ds["emission_kg_h"].to_numpy()
    lat2, lon2 = np.meshgrid(ds["lat"].to_numpy(), ds["lon"].to_numpy(), indexing="ij")
    keep = np.isfinite(rate) & (rate > min_emission_kg_h)
    if box is not None:
        keep &= in_bbox(lon2, lat2, box)
    idx = np.flatnonzero(keep.ravel())
    idx = idx[np.argsort(-rate.ravel()[idx], kind="stable")][: max(int(top_n), 0)]
    lat, lon, q = lat2.ravel()[idx], lon2.ravel()[idx], rate.ravel()[idx]
    steps = [
        _spacing(ds[c].to_numpy(), "<EDGAR dataset>", c) if ds.sizes[c] > 1 else 0.1 for c in ("lat", "lon")
    ]
    ns_m = EARTH_RADIUS_M * np.radians(steps[0])
    ew_m = EARTH_RADIUS_M * np.radians(steps[1]) * np.cos(np.radians(lat))
    sd = np.sqrt(0.5 * (ns_m**2 + ew_m**2) / 12.0)
    source = f"{ds.attrs.get('product_version', 'EDGAR')} ({Path(str(ds.attrs.get('source_file', ''))).name})"
    total = q.sum()
    out = pd.DataFrame({
        "facility_id": [f"EDGAR:{a:.4f},{b:.4f}" for a, b in zip(lat, lon, strict=True)],
        "name": [f"EDGAR cell {a:.2f}N {b:.2f}E" for a, b in zip(lat, lon, strict=True)],
        "latitude": lat,
        "longitude": lon,
        "gas": str(ds.attrs.get("gas", "")) or "CH4",
        "sector": "EDGAR grid cell",
        "capacity_mw": np.nan,
        "source": source,
        "prior_weight": q / total if total > 0 else np.zeros_like(q),
        "location_sd_m": sd,
        "emission_kg_h": q,
    })
    out.attrs = dict(ds.attrs)
    return out
