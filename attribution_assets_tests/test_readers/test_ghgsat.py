"""GHGSat L2 (ghgsat_l2_v1): writer fidelity, reader round trip, AOI crop and bad input."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.readers.ghgsat import read_ghgsat_l2
from attribution_assets.samples.formats.ghgsat import ghgsat_filename, write_ghgsat_l2

NY, NX = 8, 9
LAT0, LON0, STEP = 31.9, -102.1, 0.00025


def make_carrier() -> xr.Dataset:
    rng = np.random.default_rng(3)
    i, j = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")
    xch4 = rng.uniform(1880, 2100, (NY, NX)).astype(np.float32)
    xch4[0, 0] = np.nan
    return xr.Dataset(
        {
            "xch4": (("y", "x"), xch4, {"units": "ppb"}),
            "xch4_precision": (("y", "x"), rng.uniform(10, 30, (NY, NX)).astype(np.float32),
                               {"units": "ppb"}),
            "quality_flag": (("y", "x"), (rng.uniform(size=(NY, NX)) > 0.8).astype(np.uint8)),
        },
        coords={"latitude": (("y", "x"), LAT0 - i * STEP), "longitude": (("y", "x"), LON0 + j * STEP)},
        attrs={"time_coverage_start": "2024-03-02T17:05:11Z", "time_coverage_end": "2024-03-02T17:05:14Z"},
    )


@pytest.fixture()
def ghgsat_file(tmp_path: Path) -> Path:
    path = tmp_path / ghgsat_filename("GHGSat-C2", datetime(2024, 3, 2, 17, 5, 11), "Permian-07")
    write_ghgsat_l2(make_carrier(), path, "GHGSat-C2", "Permian-07")
    return path


def test_filename_follows_delivery_pattern() -> None:
    name = ghgsat_filename("GHGSat-C2", datetime(2024, 3, 2, 17, 5, 11), "Permian-07")
    assert name == "GHGSat_L2_GHGSat-C2_20240302T170511Z_Permian-07.h5"
    with pytest.raises(ValueError):
        ghgsat_filename("GHGSat-C2", datetime(2024, 3, 2), "bad_target")


def test_written_file_matches_schema(ghgsat_file: Path) -> None:
    with h5py.File(ghgsat_file) as h5:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}
        assert attrs["product"] == "GHGSat_L2" and attrs["schema_version"] == "ghgsat_l2_v1"
        assert attrs["satellite"] == "GHGSat-C2" and attrs["crs"] == "EPSG:4326"
        assert attrs["time_coverage_start"] == "2024-03-02T17:05:11Z"
        assert set(h5) == {"geolocation", "data"}
        for name, dtype in (("geolocation/latitude", np.float32), ("geolocation/longitude", np.float32),
                            ("data/xch4", np.float32), ("data/xch4_precision", np.float32),
                            ("data/quality_flag", np.uint8)):
            assert h5[name].dtype == dtype and h5[name].shape == (NY, NX), name
        assert h5["data/xch4"].attrs["units"] == "ppb"
        assert np.isnan(h5["data/xch4"][0, 0])


def test_round_trip(ghgsat_file: Path) -> None:
    carrier = make_carrier()
    ds = read_ghgsat_l2(ghgsat_file)
    for name in ("xch4", "xch4_precision", "quality_flag"):
        np.testing.assert_array_equal(ds[name].values, carrier[name].values, err_msg=name)
    np.testing.assert_allclose(ds["latitude"].values, carrier["latitude"].values, rtol=1e-7)
    assert ds.attrs["instrument"] == "GHGSAT" and ds.attrs["product_version"] == "ghgsat_l2_v1"
    assert ds.attrs["satellite"] == "GHGSat-C2"


def test_bbox_crops_rows_and_columns(ghgsat_file: Path) -> None:
    full = read_ghgsat_l2(ghgsat_file)
    bbox = (LON0 + 2.5 * STEP, LAT0 - 4.5 * STEP, LON0 + 5.5 * STEP, LAT0 - 1.5 * STEP)
    sub = read_ghgsat_l2(ghgsat_file, bbox)
    assert sub.sizes == {"y": 3, "x": 3}
    xr.testing.assert_equal(sub.drop_attrs(), full.isel(y=slice(2, 5), x=slice(3, 6)).drop_attrs())
    with pytest.raises(EmptyAOIError, match=ghgsat_file.name):
        read_ghgsat_l2(ghgsat_file, (0.0, 0.0, 1.0, 1.0))


def test_wrong_schema_and_missing_dataset_are_named(ghgsat_file: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_schema.h5"
    shutil.copy(ghgsat_file, wrong)
    with h5py.File(wrong, "a") as h5:
        h5.attrs["schema_version"] = "ghgsat_l2_v0"
    with pytest.raises(ProductFormatError, match=r"wrong_schema\.h5.*schema_version.*ghgsat_l2_v1"):
        read_ghgsat_l2(wrong)
    missing = tmp_path / "missing.h5"
    shutil.copy(ghgsat_file, missing)
    with h5py.File(missing, "a") as h5:
        del h5["data/xch4_precision"]
    with pytest.raises(ProductFormatError, match=r"missing\.h5.*/data/xch4_precision"):
        read_ghgsat_l2(missing)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(ghgsat_file.read_bytes()[:3000])
    with pytest.raises(ProductFormatError, match="truncated.h5"):
        read_ghgsat_l2(truncated)


def test_the_optional_surface_albedo_is_read_and_checked(tmp_path: Path) -> None:
    """``/data/surface_albedo`` (units "1") travels from the carrier through the file to the reader's
    dataset, cropped with the rest; with other units the reader names the dataset."""
    carrier = make_carrier()
    albedo = np.linspace(0.1, 0.3, NY * NX).reshape(NY, NX).astype(np.float32)
    carrier["surface_albedo"] = (("y", "x"), albedo, {"units": "1"})
    path = tmp_path / ghgsat_filename("GHGSat-C2", datetime(2024, 3, 2, 17, 5, 11), "Permian-07")
    write_ghgsat_l2(carrier, path, "GHGSat-C2", "Permian-07")
    ds = read_ghgsat_l2(path)
    np.testing.assert_array_equal(ds["surface_albedo"].values, albedo)
    assert ds["surface_albedo"].attrs["units"] == "1"
    bbox = (LON0 + 2.5 * STEP, LAT0 - 4.5 * STEP, LON0 + 5.5 * STEP, LAT0 - 1.5 * STEP)
    np.testing.assert_array_equal(read_ghgsat_l2(path, bbox)["surface_albedo"].values, albedo[2:5, 3:6])
    with h5py.File(path, "a") as h5:
        h5["data/surface_albedo"].attrs["units"] = "%"
    with pytest.raises(ProductFormatError, match=r"/data/surface_albedo.*units '1', found '%'"):
        read_ghgsat_l2(path)


def test_a_file_without_surface_albedo_reads_without_it(ghgsat_file: Path) -> None:
    assert "surface_albedo" not in read_ghgsat_l2(ghgsat_file)
