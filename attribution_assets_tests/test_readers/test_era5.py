"""ERA5 (CDS): writer fidelity for the current, legacy and zip layouts, round trip, AOI and bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import shapely
import xarray as xr

from attribution_assets.catalog.footprints import describe_by_content
from attribution_assets.readers.era5 import read_era5
from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError
from attribution_assets.samples.formats.era5 import write_era5, write_era5_zip

LAT = np.arange(5) * 0.25 + 51.0
LON = np.arange(6) * 0.25 - 0.5  # straddles the prime meridian: tests the [0, 360) case
TIMES = np.datetime64("2024-06-01T10:00", "ns") + np.arange(4) * np.timedelta64(1, "h")
UNITS = {"u10": "m s-1", "v10": "m s-1", "u100": "m s-1", "v100": "m s-1", "blh": "m", "sp": "Pa",
         "t2m": "K", "tcc": "1", "fsr": "m", "sshf": "J m-2"}


def make_carrier() -> xr.Dataset:
    rng = np.random.default_rng(5)
    shape = (TIMES.size, LAT.size, LON.size)
    ranges = {"u10": (-8, 8), "v10": (-8, 8), "u100": (-12, 12), "v100": (-12, 12), "blh": (200, 1800),
              "sp": (98000, 102000), "t2m": (280, 300), "tcc": (0, 1), "fsr": (0.01, 1.0),
              "sshf": (-4e6, 2e6)}
    dims = ("time", "latitude", "longitude")
    data = {name: (dims, rng.uniform(*ranges[name], shape), {"units": UNITS[name]}) for name in UNITS}
    data["t2m"][1][2, 1, 3] = np.nan
    return xr.Dataset(data, coords={"time": TIMES, "latitude": LAT, "longitude": LON})


def _tolerance(name: str, packed: bool) -> float:
    field = make_carrier()[name]
    return float(field.max() - field.min()) / 65532 if packed else 1e-6 * float(abs(field).max())


def _recognised_as_era5(path: Path) -> bool:
    """Whether the catalog crawl recognises ``path`` as an ERA5 download from its metadata (a file it
    cannot open is rejected by the crawl: not recognised)."""
    try:
        return describe_by_content(path) is not None
    except OSError:
        return False


def test_cds2024_layout(tmp_path: Path) -> None:
    path = tmp_path / "era5.nc"
    write_era5(make_carrier(), path)
    with netCDF4.Dataset(path) as nc:
        assert nc.data_model == "NETCDF4"
        sizes = {d: len(v) for d, v in nc.dimensions.items()}
        assert sizes == {"valid_time": 4, "latitude": 5, "longitude": 6}
        vt = nc["valid_time"]
        assert vt.dtype == np.int64 and vt.units == "seconds since 1970-01-01"
        assert vt[0] == TIMES[0].astype("datetime64[s]").astype(np.int64)
        assert np.all(np.diff(nc["latitude"][:]) < 0) and nc["latitude"].dtype == np.float64
        assert nc["expver"].dtype is str and nc["expver"][0] == "0001"
        assert nc["u10"].dtype == np.float32 and nc["u10"].units == "m s**-1"
        assert nc["u10"].dimensions == ("valid_time", "latitude", "longitude")
        assert nc["sshf"].units == "J m**-2"


def test_legacy_layout_with_expver(tmp_path: Path) -> None:
    path = tmp_path / "legacy.nc"
    write_era5(make_carrier(), path, layout="cds-legacy", expver_split=2, lon360=True)
    with netCDF4.Dataset(path) as nc:
        assert nc.data_model == "NETCDF3_64BIT_OFFSET"
        assert nc["time"].units.startswith("hours since 1900-01-01") and nc["time"].dtype == np.int32
        assert nc["u10"].dimensions == ("time", "expver", "latitude", "longitude")
        assert nc["u10"].dtype == np.int16 and nc["u10"]._FillValue == -32767
        assert {"scale_factor", "add_offset", "missing_value"} <= set(nc["u10"].ncattrs())
        np.testing.assert_array_equal(nc["expver"][:], [1, 5])
        assert nc["longitude"][:].min() >= 0 and np.all(np.diff(nc["latitude"][:]) < 0)
        u10 = nc["u10"][:]
        assert u10.mask[2:, 0].all() and u10.mask[:2, 1].all()


@pytest.mark.parametrize(
    ("layout", "kwargs", "packed"),
    [("cds-2024", {}, False), ("cds-legacy", {}, True),
     ("cds-legacy", {"expver_split": 2, "lon360": True}, True), ("cds-legacy", {"pack": False}, False)],
)
def test_round_trip(tmp_path: Path, layout: str, kwargs: dict, packed: bool) -> None:
    path = tmp_path / "era5.nc"
    carrier = make_carrier()
    write_era5(carrier, path, layout=layout, **kwargs)
    ds = read_era5(path)
    assert all(ds[name].dims == ("time", "latitude", "longitude") for name in ds.data_vars)
    np.testing.assert_array_equal(ds["time"].values, TIMES)
    np.testing.assert_allclose(ds["latitude"].values, LAT)
    np.testing.assert_allclose(ds["longitude"].values, LON)
    for name, units in UNITS.items():
        np.testing.assert_allclose(ds[name].values, carrier[name].values, atol=_tolerance(name, packed),
                                   rtol=0, err_msg=name)
        assert ds[name].attrs["units"] == units
    assert np.isnan(ds["t2m"].values[2, 1, 3])
    assert ds.attrs["instrument"] == "ERA5" and ds.attrs["time_coverage_end"] == "2024-06-01T13:00:00Z"
    assert _recognised_as_era5(path)


def test_zip_of_instant_and_accum(tmp_path: Path) -> None:
    path = tmp_path / "era5_download"
    carrier = make_carrier()
    write_era5_zip(carrier, path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["data_stream-oper_stepType-accum.nc",
                                         "data_stream-oper_stepType-instant.nc"]
        with zf.open("data_stream-oper_stepType-accum.nc") as member:
            accum = xr.open_dataset(member, engine="h5netcdf")
            assert set(accum.data_vars) == {"sshf"}
            accum.close()
    ds = read_era5(path)
    assert set(ds.data_vars) == set(UNITS)
    np.testing.assert_allclose(ds["sshf"].values, carrier["sshf"].values, rtol=1e-6)
    np.testing.assert_allclose(ds["u10"].values, carrier["u10"].values, rtol=1e-6)
    named = path.rename(tmp_path / "era5_download.zip")  # the crawl sniffs files with an ERA5 suffix
    assert _recognised_as_era5(named)


def _rezip(path: Path, members: dict[str, Path]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, member in members.items():
            zf.write(member, arcname=name)
    return path


@pytest.mark.parametrize("accum_first", [False, True])
def test_zip_member_with_only_fields_the_reader_does_not_use(tmp_path: Path, accum_first: bool) -> None:
    """A request that added total precipitation (an accumulated field) gets a member holding ``tp``
    alone: the reader and the crawl both skip it, in either member order."""
    carrier = make_carrier()[["u10", "v10", "t2m"]]
    instant, accum = tmp_path / "instant.nc", tmp_path / "accum.nc"
    write_era5(carrier, instant)
    write_era5(carrier[["u10"]].rename(u10="tp").assign(tp=lambda d: abs(d["tp"]) * 1e-4), accum)
    members = {"data_stream-oper_stepType-instant.nc": instant, "data_stream-oper_stepType-accum.nc": accum}
    if accum_first:
        members = dict(reversed(members.items()))
    path = _rezip(tmp_path / "era5_download.zip", members)
    assert set(read_era5(path).data_vars) == {"u10", "v10", "t2m"}
    segments = describe_by_content(path)
    assert segments is not None and len(segments) == 1


def test_zip_member_off_the_era5_grid_is_refused_by_reader_and_crawl(tmp_path: Path) -> None:
    instant, stray = tmp_path / "instant.nc", tmp_path / "stray.nc"
    write_era5(make_carrier()[["u10", "v10"]], instant)
    xr.Dataset({"tp": (("x",), np.zeros(3))}).to_netcdf(stray)
    path = _rezip(tmp_path / "era5_download.zip", {"data_stream-oper_stepType-instant.nc": instant,
                                                    "notes.nc": stray})
    with pytest.raises(ProductFormatError, match="era5_download.zip"):
        read_era5(path)
    with pytest.raises(ProductFormatError, match=r"era5_download\.zip.*'notes\.nc'"):
        describe_by_content(path)
    accum = tmp_path / "accum.nc"
    write_era5(make_carrier()[["sshf"]], accum)
    only_accum = _rezip(tmp_path / "era5_accum.zip", {"data_stream-oper_stepType-accum.nc": accum})
    for read in (read_era5, describe_by_content):  # a download that forgot the wind is named, not ignored
        with pytest.raises(ProductFormatError, match=r"era5_accum\.zip.*'u10'"):
            read(only_accum)
    precipitation = tmp_path / "tp.nc"
    write_era5(make_carrier()[["u10"]].rename(u10="tp"), precipitation)
    other = _rezip(tmp_path / "other_product.zip", {"data.nc": precipitation})
    assert describe_by_content(other) is None  # no ERA5 field at all: another product, passed over


def test_bbox_edges_on_float32_grid_lines_keep_the_outer_points(tmp_path: Path) -> None:
    """Old-CDS files store latitude and longitude as float32; a box whose edges lie on grid lines
    still gets the grid point beyond each edge, as with float64 coordinates."""
    for layout in ("cds-legacy", "cds-2024"):
        path = tmp_path / f"{layout}.nc"
        write_era5(make_carrier(), path, layout=layout)
        ds = read_era5(path, (-0.25, 51.25, 0.0, 51.5))
        np.testing.assert_allclose(ds["latitude"].values, [51.0, 51.25, 51.5, 51.75])
        np.testing.assert_allclose(ds["longitude"].values, [-0.5, -0.25, 0.0, 0.25])


@pytest.mark.parametrize("layout, lons, covered, outside", [
    ("cds-2024", np.arange(0.0, 360.0, 0.25), [179.9, -179.9, 0.0, -10.0], []),  # global, 0 .. 359.75
    ("cds-legacy", np.arange(179.25, 180.76, 0.25), [179.3, 179.9, 180.0, -179.3], [-10.0, 0.0, 178.9]),
    ("cds-2024", np.arange(-0.5, 0.76, 0.25), [-0.4, 0.7], [179.9, -179.9, 10.0]),
])
def test_catalog_footprint_of_a_grid_knows_the_antimeridian(
    tmp_path: Path, layout: str, lons: np.ndarray, covered: list[float], outside: list[float]
) -> None:
    """A global grid covers every longitude; a download across 180 covers both sides of it and not the
    rest of the globe (its columns, mapped to [-180, 180), leave the gap at the far side)."""
    lat = np.array([-17.25, -17.0, -16.75])
    dims = ("time", "latitude", "longitude")
    shape = (TIMES.size, lat.size, lons.size)
    carrier = xr.Dataset({name: (dims, np.ones(shape), {"units": "m s-1"}) for name in ("u10", "v10")},
                         coords={"time": TIMES, "latitude": lat, "longitude": lons})
    path = tmp_path / "era5_download.nc"
    write_era5(carrier, path, layout=layout, pack=False)
    (segment,) = describe_by_content(path)
    bounds = segment.geometry.bounds
    assert bounds[0] >= -180.0 and bounds[2] <= 180.0
    for lon in covered:
        assert segment.geometry.intersects(shapely.Point(lon, -17.0)), lon
    for lon in outside:
        assert not segment.geometry.intersects(shapely.Point(lon, -17.0)), lon


def test_bbox_returns_bracketing_grid_points(tmp_path: Path) -> None:
    path = tmp_path / "era5.nc"
    write_era5(make_carrier(), path, layout="cds-legacy", lon360=True)
    ds = read_era5(path, (-0.1, 51.3, 0.1, 51.4))  # between grid lines, across 0 degrees
    np.testing.assert_allclose(ds["latitude"].values, [51.25, 51.5])
    np.testing.assert_allclose(ds["longitude"].values, [-0.25, 0.0, 0.25])
    wide = read_era5(path, (-0.5, 51.0, 0.0, 51.5))
    np.testing.assert_allclose(wide["longitude"].values, [-0.5, -0.25, 0.0, 0.25])
    with pytest.raises(EmptyAOIError, match="era5.nc"):
        read_era5(path, (20.0, 10.0, 21.0, 11.0))


def test_bad_files(tmp_path: Path) -> None:
    wrong_units = tmp_path / "wrong_units.nc"
    carrier = make_carrier()
    carrier["u10"].attrs["units"] = "km h-1"
    write_era5(carrier, wrong_units, layout="cds-legacy", pack=False)
    with netCDF4.Dataset(wrong_units, "a") as nc:
        nc["u10"].units = "km h-1"
    with pytest.raises(ProductFormatError, match=r"wrong_units\.nc.*'u10'.*units"):
        read_era5(wrong_units)
    no_lat = tmp_path / "no_lat.nc"
    xr.Dataset({"u10": (("time", "y", "longitude"), np.zeros((1, 2, 2)), {"units": "m s**-1"})},
               coords={"time": TIMES[:1]}).to_netcdf(no_lat)
    with pytest.raises(ProductFormatError, match=r"no_lat\.nc.*'latitude'"):
        read_era5(no_lat)
    assert not _recognised_as_era5(no_lat)
    good = tmp_path / "good.nc"
    write_era5(make_carrier(), good)
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(ProductFormatError, match="truncated.nc"):
        read_era5(truncated)
    assert not _recognised_as_era5(truncated)
    text = tmp_path / "notes.nc"
    text.write_text("not a netcdf file")
    assert not _recognised_as_era5(text)
