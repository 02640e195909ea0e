"""Physical constants and unit conversions, in one place.

Column mass per unit mole fraction follows from hydrostatic balance: the dry-air column is
``p_s / g`` kg m-2, so a column-averaged dry mole fraction ``X`` of a gas of molar mass ``M``
carries ``X * (M / M_air) * p_s / g`` kg m-2 (e.g. Jacob et al. 2016, ACP 16, 14371, eq. 1;
Varon et al. 2018, AMT 11, 5673, eq. 2). At 1013.25 hPa, 1 ppb CH4 = 5.72e-6 kg m-2.

The matched-filter unit ppm·m (a CH4 excess of 1 ppm over a 1 m path at standard conditions)
converts with ``1e-6 * 1000 / 22.4 * 0.016042 = 7.16e-7`` kg m-2, the factor of the JPL EMIT
greenhouse-gas quantification code (Thorpe et al. 2023, Sci. Adv. 9, eadh2391).
"""

from __future__ import annotations

from typing import Any

M_CH4_KG_MOL = 16.04e-3
M_CO2_KG_MOL = 44.01e-3
M_AIR_KG_MOL = 28.964e-3
G_M_S2 = 9.80665
STANDARD_PRESSURE_PA = 101325.0
KG_M2_PER_PPM_M_CH4 = 1e-6 * 1000.0 / 22.4 * 0.016042
SECONDS_PER_HOUR = 3600.0
METRES_PER_DEG_LAT = 111_320.0
"""Metres per degree of latitude (mean; within 0.5 % everywhere), and per degree of longitude at the
equator. Used only for bounding boxes and local pixel sizes; exact distances use ``science.geometry``."""
EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG R1), m: grid-cell areas and great-circle distances on a sphere."""
PRESSURE_SCALE_HEIGHT_M = 8000.0
"""Pressure scale height ``H`` (m) of ``p(z) = p_s exp(-z / H)``: turns a boundary-layer height into a
pressure level."""
VON_KARMAN = 0.4
R_DRY_J_KG_K = 287.05
"""Specific gas constant of dry air, J kg-1 K-1."""
CP_DRY_J_KG_K = 1004.7
"""Specific heat of dry air at constant pressure, J kg-1 K-1."""
MAD_TO_SD = 1.4826
"""Normal-consistency factor: ``sd = 1.4826 MAD`` for Gaussian data (``1 / Phi^-1(3/4)``)."""

_MOLAR_MASS_KG_MOL = {"CH4": M_CH4_KG_MOL, "CO2": M_CO2_KG_MOL}


def molar_mass_kg_mol(gas: str) -> float:
    """Molar mass of ``gas`` ("CH4" or "CO2") in kg mol-1."""
    try:
        return _MOLAR_MASS_KG_MOL[gas.upper()]
    except KeyError:
        raise ValueError(f"unknown gas {gas!r}; expected one of {sorted(_MOLAR_MASS_KG_MOL)}") from None


def kg_m2_per_mole_fraction(surface_pressure_pa: Any, gas: str) -> Any:
    """Column mass (kg m-2) carried by a column-averaged dry mole fraction of 1 (mol/mol).

    Works on floats, numpy and JAX arrays. ``surface_pressure_pa`` in Pa.
    """
    return molar_mass_kg_mol(gas) / M_AIR_KG_MOL * surface_pressure_pa / G_M_S2


def kg_m2_per_ppb(surface_pressure_pa: Any, gas: str = "CH4") -> Any:
    """Column mass (kg m-2) of a 1 ppb column-averaged enhancement at surface pressure ``p_s`` (Pa)."""
    return 1e-9 * kg_m2_per_mole_fraction(surface_pressure_pa, gas)


def kg_m2_per_ppm(surface_pressure_pa: Any, gas: str = "CO2") -> Any:
    """Column mass (kg m-2) of a 1 ppm column-averaged enhancement at surface pressure ``p_s`` (Pa)."""
    return 1e-6 * kg_m2_per_mole_fraction(surface_pressure_pa, gas)


def kg_h_to_kg_s(rate_kg_h: Any) -> Any:
    """Emission rate from kg h-1 to kg s-1."""
    return rate_kg_h / SECONDS_PER_HOUR


def kg_s_to_kg_h(rate_kg_s: Any) -> Any:
    """Emission rate from kg s-1 to kg h-1."""
    return rate_kg_s * SECONDS_PER_HOUR
