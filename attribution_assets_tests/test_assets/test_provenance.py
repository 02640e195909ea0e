"""Provenance of a posterior row: complete (inputs relative to the archive with fingerprints, met source
and prior per overpass, inventories with fingerprints, sampler settings and seed, priors, code version,
graph hash) and deterministic: re-materialising an event with the same inputs gives an identical row."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from dagster import instance_for_test

from attribution_assets.assets.common import CODE_VERSION
from attribution_assets.definitions import build_defs
from attribution_assets.events import record_events
from attribution_assets.layout import OutputLayout
from attribution_assets.partitions import register_events
from attribution_assets.pipeline.aoi import extract_aois
from attribution_assets.pipeline.event import aoi_datasets
from attribution_assets.pipeline.met import prepare_met
from attribution_assets.pipeline.overpasses import resolve_overpasses, update_catalog
from attribution_assets.pipeline.provenance import code_hash, code_version, file_fingerprint, provenance_json
from attribution_assets.pipeline.settings import EventSettings
from attribution_assets.resources import AnalysisSettings, OutputStore, build_resources
from attribution_assets.science.inversion.settings import InversionSettings

FAST = {"num_chains": 2, "num_warmup": 100, "num_samples": 100, "escalate": False}
"""The cheap sampler of the command-line tests (``--chains 2 --warmup 100 --samples 100 --no-escalate``)."""


def _check_provenance(provenance: dict, archive: Path, settings: EventSettings, gas: str) -> None:
    """Every item a row must be reproducible from, checked against the files and settings themselves."""
    assert provenance["inputs"], "the catalogued inputs of the event"
    for item in provenance["inputs"]:
        assert not Path(item["path"]).is_absolute(), item["path"]
        assert (archive / item["path"]).is_file(), item["path"]
        assert item["fingerprint"].startswith("sha256") and "version" in item, item
    used = {name.split(":", 1)[-1] for name in provenance["granules_used"]}
    assert used and used <= {m["granule"] for m in provenance["met_sources"]}, "a met source per overpass"
    for met in provenance["met_sources"]:
        assert met["source"] in {"ERA5", "WRF"} and met["time"].endswith("Z")
        assert {"u_m_s", "v_m_s", "speed_sd_m_s", "stability_index", "pblh_m"} <= set(met)
    inventory = settings.power_plants if gas == "CO2" else settings.facility_list
    listed = {"file": Path(inventory).name, "fingerprint": file_fingerprint(inventory)}
    assert listed in provenance["inventories"]
    assert provenance["sampler"] == {
        "num_chains": settings.inversion.num_chains, "num_warmup": settings.inversion.num_warmup,
        "num_samples": settings.inversion.num_samples, "seed": settings.inversion.seed,
        "escalate": settings.inversion.escalate, "sampler": settings.inversion.sampler,
    }
    priors = provenance["priors"]
    assert priors["q_median_kg_h"] == (1.0e6 if gas == "CO2" else 1000.0), "the per-gas median, resolved"
    assert priors["position_sd_m"] == settings.inversion.position_sd_m
    assert priors["noise_inflation_log_sd"] == settings.inversion.noise_inflation_log_sd
    assert provenance["settings"]["inversion"]["seed"] == settings.inversion.seed
    assert provenance["code_version"] == code_version() == CODE_VERSION
    assert provenance["versions"]["attribution-assets"] == CODE_VERSION
    assert provenance["graph_hash"] == code_hash() and len(code_hash()) == 16
    assert str(archive) not in json.dumps(provenance), "no absolute path of the archive"


def test_provenance_of_an_event_is_complete_and_deterministic(
    tmp_path, sample_archive, sample_events
) -> None:
    event = sample_events["belchatow-co2"]
    settings = EventSettings(inversion=replace(InversionSettings(), seed=7, num_chains=3))
    layout = OutputLayout(str(tmp_path))
    update_catalog(sample_archive, layout.catalog_files)
    overpasses = resolve_overpasses(event, layout.catalog_path, settings)
    met = prepare_met(event, overpasses, aoi_datasets(extract_aois(event, overpasses, settings)))
    granules = [str(g) for g in met["granule"].values]
    first = provenance_json(overpasses, granules, met, settings, event.gas)
    again = provenance_json(overpasses.iloc[::-1].iloc[::-1], granules, met, settings, event.gas)
    assert first == again
    provenance = json.loads(first)
    _check_provenance(provenance, sample_archive, settings, event.gas)
    assert {item["path"].split("/")[0] for item in provenance["inputs"]} >= {"oco2", "era5"}
    assert provenance["sampler"]["seed"] == 7 and provenance["sampler"]["num_chains"] == 3
    other = json.loads(provenance_json(overpasses, granules, met, replace(
        settings, inversion=replace(settings.inversion, seed=8)), event.gas))
    assert other["sampler"]["seed"] == 8 and other["graph_hash"] == provenance["graph_hash"]
    # a researcher rebuilds the settings a row was computed with from the row alone
    assert EventSettings.from_provenance(first) == settings
    moved = tmp_path / "inventories"
    rebuilt = EventSettings.from_provenance(provenance, inventories=moved)
    assert rebuilt.facility_list == str(moved / Path(settings.facility_list).name)
    switched_off = provenance["settings"] | {"edgar": ""}
    assert EventSettings.from_dict(switched_off).edgar == ""
    with pytest.raises(ValueError, match="not event settings: chains, inversion.warmup"):
        EventSettings.from_dict({"chains": 2, "inversion": {"warmup": 5}})


@pytest.fixture(scope="module")
def twice(tmp_path_factory, sample_archive, sample_events):
    """The Bełchatów event through ``attribute_event`` twice, on one instance and output, fast sampler;
    the posterior row after each run."""
    output = tmp_path_factory.mktemp("provenance")
    defs = build_defs(build_resources(sample_archive, output, AnalysisSettings(**FAST), live=False))
    event = sample_events["belchatow-co2"]
    path = OutputStore(root=str(output)).posterior_path(event.iso_week, event.key)
    rows, results = [], []
    with instance_for_test() as instance:
        (key,) = register_events(instance, [event])
        record_events(OutputStore(root=str(output)).event_registry_path, [event])
        defs.resolve_job_def("crawl_catalog").execute_in_process(instance=instance)
        for _ in range(2):
            results.append(defs.resolve_job_def("attribute_event").execute_in_process(
                instance=instance, partition_key=key, raise_on_error=False))
            rows.append(gpd.read_parquet(path))
    yield {"rows": rows, "results": results, "archive": sample_archive}


@pytest.mark.slow
def test_rematerialising_an_event_gives_an_identical_row(twice) -> None:
    assert all(result.success for result in twice["results"])
    first, second = twice["rows"]
    assert list(first.columns) == list(second.columns) and len(first) == len(second) == 1
    for column in first.columns:
        if column == "geometry":
            assert first.geometry.iloc[0].equals_exact(second.geometry.iloc[0], 0.0)
            continue
        pd.testing.assert_series_equal(first[column], second[column], check_exact=True, obj=column)
    assert first["emission_rate_kg_h"].iloc[0] > 0 and first["provenance"].iloc[0]


@pytest.mark.slow
def test_the_row_records_its_provenance(twice) -> None:
    row = twice["rows"][0].iloc[0]
    provenance = json.loads(row["provenance"])
    settings = AnalysisSettings(**FAST).event_settings()
    _check_provenance(provenance, twice["archive"], settings, "CO2")
    assert [name.split(":")[0] for name in provenance["granules_used"]] == ["OCO2"]
    assert [m["source"] for m in provenance["met_sources"]] == ["ERA5"]
    assert provenance["sampler"] == {**FAST, "seed": 0, "sampler": "auto"}
