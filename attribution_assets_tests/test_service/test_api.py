"""The HTTP alert service over real HTTP on loopback: readiness, the OpenAPI schema, the bearer token,
problem+json errors, and the fast answer of ``POST /events`` (registered, recorded, run submitted)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterRunStatus, RunsFilter

from attribution_assets import cli
from attribution_assets.events import DetectionEvent, registered_events
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.pipeline import attribute_event
from attribution_assets.science.inversion.settings import FAST_ANSWER_MAP
from attribution_assets.service.limits import MAX_BODY_BYTES
from attribution_assets.service.runtime import RUN_TAGS, WARM_UP_EVENT_ID, ServiceRuntime
from attribution_assets.times import iso_z
from attribution_assets_tests.test_service.conftest import TOKEN, Service, assert_row_equals

PROBLEM = "application/problem+json"
JSON = {"content-type": "application/json"}
NOWHERE = {"event_time": "2025-08-14T12:00:00Z", "latitude": -30.0, "longitude": -140.0, "gas": "CH4"}
NOWHERE_KEY = "CH4_20250814T120000Z_30.0000S_140.0000W"
UNSEEN = {"event_time": "2025-01-02T03:04:05Z", "latitude": 10.0, "longitude": 10.0, "gas": "CO2"}
UNSEEN_KEY = "CO2_20250102T030405Z_10.0000N_10.0000E"


def body(event: DetectionEvent) -> dict:
    """The request body of a sample event."""
    return {
        "event_time": iso_z(event.time),
        "latitude": event.latitude,
        "longitude": event.longitude,
        "gas": event.gas,
        "event_id": event.event_id,
    }


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    """An RFC 9457 problem of ``status`` whose type ends in ``slug``; returns the document."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == f"urn:attribution-assets:problem:{slug}"
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert problem["instance"] == response.request.url.path
    return problem


def test_serve_parses_to_its_handler_with_sampler_options() -> None:
    args = cli.build_parser().parse_args(
        ["serve", "--port", "8123", "--with-daemon", "--chains", "2", "--warmup", "100", "--no-escalate"]
    )
    assert args.func is cli.cmd_serve
    assert (args.host, args.port, args.with_daemon) == ("127.0.0.1", 8123, True)
    # only the options given: the others keep the ATTRIBUTION_SETTINGS file's values or the defaults
    assert cli.sampler_settings(args) == {"num_chains": 2, "num_warmup": 100, "escalate": False}
    assert cli.build_parser().parse_args(["serve"]).with_daemon is False


def test_health_is_open_and_reports_ready(service: Service) -> None:
    response = httpx.get(f"{service.base}/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ready" and health["ready"] is True
    assert health["token_required"] is True and health["inversions"] == "serialised"
    assert {"workspace", "catalog"} <= set(health["steps_s"]) and "compile" not in health["steps_s"]
    assert health["archive"] == str(SAMPLE_ARCHIVE) and health["output"] == str(service.config.output)
    assert 0 < health["ready_after_s"] <= health["uptime_s"]
    assert health["daemon"] is False


def test_openapi_documents_routes_problems_and_the_bearer_token(service: Service) -> None:
    schema = httpx.get(f"{service.base}/openapi.json").json()
    assert {"/events", "/events/{event_key}", "/health"} <= set(schema["paths"])
    post = schema["paths"]["/events"]["post"]
    for status in ("401", "404", "422", "503"):
        assert PROBLEM in post["responses"][status]["content"], status
    assert "202" in post["responses"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    request = schema["components"]["schemas"]["EventRequest"]
    assert set(request["properties"]) == {"event_time", "latitude", "longitude", "gas", "event_id"}
    assert set(request["required"]) == {"event_time", "latitude", "longitude"}
    answer = schema["components"]["schemas"]["EventAnswer"]["properties"]
    assert {"emission_rate_kg_h", "emission_rate_kg_h_p05", "emission_rate_kg_h_p95", "p_source", "detected",
            "method", "instruments", "facility", "status", "run"} <= set(answer)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer not-the-token"}, "wrong bearer token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing bearer token"),
    ],
)
def test_event_routes_need_the_token(service: Service, headers: dict, reason: str) -> None:
    for method, path, payload in [("POST", "/events", UNSEEN), ("GET", f"/events/{UNSEEN_KEY}", None)]:
        response = httpx.request(method, f"{service.base}{path}", json=payload, headers=headers)
        problem = assert_problem(response, 401, "unauthorized")
        assert reason in problem["detail"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert not service.instance.has_dynamic_partition("detection_events", UNSEEN_KEY)


VALID = {"event_time": "2025-08-14T17:31:00Z", "latitude": 31.9095, "longitude": -103.61, "gas": "CH4"}


@pytest.mark.parametrize(
    ("changes", "slug", "reason"),
    [
        ({"event_time": "yesterday"}, "invalid-event", "event_time 'yesterday' is not ISO 8601"),
        ({"event_time": "2025-08-14T17:31:00"}, "invalid-event", "has no time zone; expected UTC"),
        ({"latitude": 91.0}, "invalid-event", "latitude 91.0 outside [-90, 90]"),
        ({"longitude": -180.5}, "invalid-event", "longitude -180.5 outside [-180, 180]"),
        ({"gas": "N2O"}, "invalid-event", "gas 'N2O' is not one of ('CH4', 'CO2')"),
        ({"event_time": "1850-01-01T00:00:00Z"}, "invalid-event", "outside the years [1900, 2200)"),
        ({"latitude": None}, "invalid-request", "latitude: Input should be a valid number"),
        ({"longitude": "east"}, "invalid-request", "longitude: Input should be a valid number"),
    ],
)
def test_an_invalid_event_is_a_422_problem_naming_the_reason(
    service: Service, changes: dict, slug: str, reason: str
) -> None:
    problem = assert_problem(service.client.post("/events", json=VALID | changes), 422, slug)
    assert reason in problem["detail"]


def test_a_missing_field_or_a_body_that_is_not_json_is_a_422_problem(service: Service) -> None:
    missing = {k: v for k, v in VALID.items() if k != "latitude"}
    assert "latitude: Field required" in assert_problem(
        service.client.post("/events", json=missing), 422, "invalid-request"
    )["detail"]
    headers = {"content-type": "text/plain"}
    not_json = service.client.post("/events", content=b"event_time=now", headers=headers)
    assert_problem(not_json, 422, "invalid-request")


def test_an_oversized_body_is_a_413_before_it_is_read_parsed_or_authenticated(service: Service) -> None:
    """Declared over the limit: refused at once, with or without the token. Sent without a length
    (chunked): refused once the limit is passed. Nothing is registered."""
    registered = set(service.instance.get_dynamic_partitions("detection_events"))
    padded = json.dumps(VALID | {"event_id": "x" * (2 * MAX_BODY_BYTES)}).encode()
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
        response = httpx.post(f"{service.base}/events", content=padded, headers=headers | JSON)
        problem = assert_problem(response, 413, "payload-too-large")
        assert f"at most {MAX_BODY_BYTES} bytes" in problem["detail"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(padded), 4096):
            yield padded[start:start + 4096]

    response = httpx.post(f"{service.base}/events", content=chunks(), headers=JSON)
    assert f"more than {MAX_BODY_BYTES} bytes" in assert_problem(response, 413, "payload-too-large")["detail"]
    small = json.dumps(VALID | {"latitude": 91.0}).encode()  # under the limit, chunked: read and judged
    response = service.client.post("/events", content=iter([small[:10], small[10:]]), headers=JSON)
    assert "latitude 91.0 outside" in assert_problem(response, 422, "invalid-event")["detail"]
    assert set(service.instance.get_dynamic_partitions("detection_events")) == registered


def test_an_event_outside_every_footprint_is_a_404_problem_and_is_not_registered(service: Service) -> None:
    problem = assert_problem(service.client.post("/events", json=NOWHERE), 404, "no-observations")
    assert NOWHERE_KEY in problem["detail"] and "no instrument observed the event" in problem["detail"]
    assert not service.instance.has_dynamic_partition("detection_events", NOWHERE_KEY)
    assert not service.instance.get_runs(RunsFilter(tags={"dagster/partition": NOWHERE_KEY}))
    assert_problem(service.client.get(f"/events/{NOWHERE_KEY}"), 404, "unknown-event")


def test_get_with_a_malformed_key_is_a_422_problem_and_unknown_routes_are_problems(service: Service) -> None:
    problem = assert_problem(service.client.get("/events/CH4_yesterday"), 422, "invalid-event-key")
    assert "is not an event key" in problem["detail"]
    assert_problem(service.client.get("/no-such-route"), 404, "not-found")
    assert_problem(service.client.delete("/events"), 405, "method-not-allowed")


def _check_fast_answer(answer: dict, row, key: str) -> None:
    """The headline fields of a fast answer equal the fast row's values exactly."""
    assert answer["event_key"] == key and answer["answer"] == "fast"
    for name in ("emission_rate_kg_h", "emission_rate_kg_h_p05", "emission_rate_kg_h_p95", "p_source",
                 "alert_score", "method"):
        assert answer[name] == row[name], name
    assert answer["detected"] is bool(row["detected"])
    assert "MAP + Laplace" in answer["method"]
    assert answer["instruments"] == row["instruments"].split(",")
    assert answer["facility"] == {
        "id": row["attributed_facility_id"],
        "name": row["attributed_facility_name"],
        "probability": row["attributed_probability"],
    }


def test_post_answers_the_fast_posterior_registers_the_event_records_it_and_submits_the_run(
    service: Service, sample_events: dict, tmp_path
) -> None:
    event = sample_events["belchatow-co2"]
    response = service.client.post("/events", json=body(event))
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/events/{event.key}"
    answer = response.json()

    direct = attribute_event(event, SAMPLE_ARCHIVE, service.config.settings, output=tmp_path, fast=True)
    row = direct.row.iloc[0]
    assert_row_equals(answer["row"], row)
    _check_fast_answer(answer, row, event.key)
    assert answer["seconds"] > 0 and answer["row"]["event_id"] == "belchatow-co2"

    instance = service.instance
    assert instance.has_dynamic_partition("detection_events", event.key)
    assert event.key in {e.key for e in registered_events(service.config.layout.event_registry_path)}

    records = instance.fetch_observations(
        AssetRecordsFilter(asset_key=AssetKey("event_posterior"), asset_partitions=[event.key]), limit=5
    ).records
    assert len(records) == 1
    metadata = {name: value.value for name, value in records[0].asset_observation.metadata.items()}
    assert metadata["method"] == row["method"] and metadata["answer"] == "fast"
    assert metadata["emission_rate_kg_h"] == round(row["emission_rate_kg_h"], 1)
    assert metadata["emission_rate_kg_h_p95"] == round(row["emission_rate_kg_h_p95"], 1)
    assert metadata["p_source"] == round(row["p_source"], 4) and metadata["detected"] is bool(row["detected"])
    assert metadata["source_lon_deg"] == round(row["source_lon"], 6)
    assert metadata["attributed_facility_id"] == row["attributed_facility_id"]

    runs = instance.get_runs(RunsFilter(job_name="attribute_event", tags={"dagster/partition": event.key}))
    assert [run.run_id for run in runs] == [answer["run"]["run_id"]]
    assert runs[0].status == DagsterRunStatus.QUEUED and answer["run"]["status"] == "QUEUED"
    assert answer["status"] == "queued"
    assert runs[0].run_config == service.config.run_config
    assert RUN_TAGS.items() <= runs[0].tags.items()

    got = service.client.get(f"/events/{event.key}")
    assert got.status_code == 200
    latest = got.json()
    assert latest["answer"] == "fast" and latest["status"] == "queued" and latest["run"] == answer["run"]
    assert latest["row"] == answer["row"] and latest["answered_at"] == answer["answered_at"]

    # a restarted service no longer holds the exact answer: it reads the observation back (rounded)
    restarted = ServiceRuntime(service.config, instance).latest(event.key)
    assert restarted.answer == "fast" and restarted.run.run_id == answer["run"]["run_id"]
    assert restarted.emission_rate_kg_h == round(row["emission_rate_kg_h"], 1)
    assert restarted.facility.id == row["attributed_facility_id"]


@pytest.mark.slow
def test_the_three_instrument_sample_event_gets_its_exact_fast_answer_and_one_run(
    service: Service, sample_events: dict, tmp_path
) -> None:
    event = sample_events[WARM_UP_EVENT_ID]
    response = service.client.post("/events", json=body(event))
    assert response.status_code == 202, response.text
    direct = attribute_event(event, SAMPLE_ARCHIVE, service.config.settings, output=tmp_path, fast=True)
    assert direct.summary.instruments == ("EMIT", "GHGSAT", "TROPOMI")
    # the fast answer's provenance names the inversion it ran: Laplace draws after the cheaper MAP
    provenance = json.loads(direct.row.iloc[0]["provenance"])
    assert provenance["sampler"]["sampler"] == "laplace"
    assert provenance["settings"]["inversion"]["map_position_grid"] == FAST_ANSWER_MAP["map_position_grid"]
    assert direct.settings == service.config.settings.fast()
    assert_row_equals(response.json()["row"], direct.row.iloc[0])
    _check_fast_answer(response.json(), direct.row.iloc[0], event.key)

    # posted again while its run is still queued: the same answer, and the queued run is reused
    again = service.client.post("/events", json=body(event))
    assert again.status_code == 202
    assert again.json()["row"] == response.json()["row"] and again.json()["run"] == response.json()["run"]
    runs_filter = RunsFilter(job_name="attribute_event", tags={"dagster/partition": event.key})
    runs = service.instance.get_runs(runs_filter)
    assert [run.run_id for run in runs] == [response.json()["run"]["run_id"]]
