"""Catalog stages: crawl the archive (global) and find each event's overpasses (per event)."""

from datetime import timedelta

import duckdb
import geopandas as gpd
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from attribution_assets.assets.common import INSTRUMENTS, MET_SOURCES, event_of
from attribution_assets.catalog.crawl import crawl_archive, empty_catalog
from attribution_assets.catalog.query import query_overpasses
from attribution_assets.catalog.store import read_geoparquet, write_geoparquet
from attribution_assets.partitions import detection_events
from attribution_assets.resources import AnalysisSettings, OutputStore, ProductArchive


@asset(
    group_name="catalog",
    description="Index of every product file under the archive root "
    "(instrument, time span, footprint, version, path, checksum); re-crawls only new or changed files.",
)
def overpass_catalog(
    context: AssetExecutionContext, archive: ProductArchive, store: OutputStore
) -> MaterializeResult:
    previous = read_geoparquet(store.catalog_path) if store.catalog_path.exists() else None

    def progress(i: int, path) -> None:
        if i and i % 500 == 0:
            context.log.info(f"crawled {i} files (now {path})")

    result = crawl_archive(archive.path, previous=previous, progress=progress)
    write_geoparquet(result.catalog, store.catalog_path)
    store.rejected_path.parent.mkdir(parents=True, exist_ok=True)
    result.rejected.to_csv(store.rejected_path, index=False)
    for row in result.rejected.itertuples():
        context.log.warning(f"rejected {row.path}: {row.reason}")
    counts = result.catalog["instrument"].value_counts().to_dict() if not result.catalog.empty else {}
    return MaterializeResult(
        metadata={
            "archive": MetadataValue.path(str(archive.path)),
            "catalog": MetadataValue.path(str(store.catalog_path)),
            "rows": len(result.catalog),
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


@asset(
    partitions_def=detection_events,
    deps=[overpass_catalog],
    group_name="catalog",
    description="Catalog query for the event: every granule of every instrument and met source whose "
    "footprint meets the instrument's AOI within the time window.",
)
def event_overpasses(
    context: AssetExecutionContext, store: OutputStore, settings: AnalysisSettings
) -> gpd.GeoDataFrame:
    event = event_of(context)
    if not store.catalog_path.exists():
        raise FileNotFoundError(
            f"{store.catalog_path}: no overpass catalog; materialise overpass_catalog first"
        )
    window = timedelta(hours=settings.time_window_h)
    t0, t1 = event.time - window, event.time + window
    frames = []
    with duckdb.connect() as connection:
        for instrument in (*INSTRUMENTS, *MET_SOURCES):
            half_width = settings.half_width_km(instrument)
            bbox = settings.bbox(event, max(half_width, 0.5))
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
        }
    )
    return result
