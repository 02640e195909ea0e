"""ERA5 request building and download with a recording fake cdsapi client; the crawl catalogs it."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from attribution_assets.access.cds import (
    DEFAULT_VARIABLES,
    ERA5_DATASET,
    download_era5,
    era5_area,
    era5_request,
    era5_target,
    has_cds_credentials,
    request_hash,
)
from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.samples.formats.era5 import write_era5, write_era5_zip
from attribution_assets.samples.truth import load_events
from attribution_assets.samples.weather import era5_dataset

EVENT = next(ev for ev in load_events() if ev.event_id == "permian-ch4")
BBOX = (EVENT.alert_lon - 0.05, EVENT.alert_lat - 0.05, EVENT.alert_lon + 0.05, EVENT.alert_lat + 0.05)
T0 = datetime(2025, 8, 14, 5, 31, tzinfo=UTC)
T1 = datetime(2025, 8, 14, 23, 59, tzinfo=UTC)


class RecordingCds:
    """Stand-in for ``cdsapi.Client``: records (name, request, target) and writes a CDS-layout ERA5 file."""

    instances: list[RecordingCds] = []

    def __init__(self, fail: int = 0, zipped: bool = False) -> None:
        self.calls: list[tuple[str, dict, str]] = []
        self.fail = fail
        self.zipped = zipped
        RecordingCds.instances.append(self)

    def retrieve(self, name, request, target=None):
        self.calls.append((name, request, target))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("503 Service Unavailable")
        (write_era5_zip if self.zipped else write_era5)(era5_dataset(EVENT), target)


def test_request_exact() -> None:
    request = era5_request((-103.66, 31.86, -103.56, 31.96), T0, datetime(2025, 8, 14, 23, 0, tzinfo=UTC))
    assert request == {
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
        "day": ["14"],
        "time": [f"{h:02d}:00" for h in range(5, 24)],
        "area": [32.5, -104.25, 31.25, -103.0],
        "data_format": "netcdf",
        "download_format": "unarchived",
    }


def test_request_across_midnight_and_grid_edges() -> None:
    request = era5_request(
        (10.0, 89.8, 10.25, 90.0),
        datetime(2025, 8, 31, 22, 0),
        datetime(2025, 9, 1, 1, 30),
        variables=["2m_temperature"],
    )
    assert request["variable"] == ["2m_temperature"]
    assert request["year"] == ["2025"] and request["month"] == ["08", "09"] and request["day"] == ["01", "31"]
    assert request["time"] == ["00:00", "01:00", "02:00", "22:00", "23:00"]
    assert request["area"] == [90.0, 9.5, 89.25, 10.75]
    assert era5_area((0.1, 0.0, 0.2, 0.0)) == [0.5, -0.5, -0.5, 0.75]
    # across the antimeridian, however the box writes it: W > E, which MARS wraps round the globe
    boxes = ((179.6, -17.5, 180.3, -16.5), (179.6, -17.5, -179.7, -16.5), (-180.4, -17.5, -179.7, -16.5))
    for across in boxes:
        assert era5_area(across) == [-16.0, 179.0, -18.0, -179.0], across
    assert era5_area((-179.6, -17.5, -179.0, -16.5)) == [-16.0, 179.75, -18.0, -178.5]  # the pad reaches past
    assert era5_area((-190.0, -17.5, 175.0, -16.5)) == [-16.0, -180.0, -18.0, 180.0]
    with pytest.raises(ValueError, match="before"):
        era5_request(BBOX, T1, T0)


def test_download_writes_target_and_crawl_catalogs_era5(tmp_path: Path) -> None:
    RecordingCds.instances.clear()
    waits: list[float] = []
    path = download_era5(
        BBOX, T0, T1, tmp_path, client_factory=lambda: RecordingCds(fail=1), sleep=waits.append
    )
    request = era5_request(BBOX, T0, T1)
    assert path == tmp_path / "era5" / f"era5_single_levels_20250814_{request_hash(request)}.nc"
    assert path == era5_target(tmp_path, T0, request)
    (client,) = RecordingCds.instances
    staged = Path(client.calls[0][2])
    assert staged.name == path.name and staged.parent.parent == path.parent
    assert staged.parent.name.startswith(".staging-") and not staged.parent.exists()
    assert client.calls == [(ERA5_DATASET, request, str(staged)), (ERA5_DATASET, request, str(staged))]
    assert len(waits) == 1
    assert sorted(p.name for p in (tmp_path / "era5").iterdir()) == [path.name]
    result = crawl_archive(tmp_path)
    assert result.rejected.empty
    assert list(result.catalog["instrument"]) == ["ERA5"]
    assert result.catalog["path"].iloc[0] == str(path)
    again = download_era5(BBOX, T0, T1, tmp_path, client_factory=lambda: RecordingCds())
    assert again == path and len(RecordingCds.instances) == 1


def test_zip_delivery_is_stored_as_zip(tmp_path: Path) -> None:
    path = download_era5(BBOX, T0, T1, tmp_path, client_factory=lambda: RecordingCds(zipped=True))
    assert path.suffix == ".zip" and path.is_file() and not path.with_suffix(".nc").exists()
    assert list(crawl_archive(tmp_path).catalog["instrument"]) == ["ERA5"]


def test_failed_download_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError):
        download_era5(
            BBOX, T0, T1, tmp_path, client_factory=lambda: RecordingCds(fail=9), sleep=lambda s: None
        )
    assert list((tmp_path / "era5").iterdir()) == []


def test_has_cds_credentials(tmp_path: Path) -> None:
    rc = tmp_path / ".cdsapirc"
    assert has_cds_credentials({"CDSAPI_URL": "https://cds", "CDSAPI_KEY": "k"}, rc) == "environment"
    assert has_cds_credentials({"CDSAPI_URL": "https://cds"}, rc) is None
    rc.write_text("url: https://cds.climate.copernicus.eu/api\nkey: abc\n")
    assert has_cds_credentials({}, rc) == str(rc)
    assert len(DEFAULT_VARIABLES) == 10


@pytest.mark.live
@pytest.mark.skipif(not has_cds_credentials(), reason="no Copernicus CDS credentials")
def test_live_era5_download() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = download_era5(BBOX, datetime(2024, 10, 6, 15), datetime(2024, 10, 6, 18), tmp)
        assert list(crawl_archive(tmp).catalog["instrument"]) == ["ERA5"]
        assert path.is_file()
