"""Network faults at the Earthdata and CDS boundaries, on a real HTTPS server on 127.0.0.1.

Earthdata: the project's download (``download_granules`` -> ``http.fetch_file``) with earthaccess's own
authorised session class (bearer token). CDS: the real ``cdsapi`` client (``ecmwf-datastores`` API) on
``CDSAPI_URL=https://127.0.0.1:<port>/api``. The server answers 200, 5xx, 401, 403, hangs, or sends a
body shorter than its ``Content-Length``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from earthaccess.auth import Auth
from earthaccess.results import DataGranule

from attribution_assets.access.cds import ERA5_DATASET, download_era5
from attribution_assets.access.earthdata import EarthdataSearch, download_granules
from attribution_assets.access.http import AccessRefused, IncompleteDownload, InsecureURL
from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.paths import SAMPLE_ARCHIVE
from attribution_assets_tests.test_access import loopback
from attribution_assets_tests.test_access.loopback import Loopback

TOKEN = "planted-earthdata-token-7f3a9c"
KEY = "planted-cds-key-51d2e8b0"
EMIT_NAME = "EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc"
EMIT_BYTES = (SAMPLE_ARCHIVE / "emit" / EMIT_NAME).read_bytes()
ERA5_BYTES = (SAMPLE_ARCHIVE / "era5" / "era5_single_levels_permian-ch4_20250814.nc").read_bytes()
EMIT_PATH = f"/lp-prod-protected/EMITL1BRAD.001/{Path(EMIT_NAME).stem}/{EMIT_NAME}"
T0 = datetime(2025, 8, 14, 5, 31, tzinfo=UTC)
T1 = T0 + timedelta(hours=24)
BBOX = (-103.7, 31.8, -103.5, 32.0)
SEARCH = EarthdataSearch("EMITL1BRAD", T0, T1, BBOX)
API = "/api/retrieve/v1"


def granule_record(link: str, checksum: dict[str, str] | None = None) -> dict:
    """A CMR UMM-G search result for the EMIT granule with ``link`` as its data link."""
    item: dict = {"Name": EMIT_NAME, "SizeInBytes": len(EMIT_BYTES)}
    if checksum:
        item["Checksum"] = checksum
    return {
        "meta": {"concept-id": "G0000000001-LPCLOUD", "provider-id": "LPCLOUD"},
        "umm": {
            "GranuleUR": Path(EMIT_NAME).stem,
            "CollectionReference": {"ShortName": "EMITL1BRAD", "Version": "001"},
            "TemporalExtent": {"RangeDateTime": {"BeginningDateTime": "2025-08-14T17:31:00Z",
                                                 "EndingDateTime": "2025-08-14T17:31:08Z"}},
            "DataGranule": {"ArchiveAndDistributionInformation": [item]},
            "RelatedUrls": [{"URL": link, "Type": "GET DATA"}],
        },
    }


class Cmr:
    """earthaccess's ``search_data`` and ``get_requests_https_session`` for one granule record; the
    session is earthaccess's own (``Auth.get_session``: bearer token header)."""

    def __init__(self, record: dict) -> None:
        self.record = record

    def login(self, strategy: str) -> Auth:
        auth = Auth()
        auth.authenticated = True
        return auth

    def search_data(self, **kwargs: object) -> list[DataGranule]:
        with warnings.catch_warnings():  # DataGranule.size() announces an API change
            warnings.simplefilter("ignore", FutureWarning)
            return [DataGranule(self.record, cloud_hosted=True)]

    def get_requests_https_session(self) -> requests.Session:
        auth = Auth()
        auth.token = {"access_token": TOKEN}
        return auth.get_session()


def fetch(tmp_path: Path, record: dict, attempts: int = 4, waits: list[float] | None = None):
    return download_granules(
        SEARCH, tmp_path / "archive", Cmr(record), attempts=attempts, base_s=0.01, timeout_s=0.5,
        sleep=(waits if waits is not None else []).append,
    )


def assert_nothing_landed(archive: Path) -> None:
    assert not [p for p in archive.rglob("*") if p.is_file()], "nothing may land in the archive"
    assert crawl_archive(archive).catalog.empty


# --- Earthdata -------------------------------------------------------------------------------------


def test_earthdata_5xx_and_timeout_are_retried_with_backoff(tmp_path: Path, server: Loopback) -> None:
    server.script(EMIT_PATH, loopback.status(503), loopback.hang(), loopback.ok(EMIT_BYTES))
    waits: list[float] = []
    result = fetch(tmp_path, granule_record(server.url(EMIT_PATH)), waits=waits)
    gets = server.requests_to(EMIT_PATH, "GET")
    assert len(gets) == 3 and len(waits) == 2 and all(0 <= w <= 0.02 for w in waits)
    assert {g.headers["Authorization"] for g in gets} == {f"Bearer {TOKEN}"}
    landed = tmp_path / "archive" / "emit" / EMIT_NAME
    assert result.downloaded == (landed,) and landed.read_bytes() == EMIT_BYTES
    assert list(crawl_archive(tmp_path / "archive").catalog["path"]) == [str(landed)]


def test_retries_are_bounded(tmp_path: Path, server: Loopback) -> None:
    server.script(EMIT_PATH, loopback.status(502))
    with pytest.raises(OSError, match="NASA Earthdata: HTTP 502"):
        fetch(tmp_path, granule_record(server.url(EMIT_PATH)), attempts=3)
    assert len(server.requests_to(EMIT_PATH)) == 3
    assert_nothing_landed(tmp_path / "archive")


@pytest.mark.parametrize("code", [401, 403])
def test_earthdata_refused_credentials_are_not_retried(tmp_path: Path, server: Loopback, code: int) -> None:
    server.script(EMIT_PATH, loopback.status(code, f"bad token {TOKEN}"), loopback.ok(EMIT_BYTES))
    with pytest.raises(AccessRefused) as refused:
        fetch(tmp_path, granule_record(server.url(EMIT_PATH)))
    message = str(refused.value)
    assert message.startswith(f"NASA Earthdata refused the credentials (HTTP {code}")
    assert "EARTHDATA_TOKEN" in message and TOKEN not in message
    assert len(server.requests_to(EMIT_PATH)) == 1
    assert_nothing_landed(tmp_path / "archive")


def test_a_truncated_download_is_never_catalogued(tmp_path: Path, server: Loopback) -> None:
    server.script(EMIT_PATH, loopback.truncated(EMIT_BYTES[: len(EMIT_BYTES) // 2], len(EMIT_BYTES)))
    with pytest.raises(OSError, match=EMIT_NAME):
        fetch(tmp_path, granule_record(server.url(EMIT_PATH)), attempts=2)
    assert len(server.requests_to(EMIT_PATH)) == 2
    assert_nothing_landed(tmp_path / "archive")


def test_a_checksum_mismatch_is_never_catalogued(tmp_path: Path, server: Loopback) -> None:
    server.script(EMIT_PATH, loopback.ok(EMIT_BYTES[:-1] + b"\0"))
    published = {"Algorithm": "SHA-256", "Value": hashlib.sha256(EMIT_BYTES).hexdigest()}
    with pytest.raises(IncompleteDownload, match="SHA-256 .* != published"):
        fetch(tmp_path, granule_record(server.url(EMIT_PATH), published), attempts=2)
    assert_nothing_landed(tmp_path / "archive")
    server.script(EMIT_PATH, loopback.ok(EMIT_BYTES))
    assert fetch(tmp_path, granule_record(server.url(EMIT_PATH), published)).downloaded


def test_earthdata_credentials_never_go_over_plain_http(
    tmp_path: Path, server: Loopback, plain: Loopback
) -> None:
    plain.script(EMIT_PATH, loopback.ok(EMIT_BYTES))
    with pytest.raises(InsecureURL, match="NASA Earthdata: refusing to send credentials"):
        fetch(tmp_path, granule_record(plain.url(EMIT_PATH)))
    server.script(EMIT_PATH, loopback.redirect(plain.url(EMIT_PATH)))
    with pytest.raises(InsecureURL, match="a redirect"):
        fetch(tmp_path, granule_record(server.url(EMIT_PATH)))
    assert plain.seen == [] and len(server.seen) == 1
    assert_nothing_landed(tmp_path / "archive")


# --- Copernicus CDS through the real cdsapi client -------------------------------------------------


def script_cds(server: Loopback, *, submit=None, download=None) -> None:
    """The CDS retrieve API (``ecmwf-datastores``): process, execution, job status, results, file."""
    job = f"{API}/jobs/job-1"
    server.script("/api/catalogue/v1/messages", loopback.json_body({"messages": []}))
    server.script(f"{API}/processes/{ERA5_DATASET}", loopback.json_body({"id": ERA5_DATASET}))
    server.script(
        f"{API}/processes/{ERA5_DATASET}/execution",
        *(submit or ()),
        loopback.json_body({"jobID": "job-1", "status": "accepted",
                            "links": [{"rel": "monitor", "href": server.url(job)}]}, 201),
    )
    results = [{"rel": "results", "href": server.url(job + "/results")}]
    server.script(job, loopback.json_body({"jobID": "job-1", "status": "successful", "metadata": {},
                                           "links": results}))
    asset = {"href": server.url("/download/era5.nc"), "file:size": len(ERA5_BYTES),
             "type": "application/netcdf"}
    server.script(job + "/results", loopback.json_body({"asset": {"value": asset}}))
    server.script("/download/era5.nc", *(download or ()), loopback.ok(ERA5_BYTES))


@pytest.fixture()
def cds_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: Loopback) -> Path:
    """CDS credentials pointing at the loopback server; returns the archive folder."""
    monkeypatch.setenv("CDSAPI_URL", server.url("/api"))
    monkeypatch.setenv("CDSAPI_KEY", KEY)
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "absent_cdsapirc"))
    return tmp_path / "archive"


def era5(archive: Path, attempts: int = 4, waits: list[float] | None = None) -> Path:
    return download_era5(BBOX, T0, T1, archive, attempts=attempts, base_s=0.01, timeout_s=1.0,
                         sleep=(waits if waits is not None else []).append)


def test_cds_real_client_retries_5xx_and_timeouts_then_catalogues(server: Loopback, cds_env: Path) -> None:
    script_cds(server, submit=[loopback.status(503), loopback.hang()])
    waits: list[float] = []
    path = era5(cds_env, waits=waits)
    posts = server.requests_to(f"{API}/processes/{ERA5_DATASET}/execution", "POST")
    assert len(posts) == 3 and len(waits) == 2
    assert {p.headers["PRIVATE-TOKEN"] for p in posts} == {KEY}
    assert json.loads(posts[-1].body)["inputs"]["area"] == [32.5, -104.25, 31.25, -103.0]
    assert path.read_bytes() == ERA5_BYTES and path.parent == cds_env / "era5"
    assert list(crawl_archive(cds_env).catalog["instrument"]) == ["ERA5"]


@pytest.mark.parametrize("code", [401, 403])
def test_cds_refused_key_is_not_retried(server: Loopback, cds_env: Path, code: int) -> None:
    script_cds(server)
    server.script(f"{API}/processes/{ERA5_DATASET}", loopback.status(code, f"invalid key {KEY}"))
    with pytest.raises(AccessRefused) as refused:
        era5(cds_env)
    message = str(refused.value)
    assert message.startswith(f"Copernicus CDS refused the credentials (HTTP {code}")
    assert "CDSAPI_KEY" in message and "licence" in message and KEY not in message
    assert len(server.requests_to(f"{API}/processes/{ERA5_DATASET}")) == 1
    assert not server.requests_to(f"{API}/processes/{ERA5_DATASET}/execution")
    assert_nothing_landed(cds_env)


def test_cds_truncated_download_is_never_catalogued(server: Loopback, cds_env: Path) -> None:
    script_cds(server)
    server.script("/download/era5.nc", loopback.truncated(ERA5_BYTES[:1000], len(ERA5_BYTES)))
    with pytest.raises(OSError):
        era5(cds_env, attempts=2)
    assert len(server.requests_to("/download/era5.nc", "GET")) >= 2
    assert_nothing_landed(cds_env)


@pytest.mark.parametrize("where", ["environment", "cdsapirc"])
def test_cds_key_never_goes_over_plain_http(
    plain: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    for name in ("CDSAPI_URL", "CDSAPI_KEY", "CDSAPI_RC"):
        monkeypatch.delenv(name, raising=False)
    if where == "environment":
        monkeypatch.setenv("CDSAPI_URL", plain.url("/api"))
        monkeypatch.setenv("CDSAPI_KEY", KEY)
    else:
        home = tmp_path / "home"
        home.mkdir()
        (home / ".cdsapirc").write_text(f"url: {plain.url('/api')}\nkey: {KEY}\n")
        monkeypatch.setenv("HOME", str(home))
    with pytest.raises(InsecureURL, match="Copernicus CDS: refusing to send credentials") as refused:
        era5(tmp_path / "archive")
    assert KEY not in str(refused.value)
    assert plain.seen == []
