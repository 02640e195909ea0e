"""The ``attribution`` command line: parser, error exits, summary table, ``events`` and ``backfill``."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, RunsFilter, job, op
from dagster._core.storage.tags import PRIORITY_TAG

from attribution_assets import cli
from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    ROLLUP_PRIORITY,
    EventOutcome,
    build_parser,
    ensure_instance_home,
    exit_code,
    failure_path,
    longest_first,
    main,
    step_failure,
)
from attribution_assets.events import DetectionEvent, read_alerts, record_events
from attribution_assets.paths import REPO_ROOT, SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.resources import OutputStore
from attribution_assets_tests.test_access.loopback import Loopback
from attribution_assets_tests.test_access.test_secrets import files_holding

PERMIAN = DetectionEvent(datetime(2025, 8, 14, 17, 31, tzinfo=UTC), -103.61, 31.9095, "CH4", "permian-1")
BELCHATOW = DetectionEvent(datetime(2025, 6, 10, 11, 5, tzinfo=UTC), 19.3306, 51.2664, "CO2", "belchatow")
NO_ID = DetectionEvent(datetime(2025, 8, 15, 6, 0, tzinfo=UTC), 58.0, 38.5, "CH4")


def _alerts_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("event_id,event_time,latitude,longitude,gas\n" + "\n".join(rows) + "\n")
    return path


def _posterior_row(**overrides: object) -> pd.Series:
    row = {
        "gas": "CH4",
        "instruments": "EMIT+TROPOMI",
        "emission_rate_kg_h": 6123.4,
        "emission_rate_kg_h_p05": 4500.0,
        "emission_rate_kg_h_p95": 7800.0,
        "emission_rate_upper_limit_kg_h": 9500.0,
        "detected": True,
        "attributed_facility_name": "Permian well pad 7 (Loving County, TX)",
        "attributed_probability": 0.91,
        "p_unlisted_source": 0.05,
    }
    return pd.Series({**row, **overrides})


# --- parser ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "command", "values"),
    [
        (["demo", "--output", "out"], cli.cmd_demo, {"output": "out"}),
        (["demo"], cli.cmd_demo, {"output": None}),
        (
            ["run", "--archive", "a", "--alerts", "al.csv", "--output", "o"],
            cli.cmd_run,
            {"archive": "a", "alerts": "al.csv", "output": "o"},
        ),
        (["events"], cli.cmd_events, {"output": None}),
        (["events", "--output", "o"], cli.cmd_events, {"output": "o"}),
        (
            ["backfill", "--week", "2025-W33"],
            cli.cmd_backfill,
            {"week": "2025-W33", "archive": None, "output": None, "alerts": None},
        ),
        (
            ["backfill", "--week", "2025-W33", "--archive", "a", "--output", "o", "--alerts", "x.geojson"],
            cli.cmd_backfill,
            {"week": "2025-W33", "archive": "a", "output": "o", "alerts": "x.geojson"},
        ),
        (["dev"], cli.cmd_dev, {"archive": None, "output": None, "port": 3000}),
        (["dev", "--port", "3111", "--archive", "a"], cli.cmd_dev, {"port": 3111, "archive": "a"}),
    ],
)
def test_every_subcommand_parses_to_its_handler(argv: list[str], command, values: dict) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]
    assert args.func is command
    for name, value in values.items():
        assert getattr(args, name) == value, name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: command"),
        (["launch"], "invalid choice: 'launch'"),
        (["run", "--alerts", "a.csv", "--output", "o"], "required: --archive"),
        (["run", "--archive", "a", "--output", "o"], "required: --alerts"),
        (["run", "--archive", "a", "--alerts", "a.csv"], "required: --output"),
        (["backfill"], "required: --week"),
        (["dev", "--port", "http"], "invalid int value: 'http'"),
        (["events", "--week", "2025-W33"], "unrecognized arguments: --week"),
    ],
)
def test_bad_command_lines_exit_with_usage(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: attribution")
    assert message in err


def test_verbose_switches_the_console_log_level() -> None:
    quiet = build_parser().parse_args(["events"])
    assert cli.log_config(quiet) == {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    verbose = build_parser().parse_args(["demo", "--verbose"])
    assert cli.log_config(verbose)["loggers"]["console"]["config"]["log_level"] == "INFO"


# --- malformed alert files exit with the file, the row and the reason --------------------------------


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["a,2025-08-14T17:31:00Z,,-103.61,CH4"], "row 2: missing latitude"),
        (["a,2025-08-14T17:31:00Z,31.9,-103.61,CH4", "b,last tuesday,31.9,-103.61,CH4"], "row 3: event_time"),
        (["a,2025-08-14T17:31:00,31.9,-103.61,CH4"], "has no time zone"),
        (["a,2025-08-14T17:31:00Z,31.9,-103.61,N2O"], "gas 'N2O' is not one of"),
        (["a,2025-08-14T17:31:00Z,97.0,-103.61,CH4"], "latitude 97.0 outside [-90, 90]"),
    ],
)
def test_run_exits_on_a_malformed_alerts_csv(tmp_path: Path, rows: list[str], expected: str) -> None:
    alerts = _alerts_csv(tmp_path / "alerts.csv", rows)
    argv = ["run", "--archive", str(tmp_path), "--alerts", str(alerts), "--output", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith(f"attribution: {alerts}")
    assert expected in message
    assert not (tmp_path / "o").exists(), "nothing may be written before the alerts are valid"


def test_run_exits_on_a_missing_or_malformed_geojson(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(SystemExit, match=r"^attribution: .*nowhere.csv: alert file not found"):
        main(["run", "--archive", str(tmp_path), "--alerts", str(missing), "--output", str(tmp_path)])
    not_geojson = tmp_path / "alerts.geojson"
    not_geojson.write_text(json.dumps({"type": "Feature", "properties": {}}))
    with pytest.raises(SystemExit, match="not a GeoJSON FeatureCollection"):
        main(["run", "--archive", str(tmp_path), "--alerts", str(not_geojson), "--output", str(tmp_path)])
    no_time = tmp_path / "no_time.geojson"
    feature = {"type": "Feature", "properties": {"gas": "CH4"},
               "geometry": {"type": "Point", "coordinates": [-103.61, 31.9]}}
    no_time.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    with pytest.raises(SystemExit, match="feature 0: missing event_time"):
        main(["run", "--archive", str(tmp_path), "--alerts", str(no_time), "--output", str(tmp_path)])


def test_backfill_exits_on_malformed_alerts(tmp_path: Path) -> None:
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["a,2025-08-14T17:31:00Z,31.9,-103.61,XX"])
    with pytest.raises(SystemExit, match="gas 'XX'"):
        main(["backfill", "--week", "2025-W33", "--output", str(tmp_path), "--alerts", str(alerts)])


@pytest.mark.parametrize("week", ["2025-33", "2025-W99"])
def test_backfill_exits_on_a_malformed_week(tmp_path: Path, week: str) -> None:
    with pytest.raises(SystemExit, match="is not an ISO week"):
        main(["backfill", "--week", week, "--output", str(tmp_path)])


# --- summary table --------------------------------------------------------------------------------


def test_summary_table_columns_attribution_and_failures() -> None:
    outcomes = [
        EventOutcome(PERMIAN, True, 12.0, _posterior_row()),
        EventOutcome(NO_ID, True, 9.0, _posterior_row(attributed_facility_name="Korpezhe compressor",
                                                      attributed_probability=0.2, p_unlisted_source=0.7)),
        EventOutcome(PERMIAN, True, 9.0, _posterior_row(detected=False)),
        EventOutcome(PERMIAN, True, 9.0, _posterior_row(
            attributed_facility_name="", attributed_probability=0.0, p_unlisted_source=1.0
        )),
        EventOutcome(BELCHATOW, False, 3.0, None, "source_posterior: " + "x" * 200),
    ]
    lines = cli.summary_table(outcomes).splitlines()
    header, rule, listed, unlisted, undetected, unnamed, failed = lines
    assert header.split()[:3] == ["event", "gas", "instruments"]
    assert "attributed to (probability)" in header and "truth" not in header
    assert rule == "-" * len(header)

    assert listed.split()[:3] == ["permian-1", "CH4", "EMIT+TROPOMI"]
    assert "6,123  [4,500 .. 7,800]" in listed
    assert "Permian well pad 7 (Loving (0.91)" in listed, "the facility name is cut to 26 characters"
    assert listed.split()[7] == "yes"
    # the event without an operator id is listed under its partition key
    assert unlisted.startswith(NO_ID.key)
    assert unlisted.rstrip().endswith("unlisted source (0.70)")
    assert undetected.split()[-2] == "no" and undetected.rstrip().endswith(" -")
    assert "6,123  [not detected, below 9,500]" in undetected, "a non-detection's interval: its upper limit"
    # a detected plume with no inventory candidate is attributed to a source not in the inventory
    assert unnamed.rstrip().endswith("unlisted source (1.00)")
    assert failed.startswith("belchatow          CO2  FAILED: source_posterior: xxx")
    assert failed.endswith("x" * 102) and len(failed.split("FAILED: ")[1]) == 120


def test_summary_table_checks_the_truth_interval() -> None:
    truth = pd.DataFrame(
        {"emission_rate_kg_h": [6000.0, 9000.0]}, index=pd.Index(["permian-1", "belchatow"], name="event_id")
    )
    inside = EventOutcome(PERMIAN, True, 1.0, _posterior_row())
    outside = EventOutcome(BELCHATOW, True, 1.0, _posterior_row(gas="CO2"))
    untracked = EventOutcome(NO_ID, True, 1.0, _posterior_row())
    below_limit = EventOutcome(BELCHATOW, True, 1.0, _posterior_row(gas="CO2", detected=False))
    above_zero = _posterior_row(gas="CO2", detected=False, emission_rate_lower_limit_kg_h=9600.0,
                                emission_rate_upper_limit_kg_h=20000.0)
    header, _, first, second, third, fourth, fifth = cli.summary_table(
        [inside, outside, untracked, below_limit, EventOutcome(BELCHATOW, True, 1.0, above_zero)], truth
    ).splitlines()
    assert header.split()[-4:] == ["truth", "kg/h", "in", "90%"]
    assert first.split()[-2:] == ["6,000", "yes"]
    assert second.split()[-2:] == ["9,000", "NO"]
    assert third.split()[-1] == "(0.91)", "an event without a truth row gets no truth columns"
    assert fourth.split()[-2:] == ["9,000", "yes"], "not detected: the truth is below the upper limit"
    # a row without a lower limit (written before it existed) counts from 0; one with a lower limit
    # above 0 is an interval that can miss a truth below it
    assert "[not detected, 9,600 .. 20,000]" in fifth
    assert fifth.split()[-2:] == ["9,000", "NO"]


# --- events and backfill on a real registry --------------------------------------------------------


def test_events_lists_the_registry_and_which_posteriors_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = OutputStore(root=str(tmp_path))
    record_events(store.event_registry_path, [PERMIAN, BELCHATOW, NO_ID])
    done = store.posterior_path(PERMIAN.iso_week, PERMIAN.key)
    done.parent.mkdir(parents=True)
    done.write_bytes(b"")

    assert main(["events", "--output", str(tmp_path)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["event_key", "event_id", "week", "posterior"]
    # registry order is by event time; an event without an id is registered under its key
    assert [row.split() for row in rows] == [
        [BELCHATOW.key, "belchatow", "2025-W24", "no"],
        [PERMIAN.key, "permian-1", "2025-W33", "yes"],
        [NO_ID.key, NO_ID.key, "2025-W33", "no"],
    ]


def test_events_reads_the_output_root_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATTRIBUTION_OUTPUT", str(tmp_path / "env_output"))
    assert main(["events"]) == 0
    assert capsys.readouterr().out == f"no events registered under {tmp_path / 'env_output'}\n"
    record_events(OutputStore(root=str(tmp_path / "env_output")).event_registry_path, [PERMIAN])
    assert main(["events"]) == 0
    assert PERMIAN.key in capsys.readouterr().out


def test_backfill_without_events_in_the_week_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # registered events in weeks 24 and 33, alerts in week 33: nothing falls in week 34
    record_events(OutputStore(root=str(tmp_path)).event_registry_path, [PERMIAN, BELCHATOW])
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["late,2025-08-17T23:59:59Z,31.9,-103.61,CH4"])
    argv = ["backfill", "--week", "2025-W34", "--output", str(tmp_path), "--alerts", str(alerts)]
    assert main(argv) == 1
    assert capsys.readouterr().out == (
        "no registered events in 2025-W34 (register them with `attribution run` or --alerts FILE)\n"
    )
    assert main(["backfill", "--week", "2025-W01", "--output", str(tmp_path / "empty")]) == 1


# --- instance home --------------------------------------------------------------------------------


def test_instance_home_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "instance" / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert ensure_instance_home() == home
    assert home.is_dir()
    config = REPO_ROOT / "dagster.yaml"
    if config.exists():
        assert (home / "dagster.yaml").read_text() == config.read_text()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert ensure_instance_home() == home
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n", "kept, not overwritten"


def test_instance_home_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "unused")  # so that monkeypatch restores the variable afterwards
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.chdir(tmp_path)
    home = ensure_instance_home()
    assert home == tmp_path / ".dagster_home"
    assert home.is_dir()
    assert os.environ["DAGSTER_HOME"] == str(home)


# --- step failures --------------------------------------------------------------------------------


@op
def _inputs() -> int:
    return 1


@op
def _explode(value: int) -> int:
    raise ValueError(f"inventory {value} unreadable\nno facility table in the archive")


@job
def _failing_job() -> None:
    _explode(_inputs())


@job
def _passing_job() -> None:
    _inputs()


def test_step_failure_names_the_failed_step_and_the_last_line_of_its_error() -> None:
    result = _failing_job.execute_in_process(raise_on_error=False)
    assert not result.success
    assert step_failure(result.all_events) == "_explode: no facility table in the archive"
    failure = "dagster._core.definitions.events.Failure: CH4_1.5S: no data: a.b"
    assert cli.QUALIFIED_CLASS.sub("", failure) == "CH4_1.5S: no data: a.b"
    assert step_failure(_passing_job.execute_in_process().all_events) == "run failed"


# --- exit codes, failure records and --offline ------------------------------------------------------

FAST = ["--chains", "2", "--warmup", "100", "--samples", "100", "--no-escalate"]
NOWHERE = DetectionEvent(datetime(2025, 8, 14, 12, 0, tzinfo=UTC), -140.0, -30.0, "CH4", "nowhere")
"""An event in the South Pacific, outside every footprint of the sample archive."""
TRAP_TOKEN, TRAP_KEY = "planted-earthdata-token-7f3a9c", "planted-cds-key-51d2e8b0"


def test_exit_code_is_0_all_3_some_1_none() -> None:
    good, bad = EventOutcome(PERMIAN, True, 1.0, None), EventOutcome(NO_ID, False, 1.0, None, "x")
    assert (EXIT_OK, EXIT_PARTIAL, EXIT_FAILED) == (0, 3, 1)
    assert exit_code([good, good]) == EXIT_OK
    assert exit_code([good, bad]) == EXIT_PARTIAL
    assert exit_code([bad, bad]) == EXIT_FAILED and exit_code([]) == EXIT_FAILED


def test_help_documents_exit_codes_and_offline(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 every event succeeded; 3 some events failed" in text
    assert "failures/<event_key>.json" in text and "--offline" in text


@pytest.fixture()
def trap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Credentials planted for both services, and every HTTP(S) request routed to a loopback proxy that
    records it; a private DAGSTER_HOME."""
    server = Loopback()
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, server.base)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EARTHDATA_TOKEN", TRAP_TOKEN)
    monkeypatch.setenv("CDSAPI_URL", "https://cds.climate.copernicus.eu/api")
    monkeypatch.setenv("CDSAPI_KEY", TRAP_KEY)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    yield server
    server.close()


@pytest.mark.slow
def test_run_offline_exits_3_on_partial_success_with_failure_records(
    tmp_path: Path, trap: Loopback, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    rows = [
        "belchatow-co2,2025-06-10T12:10:00Z,51.2660,19.3308,CO2",  # the cheapest sample inversion
        "nowhere,2025-08-14T12:00:00Z,-30.0,-140.0,CH4",
    ]
    alerts = _alerts_csv(tmp_path / "alerts.csv", rows)
    belchatow, nowhere = read_alerts(alerts)
    assert nowhere.key == NOWHERE.key
    stale = failure_path(output, belchatow.key)
    stale.parent.mkdir(parents=True)
    stale.write_text('{"reason": "an earlier failure"}')
    argv = ["run", "--archive", str(SAMPLE_ARCHIVE), "--alerts", str(alerts), "--output", str(output)]
    assert main([*argv, *FAST, "--offline"]) == EXIT_PARTIAL
    assert trap.seen == [], "--offline: no request leaves the machine"
    assert not stale.exists(), "the failure record goes once the event succeeds"
    assert OutputStore(root=str(output)).posterior_path(belchatow.iso_week, belchatow.key).is_file()
    record = json.loads(failure_path(output, NOWHERE.key).read_text())
    assert record["event_key"] == NOWHERE.key and record["event_id"] == "nowhere"
    # the blocking check stops the event before the inversion and says what it found
    assert record["reason"].startswith("plume_forward_enough_observations: ") and record["run_id"]
    assert "no instrument has enough valid observations" in record["reason"]
    assert sorted(p.name for p in failure_path(output, "x").parent.iterdir()) == [f"{NOWHERE.key}.json"]
    out = capsys.readouterr().out
    assert "FAILED" in out and record["reason"][:40] in out
    # the planted credentials reach no output file, provenance, failure record or the instance's storage
    planted = [TRAP_TOKEN.encode(), TRAP_KEY.encode()]
    assert files_holding(output, planted) == [] and files_holding(tmp_path / "dagster_home", planted) == []
    assert any((tmp_path / "dagster_home").rglob("*.db")), "the instance's SQLite storage is searched"
    with DagsterInstance.get() as instance:  # the week's roll-up jumps the queue ahead of event runs
        rollups = instance.get_runs(filters=RunsFilter(job_name="weekly_rollup"))
        assert len(rollups) == 2, "one roll-up per week: Bełchatów's and the failed event's"
        assert {run.tags.get(PRIORITY_TAG) for run in rollups} == {str(ROLLUP_PRIORITY)}

    only_nowhere = _alerts_csv(tmp_path / "nowhere.csv", rows[1:])
    argv = ["run", "--archive", str(SAMPLE_ARCHIVE), "--alerts", str(only_nowhere), "--output", str(output)]
    assert main([*argv, *FAST, "--offline"]) == EXIT_FAILED
    assert trap.seen == []


def test_event_runs_are_submitted_longest_first(tmp_path: Path) -> None:
    """Most instruments with an overpass first, ties in the alerts' order; without a catalog, the
    alerts' order."""
    events = read_alerts(SAMPLE_ALERTS)
    keys = [event.key for event in events]
    names = dict(zip(keys, (event.event_id for event in events), strict=True))
    catalog = write_geoparquet(crawl_archive(SAMPLE_ARCHIVE).catalog, tmp_path / "catalog.parquet")
    event_of = dict(zip(keys, events, strict=True))
    order = [names[key] for key in longest_first(event_of, catalog)]
    # Permian: EMIT, GHGSat, TROPOMI; the null event: EMIT, TROPOMI; Korpezhe: GHGSat, TROPOMI;
    # Bełchatów: OCO-2
    alerts_order = ["permian-ch4", "belchatow-co2", "turkmen-null-ch4", "korpezhe-ch4"]
    assert [names[key] for key in keys] == alerts_order
    assert order == ["permian-ch4", "turkmen-null-ch4", "korpezhe-ch4", "belchatow-co2"]
    assert longest_first(event_of, tmp_path / "absent.parquet") == keys
