"""Live access in the event step, on a real Dagster instance and an archive that lacks the event's EMIT
granule and ERA5 file: the resources fetch them through local transports (real CMR granule records and
sample files), the incremental crawl catalogues them, and the event selects and reads them."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import shapely
from dagster import AssetSelection, instance_for_test, materialize

from attribution_assets.access.cds import ERA5_DATASET, era5_request, era5_target
from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.catalog.store import read_geoparquet
from attribution_assets.definitions import ASSETS
from attribution_assets.partitions import register_events
from attribution_assets.pipeline.overpasses import met_covers
from attribution_assets.resources import (
    AnalysisSettings,
    CdsResource,
    EarthdataResource,
    OutputStore,
    build_resources,
)
from attribution_assets_tests.test_access.test_live import CREDENTIAL_VARIABLES
from attribution_assets_tests.test_access.transports import LocalCds, LocalEarthaccess

EMIT_NAME = "EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc"
TROPOMI_NAME = "S5P_OFFL_L2__CH4____20250814T193300_20250814T211354_40858_03_020600_20250815T211354.nc"
ERA5_NAME = "era5_single_levels_permian-ch4_20250814.nc"
WINDOW = ("2025-08-14T05:31:00Z", "2025-08-15T05:31:00Z")
# search_data keyword arguments of the permian event (AOI half-widths 4 km EMIT, 60 km TROPOMI)
EMIT_SEARCH = {
    "short_name": "EMITL1BRAD",
    "version": "001",
    "temporal": WINDOW,
    "bounding_box": (-103.65232904, 31.87356755, -103.56767096, 31.94543245),
}
TROPOMI_SEARCH = {
    "short_name": "S5P_L2__CH4____HiR",
    "temporal": WINDOW,
    "bounding_box": (-104.2449356, 31.37051330, -102.9750644, 32.44848670),
}
# the CDS request for the event's window (hours 05:00 on the 14th to 06:00 on the 15th)
ERA5_REQUEST = {
    "product_type": ["reanalysis"],
    "variable": [
        "10m_u_component_of_wind",
        "10m_v_component_of_wind",
        "100m_u_component_of_wind",
        "100m_v_component_of_wind",
        "boundary_layer_height",
        "surface_pressure",
        "2m_temperature",
        "total_cloud_cover",
        "forecast_surface_roughness",
        "surface_sensible_heat_flux",
    ],
    "year": ["2025"],
    "month": ["08"],
    "day": ["14", "15"],
    "time": [f"{h:02d}:00" for h in range(24)],
    "area": [32.5, -104.25, 31.25, -103.0],
    "data_format": "netcdf",
    "download_format": "unarchived",
}


def _same_search(found: dict, expected: dict) -> bool:
    box = pytest.approx(expected["bounding_box"], abs=1e-7)
    return {**found, "bounding_box": box} == {**expected, "bounding_box": box}


@pytest.fixture()
def archive(tmp_path: Path, sample_archive: Path) -> Path:
    """The sample archive without the permian event's EMIT granule and ERA5 file."""
    root = tmp_path / "archive"
    shutil.copytree(sample_archive, root)
    (root / "emit" / EMIT_NAME).unlink()
    (root / "era5" / ERA5_NAME).unlink()
    return root


@pytest.fixture()
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Earthdata and CDS credentials in the environment (the transports never send them anywhere)."""
    monkeypatch.setenv("EARTHDATA_TOKEN", "token")
    monkeypatch.setenv("CDSAPI_URL", "https://cds.climate.copernicus.eu/api")
    monkeypatch.setenv("CDSAPI_KEY", "key")


def _window(event) -> tuple[datetime, datetime]:
    return event.time - timedelta(hours=12), event.time + timedelta(hours=12)


def _permian_key(instance, sample_events) -> str:
    return register_events(instance, [sample_events["permian-ch4"]])[0]


def _run(instance, resources: dict, key: str, *assets: str):
    return materialize(
        ASSETS,
        instance=instance,
        resources=resources,
        partition_key=key,
        selection=AssetSelection.assets(*assets),
    )


def _crawl(instance, resources: dict) -> None:
    assert materialize(
        ASSETS, instance=instance, resources=resources, selection=AssetSelection.assets("overpass_catalog")
    ).success


def _metadata(result, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset]
    return event.step_materialization_data.materialization.metadata


def test_live_step_downloads_catalogues_and_uses_missing_files(
    archive, tmp_path, sample_archive, sample_events, credentials
) -> None:
    earthaccess = LocalEarthaccess(sample_archive, fail_downloads=1)
    cds = LocalCds(sample_archive / "era5" / ERA5_NAME)
    resources = build_resources(archive, tmp_path / "output", AnalysisSettings(), live=False)
    store: OutputStore = resources["store"]
    with instance_for_test() as instance:
        _crawl(instance, resources)
        before = read_geoparquet(store.catalog_path)
        assert EMIT_NAME not in {Path(p).name for p in before["path"]}
        key = _permian_key(instance, sample_events)
        live = {
            **resources,
            "earthdata": EarthdataResource(client=earthaccess, backoff_s=0.0),
            "cds": CdsResource(client=cds, backoff_s=0.0),
        }
        result = _run(instance, live, key, "event_overpasses", "emit_aoi")
        assert result.success

        # the requests have the documented shapes
        names = [name for name, _ in earthaccess.calls]
        assert names == ["login", "search_data", "session", "get", "get", "search_data"]
        assert earthaccess.calls[0][1] == {"strategy": "environment"}
        assert _same_search(earthaccess.calls[1][1], EMIT_SEARCH)
        assert Path(earthaccess.calls[3][1]["url"]).name == EMIT_NAME
        assert _same_search(earthaccess.calls[5][1], TROPOMI_SEARCH)
        ((dataset, request, _),) = cds.calls
        assert dataset == ERA5_DATASET and request == ERA5_REQUEST
        era5_file = era5_target(archive, sample_events["permian-ch4"].time, request)
        assert era5_file.parent == archive / "era5" and era5_file.is_file()

        # downloaded files land in the archive, are catalogued and selected for the event
        assert (archive / "emit" / EMIT_NAME).is_file()
        assert not [p for p in archive.rglob(".staging-*")]
        catalog = read_geoparquet(store.catalog_path)
        assert {str(archive / "emit" / EMIT_NAME), str(era5_file)} <= set(catalog["path"])
        overpasses = result.output_for_node("event_overpasses")
        selected = dict(
            zip(overpasses["path"].map(lambda p: Path(p).name), overpasses["instrument"], strict=True)
        )
        assert selected[EMIT_NAME] == "EMIT" and selected[era5_file.name] == "ERA5"
        assert selected[TROPOMI_NAME] == "TROPOMI"
        assert result.output_for_node("emit_aoi").keys() == {Path(EMIT_NAME).stem}
        report = _metadata(result, "event_overpasses")["live_access"].data
        assert report["NASA Earthdata"] == "on: credentials from environment"
        assert sorted(Path(p).name for p in report["downloaded"]) == sorted([EMIT_NAME, era5_file.name])
        event = sample_events["permian-ch4"]
        bbox = resources["settings"].event_settings().bbox(event, 0.5)
        assert era5_request(bbox, *_window(event)) == ERA5_REQUEST

        # a second run finds everything known: no download, no ERA5 request, no re-crawl
        again = _run(instance, live, key, "event_overpasses")
        assert again.success
        assert [name for name, _ in earthaccess.calls[6:]] == ["login", "search_data", "search_data"]
        assert len(cds.calls) == 1
        report = _metadata(again, "event_overpasses")["live_access"].data
        assert report["downloaded"] == [] and "catalogued" not in report


def test_without_credentials_the_step_uses_the_local_archive_only(
    archive, tmp_path, sample_archive, sample_events, monkeypatch
) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent_netrc"))
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "absent_cdsapirc"))
    earthaccess = LocalEarthaccess(sample_archive)
    cds = LocalCds(sample_archive / "era5" / ERA5_NAME)
    resources = {
        **build_resources(archive, tmp_path / "output"),
        "earthdata": EarthdataResource(client=earthaccess),
        "cds": CdsResource(client=cds),
    }
    with instance_for_test() as instance:
        _crawl(instance, resources)
        result = _run(instance, resources, _permian_key(instance, sample_events), "event_overpasses")
        assert result.success
        assert earthaccess.calls == [] and cds.calls == []
        report = _metadata(result, "event_overpasses")["live_access"].data
        assert report["NASA Earthdata"].startswith("off: no credentials found; set EARTHDATA_TOKEN")
        assert report["Copernicus CDS"].startswith("off: no credentials found; set CDSAPI_URL")
        assert "downloaded" not in report
        overpasses = result.output_for_node("event_overpasses")
        assert EMIT_NAME not in set(overpasses["path"].map(lambda p: Path(p).name))
        assert "ERA5" not in set(overpasses["instrument"])
        logs = [
            e.message for e in instance.all_logs(result.run_id) if e.message and "live access" in e.message
        ]
        assert any("NASA Earthdata: off (no credentials found" in message for message in logs)
        assert not (archive / "emit" / EMIT_NAME).exists()


def test_a_failing_service_leaves_the_event_on_the_local_archive(
    archive, tmp_path, sample_archive, sample_events, credentials
) -> None:
    resources = {
        **build_resources(archive, tmp_path / "output", live=False),
        "earthdata": EarthdataResource(
            client=LocalEarthaccess(sample_archive, fail_downloads=9), backoff_s=0.0
        ),
        "cds": CdsResource(client=LocalCds(sample_archive / "era5" / ERA5_NAME, fail=9), backoff_s=0.0),
    }
    with instance_for_test() as instance:
        _crawl(instance, resources)
        result = _run(instance, resources, _permian_key(instance, sample_events), "event_overpasses")
        assert result.success
        report = _metadata(result, "event_overpasses")["live_access"].data
        assert report["NASA Earthdata"] == f"failed: NASA Earthdata: {EMIT_NAME}: connection reset by peer"
        assert report["Copernicus CDS"] == "failed: 503 Service Unavailable"
        assert report["downloaded"] == []
        assert not list(archive.rglob(".staging-*")) and not (archive / "emit" / EMIT_NAME).exists()
        assert "TROPOMI" in set(result.output_for_node("event_overpasses")["instrument"])


def test_met_covers_needs_the_whole_window_without_gaps(archive) -> None:
    catalog = crawl_archive(archive).catalog  # ERA5 files of 2025-07-21 (korpezhe), hours 00-23
    lon, lat = 54.215, 38.502
    day = datetime(2025, 7, 21, tzinfo=UTC)
    assert met_covers(catalog, lon, lat, day + timedelta(hours=1), day + timedelta(hours=23))
    assert not met_covers(catalog, lon, lat, day + timedelta(hours=1), day + timedelta(hours=24))
    assert not met_covers(catalog, lon, lat, day - timedelta(hours=1), day + timedelta(hours=2))
    assert not met_covers(catalog, 0.0, 0.0, day + timedelta(hours=1), day + timedelta(hours=2))
    two_days = catalog[catalog["instrument"] == "ERA5"].copy()
    korpezhe = two_days[two_days.geometry.covers(shapely.Point(lon, lat))].iloc[[0, 0]].copy()
    korpezhe.iloc[1, korpezhe.columns.get_loc("time_start")] += timedelta(days=1)
    korpezhe.iloc[1, korpezhe.columns.get_loc("time_end")] += timedelta(days=1)
    assert not met_covers(korpezhe, lon, lat, day, day + timedelta(hours=30))  # 23:00 -> 00:00 gap
    korpezhe.iloc[1, korpezhe.columns.get_loc("time_start")] -= timedelta(hours=1)
    assert met_covers(korpezhe, lon, lat, day, day + timedelta(hours=30))


class TropomiSearchDown(LocalEarthaccess):
    """Serves EMIT; every TROPOMI search fails."""

    def search_data(self, **kwargs):
        if kwargs["short_name"] == "S5P_L2__CH4____HiR":
            self.calls.append(("search_data", kwargs))
            raise TimeoutError("GES DISC search timed out")
        return super().search_data(**kwargs)


def test_files_fetched_before_a_failure_are_catalogued_and_used(
    archive, tmp_path, sample_archive, sample_events, monkeypatch
) -> None:
    monkeypatch.setenv("EARTHDATA_TOKEN", "token")
    transport = TropomiSearchDown(sample_archive)
    resources = {
        **build_resources(archive, tmp_path / "output", live=False),
        "earthdata": EarthdataResource(client=transport, backoff_s=0.0, attempts=2),
    }
    with instance_for_test() as instance:
        _crawl(instance, resources)
        result = _run(instance, resources, _permian_key(instance, sample_events), "event_overpasses")
        assert result.success
        assert [name for name, _ in transport.calls] == ["login", "search_data", "session", "get"] + [
            "search_data"
        ] * 2
        report = _metadata(result, "event_overpasses")["live_access"].data
        assert report["NASA Earthdata"] == "failed: GES DISC search timed out"
        assert report["Copernicus CDS"] == "off: live=False"
        assert [Path(p).name for p in report["downloaded"]] == [EMIT_NAME]
        assert EMIT_NAME in set(
            result.output_for_node("event_overpasses")["path"].map(lambda p: Path(p).name)
        )
