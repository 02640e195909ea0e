"""IME/CSF baselines on the bundled sample scenes, through the real reader and matched filter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from shapely.geometry import Point

from attribution_assets.readers.emit import read_emit_l1b
from attribution_assets.readers.ghgsat import read_ghgsat_l2
from attribution_assets.readers.reference import load_ch4_unit_absorption
from attribution_assets.science.detection.matched_filter import enhance_emit_scene
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.quantification.baselines import emit_baselines, ghgsat_baselines


def _wind(truth_overpasses, event_id: str, instrument: str) -> OverpassWind:
    row = truth_overpasses[
        (truth_overpasses.event_id == event_id) & (truth_overpasses.instrument == instrument)
    ]
    u, v = float(row.era5_u10_m_s.iloc[0]), float(row.era5_v10_m_s.iloc[0])
    return OverpassWind(
        datetime(2025, 1, 1, tzinfo=UTC),
        u,
        v,
        1.5,
        0.3,
        float(row.stability_index.iloc[0]),
        1500.0,
        90_000.0,
        "ERA5",
        u10_m_s=u,
        v10_m_s=v,
    )


@pytest.fixture(scope="module")
def truth_overpasses():
    import pandas as pd

    from attribution_assets.paths import SAMPLE_TRUTH

    return pd.read_csv(SAMPLE_TRUTH.with_name("truth_overpasses.csv"))


def test_emit_baselines_find_the_plume_and_bracket_its_rate(
    sample_archive, sample_events, sample_truth, truth_overpasses
):
    event = sample_events["permian-ch4"]
    frame = LocalFrame(event.longitude, event.latitude)
    path = next((sample_archive / "emit").glob("EMIT_L1B_RAD_001_20250814T*.nc"))
    enh = enhance_emit_scene(read_emit_l1b(path), load_ch4_unit_absorption())
    results = {
        b.result.method: b for b in emit_baselines(enh, _wind(truth_overpasses, "permian-ch4", "EMIT"), frame)
    }
    truth = sample_truth.loc["permian-ch4", "emission_rate_kg_h"]
    assert set(results) == {"IME", "CSF"}
    for baseline in results.values():
        assert truth / 2 < baseline.result.rate_kg_h < truth * 2
        assert baseline.result.rate_kg_h_p05 < baseline.result.rate_kg_h < baseline.result.rate_kg_h_p95
    assert results["IME"].polygon.distance(Point(-103.6120, 31.9080)) < 0.002


def test_null_scene_gives_no_baseline(sample_archive, sample_events, truth_overpasses):
    event = sample_events["turkmen-null-ch4"]
    path = next((sample_archive / "emit").glob("EMIT_L1B_RAD_001_20250903T*.nc"))
    enh = enhance_emit_scene(read_emit_l1b(path), load_ch4_unit_absorption())
    wind = _wind(truth_overpasses, "turkmen-null-ch4", "EMIT")
    assert emit_baselines(enh, wind, LocalFrame(event.longitude, event.latitude)) == []


def test_ghgsat_baseline(sample_archive, sample_events, sample_truth, truth_overpasses):
    event = sample_events["korpezhe-ch4"]
    ds = read_ghgsat_l2(next((sample_archive / "ghgsat").glob("*korpezhe*.h5")))
    (baseline,) = ghgsat_baselines(
        ds, _wind(truth_overpasses, "korpezhe-ch4", "GHGSAT"), LocalFrame(event.longitude, event.latitude)
    )
    truth = sample_truth.loc["korpezhe-ch4", "emission_rate_kg_h"]
    assert baseline.result.instrument == "GHGSAT" and truth / 2 < baseline.result.rate_kg_h < truth * 2
