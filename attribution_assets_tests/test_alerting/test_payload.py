"""Alert payloads from real posterior rows (GeoParquet), the alert and attribution thresholds, the
material-change test and the idempotency key."""

from __future__ import annotations

import json

import pytest
import shapely

from attribution_assets.alerting.payload import (
    AlertPolicy,
    ChangeTolerance,
    alert_payload,
    attributed_facility,
    idempotency_key,
    is_alert,
    json_body,
    material_changes,
    material_state,
    plume_observation,
    withdrawal_payload,
)
from attribution_assets.catalog.store import read_geoparquet
from attribution_assets_tests.test_alerting.helpers import (
    EMIT_GRANULE,
    PLUME,
    PROVENANCE,
    belchatow_row,
    emit_baselines,
    overpasses,
    permian_row,
    write_event,
)


@pytest.fixture
def stored(tmp_path):
    """The Permian row as ``event_posterior`` stores it, and its intermediates, read back."""
    path = write_event(tmp_path, permian_row(), emit_baselines(), overpasses())
    assert path.parent.name == "week=2025-W33"
    key = path.stem
    row = read_geoparquet(path).to_dict("records")[0]
    baselines = read_geoparquet(tmp_path / "intermediate" / "quantification_baselines" / f"{key}.parquet")
    event_overpasses = read_geoparquet(tmp_path / "intermediate" / "event_overpasses" / f"{key}.parquet")
    return row, baselines, event_overpasses


def test_payload_of_a_stored_ch4_posterior_row(stored):
    row, baselines, event_overpasses = stored
    payload = alert_payload(row, "run-42", plume_observation(row, baselines, event_overpasses))
    # MARS fields, kg/h
    assert (payload["lat"], payload["lon"]) == (31.908, -103.6112)
    assert payload["ch4_fluxrate"] == 6000.0 and payload["ch4_fluxrate_std"] == 1200.0
    assert "co2_fluxrate" not in payload and payload["fluxrate_units"] == "kg/h"
    assert payload["tile_date"] == "2025-08-14" and payload["observation_time"] == "2025-08-14T17:31:00Z"
    assert payload["satellite"] == "EMIT" and payload["granule"] == EMIT_GRANULE
    assert shapely.geometry.shape(payload["plume"]).equals(PLUME)
    # the 90 % interval, probabilities, attribution, run and provenance
    assert (payload["ch4_fluxrate_p05"], payload["ch4_fluxrate_p95"]) == (4200.0, 8400.0)
    assert payload["p_source"] == 1.0 and payload["alert_score"] == 1.0 and payload["detected"] is True
    assert payload["facility_id"] == "PERMIAN-PAD-A" and payload["facility_name"] == "Permian well pad A"
    assert payload["facility_probability"] == 0.93 and payload["p_unlisted_source"] == 0.07
    assert payload["run_id"] == "run-42" and payload["provenance"] == json.loads(PROVENANCE)
    assert payload["event_time"] == "2025-08-14T17:31:00Z" and payload["week"] == "2025-W33"
    assert json.loads(json_body(payload)) == payload  # strict JSON round trip


def test_co2_payload_names_the_gas_and_has_no_plume_without_a_mask():
    row = belchatow_row().to_dict("records")[0]
    payload = alert_payload(row, "run-1")
    assert payload["co2_fluxrate"] == 4.4e6 and payload["co2_fluxrate_std"] == 8.8e5
    assert not any(name.startswith("ch4_") for name in payload)
    assert payload["satellite"] == "OCO-2" and payload["plume"] is None
    assert payload["tile_date"] == "2025-08-13"  # the event's date when no overpass time is known
    assert payload["ime_fluxrate"] is None  # NaN in the row: null in JSON
    json_body(payload)  # raises on NaN


def test_no_mask_no_polygon_and_granule_from_provenance(stored):
    row, _, _ = stored
    observation = plume_observation(row)
    assert observation.instrument == "EMIT" and observation.granule == EMIT_GRANULE
    assert observation.polygon is None and observation.time is None
    without_mask = emit_baselines(polygon=None)
    assert plume_observation(row, without_mask).polygon is None


@pytest.mark.parametrize("score, expected", [(0.49, False), (0.5, True), (0.9, True), (float("nan"), False)])
def test_alert_threshold(score, expected):
    row = permian_row(score=score).to_dict("records")[0]
    assert is_alert(row) is expected


def test_alert_threshold_is_a_setting():
    row = permian_row(score=0.6).to_dict("records")[0]
    assert is_alert(row, AlertPolicy(min_alert_score=0.5))
    assert not is_alert(row, AlertPolicy(min_alert_score=0.7))


@pytest.mark.parametrize("p, named", [(0.93, True), (0.5, True), (0.49, False), (0.1, False)])
def test_facility_named_only_above_its_threshold(p, named):
    row = permian_row(p_facility=p).to_dict("records")[0]
    facility_id, name, probability = attributed_facility(row)
    if named:
        assert (facility_id, name, probability) == ("PERMIAN-PAD-A", "Permian well pad A", pytest.approx(p))
    else:
        assert (facility_id, name, probability) == ("unlisted", "unlisted", None)
        assert alert_payload(row, "r")["facility_id"] == "unlisted"
    stricter = AlertPolicy(min_facility_probability=0.95)
    assert attributed_facility(row, stricter)[0] == "unlisted"


def test_unlisted_best_hypothesis_stays_unlisted():
    row = permian_row(p_facility=0.2).to_dict("records")[0]  # "unlisted" (0.8) is the most probable
    assert row["attributed_facility_id"] == "unlisted"
    assert attributed_facility(row, AlertPolicy(min_facility_probability=0.0))[0] == "unlisted"


def _state(**row_args):
    return material_state(alert_payload(permian_row(**row_args).to_dict("records")[0], "r"))


def test_material_change_beyond_rounding_only():
    base = _state(rate_kg_h=6000.0)
    assert material_changes(None, base) == ["new"]
    assert material_changes(base, _state(rate_kg_h=6000.0)) == []
    assert material_changes(base, _state(rate_kg_h=6030.0)) == []  # 0.5 %: within rounding
    changed = material_changes(base, _state(rate_kg_h=6300.0))  # 5 %
    assert "ch4_fluxrate" in changed and "ch4_fluxrate_p95" in changed
    assert material_changes(base, _state(detected=False)) == ["detected"]
    assert material_changes(base, _state(p_facility=0.3)) == ["facility_id"]
    assert material_changes(base, _state(source_lat=31.9090)) == ["lat"]
    assert material_changes(base, _state(source_lat=31.90805)) == []  # 5 m
    assert material_changes(base, _state(rate_kg_h=6030.0), ChangeTolerance(rate_rel=0.001)) != []


def test_withdrawal_is_material_once():
    sent = _state()
    withdrawn = material_state(withdrawal_payload("K", "below threshold", "r", "2025-W33"))
    assert material_changes(sent, withdrawn) == ["withdrawn"]
    assert material_changes(withdrawn, withdrawn) == []
    assert material_changes(withdrawn, sent) == ["withdrawn"]


def test_idempotency_key_is_deterministic_and_follows_material_state():
    key = idempotency_key("K", _state())
    assert key == idempotency_key("K", _state()) and len(key) == 40
    assert key != idempotency_key("K", _state(rate_kg_h=6300.0))
    assert key != idempotency_key("other", _state())
