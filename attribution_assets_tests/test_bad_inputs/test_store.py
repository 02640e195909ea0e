"""A corrupt file in the output store: reading it back names the file, the asset and the partition and
says how to recover; the other partitions of the same asset still load."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

from attribution_assets.io_manager import EventStoreIOManager, StoredOutputError
from attribution_assets_tests.test_io_manager import KEY, OTHER_KEY, _granule, _load, _store, _table


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero-byte":
        path.write_bytes(b"")
    else:
        path.write_bytes(b"\x00" * len(data))


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "zeroed"])
@pytest.mark.parametrize(
    ("make", "suffix"),
    [(lambda: _granule(1), ".nc"), (lambda: {"granule A": _granule(2)}, ".groups.nc"), (_table, ".parquet")],
    ids=["dataset", "groups", "table"],
)
def test_a_corrupt_intermediate_names_the_file_and_the_partition(tmp_path, make, suffix, how):
    manager = EventStoreIOManager(root=str(tmp_path))
    _store(manager, make(), partition_key=KEY)
    _store(manager, make(), partition_key=OTHER_KEY)
    path = Path(_store(manager, make(), partition_key=KEY)["path"].value)
    assert path.name == KEY + suffix
    _corrupt(path, how)
    with pytest.raises(StoredOutputError) as raised:
        _load(manager, partition_key=KEY)
    message = str(raised.value)
    assert str(path) in message and KEY in message and "emit_aoi" in message and "re-materialise" in message
    other = _load(manager, partition_key=OTHER_KEY)
    if isinstance(other, xr.Dataset):
        xr.testing.assert_identical(other, _granule(1))
    else:
        assert len(other) > 0
