"""Reader errors, checksums and bbox helpers."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attribution_assets.readers.errors import (
    HEADTAIL_BYTES,
    EmptyAOIError,
    ProductFormatError,
    file_checksum,
    in_bbox,
    iso_utc,
    overlaps_bbox,
    parse_time,
    validate_bbox,
)


def test_format_error_names_file_variable_and_expectation() -> None:
    err = ProductFormatError("/data/x.nc", "PRODUCT/qa_value", "variable present")
    assert isinstance(err, ValueError)
    assert str(err) == "/data/x.nc: variable 'PRODUCT/qa_value': expected variable present"
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.variable, again.expected) == (err.path, err.variable, err.expected)


def test_empty_aoi_is_not_a_format_error() -> None:
    err = EmptyAOIError("/data/x.nc", (1, 2, 3, 4), "no pixel")
    assert not isinstance(err, ProductFormatError)
    assert "/data/x.nc" in str(err) and "(1.0, 2.0, 3.0, 4.0)" in str(err) and "no pixel" in str(err)
    assert pickle.loads(pickle.dumps(err)).bbox == (1.0, 2.0, 3.0, 4.0)


def test_checksum_is_the_named_head_tail_sha256(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(payload)
    head, tail = payload[:HEADTAIL_BYTES], payload[-HEADTAIL_BYTES:]
    expected = hashlib.sha256(f"{len(payload)}\n".encode() + head + tail).hexdigest()
    assert file_checksum(path) == f"sha256-headtail-v1:{len(payload)}:{expected}"
    os.utime(path, ns=(0, 10**18))
    assert file_checksum(path) == f"sha256-headtail-v1:{len(payload)}:{expected}"
    changed_head = b"x" + payload[1:]
    path.write_bytes(changed_head)
    assert file_checksum(path) != f"sha256-headtail-v1:{len(payload)}:{expected}"
    path.write_bytes(payload + b"x")
    assert file_checksum(path).startswith(f"sha256-headtail-v1:{len(payload) + 1}:")


def test_checksum_of_a_small_file_covers_every_byte(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    payload = os.urandom(2 * HEADTAIL_BYTES - 5)
    path.write_bytes(payload)
    expected = hashlib.sha256(f"{len(payload)}\n".encode() + payload).hexdigest()
    assert file_checksum(path) == f"sha256-headtail-v1:{len(payload)}:{expected}"
    with pytest.raises(FileNotFoundError, match="absent.nc"):
        file_checksum(tmp_path / "absent.nc")


def test_bbox_helpers_handle_the_antimeridian() -> None:
    lon = np.array([179.5, -179.5, 0.0, 539.5, np.nan])
    lat = np.zeros(5)
    across = in_bbox(lon, lat, (179.0, -1.0, -179.0, 1.0))
    np.testing.assert_array_equal(across, [True, True, False, True, False])
    around_zero = in_bbox(lon, lat, (-10.0, -1.0, 10.0, 1.0))
    np.testing.assert_array_equal(around_zero, [False, False, True, False, False])
    # a pixel spanning the box without any corner inside it
    assert overlaps_bbox(
        np.array([-1.0]), np.array([1.0]), np.array([-1.0]), np.array([1.0]), (-0.1, -0.1, 0.1, 0.1)
    )[0]
    with pytest.raises(ValueError, match="south <= north"):
        validate_bbox("f.nc", (0, 10, 1, 5))


def test_time_helpers() -> None:
    assert iso_utc(parse_time("2024-10-06T16:52:00+0000")) == "2024-10-06T16:52:00Z"
    assert iso_utc(np.datetime64("2024-10-06T16:52:00.700")) == "2024-10-06T16:52:00Z"
    assert iso_utc("2024-10-06T18:52:00+02:00") == "2024-10-06T16:52:00Z"


def test_readers_and_writers_do_not_import_dagster() -> None:
    code = (
        "import sys\n"
        "import attribution_assets.readers.emit, attribution_assets.readers.tropomi\n"
        "import attribution_assets.readers.ghgsat, attribution_assets.readers.oco2\n"
        "import attribution_assets.readers.era5, attribution_assets.samples.formats.era5\n"
        "import attribution_assets.samples.formats.emit, attribution_assets.samples.formats.tropomi\n"
        "import attribution_assets.samples.formats.ghgsat, attribution_assets.samples.formats.oco2\n"
        "loaded = [m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert result.returncode == 0, result.stderr
