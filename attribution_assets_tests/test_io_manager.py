"""The per-partition IO manager: NetCDF groups, and every stored type round-tripped through Dagster."""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import geopandas as gpd
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dagster import (
    AssetKey,
    StaticPartitionsDefinition,
    asset,
    build_input_context,
    build_output_context,
    materialize,
)
from geopandas.testing import assert_geodataframe_equal
from shapely.geometry import Point, box

from attribution_assets.io_manager import EventStoreIOManager, read_groups, write_groups

KEY = "CH4_20250814T173100Z_31.9095N_103.6100W"
OTHER_KEY = "CO2_20250610T110500Z_51.2664N_19.3306E"
ASSET = AssetKey(["emit_aoi"])


def _granule(seed: int, n_x: int = 4, n_y: int = 3) -> xr.Dataset:
    """A small granule-like dataset: float32 with NaN, int, a time coordinate, variable and global attrs."""
    rng = np.random.default_rng(seed)
    xch4 = rng.normal(1900.0, 15.0, (n_y, n_x)).astype(np.float32)
    xch4[0, 0] = np.nan
    ds = xr.Dataset(
        {
            "xch4": (("y", "x"), xch4, {"units": "ppb", "long_name": "column-averaged CH4"}),
            "qa_value": (("y", "x"), rng.integers(0, 100, (n_y, n_x)).astype(np.int16)),
            "scan_time": ("y", pd.date_range("2025-08-14T17:31:00", periods=n_y, freq="1s").values),
        },
        coords={
            "lon": ("x", np.linspace(-103.7, -103.5, n_x), {"units": "degrees_east"}),
            "lat": ("y", np.linspace(31.8, 32.0, n_y), {"units": "degrees_north"}),
        },
        attrs={"granule": f"granule-{seed}", "orbit": np.int32(2522612 + seed), "gsd_m": 60.0,
               "bbox": np.array([-103.7, 31.8, -103.5, 32.0])},
    )
    return ds


def _table() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "facility_id": ["pad-7", "plant-1", "unlisted"],
            "probability": [0.8, 0.15, 0.05],
            "distance_m": [120.5, 2450.0, np.nan],
            "detected_at": pd.to_datetime(["2025-08-14T17:31:00Z"] * 3),
        },
        geometry=[Point(-103.61, 31.9095), box(-103.62, 31.90, -103.60, 31.92), Point(0.0, 0.0)],
        crs="EPSG:4326",
    )


def _idata() -> az.InferenceData:
    rng = np.random.default_rng(3)
    idata = az.from_dict(
        posterior={"q_kg_h": rng.lognormal(8.0, 0.3, (2, 40)), "x_m": rng.normal(0.0, 50.0, (2, 40))},
        sample_stats={"diverging": np.zeros((2, 40), dtype=bool)},
        observed_data={"y_ppb": np.arange(6.0)},
    )
    idata.posterior.attrs["summary"] = json.dumps({"q_kg_h": 3000.0})
    return idata


def _assert_groups_identical(actual: dict[str, xr.Dataset], expected: dict[str, xr.Dataset]) -> None:
    assert list(actual) == list(expected)
    for name, ds in expected.items():
        xr.testing.assert_identical(actual[name], ds)


def _assert_idata_identical(actual: az.InferenceData, expected: az.InferenceData) -> None:
    assert actual.groups() == expected.groups()
    for group in expected.groups():
        xr.testing.assert_identical(getattr(actual, group), getattr(expected, group))


def _files(root: Path) -> list[str]:
    """Every file under ``root`` (hidden temporaries included), relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- write_groups / read_groups -------------------------------------------------------------------


def test_groups_round_trip_with_odd_names(tmp_path: Path) -> None:
    datasets = {
        "EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc": _granule(1),
        "S5P_OFFL_L2__CH4____20250814T164529": _granule(2, n_x=6),
        "ghgsat/C12 2025-08-14 (Permian)": _granule(3, n_y=1),
        "ünïcode granule": _granule(4),
    }
    path = tmp_path / "granules.groups.nc"
    write_groups(datasets, path)
    _assert_groups_identical(read_groups(path), datasets)
    with netCDF4.Dataset(path) as nc:
        assert sorted(nc.groups) == sorted(
            [
                "EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc",
                "S5P_OFFL_L2__CH4____20250814T164529",
                "ghgsat_C12_2025-08-14__Permian_",
                "_n_code_granule",
            ]
        )
        assert json.loads(nc.getncattr("group_names"))["ghgsat_C12_2025-08-14__Permian_"] == (
            "ghgsat/C12 2025-08-14 (Permian)"
        )


def test_groups_round_trip_empty(tmp_path: Path) -> None:
    path = tmp_path / "none.groups.nc"
    write_groups({}, path)
    assert read_groups(path) == {}


def test_group_names_that_collide_after_sanitising_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="collide after sanitising"):
        write_groups({"a b": _granule(1), "a/b": _granule(2)}, tmp_path / "x.groups.nc")


# --- EventStoreIOManager through Dagster's contexts ------------------------------------------------


def _store(manager: EventStoreIOManager, obj: object, asset_key: AssetKey = ASSET,
           partition_key: str | None = KEY) -> dict:
    context = build_output_context(asset_key=asset_key, partition_key=partition_key)
    manager.handle_output(context, obj)
    return context.get_logged_metadata()


def _load(manager: EventStoreIOManager, asset_key: AssetKey = ASSET, partition_key: str | None = KEY,
          keys: tuple[str, ...] = (KEY, OTHER_KEY)) -> object:
    if partition_key is None:
        return manager.load_input(build_input_context(asset_key=asset_key))
    context = build_input_context(
        asset_key=asset_key,
        partition_key=partition_key,
        asset_partitions_def=StaticPartitionsDefinition(list(keys)),
    )
    return manager.load_input(context)


@pytest.mark.parametrize(
    ("make", "suffix", "check"),
    [
        (lambda: _granule(7), ".nc", xr.testing.assert_identical),
        (lambda: {"granule A": _granule(8), "granule:B": _granule(9, n_x=2)}, ".groups.nc",
         _assert_groups_identical),
        (dict, ".groups.nc", _assert_groups_identical),
        (_table, ".parquet", assert_geodataframe_equal),
        (_idata, ".idata.nc", _assert_idata_identical),
    ],
    ids=["dataset", "groups", "no-granules", "geodataframe", "inference-data"],
)
def test_every_supported_type_round_trips(tmp_path: Path, make, suffix: str, check) -> None:
    manager = EventStoreIOManager(root=str(tmp_path))
    value = make()
    metadata = _store(manager, value)
    path = tmp_path / "emit_aoi" / f"{KEY}{suffix}"
    assert _files(tmp_path) == [str(path.relative_to(tmp_path))], "one file, no temporaries left"
    assert metadata["path"].value == str(path)
    assert metadata["bytes"].value == path.stat().st_size > 0
    check(_load(manager), value)


def test_layout_follows_asset_path_and_partition(tmp_path: Path) -> None:
    manager = EventStoreIOManager(root=str(tmp_path))
    first, second = _granule(1), _granule(2)
    _store(manager, first)
    _store(manager, second, partition_key=OTHER_KEY)
    _store(manager, _table(), asset_key=AssetKey(["event", "attribution"]))
    _store(manager, _granule(3), partition_key=None)
    assert _files(tmp_path) == sorted([
        "emit_aoi/all.nc",
        f"emit_aoi/{OTHER_KEY}.nc",
        f"emit_aoi/{KEY}.nc",
        f"event/attribution/{KEY}.parquet",
    ])
    xr.testing.assert_identical(_load(manager), first)
    xr.testing.assert_identical(_load(manager, partition_key=OTHER_KEY), second)
    xr.testing.assert_identical(_load(manager, partition_key=None), _granule(3))
    assert_geodataframe_equal(_load(manager, asset_key=AssetKey(["event", "attribution"])), _table())


def test_a_new_kind_replaces_the_stored_one(tmp_path: Path) -> None:
    manager = EventStoreIOManager(root=str(tmp_path))
    _store(manager, _granule(1))
    _store(manager, {"g": _granule(2)})
    assert _files(tmp_path) == [f"emit_aoi/{KEY}.groups.nc"]
    _assert_groups_identical(_load(manager), {"g": _granule(2)})
    _store(manager, _idata())
    assert _files(tmp_path) == [f"emit_aoi/{KEY}.idata.nc"]
    _store(manager, _granule(3))
    assert _files(tmp_path) == [f"emit_aoi/{KEY}.nc"]
    xr.testing.assert_identical(_load(manager), _granule(3))


def test_none_writes_nothing_and_missing_output_is_an_error(tmp_path: Path) -> None:
    manager = EventStoreIOManager(root=str(tmp_path))
    assert _store(manager, None) == {}
    assert _files(tmp_path) == []
    with pytest.raises(FileNotFoundError, match=f"no stored output for emit_aoi at .*{KEY}"):
        _load(manager)


@pytest.mark.parametrize("value", [pd.DataFrame({"a": [1]}), {"g": _granule(1), "n": 3}, [1, 2], "text"])
def test_unsupported_types_are_refused(tmp_path: Path, value: object) -> None:
    manager = EventStoreIOManager(root=str(tmp_path))
    with pytest.raises(TypeError, match=f"emit_aoi: cannot store {type(value).__name__}"):
        _store(manager, value)
    assert _files(tmp_path) == []


def test_a_failed_write_leaves_no_file_and_keeps_the_previous_output(tmp_path: Path) -> None:
    manager = EventStoreIOManager(root=str(tmp_path))
    with pytest.raises(ValueError, match="collide"):
        _store(manager, {"a b": _granule(1), "a_b": _granule(2)})
    assert _files(tmp_path) == []
    # the second group fails after the first was written into the temporary file
    unwritable = _granule(2).assign_attrs(history={"not": "a netCDF attribute"})
    with pytest.raises(TypeError, match="history"):
        _store(manager, {"good": _granule(1), "bad": unwritable})
    assert _files(tmp_path) == []
    _store(manager, _granule(3))
    with pytest.raises(TypeError, match="history"):
        _store(manager, unwritable)
    assert _files(tmp_path) == [f"emit_aoi/{KEY}.nc"]
    xr.testing.assert_identical(_load(manager), _granule(3))


def test_a_failed_write_of_another_kind_keeps_the_previous_output(tmp_path: Path) -> None:
    manager = EventStoreIOManager(root=str(tmp_path))
    _store(manager, _granule(3))
    unwritable = _granule(2).assign_attrs(history={"not": "a netCDF attribute"})
    with pytest.raises(TypeError, match="history"):
        _store(manager, {"bad": unwritable})
    assert _files(tmp_path) == [f"emit_aoi/{KEY}.nc"]
    xr.testing.assert_identical(_load(manager), _granule(3))


# --- two partitioned assets materialised through the IO manager ------------------------------------

EVENTS = StaticPartitionsDefinition([KEY, OTHER_KEY])


@asset(partitions_def=EVENTS)
def granules(context) -> dict[str, xr.Dataset]:
    seed = EVENTS.get_partition_keys().index(context.partition_key)
    return {f"granule {seed}/a": _granule(10 + seed), f"granule {seed}/b": _granule(20 + seed, n_x=2)}


@asset(partitions_def=EVENTS)
def enhancement(granules: dict[str, xr.Dataset]) -> xr.Dataset:
    names = sorted(granules)
    return xr.Dataset(
        {"mean_xch4": ("granule", [float(granules[n]["xch4"].mean()) for n in names])},
        coords={"granule": names},
        attrs={"n_granules": len(names)},
    )


def test_materialised_partitions_are_stored_and_passed_downstream(tmp_path: Path) -> None:
    manager = EventStoreIOManager(root=str(tmp_path))
    for key in (KEY, OTHER_KEY):
        result = materialize([granules, enhancement], partition_key=key, resources={"io_manager": manager})
        assert result.success
    assert _files(tmp_path) == sorted(
        f"{name}/{key}{suffix}"
        for name, suffix in (("granules", ".groups.nc"), ("enhancement", ".nc"))
        for key in (KEY, OTHER_KEY)
    )
    for seed, key in enumerate((KEY, OTHER_KEY)):
        expected = {f"granule {seed}/a": _granule(10 + seed), f"granule {seed}/b": _granule(20 + seed, n_x=2)}
        _assert_groups_identical(_load(manager, AssetKey("granules"), key), expected)
        xr.testing.assert_identical(_load(manager, AssetKey("enhancement"), key), enhancement(expected))


FULL_DISK = """
import resource, signal, sys
import numpy as np, xarray as xr
from dagster import AssetKey, build_output_context
from attribution_assets.io_manager import EventStoreIOManager, OutputWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
big = xr.Dataset({"xch4": (("y", "x"), np.random.default_rng(0).normal(size=(200, 200)))})
context = build_output_context(asset_key=AssetKey(["emit_aoi"]), partition_key=sys.argv[2])
try:
    EventStoreIOManager(root=sys.argv[1]).handle_output(context, big)
except OutputWriteError as error:
    print(error)
"""


def test_an_output_that_cannot_be_written_names_the_file_the_asset_and_the_free_space(tmp_path: Path) -> None:
    """A full disk gave ``RuntimeError: NetCDF: HDF error`` with no file name; here the file size limit
    of a real process (RLIMIT_FSIZE) makes the HDF5 library fail the same way."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path), KEY], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "emit_aoi" / f"{KEY}.nc"
    assert result.stdout.startswith(f"{path}: cannot write the output of asset emit_aoi partition {KEY} ("), \
        result.stdout
    assert "MB free on its file system); nothing was written there" in result.stdout
    assert not path.exists() and list((tmp_path / "emit_aoi").iterdir()) == [], "no partial file left"
