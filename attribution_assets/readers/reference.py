"""Small bundled reference tables (``data/reference``).

The CH4 unit absorption spectrum is derived from the MODTRAN CH4 look-up table distributed with mag1c
(Foote et al. 2020, IEEE TGRS 58(9), doi:10.1109/TGRS.2020.2976888; BSD-3-Clause) by
``scripts/derive_ch4_unit_absorption.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
CH4_UNIT_ABSORPTION_CSV = DATA_DIR / "reference" / "ch4_unit_absorption.csv"


def load_ch4_unit_absorption(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load the high-resolution CH4 unit absorption spectrum.

    Args:
        path: CSV with ``#`` comment header and columns ``wavelength_nm, absorption_per_ppm_m``;
            default the bundled ``data/reference/ch4_unit_absorption.csv``.

    Returns:
        ``(wavelength_nm, k_per_ppm_m)``: increasing wavelengths in nm (0.1 nm grid, 2000-2522 nm) and
        ``d ln(radiance) / d c`` in 1/(ppm·m), negative where CH4 absorbs. float64 arrays.
    """
    csv = Path(path) if path is not None else CH4_UNIT_ABSORPTION_CSV
    table = pd.read_csv(csv, comment="#")
    missing = {"wavelength_nm", "absorption_per_ppm_m"} - set(table.columns)
    if missing:
        raise ValueError(
            f"{csv}: missing column(s) {sorted(missing)}; expected wavelength_nm, absorption_per_ppm_m"
        )
    wavelength = table["wavelength_nm"].to_numpy(np.float64)
    k = table["absorption_per_ppm_m"].to_numpy(np.float64)
    if wavelength.size < 2 or np.any(np.diff(wavelength) <= 0) or not np.all(np.isfinite(k)):
        raise ValueError(f"{csv}: wavelength_nm must increase strictly and absorption_per_ppm_m be finite")
    return wavelength, k
