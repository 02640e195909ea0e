"""The week-partitioned roll-up: which files a week reads, its metadata, removal on rebuild, the schedule."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    build_schedule_context,
    instance_for_test,
    materialize,
)
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import imread
from shapely.geometry import Point

from attribution_assets.assets.common import CODE_VERSION
from attribution_assets.assets.weekly import week_facilities, week_figure, weekly_posteriors
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.events import AlertFormatError, DetectionEvent
from attribution_assets.jobs import rollup_job
from attribution_assets.partitions import partition_of_week, week_of_partition, weekly_partitions
from attribution_assets.pipeline.settings import EventSettings
from attribution_assets.resources import AnalysisSettings, OutputStore
from attribution_assets.sensors import previous_week_partition, weekly_rollup_schedule

W33 = "2025-W33"
PERMIAN = (31.9095, -103.6100)
BELCHATOW = (51.2660, 19.3308)


def posterior_file(store: OutputStore, event_id: str, when: datetime, gas: str, where: tuple[float, float],
                   rate_kg_h: float, p_source: float) -> DetectionEvent:
    """Write one event's posterior row (the columns the roll-up reads) where ``event_posterior`` would."""
    event = DetectionEvent(when, where[1], where[0], gas, event_id)
    row = {
        "event_key": event.key, "event_id": event_id, "event_time": pd.Timestamp(event.time), "gas": gas,
        "latitude": event.latitude, "longitude": event.longitude,
        "source_lon": event.longitude + 0.001, "source_lat": event.latitude - 0.001,
        "source_location_sd_m": 123.456, "emission_rate_kg_h": rate_kg_h,
        "emission_rate_kg_h_p05": 0.5 * rate_kg_h, "emission_rate_kg_h_p50": rate_kg_h,
        "emission_rate_kg_h_p95": 1.5 * rate_kg_h + 0.123, "emission_rate_kg_h_sd": 0.3 * rate_kg_h,
        "p_source": p_source, "detected": p_source > 0.5, "alert_score": p_source / 2,
        "instruments": "EMIT,TROPOMI",
    }
    frame = gpd.GeoDataFrame([row], geometry=[Point(row["source_lon"], row["source_lat"])], crs="EPSG:4326")
    write_geoparquet(frame, store.posterior_path(event.iso_week, event.key))
    return event


@pytest.fixture()
def week_store(tmp_path: Path) -> tuple[OutputStore, dict[str, DetectionEvent]]:
    """Three events in 2025-W33 (two CH4 in the Permian, one CO2 at Belchatow) and one in W34."""
    store = OutputStore(root=str(tmp_path / "out"))
    events = {
        "pad-a": posterior_file(store, "pad-a", datetime(2025, 8, 11, 0, 0, 1, tzinfo=UTC), "CH4", PERMIAN,
                                1234.567, 0.97),
        "pad-b": posterior_file(store, "pad-b", datetime(2025, 8, 17, 23, 59, 59, tzinfo=UTC), "CH4",
                                (31.9150, -103.6010), 80.4, 0.21),
        "plant": posterior_file(store, "plant", datetime(2025, 8, 14, 12, 10, tzinfo=UTC), "CO2", BELCHATOW,
                                3.2e6, 0.99),
        "next-week": posterior_file(store, "next-week", datetime(2025, 8, 18, 0, 0, tzinfo=UTC), "CH4",
                                    PERMIAN, 500.0, 0.9),
    }
    return store, events


def _rollup(instance: DagsterInstance, store: OutputStore, week: str):
    result = materialize(
        [weekly_posteriors], instance=instance, partition_key=partition_of_week(week),
        resources={"store": store, "settings": AnalysisSettings()},
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("weekly_posteriors")
    return materialization.metadata


def test_week_keys_are_mondays_and_round_trip() -> None:
    assert partition_of_week(W33) == "2025-08-11" and week_of_partition("2025-08-11") == W33
    assert partition_of_week("2026-W01") == "2025-12-29" and week_of_partition("2025-12-29") == "2026-W01"
    keys = weekly_partitions.get_partition_keys(datetime(2025, 9, 1, tzinfo=UTC))
    assert keys[0] == "2024-01-01" and keys[-1] == "2025-09-01", "the current week is a partition"
    assert all(week_of_partition(k).endswith(f"W{datetime.fromisoformat(k).isocalendar()[1]:02d}")
               for k in keys)
    with pytest.raises(AlertFormatError, match="not a Monday"):
        week_of_partition("2025-08-12")
    with pytest.raises(AlertFormatError, match="not a week partition key"):
        week_of_partition(W33)


def test_rollup_definition_and_job_are_week_partitioned() -> None:
    assert weekly_posteriors.partitions_def == weekly_partitions
    from attribution_assets.definitions import defs

    assert defs.resolve_job_def(rollup_job.name).partitions_def == weekly_partitions
    spec = weekly_posteriors.specs_by_key[AssetKey("weekly_posteriors")]
    assert "geoparquet" in spec.kinds and spec.code_version == CODE_VERSION
    assert AssetKey("event_posterior") in {dep.asset_key for dep in spec.deps}


def test_week_rollup_reads_only_its_week_and_a_removed_event_leaves_it(week_store) -> None:
    store, events = week_store
    with instance_for_test() as instance:
        metadata = _rollup(instance, store, W33)
        path = store.weekly_dir / f"week={W33}" / "posteriors.parquet"
        rollup = gpd.read_parquet(path)
        assert sorted(rollup["event_id"]) == ["pad-a", "pad-b", "plant"], "Monday 00:00 to Sunday 23:59"
        assert metadata["dagster/row_count"].value == 3
        table = metadata["events"].value
        assert [c.name for c in table.schema.columns][:4] == ["event_id", "event_time", "gas",
                                                             "emission_rate_kg_h"]
        assert "kg/h" in next(c.description for c in table.schema.columns if c.name == "emission_rate_kg_h")
        first = table.records[0].data
        assert first["event_id"] == "pad-a" and first["emission_rate_kg_h"] == 1235.0
        assert first["p_source"] == 0.97 and first["source_location_sd_m"] == 123.0
        assert first["event_time"] == "2025-08-11T00:00:01Z"
        figure = metadata["figure"].value
        assert figure.startswith("![figure](data:image/png;base64,")
        png = imread(io.BytesIO(base64.b64decode(figure.split(",", 1)[1].rstrip(")"))), format="png")
        assert png.shape[1] > png.shape[0] > 100, "a map and one panel per gas side by side"
        assert Path(metadata["figure_path"].value).is_file()
        materialized = instance.get_materialized_partitions(AssetKey("weekly_posteriors"))
        assert materialized == {"2025-08-11"}, "the week's status shows in the partition grid"

        store.posterior_path(W33, events["pad-b"].key).unlink()
        metadata = _rollup(instance, store, W33)
        assert metadata["dagster/row_count"].value == 2
        assert events["pad-b"].key not in set(gpd.read_parquet(path)["event_key"])

        for event in ("pad-a", "plant"):
            store.posterior_path(W33, events[event].key).unlink()
        metadata = _rollup(instance, store, W33)
        assert metadata["dagster/row_count"].value == 0 and not path.exists()
        assert (store.weekly_dir / "week=2025-W34").exists() is False, "W34 is its own partition"


def test_week_figure_has_a_map_with_facilities_and_one_panel_per_gas(week_store) -> None:
    store, _ = week_store
    frame = gpd.read_parquet(store.posteriors_dir / f"week={W33}").drop(columns="bbox", errors="ignore")
    facilities = week_facilities(EventSettings(), frame)
    assert {"PERMIAN-PAD-A", "PERMIAN-PAD-B"} <= set(facilities["facility_id"])
    assert any(str(f).startswith("GPPD:") for f in facilities["facility_id"]), "Belchatow power plant"
    figure = week_figure(frame, facilities, W33)
    labels = [ax.get_ylabel() for ax in figure.axes]
    assert "CH4 emission rate (kg/h)" in labels and "CO2 emission rate (t/h)" in labels, "CO2 in t/h"
    ch4 = next(ax for ax in figure.axes if ax.get_ylabel().startswith("CH4"))
    assert ch4.get_ylim()[1] < 1e4, "the CO2 rates (~1e6 kg/h) do not flatten the CH4 panel"
    map_ax = figure.axes[0]
    events = next(c for c in map_ax.collections if c.get_array() is not None and len(c.get_offsets()))
    sizes = np.sort(events.get_sizes())
    assert sizes[0] < sizes[-1], "marker area follows the rate"
    FigureCanvasAgg(figure).draw()
    assert map_ax.get_xlabel() == "longitude (degrees east)"
    assert map_ax.get_ylabel() == "latitude (degrees north)"
    offsets = [axis.get_offset_text().get_text() for ax in figure.axes[:3] for axis in (ax.xaxis, ax.yaxis)]
    assert offsets == [""] * len(offsets), "ticks in plain degrees and rates, no '+5.126e1' offset"
    [legend] = [text.get_text() for text in map_ax.get_legend().get_texts() if "event" in text.get_text()]
    assert legend == "event source (colour: P(source))"


def test_schedule_rolls_up_the_week_that_just_ended() -> None:
    monday = datetime(2025, 8, 18, 6, 0, tzinfo=UTC)
    assert previous_week_partition(monday) == "2025-08-11"
    assert previous_week_partition(datetime(2025, 8, 24, 23, 0, tzinfo=UTC)) == "2025-08-11"
    from attribution_assets.definitions import defs

    repository = defs.get_repository_def()
    context = build_schedule_context(scheduled_execution_time=monday, repository_def=repository)
    (request,) = list(weekly_rollup_schedule.evaluate_tick(context).run_requests or [])
    assert request.partition_key == "2025-08-11"
    assert weekly_rollup_schedule.job_name == "weekly_rollup"
