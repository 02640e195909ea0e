"""Resample the mag1c MODTRAN CH4 radiance look-up table to a compact 0.1 nm table (2000-2522 nm).

Source: the MODTRAN CH4 look-up table shipped with mag1c 1.2.0 (``ch4.hdr`` / ``ch4.lut``), BSD-3-Clause,
Foote, M. D. et al. (2020), "Fast and Accurate Retrieval of Methane Concentration From Imaging
Spectrometer Data Using Sparsity Prior", IEEE TGRS 58(9), 6480-6492, doi:10.1109/TGRS.2020.2976888.
The LUT holds at-sensor radiance for 7 CH4 path enhancements (0, 500, 1000, 2000, 4000, 8000,
16000 ppm·m) at ~31 800 wavelengths from 1400 to 2522 nm (ENVI, float64, BSQ).

What is shipped is the *radiance* at each concentration, not a per-wavelength slope: mag1c
(``generate_template_from_bands``) and the JPL EMIT GHG code (Thompson et al. 2015, AMT 8, 4383-4397)
first convolve the LUT radiance at every concentration with each band's spectral response and only
then regress ln(band radiance) on concentration. Averaging a per-wavelength slope instead overstates
the band absorption where narrow lines saturate (see :mod:`attribution_assets.science.forward.absorption`).

Resampling: the exact mean of the piecewise-linear LUT radiance over 0.1 nm cells centred on a regular
grid (a box filter of 0.1 nm, far narrower than any instrument band), written with 7 significant
digits (float32 precision).

Usage::

    python scripts/derive_ch4_unit_absorption.py /tmp/mag1c/unpacked/mag1c \
        [-o data/reference/ch4_lut_radiance.csv]

The argument is either the directory holding ``ch4.hdr``/``ch4.lut`` or the path of ``ch4.hdr``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

CONCENTRATIONS_PPM_M = np.array([0.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0])
GRID_STEP_NM = 0.1
GRID_START_NM = 2000.0
GRID_STOP_NM = 2522.0
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "data" / "reference" / "ch4_lut_radiance.csv"
ENVI_DTYPES = {4: "f4", 5: "f8", 2: "i2", 3: "i4", 12: "u2"}


def parse_envi_header(text: str) -> dict[str, str]:
    """Parse an ENVI header into a ``{key: raw value}`` dict (braced values joined onto one line)."""
    fields: dict[str, str] = {}
    for match in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text, flags=re.MULTILINE):
        fields[match.group(1).strip().lower()] = match.group(2).strip()
    return fields


def read_envi_lut(hdr_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the ENVI LUT; return ``(wavelength_nm (nb,), radiance (n_conc, nb))`` in LUT radiance units."""
    fields = parse_envi_header(hdr_path.read_text())
    samples, lines, bands = (int(fields[k]) for k in ("samples", "lines", "bands"))
    order = ">" if int(fields.get("byte order", "0")) == 1 else "<"
    dtype = np.dtype(order + ENVI_DTYPES[int(fields["data type"])])
    interleave = fields.get("interleave", "bsq").lower()
    wavelength = np.array([float(v) for v in fields["wavelength"].strip("{}").split(",")])
    raw = np.fromfile(hdr_path.with_suffix(".lut"), dtype=dtype, offset=int(fields.get("header offset", "0")))
    if raw.size != samples * lines * bands or wavelength.size != bands:
        raise ValueError(f"{hdr_path}: size mismatch (samples={samples}, lines={lines}, bands={bands})")
    shape = {"bsq": (bands, lines, samples), "bil": (lines, bands, samples), "bip": (lines, samples, bands)}
    cube = raw.reshape(shape[interleave])
    axes = {"bsq": (1, 2, 0), "bil": (0, 2, 1), "bip": (0, 1, 2)}[interleave]
    radiance = cube.transpose(axes).reshape(lines * samples, bands)
    return wavelength, radiance.astype(np.float64)


def cell_average(
    wavelength_nm: np.ndarray, values: np.ndarray, centres_nm: np.ndarray, step_nm: float
) -> np.ndarray:
    """Exact mean of the piecewise-linear ``values(wavelength_nm)`` over cells ``centre ± step/2``.

    ``values`` may be ``(n,)`` or ``(m, n)`` (rows averaged independently); returns ``(..., n_centres)``.
    """
    values = np.asarray(values, dtype=np.float64)
    increments = 0.5 * (values[..., 1:] + values[..., :-1]) * np.diff(wavelength_nm)
    cumulative = np.concatenate([np.zeros(values.shape[:-1] + (1,)), np.cumsum(increments, axis=-1)], axis=-1)
    flat = cumulative.reshape(-1, cumulative.shape[-1])
    lo = np.stack([np.interp(centres_nm - step_nm / 2, wavelength_nm, row) for row in flat])
    hi = np.stack([np.interp(centres_nm + step_nm / 2, wavelength_nm, row) for row in flat])
    return ((hi - lo) / step_nm).reshape(values.shape[:-1] + (centres_nm.size,))


def derive(hdr_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """LUT radiance on the 0.1 nm grid, 2000-2522 nm: ``(wavelength_nm (n,), radiance (7, n))``."""
    wavelength, radiance = read_envi_lut(hdr_path)
    if radiance.shape[0] != CONCENTRATIONS_PPM_M.size:
        raise ValueError(f"{hdr_path}: expected {CONCENTRATIONS_PPM_M.size} concentrations")
    n = round((GRID_STOP_NM - GRID_START_NM) / GRID_STEP_NM) + 1
    grid = GRID_START_NM + GRID_STEP_NM * np.arange(n)
    grid = grid[grid + GRID_STEP_NM / 2 <= wavelength[-1]]
    return grid, cell_average(wavelength, radiance, grid, GRID_STEP_NM)


HEADER = """\
# CH4 MODTRAN radiance look-up table: at-sensor radiance (LUT units; only ratios between concentrations
# and across wavelengths matter) for 7 CH4 path enhancements, columns radiance_c<C> with C in ppm·m.
# From the look-up table shipped with mag1c 1.2.0 (ch4.hdr/ch4.lut), https://github.com/markusfoote/mag1c,
# BSD-3-Clause, Copyright (c) 2019 Scientific Computing and Imaging Institute and Utah Remote Sensing
# Applications Lab. Cite: Foote M.D. et al. (2020) IEEE TGRS 58(9) 6480-6492, doi:10.1109/TGRS.2020.2976888.
# Resampling: exact mean of the piecewise-linear LUT radiance over 0.1 nm cells centred on the grid,
# 2000-2522 nm, 7 significant digits. Band unit absorption: convolve each column with the band SRF, then
# regress ln(band radiance) on concentration (as mag1c; Thompson et al. 2015 AMT 8 4383).
# Produced by scripts/derive_ch4_unit_absorption.py.
"""


def write_csv(
    path: Path, wavelength_nm: np.ndarray, radiance: np.ndarray,
    concentrations_ppm_m: np.ndarray = CONCENTRATIONS_PPM_M,
) -> None:
    """Write the CSV (header comments + ``wavelength_nm,radiance_c0,...``) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    columns = ["wavelength_nm"] + [f"radiance_c{c:g}" for c in concentrations_ppm_m]
    rows = [
        f"{w:.1f}," + ",".join(f"{v:.7g}" for v in radiance[:, i]) for i, w in enumerate(wavelength_nm)
    ]
    tmp.write_text(HEADER + ",".join(columns) + "\n" + "\n".join(rows) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lut", type=Path, help="directory holding ch4.hdr/ch4.lut, or the .hdr path")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    hdr = args.lut / "ch4.hdr" if args.lut.is_dir() else args.lut.with_suffix(".hdr")
    wavelength, radiance = derive(hdr)
    write_csv(args.output, wavelength, radiance)
    print(f"wrote {args.output}: {wavelength.size} rows x {radiance.shape[0]} concentrations, "
          f"{wavelength[0]:.1f}-{wavelength[-1]:.1f} nm, {args.output.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
