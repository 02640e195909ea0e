"""Benchmark: OCO-2 along-track peak scan, ours vs oco2peak on the same day of soundings.

Generates one day of OCO-2 Lite-like soundings: 14 orbits, each with clear-sky stretches of 150-350 km
along a near-polar track, frames of 8 footprints every 2.25 km (1.29 km across), XCO2 = 410 ppm +
smooth regional variation + Gaussian noise with the reported per-sounding uncertainty (0.4-0.8 ppm)
+ Gaussian along-track peaks of known centre, width (2.5-8 km) and amplitude (1.5-4 ppm), at least
80 km apart. Then, in one run:

- ours: ``science.detection.peaks.scan_oco2_peaks`` on the carrier (every orbit, every segment);
- oco2peak 0.0.4 (Data for Good / IPSL): ``find_peak.gaussian_fit_on_df`` with its quality filters,
  run in the separate benchmark environment (``--oco2peak-python``) on the same soundings saved as
  CSV (its own input format). Its ``compute_distance`` fails under pandas 3, so the benchmark passes
  the equivalent ``distance`` column (haversine from each orbit's first sounding, Earth radius
  6367 km, sorted by orbit and distance, as that function does). Only ``gaussian_fit_on_df`` is timed.

Scoring: a detection belongs to the nearest injected peak within ``3 sigma`` (great circle) of its
centre; recall = peaks with at least one detection / peaks; duplicates = detections per detected
peak; false detections match no peak.

Usage: ``.venv/bin/python benchmarks/bench_oco2_peaks.py [--seed 2025] [--oco2peak-python
/tmp/benchvenv/bin/python] [--workdir DIR] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from report import write_results

from attribution_assets.science.detection.peaks import scan_oco2_peaks
from attribution_assets.science.sphere import haversine_km

N_ORBITS = 14
FRAME_KM = 2.25
FRAME_S = 0.333
FOOTPRINT_KM = 1.29
KM_PER_DEG = 111.2
ORBIT_S = 98.8 * 60.0

_OCO2PEAK_CHILD = """
import json, sys, time, warnings
import pandas as pd
warnings.filterwarnings("ignore")
from oco2peak.find_peak import gaussian_fit_on_df
df = pd.read_csv(sys.argv[1], sep=";")
t0 = time.perf_counter()
peaks = gaussian_fit_on_df(df, output_peak=False, implement_filters=True, output_csv=False)
seconds = time.perf_counter() - t0
table = pd.DataFrame(peaks, columns=["latitude", "longitude", "orbit", "delta", "sigma"])
table.to_csv(sys.argv[2], sep=";", index=False)
print(json.dumps({"seconds": seconds, "peaks": len(peaks)}))
"""


def generate_day(seed: int) -> tuple[xr.Dataset, pd.DataFrame]:
    """One day of soundings (carrier of ``readers.oco2``) and the injected peaks (one row each)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("lon", "lat", "xco2", "unc", "orbit", "t", "s")}
    truth = []
    for orbit in range(N_ORBITS):
        lon0 = -170.0 + orbit * 24.7
        lat = -55.0
        s_orbit = 0.0
        while True:
            length = rng.uniform(150.0, 350.0)
            gap = rng.uniform(400.0, 2000.0)
            lat += gap / KM_PER_DEG
            if lat + length / KM_PER_DEG > 60.0:
                break
            s_orbit += gap
            n_frames = int(length / FRAME_KM)
            along = np.repeat(np.arange(n_frames) * FRAME_KM, 8) + rng.normal(0.0, 0.1, n_frames * 8)
            across = np.tile((np.arange(8) - 3.5) * FOOTPRINT_KM, n_frames)
            seg_lat = lat + along / KM_PER_DEG
            seg_lon = lon0 + (across + 0.2 * along) / (KM_PER_DEG * np.cos(np.radians(seg_lat)))
            unc = rng.uniform(0.4, 0.8, along.size)
            xco2 = 410.0 + np.sin((s_orbit + along) / 900.0) + rng.normal(0.0, 1.0, along.size) * unc
            centre = 55.0
            while centre < length - 55.0:
                amp, sigma = rng.uniform(1.5, 4.0), rng.uniform(2.5, 8.0)
                xco2 += amp * np.exp(-0.5 * ((along - centre) / sigma) ** 2)
                truth.append(
                    {
                        "orbit": orbit,
                        "latitude": lat + centre / KM_PER_DEG,
                        "longitude": lon0 + 0.2 * centre / (KM_PER_DEG * np.cos(np.radians(lat))),
                        "amplitude_ppm": amp,
                        "sigma_km": sigma,
                    }
                )
                centre += rng.uniform(80.0, 160.0)
            for key, value in (
                ("lon", seg_lon),
                ("lat", seg_lat),
                ("xco2", xco2),
                ("unc", unc),
                ("orbit", np.full(along.size, orbit)),
                ("t", orbit * ORBIT_S + (s_orbit + along) / FRAME_KM * FRAME_S),
                ("s", along),
            ):
                cols[key].append(value)
            lat += length / KM_PER_DEG
            s_orbit += length
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    n = flat["xco2"].size
    time0 = np.datetime64("2025-06-10T00:00:00", "ns")
    ds = xr.Dataset(
        {
            "xco2": ("sounding", flat["xco2"]),
            "xco2_uncertainty": ("sounding", flat["unc"]),
            "xco2_quality_flag": ("sounding", np.zeros(n, np.int8)),
            "orbit": ("sounding", flat["orbit"].astype(np.int64)),
            "psurf": ("sounding", np.full(n, 1000.0)),
            "tcwv": ("sounding", np.full(n, 20.0)),
            "windspeed_u_met": ("sounding", np.full(n, 4.0)),
            "windspeed_v_met": ("sounding", np.full(n, -1.0)),
        },
        coords={
            "latitude": ("sounding", flat["lat"]),
            "longitude": ("sounding", flat["lon"]),
            "time": ("sounding", time0 + (flat["t"] * 1e9).astype("timedelta64[ns]")),
        },
    )
    return ds, pd.DataFrame(truth)


def oco2peak_frame(ds: xr.Dataset) -> pd.DataFrame:
    """The soundings as oco2peak's input table, with its ``compute_distance`` result precomputed."""
    df = pd.DataFrame(
        {
            "sounding_id": np.arange(ds.sizes["sounding"], dtype=np.int64),
            "orbit": ds["orbit"].values,
            "latitude": ds["latitude"].values,
            "longitude": ds["longitude"].values,
            "xco2": ds["xco2"].values,
            "xco2_uncert": ds["xco2_uncertainty"].values,
            "windspeed_u": ds["windspeed_u_met"].values,
            "windspeed_v": ds["windspeed_v_met"].values,
            "surface_pressure": ds["psurf"].values,
            "tcwv": ds["tcwv"].values,
        }
    )
    first = df.groupby("orbit")[["latitude", "longitude"]].transform("first")
    df["distance"] = haversine_km(first["longitude"], first["latitude"], df["longitude"], df["latitude"]) * (
        6367.0 / 6371.0088
    )  # oco2peak's Earth radius
    return df.sort_values(["orbit", "distance"]).reset_index(drop=True)


def score(detections: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Recall, duplicates per detected peak and false detections (see module docstring)."""
    hits = np.zeros(len(truth), dtype=np.int64)
    false = 0
    for _, row in detections.iterrows():
        same = truth["orbit"].to_numpy() == row["orbit"]
        dist = np.where(
            same,
            haversine_km(row["longitude"], row["latitude"], truth["longitude"], truth["latitude"]),
            np.inf,
        )
        ok = dist <= 3.0 * truth["sigma_km"].to_numpy()
        if ok.any():
            hits[np.argmin(np.where(ok, dist, np.inf))] += 1
        else:
            false += 1
    found = hits > 0
    return {
        "detections": len(detections),
        "recall": float(found.mean()),
        "peaks_found": int(found.sum()),
        "duplicates_per_found_peak": float(hits[found].mean()) if found.any() else float("nan"),
        "max_detections_per_peak": int(hits.max()) if hits.size else 0,
        "false_detections": false,
    }


def run(seed: int, workdir: Path, oco2peak_python: str | None) -> dict[str, object]:
    """Generate the day, run both scans, score them; return the results."""
    ds, truth = generate_day(seed)
    t0 = time.perf_counter()
    result = scan_oco2_peaks(ds)
    ours_s = time.perf_counter() - t0
    res: dict[str, object] = {
        "seed": seed,
        "soundings": int(ds.sizes["sounding"]),
        "orbits": N_ORBITS,
        "segments": int(len(result.outcomes)),
        "injected_peaks": int(len(truth)),
        "ours_s": ours_s,
        "ours": score(result.peaks, truth),
        "targets": {"speedup": 10.0},
    }
    if oco2peak_python:
        workdir.mkdir(parents=True, exist_ok=True)
        src, out = workdir / "oco2_day.csv", workdir / "oco2peak_peaks.csv"
        oco2peak_frame(ds).to_csv(src, sep=";", index=False)
        proc = subprocess.run(
            [oco2peak_python, "-c", _OCO2PEAK_CHILD, str(src), str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
        record = json.loads(proc.stdout.strip().splitlines()[-1])
        res["oco2peak_s"] = record["seconds"]
        res["oco2peak"] = score(pd.read_csv(out, sep=";"), truth)
        res["speedup"] = record["seconds"] / ours_s
    return res


def _table(res: dict) -> str:
    rows = [
        ("soundings / orbits / segments", f"{res['soundings']:,} / {res['orbits']} / {res['segments']}"),
        ("injected peaks", str(res["injected_peaks"])),
        ("ours: scan time", f"{res['ours_s']:.2f} s"),
    ]
    if "oco2peak_s" in res:
        rows += [
            ("oco2peak: gaussian_fit_on_df time", f"{res['oco2peak_s']:.2f} s"),
            ("speed-up", f"{res['speedup']:.1f}x  (target >= 10x)"),
        ]
    for method in ("ours", "oco2peak"):
        if method in res:
            s = res[method]
            rows.append(
                (
                    f"{method}: recall / detections per found peak (max) / false",
                    f"{s['recall']:.2f} ({s['peaks_found']}) / {s['duplicates_per_found_peak']:.2f} "
                    f"({s['max_detections_per_peak']}) / {s['false_detections']}",
                )
            )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--oco2peak-python", default=None, help="python of the benchmark venv with oco2peak")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/attribution_bench/oco2"))
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    res = run(args.seed, args.workdir, args.oco2peak_python)
    print(_table(res))
    write_results(res, args.out)


if __name__ == "__main__":
    main()
