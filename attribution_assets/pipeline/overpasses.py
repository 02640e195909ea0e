"""Catalog stage of one event: fill the archive from the live services that are on, then find every
granule of every instrument and met source over the event's AOIs and time window.

Live access (NASA Earthdata for EMIT, TROPOMI and OCO-2; the Copernicus CDS for ERA5) is asked per
event: each service says whether it is on (by default: when its credentials are found). New files land
in the archive and are catalogued by an incremental crawl under the catalog lock before the query.
Without credentials nothing is fetched and the report says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from attribution_assets.access.live import LiveDecision
from attribution_assets.atomic import remove_orphans
from attribution_assets.catalog.crawl import empty_catalog
from attribution_assets.catalog.filenames import parse_native_name
from attribution_assets.catalog.query import new_connection, query_overpasses
from attribution_assets.catalog.rejected import rejected_overlapping
from attribution_assets.catalog.store import (
    ARCHIVE_COLUMN,
    CatalogFiles,
    CatalogUpdate,
    catalog_lock,
    crawl_into_catalog,
    read_geoparquet,
    read_known_rows,
    read_rejected_files,
)
from attribution_assets.events import DetectionEvent
from attribution_assets.pipeline.settings import (
    INSTRUMENT_GAS,
    INSTRUMENTS,
    MET_HALF_WIDTH_KM,
    MET_SOURCES,
    BBox,
    EventSettings,
)

LOG = logging.getLogger(__name__)
REJECTED_COLUMN = "rejected"
"""Column of :func:`resolve_overpasses` rows: the crawl's reason for a rejected file that would have
served the event; empty for a catalogued granule."""
EXTENT_KNOWN_COLUMN = "rejected_extent_known"
"""Column of :func:`resolve_overpasses` rows: for a rejected file, whether its time span or footprint was
known (else nothing known ruled it out); true for a catalogued granule."""


class GranuleService(Protocol):
    """A live granule service (NASA Earthdata): whether it is on, and the fetch of missing files."""

    def decision(self) -> LiveDecision: ...

    def fetch(
        self, aois: Sequence[tuple[str, BBox]], t0: datetime, t1: datetime, archive_dir: Path,
        known: set[str], log=None,
    ) -> Iterator: ...


class MetService(Protocol):
    """A live met service (the Copernicus CDS): whether it is on, and the fetch of one ERA5 request."""

    def decision(self) -> LiveDecision: ...

    def fetch(
        self, bbox: BBox, t0: datetime, t1: datetime, archive_dir: Path, log=None
    ) -> tuple[Path, bool]: ...


def event_window(event: DetectionEvent, settings: EventSettings) -> tuple[datetime, datetime]:
    """The event's search window, ± ``settings.time_window_h`` around the event time (UTC)."""
    window = timedelta(hours=settings.time_window_h)
    return event.time - window, event.time + window


def update_catalog(archive: Path, files: CatalogFiles, log: logging.Logger = LOG) -> CatalogUpdate:
    """Incremental crawl of ``archive`` upserted into the catalog under the catalog lock (files unchanged
    since the last crawl, superseded ones included, are not reopened; other archives' rows are kept);
    every rejected file is logged with its reason."""

    def progress(i: int, path: Path) -> None:
        if i and i % 500 == 0:
            log.info(f"crawled {i} files (now {path})")

    update = crawl_into_catalog(archive, files, progress=progress)
    for row in update.crawl.rejected.itertuples():
        log.warning(f"rejected {row.path}: {row.reason}")
    return update


def clean_orphans(roots: Iterable[Path], log: logging.Logger = LOG) -> list[str]:
    """Remove what killed writers left under ``roots`` (``atomic.remove_orphans``); log and list it."""
    removed = [str(path) for root in roots for path in remove_orphans(root)]
    for path in removed:
        log.warning(f"removed an orphaned temporary file of a killed writer: {path}")
    return removed


def met_covers(
    catalog: gpd.GeoDataFrame, longitude: float, latitude: float, t0: datetime, t1: datetime
) -> bool:
    """True when the ERA5/WRF rows whose footprint contains (``longitude``, ``latitude``) (degrees) cover
    [``t0``, ``t1``] together, without a gap between consecutive files."""
    met = catalog[catalog["instrument"].isin(MET_SOURCES)]
    met = met[met.geometry.covers(shapely.Point(longitude, latitude))]
    covered_to = pd.Timestamp(t0)
    for start, end in sorted(zip(met["time_start"], met["time_end"], strict=True)):
        if start > covered_to:
            break
        covered_to = max(covered_to, end)
    return covered_to >= pd.Timestamp(t1)


def fetch_live(
    event: DetectionEvent,
    archive: Path,
    files: CatalogFiles,
    settings: EventSettings,
    earthdata: GranuleService,
    cds: MetService,
    log: logging.Logger = LOG,
) -> dict[str, object]:
    """Fetch what the archive lacks for the event from the live services that are on, and catalogue it.

    Returns the report of what happened (service -> on/off and why, downloads). A failing service
    (network, server or account errors after the retries) is logged as an error and the event goes on
    with the local archive.
    """
    t0, t1 = event_window(event, settings)
    decisions: list[LiveDecision] = [earthdata.decision(), cds.decision()]
    for decision in decisions:
        log.info(f"live access {decision}")
    report: dict[str, object] = {d.service: ("on" if d.on else "off") + f": {d.reason}" for d in decisions}
    if not any(d.on for d in decisions):
        return report
    downloaded: list[Path] = []
    uncatalogued: list[str] = []
    with catalog_lock(files.lock):
        catalog = read_geoparquet(files.catalog)
        names = {Path(path).name for path in read_known_rows(files)["path"]}
        if decisions[0].on:
            aois = [
                (instrument, settings.bbox(event, settings.half_width_km(instrument)))
                for instrument in INSTRUMENTS
                if INSTRUMENT_GAS[instrument] == event.gas
            ]
            try:
                for fetch in earthdata.fetch(aois, t0, t1, archive, names, log.warning):
                    log.info(
                        f"{fetch.search.short_name}: {len(fetch.links)} product files found, "
                        f"{len(fetch.downloaded)} downloaded, {len(fetch.present)} already in the archive"
                    )
                    downloaded.extend(fetch.downloaded)
                    uncatalogued.extend(name for name in fetch.present if name not in names)
            except Exception as error:  # any service failure: the event goes on with the local archive
                log.error(f"Earthdata search/download failed; using the local archive: {error}")
                report["NASA Earthdata"] = f"failed: {error}"
        if decisions[1].on:
            if met_covers(catalog, event.longitude, event.latitude, t0, t1):
                log.info("met: the archive covers the event window; no ERA5 request")
            else:
                try:
                    bbox = settings.bbox(event, MET_HALF_WIDTH_KM)
                    path, fetched = cds.fetch(bbox, t0, t1, archive, log.warning)
                    if fetched:
                        downloaded.append(path)
                    else:
                        log.info(f"met: {path.name} holds this ERA5 request already")
                        if path.name not in names:
                            uncatalogued.append(path.name)
                except Exception as error:  # any service failure: the event goes on with the local archive
                    log.error(f"ERA5 request failed; using the local archive: {error}")
                    report["Copernicus CDS"] = f"failed: {error}"
        if downloaded or uncatalogued:
            result = update_catalog(archive, files, log).crawl
            report["catalogued"] = f"{result.n_read} files read, {result.n_reused} reused"
    report["downloaded"] = [str(path) for path in downloaded]
    return report


def _rejected_rows(
    rejected: pd.DataFrame, found: gpd.GeoDataFrame, instrument: str, half_width_km: float
) -> gpd.GeoDataFrame:
    """Overpass rows of the rejected files (:func:`rejected_overlapping` rows) that would have served the
    event, leaving out a file whose granule or file name the event reads from a catalogued file (a
    broken newer processing, a broken copy: the event reads the good one)."""
    read_granules = set(found["granule_id"].astype(str).str.split("#").str[0])
    read_names = {Path(path).name for path in found["path"]}
    keep = []
    for row in rejected.itertuples():
        name = Path(str(row.path)).name
        native = parse_native_name(name)
        keep.append(name not in read_names and (native is None or native.granule not in read_granules))
    rows = (rejected[np.array(keep, dtype=bool)] if keep else rejected.iloc[:0]).reset_index(drop=True)
    boxes = [
        shapely.box(r.west, r.south, r.east, r.north) if np.isfinite([r.west, r.south, r.east, r.north]).all()
        else None
        for r in rows[["west", "south", "east", "north"]].apply(pd.to_numeric, errors="coerce").itertuples()
    ]
    frame = pd.DataFrame(
        {
            "granule_id": [Path(str(path)).name for path in rows["path"]],
            "instrument": instrument,
            "time_start": rows["time_start"],
            "time_end": rows["time_end"],
            "path": rows["path"].astype(str).to_numpy(),
            ARCHIVE_COLUMN: rows[ARCHIVE_COLUMN].astype(str).to_numpy(),
            "aoi_half_width_km": half_width_km,
            REJECTED_COLUMN: rows["reason"].astype(str).to_numpy(),
            EXTENT_KNOWN_COLUMN: rows["extent_known"].astype(bool).to_numpy(),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(boxes, crs="EPSG:4326"), crs="EPSG:4326")


def resolve_overpasses(
    event: DetectionEvent,
    catalog_path: Path,
    settings: EventSettings,
    log: logging.Logger = LOG,
    rejected_path: Path | None = None,
) -> gpd.GeoDataFrame:
    """Every catalogued granule of every instrument and met source whose footprint meets the
    instrument's AOI (at least the met box) within the event's window, with its ``aoi_half_width_km``.

    With ``rejected_path`` (the catalog's ``rejected_files.csv``), the files the crawl rejected that
    would have served the event (instrument, time span and bounding box where known; see
    :mod:`attribution_assets.catalog.rejected`) are rows too, with the crawl's reason in
    :data:`REJECTED_COLUMN` (empty for a catalogued granule) and whether their time span or box was
    known in :data:`EXTENT_KNOWN_COLUMN`; :func:`catalogued` and :func:`rejected_files` split them.
    An instrument with no overpass is a normal outcome: it is logged and has no row.
    """
    if not catalog_path.exists():
        raise FileNotFoundError(f"{catalog_path}: no overpass catalog; crawl the archive first")
    t0, t1 = event_window(event, settings)
    rejected = read_rejected_files(rejected_path) if rejected_path is not None else None
    frames, with_rejected = [], False
    with new_connection() as connection:
        for instrument in (*INSTRUMENTS, *MET_SOURCES):
            half_width = settings.half_width_km(instrument)
            bbox = settings.bbox(event, max(half_width, MET_HALF_WIDTH_KM))
            found = query_overpasses(catalog_path, bbox, t0, t1, [instrument], connection=connection)
            if not found.empty:
                frames.append(found.assign(
                    aoi_half_width_km=half_width, **{REJECTED_COLUMN: "", EXTENT_KNOWN_COLUMN: True}
                ))
            broken = empty_catalog()
            if rejected is not None:
                matches = rejected_overlapping(rejected, instrument, bbox, t0, t1)
                broken = _rejected_rows(matches, found, instrument, half_width)
            for row in broken.itertuples():
                log.warning(f"{instrument}: {row.path} would have served {event.key} but the crawl rejected "
                            f"it: {getattr(row, REJECTED_COLUMN)}")
            if len(broken):
                frames.append(broken)
                with_rejected = True
            elif found.empty:
                log.info(f"{instrument}: no overpass for {event.key}")
    if not frames:
        return empty_catalog().assign(
            aoi_half_width_km=pd.Series(dtype=float),
            **{REJECTED_COLUMN: pd.Series(dtype=object), EXTENT_KNOWN_COLUMN: pd.Series(dtype=bool)},
        )
    result = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    if with_rejected:  # one time type for the catalogued and the rejected rows (NaT where unknown)
        for column in ("time_start", "time_end"):
            result[column] = pd.to_datetime(result[column], utc=True)
    return result


def catalogued(overpasses: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The rows of :func:`resolve_overpasses` that are catalogued granules (not rejected files)."""
    if REJECTED_COLUMN not in overpasses:
        return overpasses
    return overpasses[overpasses[REJECTED_COLUMN].fillna("").astype(str) == ""]


def rejected_files(overpasses: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The rows of :func:`resolve_overpasses` that are files the crawl rejected (reason in
    :data:`REJECTED_COLUMN`)."""
    if REJECTED_COLUMN not in overpasses:
        return overpasses.iloc[:0]
    return overpasses[overpasses[REJECTED_COLUMN].fillna("").astype(str) != ""]


def rejection_text(row: Any) -> str:
    """Why a rejected overpass row's file was left out, for people: the crawl's reason without the
    file's path (the text around it names the file), noting when neither its time span nor its
    footprint could be read (it may not have covered the event at all)."""
    reason = str(getattr(row, REJECTED_COLUMN)).replace(f"{row.path}: ", "")
    if not bool(getattr(row, EXTENT_KNOWN_COLUMN, True)):
        reason += " [its time span and footprint could not be read: it may not cover the event]"
    return reason


def granule_counts(overpasses: gpd.GeoDataFrame) -> dict[str, int]:
    """Catalogued granules per instrument and met source (zeros included; rejected files not counted)."""
    rows = catalogued(overpasses)
    return {name: int((rows["instrument"] == name).sum()) for name in (*INSTRUMENTS, *MET_SOURCES)}
