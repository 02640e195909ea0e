"""Crawl a product archive into overpass-catalog rows, incrementally.

Files are recognised by their native names where the product has one (EMIT, TROPOMI, OCO-2, WRF)
and by their content where whoever downloaded them chose the name (GHGSat deliveries, ERA5 from the
CDS). Unchanged files (same path, size and modification time as in the previous catalog) are not
reopened. When the same granule exists in several processings, only the newest is kept. Files that
cannot be read are listed with the reason; the crawl goes on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from attribution_assets.catalog.filenames import parse_native_name
from attribution_assets.catalog.footprints import (
    GranuleSegment,
    describe_emit,
    describe_era5,
    describe_ghgsat,
    describe_oco2,
    describe_tropomi,
    describe_wrf,
    is_ghgsat,
)
from attribution_assets.readers.era5 import looks_like_era5

CATALOG_COLUMNS = [
    "granule_id",
    "instrument",
    "product",
    "version",
    "processing",
    "time_start",
    "time_end",
    "path",
    "url",
    "size_bytes",
    "mtime_ns",
    "fingerprint",
    "n_obs",
]
_NATIVE_DESCRIBERS = {
    "EMIT": describe_emit,
    "TROPOMI": describe_tropomi,
    "OCO2": describe_oco2,
    "WRF": describe_wrf,
}
_FINGERPRINT_BYTES = 65536


@dataclass
class CrawlResult:
    """The catalog and what the crawl did."""

    catalog: gpd.GeoDataFrame
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "reason"]))
    n_files: int = 0
    n_reused: int = 0
    n_read: int = 0
    n_ignored: int = 0
    superseded: list[str] = field(default_factory=list)


def fingerprint(path: Path, size: int, mtime_ns: int) -> str:
    """Cheap content fingerprint: sha256 of size, mtime and the first and last 64 KiB."""
    digest = hashlib.sha256(f"{size}:{mtime_ns}".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            handle.seek(max(size - _FINGERPRINT_BYTES, _FINGERPRINT_BYTES))
            digest.update(handle.read(_FINGERPRINT_BYTES))
    return f"sha256-head-tail:{digest.hexdigest()[:32]}"


def describe_file(path: Path) -> list[GranuleSegment] | None:
    """Catalog segments of one file, or ``None`` when the file is not a product the system reads."""
    native = parse_native_name(path.name)
    if native is not None:
        return _NATIVE_DESCRIBERS[native.instrument](path, native)
    suffix = path.suffix.lower()
    if suffix in {".h5", ".he5", ".hdf5"} and is_ghgsat(path):
        return describe_ghgsat(path)
    if suffix in {".nc", ".nc4", ".zip"} and looks_like_era5(path):
        return describe_era5(path)
    return None


def _walk(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and not name.endswith((".part", ".tmp")):
                yield Path(directory) / name


def _rows(path: Path, segments: list[GranuleSegment], size: int, mtime_ns: int) -> list[dict]:
    stamp = fingerprint(path, size, mtime_ns)
    return [
        {
            "granule_id": s.granule_id,
            "instrument": s.instrument,
            "product": s.product,
            "version": s.version,
            "processing": s.processing,
            "time_start": pd.Timestamp(s.time_start),
            "time_end": pd.Timestamp(s.time_end),
            "path": str(path),
            "url": path.resolve().as_uri(),
            "size_bytes": size,
            "mtime_ns": mtime_ns,
            "fingerprint": stamp,
            "n_obs": s.n_obs,
            "geometry": s.geometry,
        }
        for s in segments
    ]


def _keep_newest(catalog: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Drop every file whose granule also exists in a newer processing (native-named products)."""
    if catalog.empty:
        return catalog, []
    base = catalog["granule_id"].str.split("#").str[0]
    per_file = catalog.assign(base=base).drop_duplicates(["base", "path"])
    newest = per_file.sort_values(["base", "processing", "path"]).groupby("base").tail(1)
    superseded = sorted(set(per_file["path"]) - set(newest["path"]))
    return catalog[~catalog["path"].isin(superseded)].reset_index(drop=True), superseded


def empty_catalog() -> gpd.GeoDataFrame:
    """A catalog with the right columns and no rows."""
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in CATALOG_COLUMNS})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs="EPSG:4326"), crs="EPSG:4326")


def crawl_archive(
    root: str | os.PathLike[str],
    previous: gpd.GeoDataFrame | None = None,
    progress: Callable[[int, Path], None] | None = None,
) -> CrawlResult:
    """Catalog every product file under ``root``; reuse rows of unchanged files from ``previous``.

    ``progress(i, path)`` is called for every file visited (for logging on long crawls).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"archive root {root} does not exist or is not a directory")
    known: dict[str, pd.DataFrame] = {}
    if previous is not None and not previous.empty:
        known = {path: rows for path, rows in previous.groupby("path")}
    rows: list[dict] = []
    reused: list[pd.DataFrame] = []
    rejected: list[dict] = []
    result = CrawlResult(catalog=empty_catalog())
    for i, path in enumerate(_walk(root)):
        result.n_files += 1
        if progress is not None:
            progress(i, path)
        stat = path.stat()
        old = known.get(str(path))
        if (
            old is not None
            and int(old["size_bytes"].iloc[0]) == stat.st_size
            and int(old["mtime_ns"].iloc[0]) == stat.st_mtime_ns
        ):
            reused.append(old)
            result.n_reused += 1
            continue
        try:
            segments = describe_file(path)
        except (OSError, ValueError, KeyError, IndexError) as error:
            rejected.append({"path": str(path), "reason": f"{type(error).__name__}: {error}"})
            continue
        if segments is None:
            result.n_ignored += 1
            continue
        result.n_read += 1
        rows.extend(_rows(path, segments, stat.st_size, stat.st_mtime_ns))
    frames = [f for f in [*reused, pd.DataFrame(rows)] if not f.empty]
    if frames:
        catalog = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
        for column in ("time_start", "time_end"):
            catalog[column] = pd.to_datetime(catalog[column], utc=True)
        catalog, result.superseded = _keep_newest(catalog)
        result.catalog = catalog.sort_values(["instrument", "time_start", "granule_id"]).reset_index(
            drop=True
        )
    result.rejected = pd.DataFrame(rejected, columns=["path", "reason"])
    return result
