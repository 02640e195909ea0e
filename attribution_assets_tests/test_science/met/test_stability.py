"""Stability classification: solar position, Pasquill table, Obukhov length and Golder classes."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from attribution_assets.science.met import stability as st

# Pasquill (1961): rows u10 < 2, 2-3, 3-5, 5-6, > 6 m/s;
# columns strong, moderate, slight insolation, night >= 4/8 cloud, night <= 3/8 cloud.
PASQUILL_ROWS = {
    1.0: ("A", "A-B", "B", "E", "F"),
    2.5: ("A-B", "B", "C", "E", "F"),
    4.0: ("B", "B-C", "C", "D", "E"),
    5.5: ("C", "C-D", "D", "D", "D"),
    7.0: ("C", "D", "D", "D", "D"),
}
# (solar elevation deg, cloud fraction) that select each column.
COLUMNS = ((70.0, 0.0), (45.0, 0.2), (25.0, 0.0), (-20.0, 0.6), (-20.0, 0.2))


@pytest.mark.parametrize("u10", sorted(PASQUILL_ROWS))
def test_pasquill_table_rows(u10: float) -> None:
    got = tuple(st.pasquill_gifford_class(u10, elev, cloud) for elev, cloud in COLUMNS)
    assert got == PASQUILL_ROWS[u10]


def test_intermediate_classes_are_half_indices() -> None:
    assert st.class_to_index("A-B") == 0.5
    assert st.class_to_index("C-D") == 2.5
    assert st.class_to_index("F") == 5.0
    assert st.pasquill_gifford_index(4.0, 45.0, 0.2) == 1.5
    assert st.index_to_class(1.5) == "B-C"
    assert st.index_to_class(3.1) == "D"
    with pytest.raises(ValueError, match="Pasquill"):
        st.class_to_index("G")


def test_overcast_is_neutral_and_cloud_lowers_insolation() -> None:
    assert st.pasquill_gifford_class(1.0, 70.0, 1.0) == "D"
    assert st.pasquill_gifford_class(1.0, -30.0, 1.0) == "D"
    assert st.insolation_class(70.0, 0.0) == "strong"
    assert st.insolation_class(70.0, 0.7) == "moderate"
    assert st.insolation_class(45.0, 0.7) == "slight"
    assert st.insolation_class(10.0, 0.0) == "slight"
    assert st.insolation_class(-1.0, 0.5) == "night_cloudy"
    assert st.insolation_class(-1.0, 0.3) == "night_clear"


def test_solar_elevation_known_geometry() -> None:
    # June solstice, local noon on the Tropic of Cancer: the sun is at the zenith.
    assert float(st.solar_elevation_deg(datetime(2024, 6, 20, 12, 0), 0.0, 23.44)) > 89.0
    # December solstice at 40 N, noon: 90 - 40 - 23.44 = 26.56 deg.
    assert float(st.solar_elevation_deg(datetime(2023, 12, 21, 12, 0), 0.0, 40.0)) == pytest.approx(
        26.56, abs=0.5
    )
    # Local noon at 90 W is 18 UTC; midnight is deep night.
    assert float(st.solar_elevation_deg(np.datetime64("2023-12-21T18:00"), -90.0, 40.0)) == pytest.approx(
        26.5, abs=1.0
    )
    assert float(st.solar_elevation_deg(datetime(2024, 6, 20, 0, 0, tzinfo=UTC), 0.0, 40.0)) < -20.0
    # Equinox at the equator: 6 UTC sunrise, elevation ~ 0.
    assert float(st.solar_elevation_deg(datetime(2024, 3, 20, 6, 7), 0.0, 0.0)) == pytest.approx(0.0, abs=1.0)
    many = st.solar_elevation_deg(
        np.array(["2024-06-20T12:00", "2024-06-20T00:00"], "datetime64[ns]"), 0.0, 23.44
    )
    assert many.shape == (2,) and many[0] > 89.0 and many[1] < -40.0


def test_obukhov_neutral_first_iterate_matches_hand_formula() -> None:
    h, u10, t, p, z0 = 200.0, 3.0, 300.0, 100000.0, 0.1
    u_star = 0.4 * u10 / math.log(10.0 / z0)
    rho = p / (287.05 * t)
    expected = -(u_star**3) * rho * 1004.7 * t / (0.4 * 9.80665 * h)
    assert st.obukhov_length_from_flux_m(h, u10, t, p, z0, n_iter=1) == pytest.approx(expected, rel=1e-12)


def test_era5_sshf_sign_convention() -> None:
    """ERA5 sshf is positive downwards: a negative accumulation is an upward flux, i.e. unstable (L < 0)."""
    daytime = st.obukhov_length_m(-250.0 * 3600.0, 3600.0, 2.0, 1.0, 300.0, 100000.0, 0.1)
    night = st.obukhov_length_m(+40.0 * 3600.0, 3600.0, 2.0, 0.0, 280.0, 100000.0, 0.1)
    assert daytime < 0 < night
    assert math.isinf(st.obukhov_length_m(0.0, 3600.0, 5.0, 0.0, 290.0, 100000.0, 0.1))
    assert st.golder_index(daytime, 0.1) < 1.0  # strongly unstable: A-B
    assert st.golder_index(night, 0.1) > 4.0  # stable at low wind: E-F
    assert st.golder_class(math.inf, 0.1) == "D"


def test_golder_lines_and_interpolation() -> None:
    z0 = 0.1  # log10 = -1: lines A..F at 1/L = -0.125, -0.066, -0.020, 0, 0.022, 0.071 m-1
    assert st.golder_index(1.0 / -0.066, z0) == pytest.approx(1.0, abs=1e-9)
    assert st.golder_index(1.0 / -0.010, z0) == pytest.approx(2.5, abs=1e-9)
    assert st.golder_index(1.0 / 0.071, z0) == pytest.approx(5.0, abs=1e-9)
    assert st.golder_index(-1.0, z0) == 0.0  # beyond A
    assert st.golder_class(1.0 / 0.022, z0) == "E"
