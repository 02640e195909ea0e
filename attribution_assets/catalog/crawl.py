"""Crawl a product archive into overpass-catalog rows, incrementally.

Files are recognised by their native names where the product has one (EMIT, TROPOMI, OCO-2, WRF)
and by their content where whoever downloaded them chose the name (GHGSat deliveries, ERA5 from the
CDS). Unchanged files (same path, size and modification time as in the previous crawl) are not
reopened. Every file is checked for the variables its reader requires (names, units, kind of values;
metadata only), so a file the reader would reject is listed as rejected with the reason (naming the
file and the variable) instead of being catalogued; the crawl goes on. Zero-byte files of a product
are rejected too. A rejected file's row also says what is still known of it (instrument, time span,
bounding box), so an event it would have covered names it instead of reporting no overpass. When the
same granule exists in several processings, only the newest *verified*
file is catalogued: a broken newer processing was rejected before the tie-break, so the older good
file stays, with a warning (logged, and appended to the rejected file's reason). Copies of the same
processing are told apart by content: identical copies keep one, differing copies keep the most
recently modified, with a warning; path order never decides. The other files are kept aside as
superseded rows, so a re-crawl does not reopen them either. Every row carries the file's
``readers.checksum.file_checksum`` fingerprint, the same value the readers put in their provenance.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from attribution_assets.catalog.filenames import parse_native_name
from attribution_assets.catalog.footprints import (
    GranuleSegment,
    describe_by_content,
    describe_emit,
    describe_oco2,
    describe_tropomi,
    describe_wrf,
)
from attribution_assets.catalog.rejected import EXTENT_COLUMNS, rejected_extent
from attribution_assets.readers.checksum import file_checksum

logger = logging.getLogger(__name__)
_UNREADABLE = (OSError, ValueError, KeyError, IndexError, RuntimeError, TypeError)
"""What describing a broken file raises (h5py/netCDF4 raise OSError, RuntimeError or KeyError on
truncated or malformed files; the layout checks raise ProductFormatError, a ValueError)."""

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
    "footprint_method",
]
FOOTPRINT_METHOD = 2
"""Version of how :mod:`~attribution_assets.catalog.footprints` draws footprints, kept in every row; a
row drawn by another (or, without the column, by the first: footprints across the antimeridian were
drawn as the band of longitudes between their edges) is described again, though its file is unchanged."""
REJECTED_FILE_COLUMNS = ["path", "reason", *EXTENT_COLUMNS]
"""A rejected file: its path, why it was rejected, and what is still known of it (instrument, time span,
bounding box; :mod:`attribution_assets.catalog.rejected`) so the events it would have served can say so."""
_NATIVE_DESCRIBERS = {
    "EMIT": describe_emit,
    "TROPOMI": describe_tropomi,
    "OCO2": describe_oco2,
    "WRF": describe_wrf,
}


@dataclass
class CrawlResult:
    """The catalog and what the crawl did.

    ``superseded_rows`` are the rows of files whose granule exists in a newer processing: they are not
    in ``catalog`` (never selected for an event) but are kept so the next incremental crawl reuses them
    instead of reopening those files; ``superseded`` lists their paths. ``warnings`` says where a
    duplicate was resolved by content (a broken newer processing, differing copies of one processing).
    """

    catalog: gpd.GeoDataFrame
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECTED_FILE_COLUMNS))
    n_files: int = 0
    n_reused: int = 0
    n_read: int = 0
    n_ignored: int = 0
    superseded_rows: gpd.GeoDataFrame = field(default_factory=lambda: empty_catalog())
    warnings: list[str] = field(default_factory=list)

    @property
    def superseded(self) -> list[str]:
        """Sorted paths of the superseded files."""
        return sorted(set(self.superseded_rows["path"]))

    @property
    def known_rows(self) -> gpd.GeoDataFrame:
        """Every row of this crawl (catalog and superseded): the ``previous`` of the next crawl."""
        return combined_rows([self.catalog, self.superseded_rows])


def combined_rows(frames: Sequence[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    """Catalog-shaped frames stacked into one (the empty catalog when all are empty)."""
    frames = [frame for frame in frames if not frame.empty]
    if len(frames) == 1:
        return frames[0]
    if not frames:
        return empty_catalog()
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")


def describe_file(path: Path) -> list[GranuleSegment] | None:
    """Catalog segments of one file, or ``None`` when the file is not a product the system reads."""
    native = parse_native_name(path.name)
    if native is not None:
        return _NATIVE_DESCRIBERS[native.instrument](path, native)
    return describe_by_content(path)


def _walk(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and not name.endswith((".part", ".tmp")):
                yield Path(directory) / name


def _rows(path: Path, segments: list[GranuleSegment], size: int, mtime_ns: int) -> list[dict]:
    stamp = file_checksum(path)
    url = path.resolve().as_uri()
    return [
        {
            "granule_id": s.granule_id,
            "instrument": s.instrument,
            "product": s.product,
            "version": s.version,
            "processing": s.processing,
            "time_start": s.time_start,
            "time_end": s.time_end,
            "path": str(path),
            "url": url,
            "size_bytes": size,
            "mtime_ns": mtime_ns,
            "fingerprint": stamp,
            "n_obs": s.n_obs,
            "footprint_method": FOOTPRINT_METHOD,
            "geometry": s.geometry,
        }
        for s in segments
    ]


def _granule_base(granule_ids: pd.Series) -> pd.Series:
    """The granule of each row without its along-track segment suffix (``#nnn``)."""
    return granule_ids.str.split("#").str[0]


def _keep_newest(catalog: gpd.GeoDataFrame, warnings: list[str]) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Split off every file whose granule also exists in a newer processing: (kept, superseded rows).

    Every file here passed its layout check. Among files of the same processing the content decides:
    identical fingerprints are one file delivered twice (one is kept); different fingerprints keep the
    most recently modified file and add a warning to ``warnings``.
    """
    if catalog.empty:
        return catalog, empty_catalog()
    per_file = catalog.assign(base=_granule_base(catalog["granule_id"])).drop_duplicates(["base", "path"])
    ordered = per_file.sort_values(["base", "processing", "mtime_ns", "fingerprint", "path"])
    newest = ordered.groupby("base").tail(1)
    # only granules with several files of one processing can disagree: group those once (linear in rows)
    shared = per_file[per_file.duplicated(["base", "processing"], keep=False)]
    groups = shared.groupby(["base", "processing"]).groups if len(shared) else {}
    for row in newest[newest["base"].isin(set(shared["base"]))].itertuples():
        index = groups.get((row.base, row.processing))
        if index is None:
            continue
        rivals = shared.loc[index]
        differing = rivals[rivals["fingerprint"] != row.fingerprint]
        if len(differing):
            warnings.append(
                f"granule {row.base}: {len(rivals)} files of processing {row.processing!r} differ in "
                f"content; kept the most recently modified {row.path}, superseded "
                f"{sorted(differing['path'])}"
            )
    old = catalog["path"].isin(set(per_file["path"]) - set(newest["path"]))
    return catalog[~old].reset_index(drop=True), catalog[old].reset_index(drop=True)


def _broken_duplicates(rejected: list[dict], catalog: gpd.GeoDataFrame, warnings: list[str]) -> None:
    """Say, in ``warnings`` and in the rejected row's reason, when a rejected file is another processing
    (or copy) of a granule that is catalogued from a good file."""
    if not rejected or catalog.empty:
        return
    kept = catalog.assign(base=_granule_base(catalog["granule_id"])).drop_duplicates("base")
    kept = kept.set_index("base")
    for row in rejected:
        native = parse_native_name(Path(row["path"]).name)
        if native is None or native.granule not in kept.index:
            continue
        good = kept.loc[native.granule]
        kept_processing = str(good["processing"])
        if native.processing == kept_processing:
            age = "a copy of the"
        else:
            age = "a newer" if native.processing > kept_processing else "an older"
        note = (
            f"granule {native.granule}: {age} processing {native.processing!r} in {row['path']} is broken "
            f"and rejected; the verified processing {good['processing']!r} in {good['path']} is "
            "catalogued instead"
        )
        row["reason"] = f"{row['reason']} [{note}]"
        warnings.append(note)


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

    ``previous`` holds the rows of the last crawl, superseded files included
    (:attr:`CrawlResult.known_rows`); a file with the same path, size (bytes) and modification time (ns)
    whose rows were drawn by this :data:`FOOTPRINT_METHOD` is not reopened. ``progress(i, path)`` is
    called for every file visited (for logging on long crawls).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"archive root {root} does not exist or is not a directory")
    known: dict[str, np.ndarray] = {}
    if previous is not None and not previous.empty:
        previous = previous.reset_index(drop=True)
        known = previous.groupby("path", sort=False).indices
        sizes = previous["size_bytes"].to_numpy(np.int64)
        mtimes = previous["mtime_ns"].to_numpy(np.int64)
        methods = pd.to_numeric(previous.get("footprint_method", pd.Series(0, index=previous.index)),
                                errors="coerce").fillna(0).to_numpy(np.int64)
    rows: list[dict] = []
    reused: list[np.ndarray] = []
    rejected: list[dict] = []
    result = CrawlResult(catalog=empty_catalog())
    for i, path in enumerate(_walk(root)):
        result.n_files += 1
        if progress is not None:
            progress(i, path)
        stat = path.stat()
        old = known.get(str(path))
        if (old is not None and sizes[old[0]] == stat.st_size and mtimes[old[0]] == stat.st_mtime_ns
                and methods[old[0]] == FOOTPRINT_METHOD):
            reused.append(old)
            result.n_reused += 1
            continue
        try:
            segments = describe_file(path)
        except _UNREADABLE as error:
            reason = f"{type(error).__name__}: {error}"
            rejected.append({"path": str(path), "reason": reason, **rejected_extent(path).as_row()})
            continue
        if segments is None:
            result.n_ignored += 1
            continue
        result.n_read += 1
        rows.extend(_rows(path, segments, stat.st_size, stat.st_mtime_ns))
    frames = [pd.DataFrame(rows)] if rows else []
    if reused:
        frames.insert(0, previous.iloc[np.sort(np.concatenate(reused))])
    if frames:
        catalog = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
        for column in ("time_start", "time_end"):
            catalog[column] = pd.to_datetime(catalog[column], utc=True)
        catalog, superseded = _keep_newest(catalog, result.warnings)
        order = ["instrument", "time_start", "granule_id"]
        result.catalog = catalog.sort_values(order).reset_index(drop=True)
        result.superseded_rows = superseded.sort_values(["path", "granule_id"]).reset_index(drop=True)
    _broken_duplicates(rejected, result.catalog, result.warnings)
    for warning in result.warnings:
        logger.warning(warning)
    result.rejected = pd.DataFrame(rejected, columns=REJECTED_FILE_COLUMNS)
    return result
