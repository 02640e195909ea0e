"""Catalog stages: crawl the archive (global) and find each event's overpasses (per event).

Live access happens in the per-event step: before its catalog query, ``event_overpasses`` asks the
``earthdata`` and ``cds`` resources whether they are on (by default: when their credentials are found).
When Earthdata is on it searches the event's instruments (EMIT, TROPOMI for CH4; OCO-2 for CO2) over each
instrument's AOI and the time window and downloads the product files the catalog does not know yet;
when the CDS is on and no ERA5/WRF file covers the event location over the whole window, it requests
ERA5 single levels for the window. New files land in the archive and are catalogued by an incremental
crawl (:func:`update_catalog`) before the query, under a lock shared with ``overpass_catalog``. Without
credentials nothing is fetched and the metadata says why.

Every catalog update is a locked upsert of one archive's rows (``catalog.store.crawl_into_catalog``):
several processes may crawl at once, and several archives may share one output folder. A crawl first
removes the temporary files and staging folders that killed writers left behind (``atomic.remove_orphans``).
"""

from datetime import datetime, timedelta
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from attribution_assets.access.live import LiveDecision
from attribution_assets.assets.common import INSTRUMENT_GAS, INSTRUMENTS, MET_SOURCES, event_of
from attribution_assets.atomic import remove_orphans
from attribution_assets.catalog.crawl import empty_catalog
from attribution_assets.catalog.query import new_connection, query_overpasses
from attribution_assets.catalog.store import (
    CatalogUpdate,
    catalog_lock,
    crawl_into_catalog,
    read_geoparquet,
    read_known_rows,
)
from attribution_assets.events import DetectionEvent
from attribution_assets.partitions import detection_events
from attribution_assets.resources import (
    AnalysisSettings,
    CdsResource,
    EarthdataResource,
    OutputStore,
    ProductArchive,
)

MET_HALF_WIDTH_KM = 0.5
"""Half-width (km) of the box around the source used to query, and request, met data."""


def update_catalog(context: AssetExecutionContext, archive: Path, store: OutputStore) -> CatalogUpdate:
    """Incremental crawl of ``archive`` upserted into the catalog under the catalog lock (files unchanged
    since the last crawl, superseded ones included, are not reopened; other archives' rows are kept)."""

    def progress(i: int, path: Path) -> None:
        if i and i % 500 == 0:
            context.log.info(f"crawled {i} files (now {path})")

    update = crawl_into_catalog(archive, store.catalog_files, progress=progress)
    for row in update.crawl.rejected.itertuples():
        context.log.warning(f"rejected {row.path}: {row.reason}")
    return update


def clean_orphans(context: AssetExecutionContext, *roots: Path) -> list[str]:
    """Remove what killed writers left under ``roots`` (``atomic.remove_orphans``); log and list it."""
    removed = [str(path) for root in roots for path in remove_orphans(root)]
    for path in removed:
        context.log.warning(f"removed an orphaned temporary file of a killed writer: {path}")
    return removed


@asset(
    group_name="catalog",
    description="Index of every product file under the archive root "
    "(instrument, time span, footprint, version, path, checksum); re-crawls only new or changed files.",
)
def overpass_catalog(
    context: AssetExecutionContext, archive: ProductArchive, store: OutputStore
) -> MaterializeResult:
    orphans = clean_orphans(context, archive.path, store.path)
    update = update_catalog(context, archive.path, store)
    result = update.crawl
    counts = result.catalog["instrument"].value_counts().to_dict() if not result.catalog.empty else {}
    return MaterializeResult(
        metadata={
            "archive": MetadataValue.path(str(archive.path)),
            "catalog": MetadataValue.path(str(store.catalog_path)),
            "rows": len(result.catalog),
            "rows_all_archives": update.rows_total,
            "archives": MetadataValue.json(update.archives),
            "orphans_removed": MetadataValue.json(orphans),
            "files": result.n_files,
            "files_read": result.n_read,
            "files_reused": result.n_reused,
            "files_ignored": result.n_ignored,
            "rejected": MetadataValue.md(
                result.rejected.to_markdown(index=False) if len(result.rejected) else "none"
            ),
            "superseded": len(result.superseded),
            "rows_per_instrument": MetadataValue.json({k: int(v) for k, v in counts.items()}),
        }
    )


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
    context: AssetExecutionContext,
    event: DetectionEvent,
    t0: datetime,
    t1: datetime,
    archive: ProductArchive,
    store: OutputStore,
    settings: AnalysisSettings,
    earthdata: EarthdataResource,
    cds: CdsResource,
) -> dict[str, object]:
    """Fetch what the archive lacks for the event from the live services that are on, and catalogue it.

    Returns the metadata of what happened. A failing service (network, server or account errors after
    the retries) is logged as an error and the event goes on with the local archive.
    """
    decisions: list[LiveDecision] = [earthdata.decision(), cds.decision()]
    for decision in decisions:
        context.log.info(f"live access {decision}")
    report: dict[str, object] = {d.service: ("on" if d.on else "off") + f": {d.reason}" for d in decisions}
    if not any(d.on for d in decisions):
        return report
    downloaded: list[Path] = []
    uncatalogued: list[str] = []
    with catalog_lock(store.catalog_lock_path):
        catalog = read_geoparquet(store.catalog_path)
        names = {Path(path).name for path in read_known_rows(store.catalog_files)["path"]}
        if decisions[0].on:
            aois = [
                (instrument, settings.bbox(event, settings.half_width_km(instrument)))
                for instrument in INSTRUMENTS
                if INSTRUMENT_GAS[instrument] == event.gas
            ]
            try:
                for fetch in earthdata.fetch(aois, t0, t1, archive.path, names, context.log.warning):
                    context.log.info(
                        f"{fetch.search.short_name}: {len(fetch.links)} product files found, "
                        f"{len(fetch.downloaded)} downloaded, {len(fetch.present)} already in the archive"
                    )
                    downloaded.extend(fetch.downloaded)
                    uncatalogued.extend(name for name in fetch.present if name not in names)
            except Exception as error:  # any service failure: the event goes on with the local archive
                context.log.error(f"Earthdata search/download failed; using the local archive: {error}")
                report["NASA Earthdata"] = f"failed: {error}"
        if decisions[1].on:
            if met_covers(catalog, event.longitude, event.latitude, t0, t1):
                context.log.info("met: the archive covers the event window; no ERA5 request")
            else:
                try:
                    bbox = settings.bbox(event, MET_HALF_WIDTH_KM)
                    path, fetched = cds.fetch(bbox, t0, t1, archive.path, context.log.warning)
                    if fetched:
                        downloaded.append(path)
                    else:
                        context.log.info(f"met: {path.name} holds this ERA5 request already")
                        if path.name not in names:
                            uncatalogued.append(path.name)
                except Exception as error:  # any service failure: the event goes on with the local archive
                    context.log.error(f"ERA5 request failed; using the local archive: {error}")
                    report["Copernicus CDS"] = f"failed: {error}"
        if downloaded or uncatalogued:
            result = update_catalog(context, archive.path, store).crawl
            report["catalogued"] = f"{result.n_read} files read, {result.n_reused} reused"
    report["downloaded"] = [str(path) for path in downloaded]
    return report


@asset(
    partitions_def=detection_events,
    deps=[overpass_catalog],
    group_name="catalog",
    description="Catalog query for the event: every granule of every instrument and met source whose "
    "footprint meets the instrument's AOI within the time window; with live access on, missing granules "
    "and ERA5 are downloaded into the archive and catalogued first.",
)
def event_overpasses(
    context: AssetExecutionContext,
    archive: ProductArchive,
    store: OutputStore,
    settings: AnalysisSettings,
    earthdata: EarthdataResource,
    cds: CdsResource,
) -> gpd.GeoDataFrame:
    event = event_of(context)
    if not store.catalog_path.exists():
        raise FileNotFoundError(
            f"{store.catalog_path}: no overpass catalog; materialise overpass_catalog first"
        )
    window = timedelta(hours=settings.time_window_h)
    t0, t1 = event.time - window, event.time + window
    live = fetch_live(context, event, t0, t1, archive, store, settings, earthdata, cds)
    frames = []
    with new_connection() as connection:
        for instrument in (*INSTRUMENTS, *MET_SOURCES):
            half_width = settings.half_width_km(instrument)
            bbox = settings.bbox(event, max(half_width, MET_HALF_WIDTH_KM))
            found = query_overpasses(store.catalog_path, bbox, t0, t1, [instrument], connection=connection)
            if found.empty:
                context.log.info(f"{instrument}: no overpass for {event.key}")
                continue
            frames.append(found.assign(aoi_half_width_km=half_width))
    if not frames:
        result = empty_catalog().assign(aoi_half_width_km=pd.Series(dtype=float))
    else:
        result = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    counts = {i: int((result["instrument"] == i).sum()) for i in (*INSTRUMENTS, *MET_SOURCES)}
    context.add_output_metadata(
        {
            "granules": MetadataValue.json(counts),
            "instruments_with_overpass": ", ".join(i for i in INSTRUMENTS if counts[i]) or "none",
            "window": f"{t0:%Y-%m-%dT%H:%MZ} .. {t1:%Y-%m-%dT%H:%MZ}",
            "live_access": MetadataValue.json(live),
        }
    )
    return result
