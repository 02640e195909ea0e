"""The ``attribution`` command line: parser, error exits, summary table, ``events`` and ``backfill``."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from dagster import DagsterInstance, RunsFilter
from dagster._core.storage.tags import PRIORITY_TAG

from attribution_assets import cli
from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    EventOutcome,
    analysis_settings,
    build_parser,
    ensure_instance_home,
    exit_code,
    failure_path,
    load_alerts,
    main,
)
from attribution_assets.events import (
    DetectionEvent,
    distinct_events,
    read_alerts,
    record_events,
    registered_events,
)
from attribution_assets.jobs import COMPUTE_RUN_TAGS, ROLLUP_PRIORITY
from attribution_assets.orchestration.shutdown import COMMAND_TAG
from attribution_assets.orchestration.submit import longest_first
from attribution_assets.paths import REPO_ROOT, SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.resources import AnalysisSettings, OutputStore
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
        # like backfill, dev and serve, run defaults its archive and output to the environment's
        (["run", "--alerts", "al.csv"], cli.cmd_run, {"archive": None, "alerts": "al.csv", "output": None}),
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
        (["run", "--archive", "a", "--output", "o"], "required: --alerts"),
        (["backfill"], "required: --week"),
        (["backfill", "--week", "garbage"], "argument --week: 'garbage' is not an ISO week"),
        (["backfill", "--week", "2025-33"], "'2025-33' is not an ISO week; expected YYYY-Www"),
        (["backfill", "--week", "2025-W99"], "'2025-W99' is not an ISO week"),
        (["run", "--alerts", "a.csv", "--chains", "four"], "argument --chains: 'four' is not an integer"),
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


# --- malformed alert files exit 2 with the file, the row and the reason ------------------------------


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The command's stderr, which must be one ``attribution: ...`` line (no traceback)."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("attribution: "), err
    return err.strip()


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
def test_run_exits_2_on_a_malformed_alerts_csv(
    tmp_path: Path, rows: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = _alerts_csv(tmp_path / "alerts.csv", rows)
    argv = ["run", "--archive", str(tmp_path), "--alerts", str(alerts), "--output", str(tmp_path / "o")]
    assert main(argv) == EXIT_USAGE == 2
    message = _one_line_error(capsys)
    assert message.startswith(f"attribution: {alerts}") and expected in message
    assert not (tmp_path / "o").exists(), "nothing may be written before the alerts are valid"


def test_run_exits_2_on_a_missing_or_malformed_geojson(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.csv"
    argv = ["run", "--archive", str(tmp_path), "--output", str(tmp_path), "--alerts"]
    assert main([*argv, str(missing)]) == EXIT_USAGE
    assert _one_line_error(capsys) == f"attribution: {missing}: alert file not found (or not a regular file)"
    not_geojson = tmp_path / "alerts.geojson"
    not_geojson.write_text(json.dumps({"type": "Feature", "properties": {}}))
    assert main([*argv, str(not_geojson)]) == EXIT_USAGE
    assert "not a GeoJSON FeatureCollection" in _one_line_error(capsys)
    no_time = tmp_path / "no_time.geojson"
    feature = {"type": "Feature", "properties": {"gas": "CH4"},
               "geometry": {"type": "Point", "coordinates": [-103.61, 31.9]}}
    no_time.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    assert main([*argv, str(no_time)]) == EXIT_USAGE
    assert "feature 0: missing event_time" in _one_line_error(capsys)


def test_backfill_exits_2_on_malformed_alerts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["a,2025-08-14T17:31:00Z,31.9,-103.61,XX"])
    assert main(["backfill", "--week", "2025-W33", "--output", str(tmp_path), "--alerts", str(alerts)]) == 2
    assert "row 2: gas 'XX' is not one of" in _one_line_error(capsys)


# --- the ATTRIBUTION_SETTINGS file: the runs' settings, checked before anything is registered ---------

FILE_SETTINGS = {"alert_threshold_co2_kg_h": 5000000, "oco2_half_width_km": 40, "num_chains": 3, "seed": 5,
                 "escalate": False}
DEFAULT_SETTINGS = {name: getattr(AnalysisSettings(), name) for name in AnalysisSettings.model_fields}


def _settings_file(path: Path, content: str | bytes, monkeypatch: pytest.MonkeyPatch) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setenv("ATTRIBUTION_SETTINGS", str(path))
    return path


def test_run_settings_are_the_files_with_the_given_sampler_options_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATTRIBUTION_SETTINGS", raising=False)
    assert analysis_settings(build_parser().parse_args(["run", "--alerts", "a.csv"])) == DEFAULT_SETTINGS
    _settings_file(tmp_path / "settings.json", json.dumps(FILE_SETTINGS), monkeypatch)
    args = build_parser().parse_args(["run", "--alerts", "a.csv", "--chains", "2", "--sampler", "laplace"])
    given = {"num_chains": 2, "sampler": "laplace"}
    assert analysis_settings(args) == DEFAULT_SETTINGS | FILE_SETTINGS | given
    # an option given with its default's value still replaces the file's
    args = build_parser().parse_args(["backfill", "--week", "2025-W33", "--chains", "4", "--escalate"])
    assert analysis_settings(args) == DEFAULT_SETTINGS | FILE_SETTINGS | {"num_chains": 4, "escalate": True}
    assert analysis_settings(build_parser().parse_args(["demo"])) == DEFAULT_SETTINGS | FILE_SETTINGS


def test_run_config_gives_the_runs_the_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run config for a resource replaces its configuration: the CLI's carries every setting, so a run
    resolves the file's settings, not the resource's defaults for the fields the options leave out."""
    from dagster import validate_run_config

    from attribution_assets.definitions import defs

    _settings_file(tmp_path / "settings.json", json.dumps(FILE_SETTINGS), monkeypatch)
    args = build_parser().parse_args(["run", "--alerts", "a.csv", "--warmup", "100", "--offline"])
    config = cli.run_config(SAMPLE_ARCHIVE, tmp_path / "out", args)
    for job_name in ("attribute_event", "weekly_rollup"):
        resolved = validate_run_config(defs.resolve_job_def(job_name), config)["resources"]
        assert resolved["settings"]["config"] == DEFAULT_SETTINGS | FILE_SETTINGS | {"num_warmup": 100}
        assert resolved["store"]["config"]["root"] == str(tmp_path / "out")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"emit_half_width_km": 4,\n', "cannot read the analysis settings: Expecting property name"),
        ('{"emit_half_width_km": "four"}', "invalid analysis settings: emit_half_width_km: Input should be"),
        ('{"oco2_half_width": 40}', "unknown analysis settings 'oco2_half_width' (did you mean "
         "'oco2_half_width_km'?); the fields are time_window_h, "),
        ('{"num_chains": 0}', "invalid analysis settings: num_chains: Input should be greater than or equal "
         "to 1"),
        ("[40]", "must be a JSON object of AnalysisSettings fields"),
        (b"\xff\xfe{}", "cannot read the analysis settings: 'utf-8' codec can't decode byte 0xff"),
    ],
)
def test_run_exits_2_on_a_bad_settings_file_before_registering_anything(
    tmp_path: Path, content: str | bytes, expected: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _settings_file(tmp_path / "settings.json", content, monkeypatch)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["a,2025-08-14T17:31:00Z,31.9,-103.61,CH4"])
    argv = ["run", "--archive", str(SAMPLE_ARCHIVE), "--alerts", str(alerts), "--output", str(tmp_path / "o")]
    assert main(argv) == EXIT_USAGE
    message = _one_line_error(capsys)
    assert message.startswith(f"attribution: ATTRIBUTION_SETTINGS: {settings}: ") and expected in message
    assert not (tmp_path / "o").exists() and not (tmp_path / "home").exists(), "nothing registered"


@pytest.mark.parametrize(
    "argv",
    [["demo"], ["backfill", "--week", "2025-W33", "--alerts", "ALERTS"], ["run", "--alerts", "ALERTS"]],
)
def test_every_command_checks_the_settings_file_first(
    tmp_path: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings_file(tmp_path / "settings.json", "{", monkeypatch)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATTRIBUTION_OUTPUT", str(tmp_path / "o"))
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["a,2025-08-14T17:31:00Z,31.9,-103.61,CH4"])
    assert main([str(alerts) if arg == "ALERTS" else arg for arg in argv]) == EXIT_USAGE
    assert _one_line_error(capsys).startswith(f"attribution: ATTRIBUTION_SETTINGS: {settings}: cannot read")
    assert not (tmp_path / "o").exists() and not (tmp_path / "home").exists()


# --- repeated alerts, an unreadable registry ---------------------------------------------------------


def test_a_repeated_alert_is_one_event_kept_as_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        "permian-ch4,2025-08-14T17:31:00Z,31.9095,-103.6100,CH4",
        "korpezhe-ch4,2025-07-21T06:55:00Z,38.5020,54.2150,CH4",
        "permian-again,2025-08-14T19:31:00+02:00,31.90950,-103.61,ch4",  # the same time, place and gas
    ]
    alerts = _alerts_csv(tmp_path / "alerts.csv", rows)
    permian = read_alerts(alerts)[0]
    assert [e.event_id for e in load_alerts(alerts)] == ["permian-ch4", "korpezhe-ch4"]
    assert capsys.readouterr().err == (
        f"attribution: warning: {alerts}: alert 'permian-again' is the same event as alert 'permian-ch4' "
        f"({permian.key}); the event runs once, as 'permian-ch4'\n"
    )
    kept, repeats = distinct_events(read_alerts(alerts))
    assert [(repeat.event_id, first.event_id) for repeat, first in repeats] == [
        ("permian-again", "permian-ch4")
    ]
    # the registry keeps the first alert's id too, as the command says
    registry = OutputStore(root=str(tmp_path)).event_registry_path
    record_events(registry, read_alerts(alerts))
    assert {e.key: e.event_id for e in registered_events(registry)} == {e.key: e.event_id for e in kept}


REGISTRY_HEADER = "event_key,event_id,gas,event_time,latitude,longitude\n"


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (f'"{PERMIAN.key},permian,CH4,2025-08-14T17:31:00Z,31.9095,-103.6100\n',
         "(ParserError: Error tokenizing data. C error: EOF inside string starting at row 1)"),
        (f"{PERMIAN.key},permian,CH4,last tuesday,31.9095,-103.6100\n",
         "(row 2: event_time 'last tuesday' is not ISO 8601 (expected e.g. 2025-08-14T17:31:00Z))"),
    ],
)
def test_an_unreadable_registry_exits_1_naming_the_file(
    tmp_path: Path, rows: str, problem: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = OutputStore(root=str(tmp_path / "out")).event_registry_path
    registry.parent.mkdir(parents=True)
    registry.write_text(REGISTRY_HEADER + rows)
    expected = f"attribution: {registry}: the event registry cannot be read {problem}; move it aside"
    assert main(["events", "--output", str(tmp_path / "out")]) == EXIT_FAILED
    assert _one_line_error(capsys).startswith(expected)
    assert main(["backfill", "--week", "2025-W33", "--output", str(tmp_path / "out")]) == EXIT_FAILED
    assert _one_line_error(capsys).startswith(expected)
    # run, its output root from the environment: it stops before the instance is touched
    monkeypatch.setenv("ATTRIBUTION_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["belchatow,2025-06-10T12:10:00Z,51.266,19.3308,CO2"])
    assert main(["run", "--archive", str(SAMPLE_ARCHIVE), "--alerts", str(alerts)]) == EXIT_FAILED
    assert _one_line_error(capsys).startswith(expected)
    assert registry.read_text() == REGISTRY_HEADER + rows, "the registry is left as it is"
    assert not (tmp_path / "home").exists(), "no instance: nothing registered"


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
    assert "mean kg/h  [90% interval]" in header and "attributed to (probability)" in header
    assert "truth" not in header
    assert rule == "-" * len(header)

    assert listed.split()[:3] == ["permian-1", "CH4", "EMIT+TROPOMI"]
    assert "6,123  [4,500 .. 7,800]" in listed
    assert "Permian well pad 7 (Loving (0.91)" in listed, "the facility name is cut to 26 characters"
    assert listed.split()[7] == "yes"
    # the event without an operator id is listed under its partition key
    assert unlisted.startswith(NO_ID.key)
    assert unlisted.rstrip().endswith("unlisted source (0.70)")
    assert undetected.split()[-2] == "no" and undetected.rstrip().endswith(" -")
    assert "  -  [not detected, below 9,500]" in undetected, "a non-detection: its upper limit, no mean"
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


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_says_what_chains_port_archive_and_output_are(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "demo", "backfill", "serve"):
        text = _help([command], capsys)
        assert "--chains N NUTS chains; SMC's independent particle populations (default 4" in text, command
        assert "2 bad command line or input file (alerts, ATTRIBUTION_SETTINGS)" in text or command == "serve"
    assert "--port PORT port of the Dagster UI (default 3000)" in _help(["dev"], capsys)
    for command in ("run", "backfill", "dev", "serve"):
        text = _help([command], capsys)
        assert "--archive ARCHIVE product archive root (default $ATTRIBUTION_ARCHIVE" in text, command
        assert "--output OUTPUT output root (default $ATTRIBUTION_OUTPUT" in text, command


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
        assert not any(COMPUTE_RUN_TAGS.items() <= run.tags.items() for run in rollups), "beside event runs"
        events = instance.get_runs(filters=RunsFilter(job_name="attribute_event"))
        assert events and all(COMPUTE_RUN_TAGS.items() <= run.tags.items() for run in events)

    only_nowhere = _alerts_csv(tmp_path / "nowhere.csv", rows[1:])
    argv = ["run", "--archive", str(SAMPLE_ARCHIVE), "--alerts", str(only_nowhere), "--output", str(output)]
    assert main([*argv, *FAST, "--offline"]) == EXIT_FAILED
    assert trap.seen == []


@pytest.mark.slow
def test_run_applies_the_settings_file_and_runs_a_repeated_alert_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Archive and output from the environment; the settings file's values reach the run (the option
    given replaces the file's); an alert repeated under another id is one event, numbered once, and its
    week's roll-up is written."""
    output = tmp_path / "out"
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"alert_threshold_co2_kg_h": 5000000, "seed": 3, "sampler": "nuts"}))
    environment = {"ATTRIBUTION_SETTINGS": settings, "ATTRIBUTION_ARCHIVE": SAMPLE_ARCHIVE,
                   "ATTRIBUTION_OUTPUT": output, "DAGSTER_HOME": tmp_path / "home"}
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    rows = ["belchatow-co2,2025-06-10T12:10:00Z,51.2660,19.3308,CO2",
            "belchatow-again,2025-06-10T12:10:00Z,51.2660,19.3308,CO2"]
    alerts = _alerts_csv(tmp_path / "alerts.csv", rows)
    event = read_alerts(alerts)[0]

    assert main(["run", "--alerts", str(alerts), "--sampler", "laplace", "--offline"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert f"alert 'belchatow-again' is the same event as alert 'belchatow-co2' ({event.key})" in err
    assert "submitted 1 event runs" in out and f"[1/1] {event.key} done" in out and "[2/1]" not in out
    assert len([line for line in out.splitlines() if line.startswith("belchatow")]) == 1, out
    store = OutputStore(root=str(output))
    row = gpd.read_parquet(store.posterior_path(event.iso_week, event.key)).iloc[0]
    provenance = json.loads(row["provenance"])
    assert provenance["settings"]["alert_threshold_co2_kg_h"] == 5000000, "the file's setting"
    assert provenance["sampler"]["seed"] == 3, "the file's sampler setting, no option given"
    assert provenance["sampler"]["sampler"] == "laplace", "the option given, in place of the file's"
    assert (store.weekly_dir / f"week={event.iso_week}" / "posteriors.parquet").is_file(), "week rolled up"
    assert [e.event_id for e in registered_events(store.event_registry_path)] == ["belchatow-co2"]
    with DagsterInstance.get() as instance:  # every run of the command carries its id, and only its runs
        runs = instance.get_runs()
        assert {run.job_name for run in runs} == {"crawl_catalog", "attribute_event", "weekly_rollup"}
        assert len({run.tags.get(COMMAND_TAG) for run in runs} - {None}) == 1

    # a broken file beside the event's posterior: the event is written again, its week's roll-up fails
    broken = store.posterior_path(event.iso_week, event.key).with_name(NOWHERE.key + ".parquet")
    broken.write_bytes(b"PAR1 cut short")
    assert main(["run", "--alerts", str(alerts), "--sampler", "laplace", "--offline"]) == EXIT_PARTIAL
    out = capsys.readouterr().out
    assert f"[1/1] {event.key} done" in out
    assert f"roll-up {event.iso_week} FAILED: weekly_posteriors: " in out, out
    assert f"`attribution backfill --week {event.iso_week}` writes them" in out
    with DagsterInstance.get() as instance:
        assert len({run.tags.get(COMMAND_TAG) for run in instance.get_runs()} - {None}) == 2, "two commands"


@pytest.mark.slow
def test_a_failed_crawl_stops_the_command_naming_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The events failed one by one on a missing catalog, which hid the crawl's own failure."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    output = tmp_path / "out"
    OutputStore(root=str(output)).catalog_path.mkdir(parents=True)  # the catalog file cannot be written
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["belchatow-co2,2025-06-10T12:10:00Z,51.2660,19.3308,CO2"])
    argv = ["run", "--archive", str(SAMPLE_ARCHIVE), "--alerts", str(alerts), "--output", str(output)]
    assert main([*argv, "--sampler", "laplace", "--offline"]) == EXIT_FAILED
    message = capsys.readouterr().err.strip().splitlines()[-1]
    expected = f"attribution: the catalog crawl of {SAMPLE_ARCHIVE} into {output} failed (run "
    assert message.startswith(expected), message
    assert message.endswith("no event run was submitted"), message
    with DagsterInstance.get() as instance:
        assert [run.job_name for run in instance.get_runs()] == ["crawl_catalog"]


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


@pytest.mark.parametrize(
    ("option", "expected"),
    [(["--chains", "0"], "argument --chains: must be at least 1, got 0"),
     (["--samples", "-5"], "argument --samples: must be at least 1, got -5"),
     (["--warmup", "-1"], "argument --warmup: must be at least 0, got -1")],
)
def test_run_refuses_a_sampler_count_it_cannot_run_before_registering_anything(
    tmp_path: Path, option: list[str], expected: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--chains 0`` was submitted and failed 20 s later inside the sampler (``IndexError``)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["a,2025-08-14T17:31:00Z,31.9,-103.61,CH4"])
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--alerts", str(alerts), "--output", str(tmp_path / "o"), *option])
    assert exit_info.value.code == EXIT_USAGE
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "home").exists(), "nothing registered"


@pytest.mark.parametrize("command", [["run", "--alerts", "ALERTS"], ["backfill", "--week", "2025-W33"]])
def test_a_missing_archive_folder_stops_the_command_in_one_line(
    tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A mistyped ``--archive`` gave an empty catalog, then an error about a missing overpass catalog."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["a,2025-08-14T17:31:00Z,31.9,-103.61,CH4"])
    argv = [str(alerts) if word == "ALERTS" else word for word in command]
    missing = tmp_path / "no_such_archive"
    assert main([*argv, "--archive", str(missing), "--output", str(tmp_path / "o")]) == EXIT_USAGE
    message = _one_line_error(capsys)
    assert message.startswith(f"attribution: archive {missing}: no such folder")
    assert not (tmp_path / "o").exists() and not (tmp_path / "home").exists(), "nothing registered"


@pytest.mark.parametrize(
    "command", [["run", "--alerts", "ALERTS"], ["backfill", "--week", "2025-W33"], ["demo"]]
)
def test_an_output_folder_that_cannot_be_written_stops_the_command_in_one_line(
    tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A read-only output ended the command in a traceback once its events were registered; here the
    output lies under a file, which no user (root included) can write into."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    alerts = _alerts_csv(tmp_path / "alerts.csv", ["a,2025-08-14T17:31:00Z,31.9,-103.61,CH4"])
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    output = blocker / "out"
    argv = [str(alerts) if word == "ALERTS" else word for word in command]
    assert main([*argv, "--output", str(output)]) == EXIT_USAGE
    message = _one_line_error(capsys)
    assert message.startswith(f"attribution: output {output}: cannot write there (Not a directory)"), message
    assert not (tmp_path / "home").exists(), "nothing registered"
