"""Catalog stages: crawl the archive (global) and find each event's overpasses (per event).

Thin wrappers over :mod:`attribution_assets.pipeline.overpasses`: live access happens in the per-event
step (:func:`~attribution_assets.pipeline.overpasses.fetch_live`, with the ``earthdata`` and ``cds``
resources), then the catalog query. Every catalog update is a locked upsert of one archive's rows, so
several processes may crawl at once; a crawl first removes what killed writers left behind.
"""

import geopandas as gpd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from attribution_assets.assets.common import CODE_VERSION, ROW_COUNT, event_of, table_metadata
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.overpasses import (
    clean_orphans,
    event_window,
    fetch_live,
    granule_counts,
    rejected_files,
    resolve_overpasses,
    update_catalog,
)
from attribution_assets.pipeline.settings import INSTRUMENTS
from attribution_assets.resources import (
    AnalysisSettings,
    CdsResource,
    EarthdataResource,
    OutputStore,
    ProductArchive,
)


@asset(
    group_name="catalog",
    kinds={"geoparquet", "duckdb"},
    code_version=CODE_VERSION,
    description="Index of every product file under the archive root "
    "(instrument, time span, footprint, version, path, checksum); re-crawls only new or changed files.",
)
def overpass_catalog(
    context: AssetExecutionContext, archive: ProductArchive, store: OutputStore
) -> MaterializeResult:
    orphans = clean_orphans([archive.path, store.path], context.log)
    update = update_catalog(archive.path, store.catalog_files, context.log)
    result = update.crawl
    counts = result.catalog["instrument"].value_counts().to_dict() if not result.catalog.empty else {}
    return MaterializeResult(
        metadata={
            "archive": MetadataValue.path(str(archive.path)),
            "catalog": MetadataValue.path(str(store.catalog_path)),
            "rows": len(result.catalog),
            ROW_COUNT: len(result.catalog),
            "rows_all_archives": update.rows_total,
            "archives": MetadataValue.json(update.archives),
            "orphans_removed": MetadataValue.json(orphans),
            "files": result.n_files,
            "files_read": result.n_read,
            "files_reused": result.n_reused,
            "files_ignored": result.n_ignored,
            "rejected": table_metadata(result.rejected),
            "superseded": len(result.superseded),
            "rows_per_instrument": MetadataValue.json({k: int(v) for k, v in counts.items()}),
        }
    )


@asset(
    partitions_def=detection_events,
    deps=[overpass_catalog],
    group_name="catalog",
    kinds={"geoparquet", "duckdb"},
    code_version=CODE_VERSION,
    description="Catalog query for the event: every granule of every instrument and met source whose "
    "footprint meets the instrument's AOI within the time window, and every file the crawl rejected that "
    "would have (column rejected: the reason); with live access on, missing granules and ERA5 are "
    "downloaded into the archive and catalogued first.",
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
    analysis = settings.event_settings()
    if not store.catalog_path.exists():
        raise FileNotFoundError(
            f"{store.catalog_path}: no overpass catalog; materialise overpass_catalog first"
        )
    live = fetch_live(event, archive.path, store.catalog_files, analysis, earthdata, cds, context.log)
    result = resolve_overpasses(event, store.catalog_path, analysis, context.log, store.rejected_path)
    counts = granule_counts(result)
    rejected = {str(row.path): str(row.rejected) for row in rejected_files(result).itertuples()}
    t0, t1 = event_window(event, analysis)
    context.add_output_metadata(
        {
            "granules": MetadataValue.json(counts),
            "instruments_with_overpass": ", ".join(i for i in INSTRUMENTS if counts[i]) or "none",
            "window": f"{t0:%Y-%m-%dT%H:%MZ} .. {t1:%Y-%m-%dT%H:%MZ}",
            "live_access": MetadataValue.json(live),
            "rejected_files": MetadataValue.json(rejected),
            ROW_COUNT: len(result),
        }
    )
    return result
