"""A product file the crawl rejected is never "no overpass" for an event it would have served.

On a copy of the sample archive with the Permian GHGSat scene truncated (an interrupted delivery: it
no longer opens, only its name dates it) and the Korpezhe ERA5 download without ``v10`` (it opens: its
grid and hours are read):

- the crawl records what is still known of each rejected file (instrument, time span, bounding box);
- the Permian event's GHGSat outcome names the truncated file and the crawl's reason, and the file is
  no input of the provenance; the Korpezhe event (another place and day) does not mention it;
- the Korpezhe event's met error names the rejected ERA5 file and the missing variable, instead of
  saying that no ERA5 file was given.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from attribution_assets.catalog.rejected import rejected_extent
from attribution_assets.catalog.store import crawl_into_catalog
from attribution_assets.layout import OutputLayout
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets.pipeline import EventSettings, MetDataError, extract_aois, prepare_met
from attribution_assets.pipeline.event import aoi_datasets
from attribution_assets.pipeline.overpasses import catalogued, granule_counts, resolve_overpasses
from attribution_assets.pipeline.posterior import instrument_outcomes
from attribution_assets.pipeline.provenance import provenance_json
from attribution_assets_tests.test_bad_inputs.corpus import PRODUCTS, remove_variable, truncate

KORPEZHE_ERA5 = "era5/era5_single_levels_korpezhe-ch4_20250721.nc"


@pytest.fixture(scope="module")
def broken_archive(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("rejected") / "archive"
    shutil.copytree(SAMPLE_ARCHIVE, root)
    ghgsat = truncate(root / PRODUCTS["GHGSAT"].sample)
    era5 = remove_variable(root / KORPEZHE_ERA5, "v10")
    layout = OutputLayout(str(root.parent / "output"))
    crawl_into_catalog(root, layout.catalog_files)
    return {"root": root, "ghgsat": ghgsat, "era5": era5, "layout": layout}


def _resolve(broken_archive: dict, event) -> pd.DataFrame:
    layout = broken_archive["layout"]
    return resolve_overpasses(event, layout.catalog_path, EventSettings(), rejected_path=layout.rejected_path)


def test_the_rejected_list_records_what_is_known_of_each_file(broken_archive):
    rejected = pd.read_csv(broken_archive["layout"].rejected_path, dtype=str, keep_default_na=False)
    rows = rejected.set_index("path")
    ghgsat = rows.loc[str(broken_archive["ghgsat"])]
    assert ghgsat["instrument"] == "GHGSAT" and "truncated file" in ghgsat["reason"]
    assert ghgsat["time_start"] == ghgsat["time_end"] == "2025-08-14T16:45:00Z", "dated by its name"
    assert ghgsat["west"] == "", "a file that does not open has no known footprint"
    era5 = rows.loc[str(broken_archive["era5"])]
    assert era5["instrument"] == "ERA5" and "'v10'" in era5["reason"]
    assert (era5["time_start"], era5["time_end"]) == ("2025-07-21T00:00:00Z", "2025-07-21T23:00:00Z")
    box = [float(era5[side]) for side in ("west", "south", "east", "north")]
    assert box[0] < 54.215 < box[2] and box[1] < 38.502 < box[3]
    assert rejected_extent(broken_archive["era5"]).instrument == "ERA5"


def test_a_rejected_file_is_the_instruments_outcome_not_no_overpass(broken_archive, sample_events):
    event = sample_events["permian-ch4"]
    overpasses = _resolve(broken_archive, event)
    aois = extract_aois(event, overpasses, EventSettings())
    name = broken_archive["ghgsat"].name
    outcome = instrument_outcomes({n: a.outcomes for n, a in aois.items()}, {})["GHGSAT"]
    assert outcome.startswith("rejected by the catalog crawl: OSError: ") and "truncated file" in outcome
    assert outcome.endswith(f"({name})")
    assert not aois["GHGSAT"].datasets and aois["EMIT"].datasets and aois["TROPOMI"].datasets
    assert granule_counts(overpasses)["GHGSAT"] == 0
    assert str(broken_archive["ghgsat"]) not in set(catalogued(overpasses)["path"])
    met = prepare_met(event, overpasses, aoi_datasets(aois))
    inputs = provenance_json(overpasses, [], met, EventSettings(), event.gas)
    assert name not in inputs, "a rejected file is no input of the provenance"


def test_a_rejected_file_of_another_place_and_day_is_not_mentioned(broken_archive, sample_events):
    event = sample_events["korpezhe-ch4"]
    aois = extract_aois(event, _resolve(broken_archive, event), EventSettings())
    assert all(broken_archive["ghgsat"].name not in outcome for outcome in aois["GHGSAT"].outcomes)
    assert list(aois["GHGSAT"].outcomes.values()) == ["read"]


def test_the_met_error_names_the_rejected_era5_file_and_the_variable(broken_archive, sample_events):
    event = sample_events["korpezhe-ch4"]
    overpasses = _resolve(broken_archive, event)
    aois = extract_aois(event, overpasses, EventSettings())
    with pytest.raises(MetDataError) as raised:
        prepare_met(event, overpasses, aoi_datasets(aois))
    message = str(raised.value)
    assert message.startswith("no met data covers (54.2150, 38.5020) at 2025-07-21T06:5")
    assert f"the ERA5 file {broken_archive['era5']} was rejected by the catalog crawl" in message
    assert "variable 'v10': expected variable present" in message
    assert "neither an ERA5 nor a WRF dataset was given" not in message
    assert "\n" not in message, "one line: the run's failure summary keeps the last line"


def test_the_met_error_says_the_catalog_lists_no_met_file(broken_archive, sample_events):
    event = sample_events["permian-ch4"]
    overpasses = _resolve(broken_archive, event)
    aois = extract_aois(event, overpasses, EventSettings())
    without_met = overpasses[~overpasses["instrument"].isin(["ERA5", "WRF"])]
    with pytest.raises(MetDataError) as raised:
        prepare_met(event, without_met, aoi_datasets(aois))
    message = str(raised.value)
    assert "the catalog lists no ERA5 or WRF file whose grid covers the event's place" in message
    assert "neither an ERA5 nor a WRF dataset was given" not in message


def test_a_rejected_list_from_before_the_extent_columns_still_names_the_file(broken_archive, sample_events,
                                                                               tmp_path):
    """A list written before the extent was recorded (path, reason, archive): the instrument and the
    time span come from the file name."""
    old = tmp_path / "rejected_files.csv"
    current = pd.read_csv(broken_archive["layout"].rejected_path, dtype=str, keep_default_na=False)
    current[["path", "reason", "archive"]].to_csv(old, index=False)
    name = broken_archive["ghgsat"].name
    for event_id, expected in (("permian-ch4", True), ("korpezhe-ch4", False)):
        event = sample_events[event_id]
        overpasses = resolve_overpasses(event, broken_archive["layout"].catalog_path, EventSettings(),
                                        rejected_path=old)
        outcomes = extract_aois(event, overpasses, EventSettings())["GHGSAT"].outcomes
        assert (name in outcomes) is expected, event_id
    assert outcomes == {"GHGSat_L2_GHGSat-C9_20250721T065500Z_korpezhe.h5": "read"}


def test_an_undated_rejected_file_is_named_with_a_caveat(tmp_path, sample_events):
    """A truncated delivery whose name carries no time stamp: nothing known rules it out, so the event
    names it, saying that it may not cover the event."""
    root = tmp_path / "archive"
    root.mkdir()
    undated = truncate(Path(shutil.copy(SAMPLE_ARCHIVE / PRODUCTS["GHGSAT"].sample, root / "delivery.h5")))
    layout = OutputLayout(str(tmp_path / "output"))
    crawl_into_catalog(root, layout.catalog_files)
    event = sample_events["permian-ch4"]
    overpasses = resolve_overpasses(event, layout.catalog_path, EventSettings(),
                                    rejected_path=layout.rejected_path)
    outcome = extract_aois(event, overpasses, EventSettings())["GHGSAT"].outcomes[undated.name]
    assert outcome.startswith("rejected by the catalog crawl: OSError")
    assert outcome.endswith("[its time span and footprint could not be read: it may not cover the event]")
