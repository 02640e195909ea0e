"""Earthdata search/download through a local transport (earthaccess call shapes, real CMR granule
records and sample files); the crawl catalogs what lands."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from attribution_assets.access.earthdata import (
    PRODUCTS,
    CredentialsError,
    EarthdataSearch,
    download_granules,
    file_name,
    granule_links,
    has_credentials,
    login,
)
from attribution_assets.access.http import AccessRefused, HTTPFailure
from attribution_assets.access.retry import backoff_delays, with_backoff
from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets_tests.test_access.transports import RECORDS, LocalEarthaccess

EMIT_NAME = "EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc"
EMIT_URL = (
    "https://data.lpdaac.earthdatacloud.nasa.gov/lp-prod-protected/EMITL1BRAD.001/"
    f"EMIT_L1B_RAD_001_20250814T173100_2522612_001/{EMIT_NAME}"
)
T0 = datetime(2025, 8, 14, 5, 31, tzinfo=UTC)
T1 = T0 + timedelta(hours=24)
BBOX = (-103.7, 31.8, -103.5, 32.0)


def test_search_kwargs_exact() -> None:
    search = EarthdataSearch("EMITL1BRAD", T0, T1, BBOX)
    assert search.search_kwargs() == {
        "short_name": "EMITL1BRAD",
        "version": "001",
        "temporal": ("2025-08-14T05:31:00Z", "2025-08-15T05:31:00Z"),
        "bounding_box": (-103.7, 31.8, -103.5, 32.0),
    }
    oco2 = EarthdataSearch("OCO2_L2_Lite_FP", T0, T1, BBOX, version="11.1r")
    assert oco2.search_kwargs()["version"] == "11.1r" and oco2.instrument == "OCO2"
    assert EarthdataSearch("OCO2_L2_Lite_FP", T0, T1, BBOX).version == "11.2r"
    tropomi = EarthdataSearch("S5P_L2__CH4____HiR", T0.replace(tzinfo=None), T1, BBOX)
    assert "version" not in tropomi.search_kwargs()
    assert tropomi.search_kwargs()["temporal"][0] == "2025-08-14T05:31:00Z"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("MOD021KM", T0, T1, BBOX), "unsupported"),
        (("OCO2_L2_Lite_FP", T0, T1, BBOX, "10r"), "version"),
        (("EMITL1BRAD", T1, T0, BBOX), "before"),
        (("EMITL1BRAD", T0, T1, (0.0, 10.0, 1.0, 5.0)), "latitudes"),
    ],
)
def test_search_rejects_bad_input(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        EarthdataSearch(*args)


def test_granule_links_keep_only_the_product_files_the_readers_take() -> None:
    client = LocalEarthaccess(SAMPLE_ARCHIVE)
    emit = client.search_data(**EarthdataSearch("EMITL1BRAD", T0, T1, BBOX).search_kwargs())
    every_link = [link for granule in emit for link in granule.data_links()]
    assert {file_name(link) for link in every_link} == {EMIT_NAME, EMIT_NAME.replace("_RAD_", "_OBS_")}
    assert granule_links(emit, PRODUCTS["EMITL1BRAD"]) == [EMIT_URL]
    tropomi = client.search_data(**EarthdataSearch("S5P_L2__CH4____HiR", T0, T1, BBOX).search_kwargs())
    (link,) = granule_links(tropomi, PRODUCTS["S5P_L2__CH4____HiR"])
    assert link.startswith("https://data.gesdisc.earthdata.nasa.gov/data/S5P_TROPOMI_Level2/")
    june = datetime(2025, 6, 10, tzinfo=UTC)
    oco2 = client.search_data(**EarthdataSearch("OCO2_L2_Lite_FP", june, june, BBOX).search_kwargs())
    assert [file_name(u) for u in granule_links(oco2, PRODUCTS["OCO2_L2_Lite_FP"])] == [
        "oco2_LtCO2_250610_B11210Ar_250710000000s.nc4"
    ]
    assert granule_links(emit + tropomi, PRODUCTS["OCO2_L2_Lite_FP"]) == []
    assert file_name(EMIT_URL + "?token=x") == EMIT_NAME
    assert len(json.loads(RECORDS.read_text())) == 4


def test_download_lands_native_name_and_crawl_catalogs_it(tmp_path: Path) -> None:
    fake = LocalEarthaccess(SAMPLE_ARCHIVE, fail_downloads=1)
    waits: list[float] = []
    search = EarthdataSearch("EMITL1BRAD", T0, T1, BBOX)
    fetch = download_granules(search, tmp_path, client=fake, sleep=waits.append)
    assert fetch.downloaded == (tmp_path / "emit" / EMIT_NAME,) and fetch.links == (EMIT_URL,)
    assert fetch.present == ()
    assert [name for name, _ in fake.calls] == ["search_data", "session", "get", "get"]
    assert fake.calls[0][1] == search.search_kwargs()
    assert fake.calls[2][1] == fake.calls[3][1] == {"url": EMIT_URL}
    assert not list((tmp_path / "emit").glob(".staging-*"))
    assert sorted(p.name for p in (tmp_path / "emit").iterdir()) == [EMIT_NAME]
    assert waits == backoff_delays(4, 2.0, 60.0)[:1]
    result = crawl_archive(tmp_path)
    assert result.rejected.empty
    assert list(result.catalog["instrument"]) == ["EMIT"]
    assert result.catalog["path"].iloc[0] == str(fetch.downloaded[0])
    again = download_granules(search, tmp_path, client=fake)
    assert again.downloaded == () and again.present == (EMIT_NAME,)
    assert [name for name, _ in fake.calls[4:]] == ["search_data"]


def test_known_files_are_not_downloaded(tmp_path: Path) -> None:
    fake = LocalEarthaccess(SAMPLE_ARCHIVE)
    search = EarthdataSearch("EMITL1BRAD", T0, T1, BBOX)
    fetch = download_granules(search, tmp_path, client=fake, known={EMIT_NAME})
    assert fetch.present == (EMIT_NAME,) and fetch.downloaded == ()
    assert [name for name, _ in fake.calls] == ["search_data"] and not (tmp_path / "emit").exists()


def test_download_with_no_granules_returns_nothing(tmp_path: Path) -> None:
    fake = LocalEarthaccess(SAMPLE_ARCHIVE)
    later = EarthdataSearch("EMITL1BRAD", T0 + timedelta(days=30), T1 + timedelta(days=30), BBOX)
    assert download_granules(later, tmp_path, client=fake).links == ()
    assert [name for name, _ in fake.calls] == ["search_data"]


def test_a_link_the_server_does_not_have_is_an_error_not_retried(tmp_path: Path) -> None:
    fake = LocalEarthaccess(SAMPLE_ARCHIVE)
    fake.files.pop(EMIT_NAME)
    with pytest.raises(HTTPFailure, match=f"NASA Earthdata: HTTP 404 Not Found for {EMIT_URL}"):
        download_granules(EarthdataSearch("EMITL1BRAD", T0, T1, BBOX), tmp_path, client=fake)
    assert [name for name, _ in fake.calls] == ["search_data", "session", "get"]
    assert list((tmp_path / "emit").iterdir()) == []


def test_a_refused_login_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refused(LocalEarthaccess):
        def login(self, strategy: str):
            super().login(strategy)
            return SimpleNamespace(authenticated=False)

    monkeypatch.setenv("EARTHDATA_TOKEN", "expired-token-123")
    with pytest.raises(AccessRefused, match="NASA Earthdata refused the credentials from environment"):
        login(client=Refused(SAMPLE_ARCHIVE))


def test_has_credentials_strategies(tmp_path: Path) -> None:
    missing = tmp_path / "no_netrc"
    assert has_credentials({"EARTHDATA_TOKEN": "t"}, missing) == "environment"
    assert has_credentials({"EARTHDATA_USERNAME": "u", "EARTHDATA_PASSWORD": "p"}, missing) == "environment"
    assert has_credentials({"EARTHDATA_USERNAME": "u"}, missing) is None
    rc = tmp_path / "netrc"
    rc.write_text("machine example.org login a password b\n")
    assert has_credentials({}, rc) is None
    rc.write_text("machine urs.earthdata.nasa.gov login a password b\n")
    assert has_credentials({}, rc) == "netrc"


def test_login_only_with_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = LocalEarthaccess(SAMPLE_ARCHIVE)
    for name in ("EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    with pytest.raises(CredentialsError, match="EARTHDATA_TOKEN"):
        login(client=fake)
    assert fake.calls == []
    monkeypatch.setenv("EARTHDATA_TOKEN", "token")
    assert login(client=fake) == "auth"
    assert fake.calls == [("login", {"strategy": "environment"})]
    with pytest.raises(ValueError, match="strategy"):
        login("interactive", client=fake)


def test_with_backoff_retries_then_raises() -> None:
    waits: list[float] = []
    messages: list[str] = []
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TimeoutError("slow")
        return 7

    assert with_backoff(flaky, sleep=waits.append, log=messages.append) == 7
    assert len(waits) == 2 and len(messages) == 2 and "attempt 1/4" in messages[0]
    assert all(0.0 <= w <= cap for w, cap in zip(waits, (2.0, 4.0), strict=True))

    def always() -> None:
        raise ConnectionError("down")

    waits.clear()
    with pytest.raises(ConnectionError):
        with_backoff(always, attempts=3, base_s=100.0, max_s=5.0, sleep=waits.append)
    assert len(waits) == 2 and max(waits) <= 5.0

    def wrong() -> None:
        raise KeyError("not transient")

    with pytest.raises(KeyError):
        with_backoff(wrong, sleep=waits.append)
    assert backoff_delays(4, 2.0, 60.0, seed=1) == backoff_delays(4, 2.0, 60.0, seed=1)


@pytest.mark.live
@pytest.mark.skipif(has_credentials() is None, reason="no NASA Earthdata credentials")
def test_live_emit_download() -> None:
    login()
    search = EarthdataSearch(
        "EMITL1BRAD",
        datetime(2024, 10, 6, 16, 0, tzinfo=UTC),
        datetime(2024, 10, 6, 18, 0, tzinfo=UTC),
        (-103.8, 31.7, -103.4, 32.1),
    )
    with tempfile.TemporaryDirectory() as tmp:
        fetch = download_granules(search, tmp)
        assert all(path.is_file() for path in fetch.downloaded)
        assert len(crawl_archive(tmp).catalog) == len(fetch.downloaded)
