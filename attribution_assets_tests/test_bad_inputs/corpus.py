"""The bad-input corpus: real product files (the bundled sample archive and the project's writers),
broken the way they break in operations: truncated, zero bytes, a variable or group gone, wrong units,
wrong dtype, all-fill/all-NaN/all-cloud AOIs, NaN or zero wind.

Every builder copies a good file to ``dst`` (never touching the bundled archive) and breaks the copy
with the file formats' own libraries (``netCDF4``, ``h5py``), so the result is a file a real reader
meets: a valid container whose content is wrong.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import netCDF4
import numpy as np

from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.era5 import read_era5
from attribution_assets.readers.ghgsat import read_ghgsat_l2
from attribution_assets.readers.oco2 import read_oco2_lite
from attribution_assets.readers.tropomi import read_tropomi_ch4
from attribution_assets.readers.wrf import read_wrf
from attribution_assets.samples.formats.wrf import wrf_filename, write_wrf
from attribution_assets_tests.test_readers.test_wrf import T0
from attribution_assets_tests.test_readers.test_wrf import carrier as wrf_carrier


@dataclass(frozen=True)
class Product:
    """One product of the corpus: where a good sample comes from, its reader and its variables."""

    name: str
    sample: str
    reader: object
    variable: str
    """A required variable (path in the file) the cases remove, mis-label or re-type."""
    group: str | None
    """A required group the missing-group case renames (None: the product has no groups)."""
    wrong_units: str


PRODUCTS = {
    "EMIT": Product("EMIT", "emit/EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc", read_emit_l1b,
                    "radiance", "location", "W m-2 sr-1 um-1"),
    "TROPOMI": Product(
        "TROPOMI",
        "tropomi/S5P_OFFL_L2__CH4____20250814T193300_20250814T211354_40858_03_020600_20250815T211354.nc",
        read_tropomi_ch4, "PRODUCT/methane_mixing_ratio_bias_corrected",
        "PRODUCT/SUPPORT_DATA/INPUT_DATA", "mol m-2"),
    "GHGSAT": Product("GHGSAT", "ghgsat/GHGSat_L2_GHGSat-C5_20250814T164500Z_permian.h5", read_ghgsat_l2,
                      "data/xch4", "geolocation", "ppm"),
    "OCO2": Product("OCO2", "oco2/oco2_LtCO2_250610_B11210Ar_250710000000s.nc4", read_oco2_lite,
                    "xco2", "Meteorology", "ppb"),
    "ERA5": Product("ERA5", "era5/era5_single_levels_permian-ch4_20250814.nc", read_era5, "u10", None,
                    "km h-1"),
    "WRF": Product("WRF", "", read_wrf, "U10", None, "knots"),
}


def good_copy(product: Product, folder: Path) -> Path:
    """A good file of ``product`` in ``folder`` under its native (or usual) name."""
    folder.mkdir(parents=True, exist_ok=True)
    if product.name == "WRF":
        path = folder / wrf_filename(1, T0)
        write_wrf(wrf_carrier(), path)
        return path
    source = SAMPLE_ARCHIVE / product.sample
    return Path(shutil.copy(source, folder / source.name))


def truncate(path: Path, fraction: float = 0.5) -> Path:
    """Cut ``path`` to ``fraction`` of its size (an interrupted download)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def empty(path: Path) -> Path:
    """Make ``path`` zero bytes long (a download that never started writing)."""
    path.write_bytes(b"")
    return path


def _is_hdf5(path: Path) -> bool:
    return h5py.is_hdf5(path)


def _split(name: str) -> tuple[str, str]:
    parent, _, leaf = name.rpartition("/")
    return parent, leaf


def _nc_group(nc: netCDF4.Dataset, parent: str) -> netCDF4.Dataset:
    for part in filter(None, parent.split("/")):
        nc = nc.groups[part]
    return nc


def _rename_out_of_sight(path: Path, name: str, kind: str) -> Path:
    """Rename the ``kind`` ("variable" or "group") at ``name`` to ``<leaf>_removed``."""
    parent, leaf = _split(name)
    if path.suffix == ".h5":
        with h5py.File(path, "r+") as h5:
            h5.move(name, f"{name}_removed")
        return path
    with netCDF4.Dataset(path, "a") as nc:
        group = _nc_group(nc, parent)
        rename = group.renameVariable if kind == "variable" else group.renameGroup
        rename(leaf, f"{leaf}_removed")
    return path


def remove_variable(path: Path, name: str) -> Path:
    """Rename the variable at ``name`` out of the reader's sight (``<leaf>_removed``)."""
    return _rename_out_of_sight(path, name, "variable")


def remove_group(path: Path, name: str) -> Path:
    """Rename the group at ``name`` out of the reader's sight (``<leaf>_removed``)."""
    return _rename_out_of_sight(path, name, "group")


def set_units(path: Path, name: str, units: str) -> Path:
    """Give the variable at ``name`` the ``units`` attribute ``units``."""
    if path.suffix == ".h5":
        with h5py.File(path, "r+") as h5:
            h5[name].attrs["units"] = units
        return path
    parent, leaf = _split(name)
    with netCDF4.Dataset(path, "a") as nc:
        _nc_group(nc, parent).variables[leaf].setncattr("units", units)
    return path


def retype_as_text(path: Path, name: str) -> Path:
    """Replace the variable at ``name`` by a text variable of the same shape and units (a conversion
    that wrote numbers as strings)."""
    parent, leaf = _split(name)
    if path.suffix == ".h5":
        with h5py.File(path, "r+") as h5:
            old = h5[name]
            units, shape = old.attrs.get("units"), old.shape
            del h5[name]
            h5.create_dataset(name, data=np.full(shape, b"1890.5", dtype="S8"))
            if units is not None:
                h5[name].attrs["units"] = units
        return path
    with netCDF4.Dataset(path, "a") as nc:
        group = _nc_group(nc, parent)
        old = group.variables[leaf]
        units, dims = old.getncattr("units"), old.dimensions
        group.renameVariable(leaf, f"{leaf}_numeric")
        if nc.data_model.startswith("NETCDF4") and nc.data_model != "NETCDF4_CLASSIC":
            new = group.createVariable(leaf, str, dims)
        else:
            new = group.createVariable(leaf, "S1", dims)
        new.setncattr("units", units)
    return path


def fill_variable(path: Path, name: str, value: float) -> Path:
    """Set every value of the (float) variable at ``name`` to ``value`` (NaN, fill, 0)."""
    if path.suffix == ".h5":
        with h5py.File(path, "r+") as h5:
            h5[name][...] = value
        return path
    parent, leaf = _split(name)
    with netCDF4.Dataset(path, "a") as nc:
        var = _nc_group(nc, parent).variables[leaf]
        var.set_auto_maskandscale(False)
        var[...] = np.full(var.shape, value, dtype=var.dtype)
    return path


def broken(product: Product, case: str, folder: Path) -> tuple[Path, str]:
    """A file of ``product`` broken as ``case`` and what its error must name besides the file."""
    path = good_copy(product, folder)
    if case == "truncated":
        return truncate(path), "<file>"
    if case == "zero-byte":
        return empty(path), "<file>"
    if case == "missing-variable":
        return remove_variable(path, product.variable), product.variable
    if case == "missing-group":
        return remove_group(path, product.group), product.group.rsplit("/", 1)[-1]
    if case == "wrong-units":
        return set_units(path, product.variable, product.wrong_units), product.variable
    if case == "wrong-dtype":
        return retype_as_text(path, product.variable), product.variable
    raise ValueError(f"unknown corpus case {case!r}")


CASES = ("truncated", "zero-byte", "missing-variable", "missing-group", "wrong-units", "wrong-dtype")


def corpus_cases() -> list[tuple[str, str]]:
    """(product, case) pairs that apply (products without groups have no missing-group case)."""
    return [
        (name, case)
        for name, product in PRODUCTS.items()
        for case in CASES
        if not (case == "missing-group" and product.group is None)
    ]
