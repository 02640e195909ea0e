"""IO manager for per-partition intermediates: NetCDF for xarray, GeoParquet for tables.

Layout: ``<root>/<asset>/<partition>.<kind>.<ext>``. Supported values:

- ``xarray.Dataset`` -> ``.nc``;
- ``dict[str, xarray.Dataset]`` (one dataset per granule; empty when an instrument has no overpass)
  -> ``.groups.nc``, one NetCDF group per entry;
- ``geopandas.GeoDataFrame`` -> ``.parquet`` (GeoParquet 1.1);
- ``arviz.InferenceData`` -> ``.idata.nc``.

Every file is written to a temporary name and renamed, so a failed step leaves nothing half-written.
A stored file that cannot be read back (truncated, corrupted, not of its kind) raises
:class:`StoredOutputError` naming the file, the asset and the partition, and saying how to recover.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import geopandas as gpd
import netCDF4
import xarray as xr
from dagster import ConfigurableIOManager, InputContext, OutputContext

from attribution_assets.atomic import atomic_path
from attribution_assets.catalog.store import read_geoparquet, write_geoparquet

_SUFFIXES = {"dataset": ".nc", "groups": ".groups.nc", "table": ".parquet", "idata": ".idata.nc"}
_UNREADABLE = (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError)


class StoredOutputError(RuntimeError):
    """A stored intermediate exists but cannot be read back (truncated or corrupted file)."""

    def __init__(
        self, path: Path | str, asset: str, partition: str | None, cause: BaseException | str
    ) -> None:
        self.path = str(path)
        self.asset = asset
        self.partition = partition
        self.cause = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        where = f" partition {partition}" if partition else ""
        super().__init__(
            f"{self.path}: stored output of asset {asset}{where} is unreadable ({self.cause}); "
            f"delete the file and re-materialise {asset}{where}"
        )

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None, str]]:
        return (type(self), (self.path, self.asset, self.partition, self.cause))


class OutputWriteError(RuntimeError):
    """An output could not be written (disk full, read-only or missing folder, permission): names the
    file, the asset and partition, and the free space left where it was written."""

    def __init__(self, path: Path | str, asset: str, partition: str | None, cause: str) -> None:
        self.path, self.asset, self.partition, self.cause = str(path), asset, partition, cause
        where = f" partition {partition}" if partition else ""
        super().__init__(f"{self.path}: cannot write the output of asset {asset}{where} ({cause}); "
                         "nothing was written there")

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None, str]]:
        return (type(self), (self.path, self.asset, self.partition, self.cause))


def _write_failure(path: Path, error: BaseException) -> str:
    """What went wrong writing ``path``, with the free space of its file system (a full disk surfaces
    from the HDF5 library as ``NetCDF: HDF error``, without a word about space)."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 1e6:,.1f} MB free on its file system"
    except OSError:
        free = "free space unknown"
    return f"{type(error).__name__}: {error}; {free}"


def _safe_group(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def write_groups(datasets: dict[str, xr.Dataset], path: Path) -> None:
    """Write each dataset into its own NetCDF group; the original names go in a root attribute."""
    names = {_safe_group(name): name for name in datasets}
    if len(names) != len(datasets):
        raise ValueError(f"{path}: group names collide after sanitising: {sorted(datasets)}")
    with netCDF4.Dataset(path, "w") as nc:
        nc.setncattr("group_names", json.dumps(names))
    for safe, name in names.items():
        datasets[name].to_netcdf(path, mode="a", group=safe, engine="netcdf4")


def read_groups(path: Path) -> dict[str, xr.Dataset]:
    """Inverse of :func:`write_groups` (datasets are loaded into memory)."""
    with netCDF4.Dataset(path) as nc:
        names = json.loads(nc.getncattr("group_names"))
    result = {}
    for safe, name in names.items():
        with xr.open_dataset(path, group=safe, engine="netcdf4") as ds:
            result[name] = ds.load()
    return result


def is_inference_data(value: object) -> bool:
    """Whether ``value`` is an ArviZ ``InferenceData``. ArviZ (about 1 s to import) is not imported
    here: a process holding an ``InferenceData`` has imported it already."""
    arviz = sys.modules.get("arviz")
    return arviz is not None and isinstance(value, arviz.InferenceData)


def _read(kind: str, path: Path) -> object:
    """The stored object of ``kind`` (a key of ``_SUFFIXES``) at ``path``, loaded into memory."""
    if kind == "table":
        return read_geoparquet(path)
    if kind == "dataset":
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.load()
    if kind == "idata":
        from attribution_assets.science.arviz_import import az

        return az.from_netcdf(str(path))
    return read_groups(path)


class EventStoreIOManager(ConfigurableIOManager):
    """Stores asset outputs per partition under ``root`` (see module docstring)."""

    root: str

    def _base(self, asset_path: list[str], partition: str | None) -> Path:
        return Path(self.root).joinpath(*asset_path) / (partition or "all")

    def handle_output(self, context: OutputContext, obj: object) -> None:
        if obj is None:
            return
        base = self._base(
            context.asset_key.path, context.partition_key if context.has_partition_key else None
        )
        if isinstance(obj, gpd.GeoDataFrame):
            kind, write = "table", lambda p: write_geoparquet(obj, p)
        elif isinstance(obj, xr.Dataset):
            kind, write = "dataset", lambda p: obj.to_netcdf(p, engine="netcdf4")
        elif is_inference_data(obj):
            kind, write = "idata", lambda p: obj.to_netcdf(str(p))
        elif isinstance(obj, dict) and all(isinstance(v, xr.Dataset) for v in obj.values()):
            kind, write = "groups", lambda p: write_groups(obj, p)
        else:
            raise TypeError(f"{context.asset_key.to_user_string()}: cannot store {type(obj).__name__}")
        path = base.with_name(base.name + _SUFFIXES[kind])
        try:
            with atomic_path(path) as tmp:
                write(tmp)
        except (OSError, RuntimeError) as error:  # the file system's (the HDF5 library's RuntimeError);
            # the temporary file is gone, an earlier output is untouched; a value that cannot be
            # stored (TypeError, ValueError) is the asset's own error and passes as it is
            partition = context.partition_key if context.has_partition_key else None
            raise OutputWriteError(path, context.asset_key.to_user_string(), partition,
                                   _write_failure(path, error)) from error
        for other in _SUFFIXES.values():
            stale = base.with_name(base.name + other)
            if other != _SUFFIXES[kind] and stale.exists():
                stale.unlink()  # an output of another kind, replaced only once the new one is in place
        context.add_output_metadata({"path": str(path), "bytes": path.stat().st_size})

    def load_input(self, context: InputContext) -> object:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        base = self._base(context.asset_key.path, partition)
        for kind, suffix in _SUFFIXES.items():
            path = base.with_name(base.name + suffix)
            if path.exists():
                if kind == "idata":  # an import that fails is not a damaged file: outside the try
                    from attribution_assets.science.arviz_import import az  # noqa: F401
                try:
                    return _read(kind, path)
                except _UNREADABLE as error:
                    asset = context.asset_key.to_user_string()
                    raise StoredOutputError(path, asset, partition, error) from error
        raise FileNotFoundError(f"no stored output for {context.asset_key.to_user_string()} at {base}.*")
