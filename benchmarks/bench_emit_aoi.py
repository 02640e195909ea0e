"""Benchmark: EMIT L1B AOI read from a full-size scene.

Writes (once, cached under ``--workdir``) a full-size EMIT L1B RAD V001 file — 1280 downtrack x 1242
crosstrack x 285 bands float32 radiance, uncompressed (~1.8 GB) — in the layout of
``attribution_assets.samples.formats.emit`` (same global attributes, groups, GLT convention), streamed
slab by slab so the cube is never held in memory. Then times ``read_emit_l1b(path, bbox)`` for a square
AOI (default 5 km side, all bands) and measures the peak RSS of a fresh subprocess doing one AOI read.
The reader's provenance ``file_checksum`` (``sha256-headtail-v1``: size and the first and last 64 KiB) is
also timed on its own; every read includes it.

Usage: ``.venv/bin/python benchmarks/bench_emit_aoi.py [--workdir DIR] [--repeats 10] [--out FILE]``
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np
from report import write_results

from attribution_assets.samples.formats.emit import (
    FILL,
    TITLE,
    WKT_EPSG_4326,
    emit_l1b_filename,
)
from attribution_assets.science.units import METRES_PER_DEG_LAT

N_DOWN, N_CROSS, N_BANDS = 1280, 1242, 285
PIXEL_DEG = 0.000542
"""Ortho grid spacing of EMIT V001 files, degrees (~60 m)."""
SCENE_PIXEL_M = 60.0
ROTATION_DEG = 12.0
"""Swath heading relative to north, so the GLT is a real rotated lookup with no-data corners."""
CENTRE_LON, CENTRE_LAT = -103.61, 31.9095
START = datetime(2025, 8, 14, 17, 31, 0, tzinfo=UTC)
SLAB_ROWS = 64
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def _scene_lonlat(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre longitude/latitude (degrees) of scene pixels (downtrack ``rows``, crosstrack ``cols``)."""
    theta = math.radians(ROTATION_DEG)
    down_m = (rows - (N_DOWN - 1) / 2.0) * SCENE_PIXEL_M
    cross_m = (cols - (N_CROSS - 1) / 2.0) * SCENE_PIXEL_M
    east_m = cross_m * math.cos(theta) + down_m * math.sin(theta)
    north_m = cross_m * math.sin(theta) - down_m * math.cos(theta)
    m_per_deg_lat = METRES_PER_DEG_LAT
    m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(CENTRE_LAT))
    return CENTRE_LON + east_m / m_per_deg_lon, CENTRE_LAT + north_m / m_per_deg_lat


def _scene_index(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`_scene_lonlat`: nearest (row, col) as float arrays."""
    theta = math.radians(ROTATION_DEG)
    m_per_deg_lat = METRES_PER_DEG_LAT
    m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(CENTRE_LAT))
    east_m = (lon - CENTRE_LON) * m_per_deg_lon
    north_m = (lat - CENTRE_LAT) * m_per_deg_lat
    cross_m = east_m * math.cos(theta) + north_m * math.sin(theta)
    down_m = east_m * math.sin(theta) - north_m * math.cos(theta)
    return down_m / SCENE_PIXEL_M + (N_DOWN - 1) / 2.0, cross_m / SCENE_PIXEL_M + (N_CROSS - 1) / 2.0


def _ortho_grid() -> tuple[list[float], int, int]:
    """Geotransform (GDAL order) and (ny, nx) of an ortho grid covering the scene corners."""
    rows = np.array([0, 0, N_DOWN - 1, N_DOWN - 1], dtype=float)
    cols = np.array([0, N_CROSS - 1, 0, N_CROSS - 1], dtype=float)
    lon, lat = _scene_lonlat(rows, cols)
    west, east = lon.min() - PIXEL_DEG, lon.max() + PIXEL_DEG
    south, north = lat.min() - PIXEL_DEG, lat.max() + PIXEL_DEG
    nx = int(math.ceil((east - west) / PIXEL_DEG))
    ny = int(math.ceil((north - south) / PIXEL_DEG))
    return [west, PIXEL_DEG, 0.0, north, 0.0, -PIXEL_DEG], ny, nx


def flat_slab(wavelengths: np.ndarray, rng: np.random.Generator, r0: int, r1: int) -> np.ndarray:
    """Default radiance slab: one smooth spectrum times (1 + 5 % per-pixel brightness noise)."""
    spectrum = (10.0 * np.exp(-(((wavelengths - 700.0) / 600.0) ** 2))).astype(np.float32)
    noise = rng.standard_normal((r1 - r0, N_CROSS, 1), dtype=np.float32)
    return spectrum[None, None, :] * (1.0 + 0.05 * noise)


def write_full_scene(
    path: Path,
    radiance_slab: Callable[[np.ndarray, np.random.Generator, int, int], np.ndarray] = flat_slab,
    fwhm_nm: np.ndarray | None = None,
) -> Path:
    """Write the full-size scene to ``path`` (temporary name + rename), slab by slab; return ``path``.

    ``radiance_slab(wavelengths, rng, r0, r1)`` returns downtrack lines ``r0:r1`` of the radiance
    (``(r1 - r0, 1242, 285)``, uW cm-2 sr-1 nm-1); ``fwhm_nm`` defaults to 8.5 nm for every band.
    """
    gt, ny, nx = _ortho_grid()
    tmp = path.with_name(f".{path.name}.part")
    path.parent.mkdir(parents=True, exist_ok=True)
    end = START + timedelta(seconds=11)
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        for dim, size in (
            ("downtrack", N_DOWN),
            ("crosstrack", N_CROSS),
            ("bands", N_BANDS),
            ("ortho_y", ny),
            ("ortho_x", nx),
        ):
            nc.createDimension(dim, size)
        nc.setncatts(
            {
                "title": TITLE,
                "instrument": "EMIT",
                "platform": "ISS",
                "product_version": "V001",
                "time_coverage_start": START.strftime(_TIME_FORMAT),
                "time_coverage_end": end.strftime(_TIME_FORMAT),
                "flight_line": f"emit{START:%Y%m%dt%H%M%S}",
                "geotransform": np.asarray(gt, dtype=np.float64),
                "spatial_ref": WKT_EPSG_4326,
                "northernmost_latitude": gt[3],
                "southernmost_latitude": gt[3] + ny * gt[5],
                "westernmost_longitude": gt[0],
                "easternmost_longitude": gt[0] + nx * gt[1],
            }
        )
        rad = nc.createVariable(
            "radiance", "f4", ("downtrack", "crosstrack", "bands"), fill_value=np.float32(FILL)
        )
        rad.units = "uW/cm^2/SR/nm"
        rad.long_name = "Radiance Data"
        wavelengths = np.linspace(381.0, 2493.0, N_BANDS, dtype=np.float32)
        grp = nc.createGroup("sensor_band_parameters")
        fwhm = np.full(N_BANDS, 8.5, np.float32) if fwhm_nm is None else np.asarray(fwhm_nm, np.float32)
        for name, values, long_name in (
            ("wavelengths", wavelengths, "Wavelength Centers"),
            ("fwhm", fwhm, "Full Width at Half Max"),
        ):
            var = grp.createVariable(name, "f4", ("bands",))
            var.units, var.long_name = "nm", long_name
            var[:] = values
        rng = np.random.default_rng(0)
        for r0 in range(0, N_DOWN, SLAB_ROWS):
            r1 = min(r0 + SLAB_ROWS, N_DOWN)
            rad[r0:r1, :, :] = radiance_slab(wavelengths, rng, r0, r1)
        loc = nc.createGroup("location")
        rows, cols = np.meshgrid(
            np.arange(N_DOWN, dtype=float), np.arange(N_CROSS, dtype=float), indexing="ij"
        )
        lon, lat = _scene_lonlat(rows, cols)
        for name, values, units, long_name in (
            ("lat", lat, "degrees_north", "Latitude (WGS-84)"),
            ("lon", lon, "degrees_east", "Longitude (WGS-84)"),
            ("elev", np.zeros_like(lat), "m", "Surface Elevation"),
        ):
            var = loc.createVariable(
                name, "f8", ("downtrack", "crosstrack"), fill_value=float(FILL), zlib=True
            )
            var.units, var.long_name = units, long_name
            var[:] = values
        del rows, cols, lon, lat
        y_lat = gt[3] + (np.arange(ny) + 0.5) * gt[5]
        x_lon = gt[0] + (np.arange(nx) + 0.5) * gt[1]
        glt_x, glt_y = (
            loc.createVariable(name, "i4", ("ortho_y", "ortho_x"), fill_value=np.int32(FILL), zlib=True)
            for name in ("glt_x", "glt_y")
        )
        glt_x.long_name, glt_y.long_name = "GLT Sample Lookup", "GLT Line Lookup"
        glt_x.units = glt_y.units = "pixel location"
        for i0 in range(0, ny, 256):
            i1 = min(i0 + 256, ny)
            lon2, lat2 = np.meshgrid(x_lon, y_lat[i0:i1])
            r, c = _scene_index(lon2, lat2)
            r, c = np.rint(r).astype(np.int64), np.rint(c).astype(np.int64)
            ok = (r >= 0) & (r < N_DOWN) & (c >= 0) & (c < N_CROSS)
            glt_y[i0:i1, :] = np.where(ok, r + 1, 0).astype(np.int32)
            glt_x[i0:i1, :] = np.where(ok, c + 1, 0).astype(np.int32)
    os.replace(tmp, path)
    return path


def aoi_bbox(side_km: float) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees of a square of ``side_km`` centred on the scene centre."""
    half_lat = side_km * 1000.0 / 2.0 / METRES_PER_DEG_LAT
    half_lon = half_lat / math.cos(math.radians(CENTRE_LAT))
    return (CENTRE_LON - half_lon, CENTRE_LAT - half_lat, CENTRE_LON + half_lon, CENTRE_LAT + half_lat)


_CHILD = """
import sys, time, resource
t0 = time.perf_counter()
from attribution_assets.readers.emit import read_emit_l1b
t1 = time.perf_counter()
ds = read_emit_l1b(sys.argv[1], tuple(float(v) for v in sys.argv[2:6]))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, ds["radiance"].shape, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

_CHILD_BASELINE = """
import resource
from attribution_assets.readers.emit import read_emit_l1b
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _child_rss(path: Path, bbox: tuple[float, ...]) -> dict[str, object]:
    """One AOI read in a fresh interpreter: peak RSS (MB, RUSAGE_CHILDREN) and timings (s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), *map(str, bbox)], check=True, capture_output=True, text=True
    ).stdout.split()
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    baseline = subprocess.run(
        [sys.executable, "-c", _CHILD_BASELINE], check=True, capture_output=True, text=True
    ).stdout.strip()
    return {
        "child_import_s": float(out[0]),
        "child_read_s": float(out[1]),
        "child_peak_rss_mb": max(after, before) / 1024.0,
        "child_import_only_rss_mb": int(baseline) / 1024.0,
    }


def run(workdir: Path, repeats: int, side_km: float) -> dict[str, object]:
    """Write the scene if needed, then time the AOI reads and the checksum; return the results."""
    from attribution_assets.readers.checksum import file_checksum
    from attribution_assets.readers.emit import read_emit_l1b

    path = workdir / emit_l1b_filename(START, "2522612", 1)
    write_s = None
    if not path.exists():
        t0 = time.perf_counter()
        write_full_scene(path)
        write_s = time.perf_counter() - t0
    bbox = aoi_bbox(side_km)
    child = _child_rss(path, bbox)

    t0 = time.perf_counter()
    checksum = file_checksum(path)
    checksum_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ds = read_emit_l1b(path, bbox)
    cold_s = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ds = read_emit_l1b(path, bbox)
        warm.append(time.perf_counter() - t0)
    return {
        "file": str(path),
        "file_size_gb": path.stat().st_size / 1e9,
        "write_s": write_s,
        "aoi_side_km": side_km,
        "bbox": list(bbox),
        "radiance_shape": list(ds["radiance"].shape),
        "ortho_shape": [ds.sizes["y"], ds.sizes["x"]],
        "checksum": checksum,
        "checksum_s": checksum_s,
        "first_read_in_process_s": cold_s,
        "repeats": repeats,
        "read_p50_s": statistics.median(warm),
        "read_max_s": max(warm),
        **child,
        "targets": {"read_p50_s": 0.5, "first_read_in_process_s": 0.5, "child_peak_rss_mb": 300.0},
    }


def _table(res: dict[str, object]) -> str:
    rows = [
        ("file size", f"{res['file_size_gb']:.2f} GB"),
        ("write (once)", "cached" if res["write_s"] is None else f"{res['write_s']:.1f} s"),
        ("AOI", f"{res['aoi_side_km']} km square, radiance {res['radiance_shape']}"),
        ("provenance checksum (sha256-headtail-v1)", f"{res['checksum_s'] * 1e3:.2f} ms"),
        ("first read in process", f"{res['first_read_in_process_s']:.3f} s  (target <= 0.5 s)"),
        (
            f"read p50 / max ({res['repeats']} repeats)",
            f"{res['read_p50_s']:.3f} / {res['read_max_s']:.3f} s  (target <= 0.5 s)",
        ),
        ("fresh subprocess: import / read", f"{res['child_import_s']:.2f} / {res['child_read_s']:.2f} s"),
        ("fresh subprocess peak RSS", f"{res['child_peak_rss_mb']:.0f} MB  (target <= 300 MB)"),
        ("  of which import only", f"{res['child_import_only_rss_mb']:.0f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/attribution_bench"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--aoi-km", type=float, default=5.0, help="AOI square side, km")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    res = run(args.workdir, args.repeats, args.aoi_km)
    print(_table(res))
    write_results(res, args.out)


if __name__ == "__main__":
    main()
