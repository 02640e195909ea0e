"""Duplicate product versions: the tie-break is by verified content, with a loud warning, never by
path order. A broken newer processing (or redelivered copy) is rejected and the good file stays."""

from __future__ import annotations

import logging
import os
import shutil

import netCDF4

from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.catalog.filenames import parse_native_name
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets_tests.test_bad_inputs.corpus import PRODUCTS, remove_variable

EMIT = SAMPLE_ARCHIVE / PRODUCTS["EMIT"].sample
TROPOMI = SAMPLE_ARCHIVE / PRODUCTS["TROPOMI"].sample


def test_a_redelivered_copy_without_radiance_loses_although_its_path_sorts_later(tmp_path, caplog):
    good = tmp_path / "archive" / "a_first_delivery" / EMIT.name
    bad = tmp_path / "archive" / "z_redelivery" / EMIT.name
    for path in (good, bad):
        path.parent.mkdir(parents=True)
        shutil.copy(EMIT, path)
    remove_variable(bad, "radiance")
    with caplog.at_level(logging.WARNING, logger="attribution_assets.catalog.crawl"):
        result = crawl_archive(tmp_path / "archive")
    assert list(result.catalog["path"]) == [str(good)]
    assert result.superseded == []
    assert list(result.rejected["path"]) == [str(bad)]
    reason = result.rejected["reason"].iloc[0]
    assert "'radiance'" in reason and str(good) in reason and "catalogued instead" in reason
    assert any(str(bad) in message and str(good) in message for message in caplog.messages)
    assert result.warnings


def test_a_broken_newer_processing_is_rejected_and_the_older_good_one_stays(tmp_path, caplog):
    root = tmp_path / "archive"
    root.mkdir()
    older = shutil.copy(TROPOMI, root / TROPOMI.name)
    newer = root / TROPOMI.name.replace("_020600_", "_020700_")
    shutil.copy(TROPOMI, newer)
    remove_variable(newer, "PRODUCT/SUPPORT_DATA/INPUT_DATA/dry_air_subcolumns")
    with caplog.at_level(logging.WARNING, logger="attribution_assets.catalog.crawl"):
        result = crawl_archive(root)
    granule = parse_native_name(TROPOMI.name).granule
    assert set(result.catalog["path"]) == {str(older)}
    assert result.superseded == []
    assert list(result.rejected["path"]) == [str(newer)]
    assert "dry_air_subcolumns" in result.rejected["reason"].iloc[0]
    assert any("a newer processing" in message and granule in message for message in caplog.messages)


def test_differing_copies_of_one_processing_keep_the_newest_file_not_the_last_path(tmp_path):
    late = tmp_path / "archive" / "a" / EMIT.name
    early = tmp_path / "archive" / "z" / EMIT.name
    for path in (late, early):
        path.parent.mkdir(parents=True)
        shutil.copy(EMIT, path)
    with netCDF4.Dataset(early, "a") as nc:
        nc.setncattr("history", "an earlier delivery with other content")
    stamp = early.stat().st_mtime_ns
    os.utime(early, ns=(stamp, stamp))
    os.utime(late, ns=(stamp + 10**9, stamp + 10**9))
    result = crawl_archive(tmp_path / "archive")
    assert list(result.catalog["path"]) == [str(late)]
    assert result.superseded == [str(early)]
    assert len(result.warnings) == 1 and "differ in content" in result.warnings[0]


def test_identical_copies_keep_one_without_a_content_warning(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / "archive" / folder).mkdir(parents=True)
        shutil.copy2(EMIT, tmp_path / "archive" / folder / EMIT.name)
    result = crawl_archive(tmp_path / "archive")
    assert len(result.catalog) == 1 and len(result.superseded) == 1
    assert result.warnings == []
