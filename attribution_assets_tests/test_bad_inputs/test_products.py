"""Broken product files of every product: the crawl lists each as rejected (naming the file and the
variable) instead of cataloguing it, and the reader raises a ProductFormatError naming the same.

Cases: truncated, zero bytes, a required variable or group gone, wrong units, numbers stored as text.
The good files beside a broken one are still catalogued.
"""

from __future__ import annotations

import shutil

import pytest

from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.readers.era5 import read_era5
from attribution_assets.readers.errors import ProductFormatError
from attribution_assets.samples.formats.era5 import write_era5
from attribution_assets_tests.test_bad_inputs.corpus import (
    PRODUCTS,
    broken,
    corpus_cases,
    good_copy,
    remove_variable,
    truncate,
)

CASES = corpus_cases()


@pytest.mark.parametrize(("product", "case"), CASES, ids=[f"{p}-{c}" for p, c in CASES])
def test_reader_names_the_file_and_the_variable(tmp_path, product, case):
    path, variable = broken(PRODUCTS[product], case, tmp_path)
    with pytest.raises(ProductFormatError) as raised:
        PRODUCTS[product].reader(path)
    assert raised.value.path == str(path)
    assert variable in raised.value.variable or variable in str(raised.value)


@pytest.mark.parametrize(("product", "case"), CASES, ids=[f"{p}-{c}" for p, c in CASES])
def test_crawl_lists_the_broken_file_as_rejected(tmp_path, product, case):
    path, variable = broken(PRODUCTS[product], case, tmp_path / "archive" / "incoming")
    result = crawl_archive(tmp_path / "archive")
    assert list(result.rejected["path"]) == [str(path)]
    assert result.catalog.empty
    reason = result.rejected["reason"].iloc[0]
    if variable != "<file>":
        assert variable in reason and str(path) in reason


@pytest.mark.parametrize("product", ["GHGSAT", "ERA5"])
def test_zero_byte_content_recognised_files_are_rejected_not_ignored(tmp_path, product):
    path, _ = broken(PRODUCTS[product], "zero-byte", tmp_path / "archive")
    result = crawl_archive(tmp_path / "archive")
    assert result.n_ignored == 0
    assert list(result.rejected["path"]) == [str(path)]
    assert "0 bytes" in result.rejected["reason"].iloc[0]


def test_one_broken_file_leaves_the_rest_of_the_archive_catalogued(tmp_path):
    root = tmp_path / "archive"
    shutil.copytree(SAMPLE_ARCHIVE, root)
    good = crawl_archive(root)
    bad = [broken(PRODUCTS[name], case, root / "incoming" / name)[0]
           for name, case in [("EMIT", "missing-variable"), ("TROPOMI", "wrong-units"),
                              ("GHGSAT", "zero-byte"), ("OCO2", "truncated"), ("ERA5", "wrong-dtype"),
                              ("WRF", "missing-variable")]]
    result = crawl_archive(root)
    assert sorted(result.rejected["path"]) == sorted(str(p) for p in bad)
    kept = result.catalog.drop(columns=["geometry"]).sort_values("path").reset_index(drop=True)
    before = good.catalog.drop(columns=["geometry"]).sort_values("path").reset_index(drop=True)
    assert kept.equals(before)


def test_a_good_wrf_file_is_catalogued(tmp_path):
    """The WRF sample of the corpus is good before it is broken (the cases above test the breakage)."""
    path = good_copy(PRODUCTS["WRF"], tmp_path / "archive")
    result = crawl_archive(tmp_path / "archive")
    assert result.rejected.empty and list(result.catalog["path"]) == [str(path)]


@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_a_truncated_netcdf3_era5_download_is_refused_not_read_as_fill(tmp_path, fraction):
    """The NetCDF library reads a truncated NetCDF-3 file without complaint; the size is checked."""
    path = tmp_path / "archive" / "era5_legacy.nc"
    path.parent.mkdir()
    write_era5(read_era5(SAMPLE_ARCHIVE / PRODUCTS["ERA5"].sample), path, layout="cds-legacy")
    assert path.read_bytes().startswith(b"CDF")
    assert crawl_archive(tmp_path / "archive").rejected.empty
    truncate(path, fraction)
    with pytest.raises(ProductFormatError, match="shorter than its header says") as raised:
        read_era5(path)
    assert raised.value.path == str(path)
    result = crawl_archive(tmp_path / "archive")
    assert list(result.rejected["path"]) == [str(path)] and result.catalog.empty


@pytest.mark.parametrize("coordinate", ["valid_time", "latitude", "longitude"])
def test_an_era5_file_without_a_coordinate_variable_is_refused_as_missing(tmp_path, coordinate):
    """Without its coordinate variable the dimension stays (netCDF-4 keeps a nameless scale for it), and
    its values would read as 0, 1, 2...: the reader and the crawl both say the variable is missing."""
    path = remove_variable(good_copy(PRODUCTS["ERA5"], tmp_path / "archive"), coordinate)
    with pytest.raises(ProductFormatError) as raised:
        read_era5(path)
    assert (raised.value.path, raised.value.variable) == (str(path), coordinate)
    assert raised.value.expected == "variable present"
    result = crawl_archive(tmp_path / "archive")
    assert list(result.rejected["path"]) == [str(path)] and result.catalog.empty
    assert result.rejected["reason"].iloc[0] == f"ProductFormatError: {raised.value}"
