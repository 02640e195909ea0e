"""Small bundled reference tables (``data/reference``).

The CH4 radiance look-up table is the MODTRAN CH4 LUT distributed with mag1c (Foote et al. 2020,
IEEE TGRS 58(9), doi:10.1109/TGRS.2020.2976888; BSD-3-Clause), resampled to 0.1 nm over 2000-2522 nm by
``scripts/derive_ch4_unit_absorption.py``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
CH4_LUT_CSV = DATA_DIR / "reference" / "ch4_lut_radiance.csv"
_RADIANCE_COLUMN = re.compile(r"^radiance_c(?P<c>[0-9.eE+-]+)$")


@cache
def load_ch4_unit_absorption(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load the high-resolution CH4 radiance look-up table used to derive band unit absorption.

    Pass the result straight on: ``band_unit_absorption(*load_ch4_unit_absorption(), centres_nm, fwhm_nm)``.
    Read once per process and path; the arrays are shared, so they are read-only.

    Args:
        path: CSV with ``#`` comment header and columns ``wavelength_nm, radiance_c<C>...`` (one per CH4
            path enhancement ``C`` in ppm·m); default the bundled ``data/reference/ch4_lut_radiance.csv``.

    Returns:
        ``(wavelength_nm, radiance, concentration_ppm_m)``: increasing wavelengths in nm (0.1 nm grid,
        2000-2522 nm), shape ``(n_wl,)``; at-sensor radiance in LUT units, shape ``(n_conc, n_wl)``; the
        CH4 path enhancements in ppm·m, shape ``(n_conc,)`` (0 ... 16000). float64 arrays.
    """
    csv = Path(path) if path is not None else CH4_LUT_CSV
    table = pd.read_csv(csv, comment="#")
    columns = [(float(m["c"]), name) for name in table.columns if (m := _RADIANCE_COLUMN.match(name))]
    if "wavelength_nm" not in table.columns or len(columns) < 2:
        raise ValueError(f"{csv}: expected columns wavelength_nm and at least two radiance_c<ppm·m>")
    columns.sort()
    wavelength = table["wavelength_nm"].to_numpy(np.float64)
    radiance = table[[name for _, name in columns]].to_numpy(np.float64).T
    concentration = np.array([c for c, _ in columns])
    if wavelength.size < 2 or np.any(np.diff(wavelength) <= 0):
        raise ValueError(f"{csv}: wavelength_nm must increase strictly")
    if not np.all(np.isfinite(radiance)) or np.any(radiance <= 0):
        raise ValueError(f"{csv}: radiance must be finite and positive")
    for array in (wavelength, radiance, concentration):
        array.setflags(write=False)
    return wavelength, radiance, concentration
