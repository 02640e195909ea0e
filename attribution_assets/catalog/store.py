"""The overpass catalog on disk: GeoParquet 1.1 with a ``bbox`` covering column, written atomically and
updated by locked per-archive upserts.

One output folder may catalogue several archives. Every row names the ``archive`` it was crawled from
(the archive root, resolved). A crawl of an archive replaces only the rows it owns (rows of that archive,
and rows of any file under its root) and keeps every other archive's rows. The read-crawl-write cycle runs
under an exclusive lock on ``CatalogFiles.lock`` (:func:`catalog_lock`), so concurrent crawls from several
processes lose no row. The lock is an OS lock (``flock`` through ``filelock``): a holder killed by SIGKILL
releases it, and nothing stale is left to break.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock
import geopandas as gpd
import pandas as pd

from attribution_assets.atomic import atomic_path
from attribution_assets.catalog.crawl import CrawlResult, combined_rows, crawl_archive, empty_catalog
from attribution_assets.catalog.rejected import EXTENT_COLUMNS

ARCHIVE_COLUMN = "archive"
"""Catalog column naming the archive root (resolved path) a row was crawled from."""

CATALOG_LOCK_TIMEOUT_S = 3600.0
"""Longest wait (s) for the catalog lock before :func:`catalog_lock` gives up with a ``TimeoutError``."""

REJECTED_COLUMNS = ["path", "reason", ARCHIVE_COLUMN, *EXTENT_COLUMNS]
"""Columns of ``rejected_files.csv``: path, reason, archive, then what is still known of the file
(instrument, time_start, time_end, west, south, east, north; empty when unknown)."""


@dataclass(frozen=True)
class CatalogFiles:
    """The files of one output folder's catalog (``OutputStore.catalog_files`` builds it)."""

    catalog: Path
    """GeoParquet rows of every catalogued product file (the newest processing of each granule)."""
    superseded: Path
    """GeoParquet rows of files whose granule exists in a newer processing (kept so re-crawls skip them)."""
    rejected: Path
    """CSV of files that could not be read: ``path, reason, archive`` and what is still known of each
    (:data:`REJECTED_COLUMNS`)."""
    lock: Path
    """Lock file held while any of the above is updated."""


@dataclass
class CatalogUpdate:
    """What one locked crawl did: the crawl of its archive and the size of the whole catalog after it."""

    crawl: CrawlResult
    """This archive's rows only (``catalog``, ``superseded_rows``, ``rejected``) and the crawl counts."""
    archive: str
    """The archive key (resolved root) the rows were stored under."""
    rows_total: int
    """Catalog rows of every archive after the update."""
    archives: list[str]
    """Sorted keys of every archive with catalog rows after the update."""


def write_geoparquet(frame: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as GeoParquet 1.1 (WKB geometry + ``bbox`` struct) via a temporary file + rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_parquet(
            tmp, index=False, write_covering_bbox=True, schema_version="1.1.0", row_group_size=65536
        )
    return path


def read_geoparquet(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Read a GeoParquet file written by :func:`write_geoparquet` (the ``bbox`` column is dropped)."""
    frame = gpd.read_parquet(path)
    return frame.drop(columns=["bbox"], errors="ignore")


@contextlib.contextmanager
def catalog_lock(
    lock_path: str | os.PathLike[str], timeout_s: float = CATALOG_LOCK_TIMEOUT_S
) -> Iterator[None]:
    """Hold the exclusive catalog lock on ``lock_path`` (waiting up to ``timeout_s`` seconds).

    Re-entrant within a thread: a holder may call :func:`crawl_into_catalog`, which takes it again.
    Other threads and processes wait.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_path, is_singleton=True)
    try:
        lock.acquire(timeout=timeout_s)
    except filelock.Timeout as error:
        raise TimeoutError(
            f"{lock_path}: the catalog lock is still held by another crawl after {timeout_s:.0f} s"
        ) from error
    try:
        yield
    finally:
        lock.release()


def archive_key(root: str | os.PathLike[str]) -> str:
    """The value of the ``archive`` column for an archive root: its resolved absolute path."""
    return str(Path(root).resolve())


def _read_rows(path: Path) -> gpd.GeoDataFrame:
    if not path.exists():
        return empty_catalog()
    try:
        return read_geoparquet(path)
    except Exception as error:  # any parquet/arrow decoding failure: name the file and the way out
        raise ValueError(
            f"{path}: the catalog file cannot be read ({type(error).__name__}: {error}); move it aside "
            "and crawl each archive again to rebuild it"
        ) from error


def _read_rejected(path: Path) -> pd.DataFrame:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=REJECTED_COLUMNS)
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(
            f"{path}: the rejected-file list cannot be read ({type(error).__name__}: {error}); move it "
            "aside and crawl each archive again to rebuild it"
        ) from error


def read_rejected_files(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The rejected-file list at ``path`` as text columns :data:`REJECTED_COLUMNS` ("" where a value is
    unknown, or the list was written before the column existed); empty when there is no list. Raises
    ``ValueError`` naming the file when it cannot be read."""
    frame = _read_rejected(Path(path))
    for column in REJECTED_COLUMNS:
        if column not in frame:
            frame[column] = ""
    return frame[REJECTED_COLUMNS]


def _known(catalog: gpd.GeoDataFrame, superseded: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rows = combined_rows([catalog, superseded])
    if rows.empty:
        return rows
    return rows.drop_duplicates(subset=["path", "granule_id"]).reset_index(drop=True)


def read_known_rows(files: CatalogFiles) -> gpd.GeoDataFrame:
    """Every row of every archive's last crawl: the catalog and the superseded files, each (path,
    granule) once (empty before the first crawl)."""
    return _known(_read_rows(files.catalog), _read_rows(files.superseded))


def _owned(frame: pd.DataFrame, root: Path, key: str) -> pd.Series:
    """Rows that a crawl of ``root`` replaces: rows of that archive and rows of files under its root."""
    prefixes = tuple({os.path.join(str(p), "") for p in (root, os.path.abspath(root), key)})
    owned = frame["path"].astype(str).str.startswith(prefixes)
    if ARCHIVE_COLUMN in frame.columns:
        owned |= frame[ARCHIVE_COLUMN].astype(str) == key
    return owned


def _merged(others: gpd.GeoDataFrame, mine: gpd.GeoDataFrame, order: list[str]) -> gpd.GeoDataFrame:
    frame = combined_rows([others, mine])
    if ARCHIVE_COLUMN not in frame.columns:
        frame = frame.assign(**{ARCHIVE_COLUMN: pd.Series(dtype=object)})
    if frame.empty:
        return frame
    return frame.sort_values(order, kind="mergesort").reset_index(drop=True)


def crawl_into_catalog(
    archive: str | os.PathLike[str],
    files: CatalogFiles,
    progress: Callable[[int, Path], None] | None = None,
    timeout_s: float = CATALOG_LOCK_TIMEOUT_S,
) -> CatalogUpdate:
    """Crawl ``archive`` incrementally and upsert its rows into the catalog of ``files``, under the lock.

    Files unchanged since any earlier crawl (same path, size and modification time) are not reopened.
    The rows this archive owns (see the module doc) are replaced by the new crawl's rows, including its
    superseded and rejected files; every other archive's rows are kept. The catalog, then the superseded
    rows, then the rejected list are each written atomically; a crash between two of them is repaired by
    the next crawl, which gives the same files as a crawl without the crash.
    """
    root = Path(archive)
    key = archive_key(root)
    with catalog_lock(files.lock, timeout_s):
        current, superseded = _read_rows(files.catalog), _read_rows(files.superseded)
        rejected = _read_rejected(files.rejected)
        result = crawl_archive(root, previous=_known(current, superseded), progress=progress)
        result.catalog = result.catalog.assign(**{ARCHIVE_COLUMN: key})
        result.superseded_rows = result.superseded_rows.assign(**{ARCHIVE_COLUMN: key})
        result.rejected = result.rejected.assign(**{ARCHIVE_COLUMN: key})
        catalog = _merged(
            current[~_owned(current, root, key)],
            result.catalog,
            ["instrument", "time_start", "granule_id", "path"],
        )
        write_geoparquet(catalog, files.catalog)
        write_geoparquet(
            _merged(
                superseded[~_owned(superseded, root, key)], result.superseded_rows, ["path", "granule_id"]
            ),
            files.superseded,
        )
        kept = rejected[~_owned(rejected, root, key)].reindex(columns=REJECTED_COLUMNS)
        parts = [frame for frame in (kept, result.rejected) if len(frame)]
        rejected = (pd.concat(parts, ignore_index=True) if parts else kept).reindex(columns=REJECTED_COLUMNS)
        with atomic_path(files.rejected) as tmp:
            rejected.sort_values(["path"], kind="mergesort").to_csv(tmp, index=False)
    archives = sorted(set(catalog[ARCHIVE_COLUMN].dropna().astype(str)))
    return CatalogUpdate(crawl=result, archive=key, rows_total=len(catalog), archives=archives)
