"""Benchmark: overpass-catalog queries on 10^6 rows and archive crawl speed.

1. Synthesises a catalog of ``--rows`` overpass rows (small random footprint polygons across the globe
   over 5 years, instruments mixed), writes it with ``catalog.store.write_geoparquet`` sorted by time,
   and times ``catalog.query.query_overpasses`` for ``--queries`` random 1 deg x 1 deg bbox +- 12 h
   queries three ways: a new in-memory DuckDB database per query (``duckdb.connect()``), the default
   path (a new connection per query to the process's database, ``catalog.query.new_connection``) and
   one shared connection.
2. Hard-links the files of ``data/sample_archive`` under distinct native names into a temporary
   archive (``--copies`` rounds of 12 files) and times a full ``crawl_archive`` (files/s) and an
   incremental re-crawl with the rows of the previous crawl (superseded files included).

Usage: ``.venv/bin/python benchmarks/bench_catalog.py [--workdir DIR] [--rows N] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from report import write_results

from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.catalog.query import query_overpasses
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.paths import SAMPLE_ARCHIVE

EPOCH = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_S = 5 * 365 * 86400
# instrument -> (footprint half-size in degrees, granule duration in seconds)
INSTRUMENTS = {
    "EMIT": (0.4, 11),
    "TROPOMI": (1.5, 300),
    "OCO2": (0.5, 120),
    "GHGSAT": (0.06, 10),
    "ERA5": (1.0, 86400),
}


def synth_catalog(n: int, seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` catalog rows: random small box footprints (degrees), times over 5 years, sorted by time."""
    rng = np.random.default_rng(seed)
    names = np.array(list(INSTRUMENTS))
    code = rng.integers(0, names.size, n)
    inst = names[code]
    half = np.array([INSTRUMENTS[i][0] for i in names])[code]
    dur = np.array([INSTRUMENTS[i][1] for i in names])[code]
    lon = rng.uniform(-179.0, 179.0, n)
    lat = np.degrees(np.arcsin(rng.uniform(-0.97, 0.97, n)))
    size = half * rng.uniform(0.5, 1.0, n)
    start_s = np.sort(rng.integers(0, SPAN_S, n))
    t0 = pd.to_datetime(EPOCH) + pd.to_timedelta(start_s, unit="s")
    t1 = t0 + pd.to_timedelta(dur, unit="s")
    geometry = shapely.box(lon - size, lat - size, lon + size, lat + size)
    frame = pd.DataFrame(
        {
            "granule_id": [f"G{k:08d}" for k in range(n)],
            "instrument": inst,
            "product": "synthetic",
            "version": "001",
            "processing": "001",
            "time_start": t0,
            "time_end": t1,
            "path": [f"/archive/{i.lower()}/g{k:08d}.nc" for k, i in enumerate(inst)],
            "url": "",
            "size_bytes": np.int64(1_000_000),
            "mtime_ns": np.int64(0),
            "fingerprint": "",
            "n_obs": np.int64(1000),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")


def bench_query(path: Path, n_queries: int, seed: int = 1) -> dict[str, float]:
    """p50/p95 latency (ms) of random 1 deg bbox +- 12 h queries: ``database`` (a new DuckDB database per
    query, its creation timed), ``fresh`` (no connection passed: a new connection per query) and
    ``shared`` (one connection for all)."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-170.0, 170.0, n_queries)
    lat = rng.uniform(-60.0, 60.0, n_queries)
    when = [EPOCH + timedelta(seconds=int(s)) for s in rng.integers(86400, SPAN_S - 86400, n_queries)]
    out: dict[str, float] = {}
    shared = duckdb.connect()
    connect = {"database": duckdb.connect, "fresh": lambda: None, "shared": lambda: shared}
    for label in ("database", "fresh", "shared"):
        times, hits = [], 0
        for x, y, t in zip(lon, lat, when, strict=True):
            t0 = time.perf_counter()
            connection = connect[label]()
            rows = query_overpasses(
                path,
                (x - 0.5, y - 0.5, x + 0.5, y + 0.5),
                t - timedelta(hours=12),
                t + timedelta(hours=12),
                connection=connection,
            )
            if label == "database":
                connection.close()
            times.append((time.perf_counter() - t0) * 1e3)
            hits += len(rows)
        out[f"query_{label}_p50_ms"] = float(np.percentile(times, 50))
        out[f"query_{label}_p95_ms"] = float(np.percentile(times, 95))
        out[f"query_{label}_mean_rows"] = hits / n_queries
    shared.close()
    return out


def _renamed(name: str, k: int) -> str:
    """A distinct native (or content-recognised) name for copy ``k`` of sample file ``name``."""
    if name.startswith("EMIT_L1B_RAD_"):
        return re.sub(r"_(\d{7})_(\d{3})\.nc$", lambda m: f"_{3000000 + k:07d}_{m[2]}.nc", name)
    if name.startswith("S5P_"):
        parts = name.split("_")
        orbit_index = next(i for i, p in enumerate(parts) if re.fullmatch(r"\d{5}", p))
        parts[orbit_index] = f"{int(parts[orbit_index]) + 7 * (k + 1):05d}"
        return "_".join(parts)
    if name.startswith("oco2_LtCO2_"):

        def shift_day(m: re.Match[str]) -> str:
            day = datetime.strptime(m[1], "%y%m%d") + timedelta(days=k + 1)
            return f"_{day:%y%m%d}_{m[2]}_{m[3]}s.nc4"

        return re.sub(r"_(\d{6})_(B\w+?)_(\d{12})s\.nc4$", shift_day, name)
    stem, suffix = os.path.splitext(name)
    return f"{stem}_copy{k:05d}{suffix}"


def build_archive(root: Path, copies: int) -> int:
    """Hard-link (or copy) every sample file ``copies`` times under distinct names; return the file count."""
    if root.exists():
        shutil.rmtree(root)
    sources = sorted(p for p in SAMPLE_ARCHIVE.rglob("*") if p.is_file() and not p.name.startswith("."))
    count = 0
    for k in range(copies):
        for src in sources:
            dst = root / f"batch{k // 50:03d}" / src.parent.name / _renamed(src.name, k)
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            count += 1
    return count


def bench_crawl(root: Path, copies: int) -> dict[str, float]:
    """Full crawl and incremental re-crawl of a synthetic archive: files, seconds, files/s."""
    n_files = build_archive(root, copies)
    t0 = time.perf_counter()
    full = crawl_archive(root)
    full_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = crawl_archive(root, previous=full.known_rows)
    incr_s = time.perf_counter() - t0
    return {
        "crawl_files": n_files,
        "crawl_read": full.n_read,
        "crawl_rejected": len(full.rejected),
        "crawl_catalog_rows": len(full.catalog),
        "crawl_superseded": len(full.superseded),
        "crawl_full_s": full_s,
        "crawl_full_files_per_s": n_files / full_s,
        "recrawl_reused": again.n_reused,
        "recrawl_read": again.n_read,
        "recrawl_s": incr_s,
        "recrawl_files_per_s": n_files / incr_s,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/attribution_bench"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--copies", type=int, default=170, help="rounds of the 12 sample files")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    res: dict[str, float] = {"rows": args.rows, "queries": args.queries}
    t0 = time.perf_counter()
    catalog = synth_catalog(args.rows)
    res["synth_s"] = time.perf_counter() - t0
    path = args.workdir / "catalog" / "overpass_catalog_1e6.parquet"
    t0 = time.perf_counter()
    write_geoparquet(catalog, path)
    res["write_s"] = time.perf_counter() - t0
    res["catalog_mb"] = path.stat().st_size / 1e6
    del catalog
    res.update(bench_query(path, args.queries))
    res.update(bench_crawl(args.workdir / "crawl_archive", args.copies))
    rows = [
        ("catalog", f"{args.rows:,} rows, {res['catalog_mb']:.0f} MB, written in {res['write_s']:.1f} s"),
        (
            "query p50 / p95 (new database per query)",
            f"{res['query_database_p50_ms']:.1f} / {res['query_database_p95_ms']:.1f} ms",
        ),
        (
            "query p50 / p95 (new connection, default)",
            f"{res['query_fresh_p50_ms']:.1f} / {res['query_fresh_p95_ms']:.1f} ms  (target p50 <= 25 ms)",
        ),
        (
            "query p50 / p95 (shared connection)",
            f"{res['query_shared_p50_ms']:.1f} / {res['query_shared_p95_ms']:.1f} ms",
        ),
        ("rows per query (mean)", f"{res['query_fresh_mean_rows']:.1f}"),
        (
            "crawl (full)",
            f"{res['crawl_files']} files in {res['crawl_full_s']:.1f} s = "
            f"{res['crawl_full_files_per_s']:.0f} files/s  (target >= 200)",
        ),
        (
            "re-crawl (unchanged)",
            f"{res['recrawl_s']:.2f} s = {res['recrawl_files_per_s']:.0f} files/s, "
            f"{res['recrawl_reused']} reused, {res['recrawl_read']} reopened",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    write_results(res, args.out)


if __name__ == "__main__":
    main()
