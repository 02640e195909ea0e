"""Atmospheric stability for the plume model: Pasquill-Gifford classes from routine meteorology.

Two routes lead to the continuous stability index ``s`` in [0, 5] (0 = class A ... 5 = class F)
used by :mod:`attribution_assets.science.forward.plume`:

1. **Pasquill (1961) table** from the 10 m wind speed and the insolation (day) or the cloud cover
   (night), with insolation graded from the solar elevation as in Turner (1964, J. Appl. Meteorol.
   3, 83). Intermediate table entries such as "A-B" map to half-integer indices.
2. **Obukhov length** ``L`` from the surface sensible heat flux, friction velocity and temperature
   (Obukhov 1946; Monin & Obukhov 1954), mapped to a class through Golder's (1972, Boundary-Layer
   Meteorol. 3, 47) relation between ``1/L`` and the roughness length ``z0``, in its linear form
   ``1/L = a + b log10(z0)`` (fits tabulated by Seinfeld & Pandis 2016, *Atmospheric Chemistry
   and Physics*, 3rd ed., ch. 18). Between the class lines the index is interpolated linearly.

The solar position uses the NOAA "General Solar Position Calculations" with Spencer's (1971, Search
2(5), 172) Fourier series for the equation of time and the declination (accurate to ~0.1-0.5 deg).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attribution_assets.science.units import CP_DRY_J_KG_K, G_M_S2, R_DRY_J_KG_K, VON_KARMAN
from attribution_assets.times import to_datetime64

CLASS_LETTERS = "ABCDEF"

# Pasquill (1961) table: rows = 10 m wind bins (< 2, 2-3, 3-5, 5-6, >= 6 m s-1),
# columns = strong, moderate, slight insolation, night >= 4/8 cloud, night <= 3/8 cloud.
_WIND_BIN_EDGES_M_S = (2.0, 3.0, 5.0, 6.0)
_PASQUILL_TABLE = (
    ("A", "A-B", "B", "E", "F"),
    ("A-B", "B", "C", "E", "F"),
    ("B", "B-C", "C", "D", "E"),
    ("C", "C-D", "D", "D", "D"),
    ("C", "D", "D", "D", "D"),
)
_INSOLATION_COLUMNS = ("strong", "moderate", "slight", "night_cloudy", "night_clear")

# Golder (1972) class lines 1/L = a + b * log10(z0) [1/L in m-1, z0 in m], classes A..F.
_GOLDER_A = np.array([-0.096, -0.037, -0.002, 0.0, 0.004, 0.035])
_GOLDER_B = np.array([0.029, 0.029, 0.018, 0.0, -0.018, -0.036])

OVERCAST_CLOUD_FRACTION = 0.95
"""Cloud fraction above which Pasquill's footnote applies: neutral (D) day or night."""
NIGHT_CLOUDY_FRACTION = 7.0 / 16.0
"""Boundary between the night columns "<= 3/8" and ">= 4/8" cloud."""


def solar_elevation_deg(time_utc: Any, lon_deg: Any, lat_deg: Any) -> np.ndarray:
    """Solar elevation angle (degrees above the horizon, no refraction) at UTC time and position.

    NOAA general solar position algorithm with Spencer (1971) series: fractional year
    ``g = 2 pi / 365 (doy - 1 + (hour - 12) / 24)``, equation of time (minutes) and declination
    (radians) as Fourier series in ``g``, true solar time ``= UTC minutes + eot + 4 lon``,
    hour angle ``= tst / 4 - 180`` deg. ``time_utc``: datetime (naive = UTC), numpy datetime64 or
    an array of them; ``lon_deg`` east, ``lat_deg`` north. Broadcasts; returns float64 degrees.
    """
    t = to_datetime64(time_utc)
    year_start = t.astype("datetime64[Y]").astype("datetime64[ns]")
    day_of_year = (t - year_start).astype("timedelta64[ns]").astype(np.float64) / 86400e9  # 0-based
    minutes_utc = (t - t.astype("datetime64[D]")).astype("timedelta64[ns]").astype(np.float64) / 60e9
    year = t.astype("datetime64[Y]").astype(np.int64) + 1970
    days_in_year = np.where((year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0)), 366.0, 365.0)
    g = 2.0 * np.pi / days_in_year * (np.floor(day_of_year) + (minutes_utc / 60.0 - 12.0) / 24.0)
    eot_min = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g)
                        - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g))
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))
    true_solar_min = minutes_utc + eot_min + 4.0 * np.asarray(lon_deg, dtype=np.float64)
    hour_angle = np.radians(true_solar_min / 4.0 - 180.0)
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    cos_zenith = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return 90.0 - np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0)))


def insolation_class(solar_elevation_deg: float, cloud_fraction: float) -> str:
    """Insolation category of the Pasquill table: ``strong | moderate | slight | night_cloudy | night_clear``.

    Turner (1964): solar elevation > 60 deg strong, 35-60 deg moderate, <= 35 deg slight (Turner's
    "weak" class for elevations <= 15 deg is folded into slight); the sun below the horizon is night.
    Cloud reduces the insolation by one category when more than half the sky is covered (Turner's
    correction without the cloud-ceiling information, which ERA5/WRF do not give). At night the
    column is chosen by cloud >= 4/8 (``night_cloudy``) or <= 3/8 (``night_clear``).
    ``cloud_fraction`` is total cloud cover in [0, 1].
    """
    cloud = float(np.clip(cloud_fraction, 0.0, 1.0))
    if solar_elevation_deg <= 0.0:
        return "night_cloudy" if cloud >= NIGHT_CLOUDY_FRACTION else "night_clear"
    level = 0 if solar_elevation_deg > 60.0 else (1 if solar_elevation_deg > 35.0 else 2)
    if cloud > 0.5:
        level = min(level + 1, 2)
    return ("strong", "moderate", "slight")[level]


def class_to_index(pg_class: str) -> float:
    """Continuous stability index of a class string: ``"A"`` -> 0 ... ``"F"`` -> 5, ``"A-B"`` -> 0.5."""
    letters = [part.strip().upper() for part in pg_class.split("-")]
    if not 1 <= len(letters) <= 2 or any(len(x) != 1 or x not in CLASS_LETTERS for x in letters):
        raise ValueError(f"unknown Pasquill-Gifford class {pg_class!r}; expected e.g. 'D' or 'B-C'")
    return float(np.mean([CLASS_LETTERS.index(x) for x in letters]))


def index_to_class(stability_index: float) -> str:
    """Nearest class string of a continuous index (half-integers give ``"A-B"`` style pairs)."""
    s = float(np.clip(stability_index, 0.0, 5.0))
    doubled = int(round(2.0 * s))
    if doubled % 2 == 0:
        return CLASS_LETTERS[doubled // 2]
    return f"{CLASS_LETTERS[doubled // 2]}-{CLASS_LETTERS[doubled // 2 + 1]}"


def _wind_bin(u10_m_s: float) -> int:
    return int(np.searchsorted(_WIND_BIN_EDGES_M_S, float(u10_m_s), side="right"))


def pasquill_gifford_class(u10_m_s: float, solar_elevation_deg: float, cloud_fraction: float) -> str:
    """Pasquill (1961) stability class (``"A"`` ... ``"F"`` or an intermediate like ``"A-B"``).

    ``u10_m_s`` the 10 m wind speed (m s-1; bins < 2, 2-3, 3-5, 5-6, >= 6), ``solar_elevation_deg``
    in degrees, ``cloud_fraction`` in [0, 1]. Overcast skies (cloud >= 0.95) give neutral D day or
    night (Pasquill's footnote). Use :func:`class_to_index` or :func:`pasquill_gifford_index` for the
    continuous index of the plume model.
    """
    if float(cloud_fraction) >= OVERCAST_CLOUD_FRACTION:
        return "D"
    column = _INSOLATION_COLUMNS.index(insolation_class(solar_elevation_deg, cloud_fraction))
    return _PASQUILL_TABLE[_wind_bin(u10_m_s)][column]


def pasquill_gifford_index(u10_m_s: float, solar_elevation_deg: float, cloud_fraction: float) -> float:
    """Continuous stability index in [0, 5] of :func:`pasquill_gifford_class` (``"B-C"`` -> 1.5)."""
    return class_to_index(pasquill_gifford_class(u10_m_s, solar_elevation_deg, cloud_fraction))


def _psi_m(zeta: float) -> float:
    """Integrated stability function for momentum (Paulson 1970; Businger-Dyer, Dyer 1974)."""
    if zeta >= 0.0:
        return -5.0 * min(zeta, 1.0)
    x = (1.0 - 16.0 * zeta) ** 0.25
    log_terms = 2.0 * math.log((1.0 + x) / 2.0) + math.log((1.0 + x * x) / 2.0)
    return log_terms - 2.0 * math.atan(x) + math.pi / 2.0


def obukhov_length_from_flux_m(
    sensible_heat_flux_up_w_m2: float,
    wind_speed_10m_m_s: float,
    t2m_k: float,
    surface_pressure_pa: float,
    roughness_m: float,
    n_iter: int = 20,
) -> float:
    """Obukhov length ``L = -u*^3 rho c_p T / (kappa g H)`` (m) from the upward sensible heat flux H.

    ``u*`` follows from the 10 m wind by the log law with the Businger-Dyer correction
    ``u* = kappa U10 / (ln(10 / z0) - psi_m(10 / L))``, iterated to a fixed point (Stull 1988, *An
    Introduction to Boundary Layer Meteorology*, ch. 9). ``rho = p_s / (R_d T)``. Returns ``inf``
    for zero flux (neutral); negative L is unstable (upward heat flux), positive stable.
    """
    z = 10.0
    z0 = max(float(roughness_m), 1e-5)
    speed = max(float(wind_speed_10m_m_s), 0.1)
    rho = float(surface_pressure_pa) / (R_DRY_J_KG_K * float(t2m_k))
    heat = float(sensible_heat_flux_up_w_m2)
    if heat == 0.0:
        return math.inf
    length = math.inf
    for _ in range(n_iter):
        zeta = 0.0 if math.isinf(length) else max(z / length, -5.0)
        denominator = max(math.log(z / z0) - _psi_m(zeta), 0.5)
        u_star = VON_KARMAN * speed / denominator
        length = -(u_star**3) * rho * CP_DRY_J_KG_K * float(t2m_k) / (VON_KARMAN * G_M_S2 * heat)
    return length


def upward_heat_flux_w_m2(sshf_j_m2_accum: float, accumulation_s: float) -> float:
    """Upward sensible heat flux (W m-2) of an ECMWF ``sshf``: ``H = -sshf / accumulation_s``.

    ERA5 ``sshf`` is accumulated over ``accumulation_s`` seconds (J m-2, 3600 s for hourly reanalysis)
    and **positive downwards** (ECMWF convention).
    """
    return -float(sshf_j_m2_accum) / float(accumulation_s)


def obukhov_length_m(
    sshf_j_m2_accum: float,
    accumulation_s: float,
    u10_m_s: float,
    v10_m_s: float,
    t2m_k: float,
    surface_pressure_pa: float,
    roughness_m: float,
) -> float:
    """Obukhov length (m) from ERA5 fields.

    ``sshf`` is the ERA5 surface sensible heat flux (J m-2 accumulated over ``accumulation_s``, positive
    downwards; :func:`upward_heat_flux_w_m2`). ``fsr`` gives ``roughness_m``; ``t2m_k`` in K,
    ``surface_pressure_pa`` in Pa. See :func:`obukhov_length_from_flux_m`.
    """
    heat_up = upward_heat_flux_w_m2(sshf_j_m2_accum, accumulation_s)
    speed = math.hypot(float(u10_m_s), float(v10_m_s))
    return obukhov_length_from_flux_m(heat_up, speed, t2m_k, surface_pressure_pa, roughness_m)


def golder_index(obukhov_length: float, roughness_m: float) -> float:
    """Continuous stability index in [0, 5] from the Obukhov length (m) and roughness length (m).

    Golder (1972): each class is a line ``1/L = a + b log10(z0)``; the index interpolates linearly in
    ``1/L`` between the class lines at the given ``z0`` (clipped to A and F outside them);
    ``z0`` is clipped to [1e-3, 1] m, the range of Golder's curves.
    """
    inverse_l = 0.0 if math.isinf(obukhov_length) else 1.0 / float(obukhov_length)
    z0 = float(np.clip(roughness_m, 1e-3, 1.0))  # range of Golder's curves
    lines = _GOLDER_A + _GOLDER_B * math.log10(z0)
    return float(np.interp(inverse_l, lines, np.arange(6.0)))


def golder_class(obukhov_length: float, roughness_m: float) -> str:
    """Nearest Pasquill-Gifford class letter (A..F) of :func:`golder_index`."""
    return CLASS_LETTERS[int(round(golder_index(obukhov_length, roughness_m)))]
