"""The asset checks: every judgement's pass, warn and block paths on real values; each check function
reading what its asset recorded on a real instance; and, through the ``attribute_event`` job on a copy
of the sample archive, a failed blocking check stopping its event's downstream assets while other events
go on."""

from __future__ import annotations

import shutil
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetCheckSeverity,
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    Definitions,
    define_asset_job,
    instance_for_test,
)

from attribution_assets.checks import (
    ALL_CHECKS,
    ATTRIBUTION_ESS_WARN,
    EVENT_CHECKS,
    MIN_VALID_OBSERVATIONS,
    PREDICTIVE_BLOCK_RMS,
    PREDICTIVE_WARN_RMS,
    Verdict,
    attribution_verdict,
    observations_verdict,
    predictive_verdict,
    rejected_verdict,
    sampler_verdict,
)
from attribution_assets.definitions import ASSETS, build_defs
from attribution_assets.events import record_events
from attribution_assets.partitions import register_events
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.resources import AnalysisSettings, OutputStore, build_resources
from attribution_assets_tests.test_bad_inputs.corpus import PRODUCTS, fill_variable

PERMIAN_OUTCOMES = {
    "EMIT": {"EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc": "read"},
    "GHGSAT": {"GHGSat_L2_GHGSat-C5_20250814T164500Z_permian.h5": "read"},
    "TROPOMI": {"S5P_permian.nc": "read"},
    "OCO2": {"-": "OCO2 does not measure CH4"},
}
PERMIAN_PIXELS = {
    "EMIT": {"EMIT_L1B_RAD_001_20250814T173100_2522612_001": 10433},
    "GHGSAT": {"GHGSat_L2_GHGSat-C5_20250814T164500Z_permian": 57304},
    "TROPOMI": {"S5P_permian": 365},
}
"""What the Permian sample event's AOI and forward assets record (valid pixels per granule)."""
CONVERGED = {"r_hat_max": 1.003, "ess_bulk_min": 1290.0, "ess_tail_min": 980.0, "ess_target": 400.0,
             "divergences": 0, "draws": 4000, "converged": True}
"""Diagnostics of a converged default run (4 chains x 1000 draws)."""
FAST = {"num_chains": 2, "num_warmup": 100, "num_samples": 100, "escalate": False}


# --- judgements -------------------------------------------------------------------------------------


def test_observations_pass_when_every_instrument_has_enough() -> None:
    verdict = observations_verdict("CH4", PERMIAN_OUTCOMES, PERMIAN_PIXELS)
    assert verdict.passed and not verdict.blocks
    assert verdict.metadata["enough"] == "EMIT, TROPOMI, GHGSAT"


def test_observations_warn_when_one_instrument_is_all_nan() -> None:
    pixels = PERMIAN_PIXELS | {"GHGSAT": {"GHGSat_L2_GHGSat-C5_20250814T164500Z_permian": 0}}
    verdict = observations_verdict("CH4", PERMIAN_OUTCOMES, pixels)
    assert not verdict.passed and not verdict.blocks
    assert "GHGSAT: 0 valid observations (minimum 1600)" in verdict.summary
    assert "goes on with EMIT, TROPOMI" in verdict.summary


def test_observations_block_a_ghgsat_only_event_with_an_all_nan_aoi() -> None:
    outcomes = {"GHGSAT": {"g.h5": "read"}, "EMIT": {"-": "no overpass"}, "TROPOMI": {"-": "no overpass"}}
    verdict = observations_verdict("CH4", outcomes, {"GHGSAT": {"g": 0}})
    assert not verdict.passed and verdict.blocks
    assert "GHGSAT: 0 valid pixels in AOI (g.h5)" in verdict.summary
    assert verdict.result().severity == AssetCheckSeverity.ERROR


def test_observations_block_an_event_outside_every_footprint() -> None:
    outcomes = {name: {"-": "no overpass"} for name in ("EMIT", "GHGSAT", "TROPOMI")}
    verdict = observations_verdict("CH4", outcomes, {})
    assert verdict.blocks and not verdict.passed
    assert verdict.summary.startswith("no instrument has enough valid observations (EMIT: no overpass")


def test_observations_block_below_the_minimum_and_pass_at_it() -> None:
    outcomes = {"OCO2": {"oco2.nc4": "read"}}
    short = observations_verdict("CO2", outcomes, {"OCO2": {"oco2": MIN_VALID_OBSERVATIONS["OCO2"] - 1}})
    enough = observations_verdict("CO2", outcomes, {"OCO2": {"oco2": MIN_VALID_OBSERVATIONS["OCO2"]}})
    assert short.blocks and not short.passed
    assert enough.passed
    table = enough.metadata["instruments"]
    assert [r.data["instrument"] for r in table.records] == ["OCO2"], "a CO2 event judges OCO-2 only"


def test_sampler_passes_converged_warns_short_and_blocks_gross_failures() -> None:
    assert sampler_verdict(CONVERGED).passed
    short = sampler_verdict(CONVERGED | {"r_hat_max": 1.03, "converged": False})
    assert not short.passed and not short.blocks and "short of the targets" in short.summary
    for bad, words in (
        ({"r_hat_max": 1.2}, "R-hat 1.200 > 1.1"),
        ({"ess_tail_min": 20.0}, "ESS 20 < 50"),
        ({"divergences": 41}, "41 of 4000 draws divergent"),
    ):
        verdict = sampler_verdict(CONVERGED | bad | {"converged": False})
        assert verdict.blocks and not verdict.passed and words in verdict.summary, bad
    assert not sampler_verdict(CONVERGED | {"divergences": 40, "converged": False}).blocks, "1 % is allowed"


def test_sampler_warns_for_laplace_draws_without_chains() -> None:
    verdict = sampler_verdict(CONVERGED | {"r_hat_max": None, "ess_bulk_min": None, "converged": False})
    assert not verdict.passed and not verdict.blocks and "Laplace" in verdict.summary


def test_predictive_bounds_come_from_the_noise_inflation_prior() -> None:
    assert (PREDICTIVE_WARN_RMS, PREDICTIVE_BLOCK_RMS) == (2.28, 4.69)
    assert predictive_verdict({"EMIT:g": 0.92, "GHGSAT:g": 1.91}).passed
    warn = predictive_verdict({"EMIT:g": 0.92, "GHGSAT:g": 3.0})
    assert not warn.passed and not warn.blocks and "GHGSAT:g 3.00" in warn.summary
    block = predictive_verdict({"EMIT:g": 6.0, "GHGSAT:g": 3.0})
    assert block.blocks and "EMIT:g 6.00" in block.summary and "GHGSAT" not in block.summary
    assert predictive_verdict({"EMIT:g": float("nan")}).blocks, "a NaN residual is not a fit"
    assert predictive_verdict({}).blocks


def test_attribution_warns_below_the_ess_bound_and_never_blocks() -> None:
    assert attribution_verdict({"attribution_ess": 450.0, "candidates": 3}).passed
    low = attribution_verdict({"attribution_ess": ATTRIBUTION_ESS_WARN - 1, "candidates": 3})
    assert not low.passed and not low.blocks and "uncertain by up to 0.05" in low.summary
    assert attribution_verdict({"attribution_ess": 5.0, "candidates": 0}).passed, "nothing listed to rank"
    assert attribution_verdict({"attributed_facility_id": "no source", "candidates": 2}).passed


def test_rejected_files_warn_and_never_block() -> None:
    assert rejected_verdict(pd.DataFrame(columns=["path", "reason"])).passed
    verdict = rejected_verdict(pd.DataFrame({"path": ["/a/x.nc"], "reason": ["found 0 bytes"]}))
    assert not verdict.passed and not verdict.blocks
    assert verdict.metadata["dagster/row_count"] == 1
    assert verdict.result().severity == AssetCheckSeverity.WARN


def test_a_verdict_becomes_a_check_result_with_its_severity() -> None:
    result = Verdict(False, True, "why", {"n": 1}).result()
    assert (result.passed, result.severity, result.description) == (False, AssetCheckSeverity.ERROR, "why")
    assert result.metadata["summary"].value == "why" and result.metadata["n"].value == 1


# --- definitions ------------------------------------------------------------------------------------


def test_every_check_is_in_the_code_location_and_the_event_checks_in_attribute_event() -> None:
    defs = build_defs()
    graph = defs.resolve_asset_graph()
    keys = {key for check in ALL_CHECKS for key in check.check_keys}
    assert keys <= set(graph.asset_check_keys)
    job = defs.resolve_job_def("attribute_event")
    nodes = {node.name for node in job.nodes}
    for check in EVENT_CHECKS:
        (key,) = check.check_keys
        assert f"{key.asset_key.to_user_string()}_{key.name}" in nodes, key
        spec = next(iter(check.check_specs))
        assert spec.partitions_def is not None and spec.partitions_def.name == "detection_events"
    blocking = {next(iter(c.check_specs)).name for c in EVENT_CHECKS if next(iter(c.check_specs)).blocking}
    assert blocking == {"enough_observations", "sampler_converged", "posterior_predictive"}


# --- each check function on a real instance ---------------------------------------------------------


def _check_alone(instance: DagsterInstance, check, key: str, output):
    """Execute ``check`` alone for partition ``key`` (its asset is not materialised by the run)."""
    (check_key,) = check.check_keys
    resources = build_resources(SAMPLE_ARCHIVE, output, AnalysisSettings(), live=False)
    job = define_asset_job("check_alone", selection=AssetSelection.checks(check_key))
    defs = Definitions(assets=ASSETS, asset_checks=ALL_CHECKS, jobs=[job], resources=resources)
    result = defs.resolve_job_def("check_alone").execute_in_process(
        instance=instance, tags={"dagster/partition": key}, raise_on_error=False
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.partition == key
    return result, evaluation


@pytest.mark.parametrize(
    ("check_name", "asset", "metadata", "passed", "severity"),
    [
        ("sampler_converged", "source_posterior", CONVERGED, True, None),
        ("sampler_converged", "source_posterior", CONVERGED | {"r_hat_max": 1.5, "converged": False},
         False, AssetCheckSeverity.ERROR),
        ("posterior_predictive", "source_posterior", {"predictive_rms": {"EMIT:g": 1.1}}, True, None),
        ("posterior_predictive", "source_posterior", {"predictive_rms": {"EMIT:g": 9.0}}, False,
         AssetCheckSeverity.ERROR),
        ("attribution_ess", "source_attribution", {"attribution_ess": 800.0, "candidates": 2}, True, None),
        ("attribution_ess", "source_attribution", {"attribution_ess": 12.0, "candidates": 2}, False,
         AssetCheckSeverity.WARN),
        ("enough_observations", "plume_forward", {"valid_pixels": PERMIAN_PIXELS}, True, None),
        ("enough_observations", "plume_forward", {"valid_pixels": {}}, False, AssetCheckSeverity.ERROR),
    ],
)
def test_each_event_check_judges_what_its_asset_recorded(
    tmp_path, sample_events, check_name, asset, metadata, passed, severity
) -> None:
    check = next(c for c in EVENT_CHECKS if next(iter(c.check_keys)).name == check_name)
    with instance_for_test() as instance:
        (key,) = register_events(instance, [sample_events["permian-ch4"]])
        materialization = AssetMaterialization(asset_key=asset, partition=key, metadata=metadata)
        instance.report_runless_asset_event(materialization)
        result, evaluation = _check_alone(instance, check, key, tmp_path)
        assert evaluation.passed is passed
        if severity is not None:
            assert evaluation.severity == severity
        blocking_failure = severity == AssetCheckSeverity.ERROR
        assert result.success is not blocking_failure, "a blocking ERROR fails the check's step"


def test_the_catalog_check_warns_for_a_rejected_file_and_passes_without(tmp_path) -> None:
    good = tmp_path / "good"
    (good / "oco2").mkdir(parents=True)
    shutil.copy(next((SAMPLE_ARCHIVE / "oco2").iterdir()), good / "oco2")
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    (bad / "emit").mkdir()
    empty = bad / "emit" / "EMIT_L1B_RAD_001_20250101T000000_2500101_001.nc"
    empty.write_bytes(b"")
    outcomes = {}
    with instance_for_test() as instance:
        for name, archive in (("good", good), ("bad", bad)):
            resources = build_resources(archive, tmp_path / f"out-{name}", AnalysisSettings(), live=False)
            job = build_defs(resources).resolve_job_def("crawl_catalog")
            result = job.execute_in_process(instance=instance)
            (evaluation,) = result.get_asset_check_evaluations()
            outcomes[name] = evaluation
    assert outcomes["good"].passed
    assert not outcomes["bad"].passed and outcomes["bad"].severity == AssetCheckSeverity.WARN
    table = outcomes["bad"].metadata["rejected_files"]
    assert [r.data["path"] for r in table.records] == [str(bad / "emit" / empty.name)]
    assert outcomes["bad"].metadata["dagster/row_count"].value == 1


# --- blocking end to end ----------------------------------------------------------------------------


def _run(resources, instance: DagsterInstance, key: str):
    job = build_defs(resources).resolve_job_def("attribute_event")
    return job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)


@pytest.fixture(scope="module")
def blocked(tmp_path_factory, sample_events):
    """``attribute_event`` runs on a copy of the sample archive whose GHGSat scenes are all NaN:

    - permian: EMIT and TROPOMI enough, GHGSat 0 pixels (warns, goes on), fast sampler;
    - korpezhe with a ±1 h window: GHGSat only, all NaN (blocked at ``enough_observations``);
    - an event in the Pacific, outside every footprint (blocked at ``enough_observations``);
    - belchatow with a 2 x 10-draw sampler (blocked at ``sampler_converged``).
    """
    root = tmp_path_factory.mktemp("checks") / "archive"
    shutil.copytree(SAMPLE_ARCHIVE, root)
    fill_variable(root / PRODUCTS["GHGSAT"].sample, "data/xch4", np.nan)
    for scene in (root / "ghgsat").iterdir():
        fill_variable(scene, "data/xch4", np.nan)
    output = root.parent / "output"
    pacific = replace(sample_events["permian-ch4"], longitude=-150.0, latitude=-20.0, event_id="pacific")
    events = {"permian": sample_events["permian-ch4"], "ghgsat-only": sample_events["korpezhe-ch4"],
              "pacific": pacific, "tiny": sample_events["belchatow-co2"]}
    settings = {"permian": AnalysisSettings(**FAST), "pacific": AnalysisSettings(**FAST),
                "ghgsat-only": AnalysisSettings(**FAST, time_window_h=1.0),
                "tiny": AnalysisSettings(sampler="nuts", num_chains=2, num_warmup=10, num_samples=10,
                                         escalate=False)}
    with instance_for_test() as instance:
        keys = dict(zip(events, register_events(instance, events.values()), strict=True))
        record_events(OutputStore(root=str(output)).event_registry_path, list(events.values()))
        catalog = build_defs(build_resources(root, output, settings["permian"], live=False))
        catalog.resolve_job_def("crawl_catalog").execute_in_process(instance=instance)
        results = {
            name: _run(build_resources(root, output, settings[name], live=False), instance, keys[name])
            for name in ("pacific", "ghgsat-only", "tiny", "permian")
        }
        yield {"results": results, "keys": keys, "events": events, "output": output, "instance": instance}


def _evaluation(result, name: str):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def _materialised(result) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def _posterior_path(run, name: str):
    event = run["events"][name]
    return OutputStore(root=str(run["output"])).posterior_path(event.iso_week, event.key)


DOWNSTREAM_OF_FORWARD = {"source_posterior", "source_attribution", "event_posterior"}


@pytest.mark.slow
def test_no_observation_event_is_stopped_at_the_check_while_another_goes_on(blocked) -> None:
    pacific, permian = blocked["results"]["pacific"], blocked["results"]["permian"]
    evaluation = _evaluation(pacific, "enough_observations")
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR
    assert evaluation.partition == blocked["keys"]["pacific"]
    assert not pacific.success
    done = _materialised(pacific)
    assert "plume_forward" in done and not DOWNSTREAM_OF_FORWARD & done
    assert not _posterior_path(blocked, "pacific").exists()
    assert permian.success and "event_posterior" in _materialised(permian)
    assert _posterior_path(blocked, "permian").is_file()


@pytest.mark.slow
def test_an_all_nan_ghgsat_only_event_is_blocked(blocked) -> None:
    result = blocked["results"]["ghgsat-only"]
    evaluation = _evaluation(result, "enough_observations")
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR
    assert "GHGSAT: 0 valid pixels in AOI (GHGSat_L2_GHGSat-C9_20250721T065500Z_korpezhe.h5)" in (
        evaluation.description
    )
    assert "TROPOMI: no overpass" in evaluation.description
    assert not DOWNSTREAM_OF_FORWARD & _materialised(result)
    assert not _posterior_path(blocked, "ghgsat-only").exists()


@pytest.mark.slow
def test_one_instrument_short_warns_and_the_event_goes_on(blocked) -> None:
    result = blocked["results"]["permian"]
    evaluation = _evaluation(result, "enough_observations")
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
    assert "GHGSAT: 0 valid observations" in evaluation.description
    row = gpd.read_parquet(_posterior_path(blocked, "permian")).iloc[0]
    assert set(row["instruments"].split(",")) == {"EMIT", "TROPOMI"}
    for name in ("sampler_converged", "posterior_predictive", "attribution_ess"):
        evaluation = _evaluation(result, name)
        assert evaluation.passed or evaluation.severity == AssetCheckSeverity.WARN, name
    predictive = _evaluation(result, "posterior_predictive")
    rms = {r.data["block"]: r.data["residual_rms_sigma"] for r in predictive.metadata["blocks"].records}
    assert sorted(b.split(":")[0] for b in rms) == ["EMIT", "TROPOMI"]
    assert predictive.passed == all(v <= PREDICTIVE_WARN_RMS for v in rms.values())
    attribution = _evaluation(result, "attribution_ess")
    assert attribution.passed == (attribution.metadata["attribution_ess"].value >= ATTRIBUTION_ESS_WARN)


@pytest.mark.slow
def test_an_unconverged_sampler_stops_attribution_and_the_row(blocked) -> None:
    result = blocked["results"]["tiny"]
    evaluation = _evaluation(result, "sampler_converged")
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR
    assert evaluation.metadata["draws"].value == 20 and "ESS" in evaluation.description
    done = _materialised(result)
    assert "source_posterior" in done, "the posterior stays inspectable"
    assert not {"source_attribution", "event_posterior"} & done
    assert not _posterior_path(blocked, "tiny").exists()
    assert evaluation.partition == blocked["keys"]["tiny"]
    assert blocked["results"]["permian"].success, "the other events go on"
