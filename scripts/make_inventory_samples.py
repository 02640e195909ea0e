"""Write ``data/reference/edgar_ch4_sample.nc``: a small synthetic CH4 grid in the EDGAR v8 layout.

The file follows the EDGAR v8 annual grid-map layout (``emissions(lat, lon)`` in tonnes per 0.1° cell
per year, cell centres at x.x5°, longitudes in [-180, 180)) but holds only two windows of ±2° around the
sample CH4 events (Permian, Korpezhe/Turkmenistan), so the longitude axis has a gap between them. The
values are synthetic: a log-normal background (median 5 t/cell/yr), a few moderate cells, and one hot
cell at each true source of ``attribution_assets/samples/truth_table.csv`` carrying that source's
emission rate. It is not EDGAR data.

Usage: ``.venv/bin/python scripts/make_inventory_samples.py [output.nc]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from attribution_assets.paths import DATA_DIR, SAMPLE_TRUTH

STEP_DEG = 0.1
HALF_WIDTH_DEG = 2.0
HOURS_PER_YEAR = 365.25 * 24.0
SEED = 20250814


def _centres(lo: float, hi: float) -> np.ndarray:
    """0.1° cell centres (x.x5) covering [lo, hi] degrees."""
    first = np.floor(lo / STEP_DEG) * STEP_DEG + STEP_DEG / 2
    n = int(np.ceil((hi - first) / STEP_DEG)) + 1
    return np.round(first + STEP_DEG * np.arange(n), 2)


def _cell_index(axis: np.ndarray, value: float) -> int:
    """Index of the cell of ``axis`` (centres) that contains ``value`` (degrees)."""
    return int(np.argmin(np.abs(axis - value)))


def build_sample() -> xr.Dataset:
    """The synthetic EDGAR-layout dataset (t/cell/yr)."""
    truth = pd.read_csv(SAMPLE_TRUTH)
    ch4 = truth[(truth["gas"] == "CH4") & (truth["emission_rate_kg_h"] > 0)]
    lat = _centres(ch4["source_lat"].min() - HALF_WIDTH_DEG, ch4["source_lat"].max() + HALF_WIDTH_DEG)
    lon_blocks = []
    for lon0 in sorted({round(v) for v in ch4["source_lon"]}):
        lon_blocks.append(_centres(lon0 - HALF_WIDTH_DEG, lon0 + HALF_WIDTH_DEG))
    lon = np.unique(np.concatenate(lon_blocks))
    rng = np.random.default_rng(SEED)
    emissions = rng.lognormal(mean=np.log(5.0), sigma=1.2, size=(lat.size, lon.size))
    moderate = rng.choice(emissions.size, size=12, replace=False)
    emissions.flat[moderate] = rng.uniform(500.0, 3000.0, size=moderate.size)
    for _, row in ch4.iterrows():
        i, j = _cell_index(lat, row["source_lat"]), _cell_index(lon, row["source_lon"])
        emissions[i, j] = row["emission_rate_kg_h"] * HOURS_PER_YEAR / 1000.0
    return xr.Dataset(
        {"emissions": (("lat", "lon"), emissions.astype(np.float32),
                       {"units": "Tonnes", "long_name": "Emissions of CH4 (synthetic sample)"})},
        coords={
            "lat": ("lat", lat, {"units": "degrees_north", "long_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "long_name": "longitude"}),
        },
        attrs={
            "title": "Synthetic CH4 emission grid in the EDGAR v8 annual grid-map layout (NOT EDGAR data)",
            "substance": "CH4",
            "year": 2022,
            "product_version": "synthetic sample, EDGAR v8 layout",
            "history": "written by scripts/make_inventory_samples.py",
            "comment": "two +-2 degree windows around the sample CH4 events; hot cells at the true sources",
        },
    )


def main(argv: list[str]) -> None:
    """Write the sample NetCDF (zlib-compressed) and print its path and size."""
    target = Path(argv[1]) if len(argv) > 1 else DATA_DIR / "reference" / "edgar_ch4_sample.nc"
    target.parent.mkdir(parents=True, exist_ok=True)
    build_sample().to_netcdf(target, engine="netcdf4",
                             encoding={"emissions": {"zlib": True, "complevel": 4}})
    print(f"{target}: {target.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv)
