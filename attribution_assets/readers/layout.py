"""The variables a product reader cannot do without, checked cheaply on an open file.

Each reader declares its required variables as :class:`Required` entries (the path inside the file,
the accepted ``units`` spellings and the kind of values). :func:`check_required` checks them on an
open ``h5py`` or ``netCDF4`` handle from metadata alone (names, ``units`` attributes, dtypes; no data
is read), so the catalog crawl can reject a file the reader would reject, with the same error.
:func:`check_complete` catches truncated NetCDF-3 files, which the NetCDF library opens and reads
without complaint (the missing bytes come back as fill values); the HDF5 library refuses truncated
HDF5/netCDF-4 files by itself.
"""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import h5py
import netCDF4
import numpy as np

from attribution_assets.readers.errors import ProductFormatError
from attribution_assets.readers.values import attribute_text

NETCDF3_SIGNATURE = b"CDF"
NETCDF4_DIMENSION_ONLY = b"This is a netCDF dimension but not a netCDF variable"
"""Start of the ``NAME`` attribute netCDF-4 gives the HDF5 dataset of a dimension without a coordinate
variable (seen through ``h5py``, that dataset holds no values: it is not a variable of the file)."""
NUMERIC = "numeric"
TEXT = "text"
_KINDS = {NUMERIC: "fiu", TEXT: "SUaO"}
_KIND_TEXT = {NUMERIC: "numeric (integer or floating point) values", TEXT: "character data"}


@dataclass(frozen=True)
class Required:
    """One variable a reader needs: ``name`` is its path in the file (``group/variable``), ``units``
    the accepted spellings of its ``units`` attribute (``None``: not checked) and ``kind`` the kind of
    its values (:data:`NUMERIC` or :data:`TEXT`)."""

    name: str
    units: tuple[str, ...] | None = None
    kind: str = NUMERIC


def dimension_only(dataset: h5py.Dataset) -> bool:
    """True when an ``h5py`` dataset is netCDF-4's stand-in for a dimension that has no coordinate
    variable (its ``NAME`` attribute says so): the dimension exists, the variable does not."""
    name = dataset.attrs.get("NAME")
    if isinstance(name, np.ndarray) and name.size == 1:
        name = name.reshape(-1)[0]
    if isinstance(name, str):
        name = name.encode()
    return isinstance(name, bytes) and name.startswith(NETCDF4_DIMENSION_ONLY)


def find_variable(handle: h5py.Group | netCDF4.Dataset, name: str) -> Any | None:
    """The variable at ``name`` (``group/.../variable``) of an open file, or ``None`` when absent (a
    netCDF-4 dimension without a coordinate variable is absent as a variable)."""
    if isinstance(handle, h5py.Group):
        found = handle.get(name)
        return found if isinstance(found, h5py.Dataset) and not dimension_only(found) else None
    *groups, leaf = name.strip("/").split("/")
    for group in groups:
        if group not in handle.groups:
            return None
        handle = handle.groups[group]
    return handle.variables.get(leaf)


def variable_units(var: Any) -> str | None:
    """The ``units`` attribute of an ``h5py`` dataset or a ``netCDF4`` variable, ``None`` if absent."""
    if isinstance(var, h5py.Dataset):
        return attribute_text(var.attrs["units"]) if "units" in var.attrs else None
    return str(var.getncattr("units")) if "units" in var.ncattrs() else None


def _dtype_kind(var: Any) -> str:
    return "U" if var.dtype is str else np.dtype(var.dtype).kind


def check_required(
    handle: h5py.Group | netCDF4.Dataset, path: str | os.PathLike[str], required: Iterable[Required]
) -> None:
    """Raise :class:`ProductFormatError` naming the file and the first required variable that is
    missing, has the wrong units or the wrong kind of values."""
    for item in required:
        var = find_variable(handle, item.name)
        if var is None:
            raise ProductFormatError(path, item.name, "variable present")
        if item.units is not None:
            units = variable_units(var)
            if units not in item.units:
                raise ProductFormatError(path, item.name, f"units in {item.units}, found {units!r}")
        kind = _dtype_kind(var)
        if kind not in _KINDS[item.kind]:
            raise ProductFormatError(path, item.name, f"{_KIND_TEXT[item.kind]}, found dtype {var.dtype}")


def check_complete(path: str | os.PathLike[str]) -> None:
    """Raise :class:`ProductFormatError` when ``path`` is a NetCDF-3 file shorter than its header says
    (an interrupted download or copy). Only the header is parsed and the data mapped, never read."""
    with open(path, "rb") as handle:
        if handle.read(3) != NETCDF3_SIGNATURE:
            return
    from scipy.io import netcdf_file  # SciPy's NetCDF-3 reader, for the few NetCDF-3 files only

    failure = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when mapped variables outlive close()
        try:
            netcdf_file(path, "r", mmap=True).close()
        except (TypeError, ValueError, OSError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if failure is not None:
            gc.collect()  # the half-built reader sits in a reference cycle: finalise it here, quietly
    if failure is not None:
        raise ProductFormatError(
            path, "<file>", f"a complete NetCDF-3 file; it is shorter than its header says ({failure})"
        )
