"""Property-based tests (hypothesis): the event-key codec, event-id sanitising, unit conversions,
plume mass conservation, and alert parsing that raises nothing but AlertFormatError on any bytes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution_assets.csv_safety import FORMULA_PREFIXES, formula_safe_text
from attribution_assets.events import (
    EVENT_YEARS,
    GASES,
    KEY_PATTERN,
    MAX_EVENT_ID_CHARS,
    AlertFormatError,
    DetectionEvent,
    event_key,
    is_event_key,
    parse_event_key,
    read_alerts,
    sanitize_event_id,
)
from attribution_assets.science import units
from attribution_assets.science.forward.plume import briggs_sigma_y_m, column_enhancement_kg_m2

FAST = settings(max_examples=150, deadline=None, database=None)
PLUME = settings(max_examples=60, deadline=None, database=None)
FILES = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
times = st.datetimes(
    min_value=datetime(EVENT_YEARS[0], 1, 2),
    max_value=datetime(EVENT_YEARS[1] - 1, 12, 30),
    timezones=offsets,
)
events = st.builds(
    DetectionEvent,
    time=times,
    longitude=st.floats(-180.0, 180.0),
    latitude=st.floats(-90.0, 90.0),
    gas=st.sampled_from(GASES),
)


# --- event-key codec ---------------------------------------------------------------------------------

@FAST
@given(events)
def test_event_key_round_trips(event: DetectionEvent) -> None:
    key = event_key(event)
    assert is_event_key(key)
    assert not any(bad in key for bad in (",", "|", "/", "...", " "))
    back = parse_event_key(key)
    assert back == event and event_key(back) == key
    assert back.time.tzinfo == UTC and back.time.microsecond == 0


@FAST
@given(st.datetimes(timezones=st.just(UTC)), st.floats(allow_nan=True), st.floats(allow_nan=True))
def test_any_event_is_valid_or_an_alert_format_error(time: datetime, lon: float, lat: float) -> None:
    try:
        event = DetectionEvent(time, lon, lat)
    except AlertFormatError:
        assert not (EVENT_YEARS[0] <= time.year < EVENT_YEARS[1] and abs(lon) <= 180 and abs(lat) <= 90)
    else:
        assert parse_event_key(event.key) == event


@FAST
@given(st.text(max_size=60) | st.from_regex(KEY_PATTERN, fullmatch=True))
def test_a_text_is_a_key_exactly_when_it_round_trips(text: str) -> None:
    """Every text parses to the one event whose key it is, or raises AlertFormatError (nothing else)."""
    try:
        event = parse_event_key(text)
    except AlertFormatError:
        assert not is_event_key(text)
    else:
        assert event_key(event) == text and is_event_key(text)


# --- event ids ---------------------------------------------------------------------------------------

@FAST
@given(st.text(max_size=200))
def test_sanitised_event_ids_are_safe_and_stable(raw: str) -> None:
    clean = sanitize_event_id(raw)
    if clean is None:
        return
    assert 0 < len(clean) <= MAX_EVENT_ID_CHARS
    assert not clean.startswith(FORMULA_PREFIXES) or formula_safe_text(clean) == clean
    assert "/" not in clean and "\\" not in clean and clean == clean.strip()
    assert all(ch == " " or ch.isprintable() for ch in clean)
    assert sanitize_event_id(clean) == clean


@FAST
@given(st.text(max_size=80))
def test_formula_safe_text_is_idempotent_and_only_prefixes(text: str) -> None:
    safe = formula_safe_text(text)
    assert safe in (text, "'" + text)
    assert formula_safe_text(safe) == safe


# --- unit conversions --------------------------------------------------------------------------------

positive = st.floats(1e-6, 1e9)
pressures = st.floats(5e4, 1.1e5)
scalars = st.floats(-1e3, 1e3)


@FAST
@given(positive)
def test_rate_conversions_are_inverse(rate: float) -> None:
    assert units.kg_s_to_kg_h(units.kg_h_to_kg_s(rate)) == pytest.approx(rate, rel=1e-12)
    assert units.kg_h_to_kg_s(units.kg_s_to_kg_h(rate)) == pytest.approx(rate, rel=1e-12)
    assert units.kg_h_to_kg_s(rate) == pytest.approx(rate / 3600.0, rel=1e-12)


@FAST
@given(positive, positive, scalars, scalars)
def test_rate_conversions_are_linear(x: float, y: float, a: float, b: float) -> None:
    combined = units.kg_h_to_kg_s(a * x + b * y)
    expected = a * units.kg_h_to_kg_s(x) + b * units.kg_h_to_kg_s(y)
    # + 1e-300 kg/s: rates near the subnormal floats (a or b ~1e-308) lose their relative precision
    tolerance = 1e-9 * (abs(a * x) + abs(b * y)) / 3600.0 + 1e-300
    assert combined == pytest.approx(expected, rel=1e-9, abs=tolerance)


@FAST
@given(pressures, pressures, st.floats(0.0, 10.0), st.sampled_from(GASES))
def test_column_mass_is_linear_in_pressure(p1: float, p2: float, a: float, gas: str) -> None:
    f = units.kg_m2_per_mole_fraction
    assert f(a * p1 + p2, gas) == pytest.approx(a * f(p1, gas) + f(p2, gas), rel=1e-12)
    assert units.kg_m2_per_ppm(p1, gas) == pytest.approx(1000.0 * units.kg_m2_per_ppb(p1, gas), rel=1e-12)
    assert units.kg_m2_per_ppb(p1, gas) == pytest.approx(1e-9 * f(p1, gas), rel=1e-12)
    ratio = units.kg_m2_per_mole_fraction(p1, "CO2") / units.kg_m2_per_mole_fraction(p1, "CH4")
    assert ratio == pytest.approx(units.M_CO2_KG_MOL / units.M_CH4_KG_MOL, rel=1e-12)


def test_one_ppb_ch4_at_standard_pressure() -> None:
    assert units.kg_m2_per_ppb(units.STANDARD_PRESSURE_PA, "CH4") == pytest.approx(5.72e-6, rel=2e-3)


# --- plume mass conservation -------------------------------------------------------------------------

TRANSECT_POINTS = 20001


@jax.jit
def _transect_flux_kg_s(
    q: jax.Array,
    speed: jax.Array,
    direction: jax.Array,
    stability: jax.Array,
    x_m: jax.Array,
    half: jax.Array,
) -> jax.Array:
    """``u * integral(Omega dt)`` over a crosswind transect of half-width ``half`` (m) at ``x_m`` downwind."""
    along = jnp.stack([jnp.cos(direction), jnp.sin(direction)])
    across = jnp.stack([-along[1], along[0]])
    t = jnp.linspace(-half, half, TRANSECT_POINTS)
    points = x_m * along[None, :] + t[:, None] * across[None, :]
    omega = column_enhancement_kg_m2(points, jnp.zeros(2), q, speed * along[0], speed * along[1], stability)
    return speed * jnp.sum(omega) * (t[1] - t[0])


@PLUME
@given(
    q=st.floats(0.01, 100.0),
    speed=st.floats(0.5, 20.0),
    direction=st.floats(0.0, 2 * math.pi),
    stability=st.floats(0.0, 5.0),
    x_m=st.floats(300.0, 8000.0),
)
def test_plume_flux_across_the_plume_equals_the_source_rate(
    q: float, speed: float, direction: float, stability: float, x_m: float
) -> None:
    """u * integral(Omega dy) = Q on a crosswind transect at any downwind distance, wind and stability."""
    half = 12.0 * max(float(briggs_sigma_y_m(x_m, stability)), 15.0)
    flux = float(_transect_flux_kg_s(q, speed, direction, stability, x_m, half))
    assert flux == pytest.approx(q, rel=1e-3)


# --- alert parsing on arbitrary input ----------------------------------------------------------------

CSV_HEADER = "event_id,event_time,latitude,longitude,gas\n"
csv_bodies = st.text(alphabet=st.sampled_from(list(',"\n\r\t =+-@.:TZ0123456789eNa\x00\\/\'')), max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
alert_fields = st.fixed_dictionaries(
    {},
    optional={
        "event_time": st.sampled_from(["2025-08-14T17:31:00Z", "2025-08-14T17:31:00", "x", ""]) | json_values,
        "latitude": st.floats() | st.text(max_size=8) | json_values,
        "longitude": st.floats() | st.text(max_size=8) | json_values,
        "gas": st.sampled_from(["CH4", "co2", "N2O"]) | json_values,
        "event_id": st.text(max_size=30) | json_values,
    },
)
features = st.fixed_dictionaries(
    {},
    optional={
        "type": st.just("Feature") | json_values,
        "properties": alert_fields | json_values,
        "geometry": st.fixed_dictionaries(
            {"type": st.just("Point")}, optional={"coordinates": st.lists(json_values, max_size=3)}
        ) | json_values,
    },
)
documents = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.just("FeatureCollection"), "features": st.lists(features, max_size=4)}),
    st.fixed_dictionaries({"features": json_values}),
)


def _parses_or_alert_format_error(path: Path) -> None:
    try:
        found = read_alerts(path)
    except AlertFormatError as error:
        assert str(error).startswith(str(path))
    else:
        assert found and all(is_event_key(e.key) for e in found)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FILES
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_alert_format_error(fuzz_dir: Path, data: bytes) -> None:
    for suffix in (".csv", ".geojson"):
        path = fuzz_dir / f"alerts{suffix}"
        path.write_bytes(data)
        _parses_or_alert_format_error(path)


@FILES
@given(csv_bodies)
def test_arbitrary_csv_rows_raise_only_alert_format_error(fuzz_dir: Path, body: str) -> None:
    path = fuzz_dir / "rows.csv"
    path.write_text(CSV_HEADER + body, encoding="utf-8")
    _parses_or_alert_format_error(path)


@FILES
@given(documents)
def test_arbitrary_geojson_raises_only_alert_format_error(fuzz_dir: Path, document: object) -> None:
    path = fuzz_dir / "alerts.geojson"
    path.write_text(json.dumps(document), encoding="utf-8")
    _parses_or_alert_format_error(path)
