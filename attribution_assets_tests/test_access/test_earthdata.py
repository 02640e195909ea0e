"""Earthdata search/download with a recording fake client; the crawl catalogs what lands."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from attribution_assets.access.earthdata import (
    CredentialsError,
    EarthdataSearch,
    download_granules,
    has_credentials,
    login,
)
from attribution_assets.access.retry import backoff_delays, with_backoff
from attribution_assets.catalog.crawl import crawl_archive
from attribution_assets.paths import SAMPLE_ARCHIVE

EMIT_NAME = "EMIT_L1B_RAD_001_20250814T173100_2522612_001.nc"
T0 = datetime(2025, 8, 14, 5, 31, tzinfo=UTC)
T1 = T0 + timedelta(hours=24)
BBOX = (-103.7, 31.8, -103.5, 32.0)


class RecordingEarthaccess:
    """Stand-in for the ``earthaccess`` module: records calls; ``download`` copies a sample granule."""

    def __init__(self, source: Path, fail_downloads: int = 0) -> None:
        self.source = source
        self.fail_downloads = fail_downloads
        self.calls: list[tuple[str, dict]] = []

    def login(self, **kwargs):
        self.calls.append(("login", kwargs))
        return "auth"

    def search_data(self, **kwargs):
        self.calls.append(("search_data", kwargs))
        return [{"granule": self.source.name}]

    def download(self, granules, local_path=None):
        self.calls.append(("download", {"granules": granules, "local_path": local_path}))
        if self.fail_downloads:
            self.fail_downloads -= 1
            raise ConnectionError("connection reset by peer")
        target = Path(local_path) / self.source.name
        shutil.copyfile(self.source, target)
        return [target]


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


def test_download_lands_native_name_and_crawl_catalogs_it(tmp_path: Path) -> None:
    fake = RecordingEarthaccess(SAMPLE_ARCHIVE / "emit" / EMIT_NAME, fail_downloads=1)
    waits: list[float] = []
    search = EarthdataSearch("EMITL1BRAD", T0, T1, BBOX)
    paths = download_granules(search, tmp_path, client=fake, sleep=waits.append)
    assert paths == [tmp_path / "emit" / EMIT_NAME]
    assert [name for name, _ in fake.calls] == ["search_data", "download", "download"]
    assert fake.calls[0][1] == search.search_kwargs()
    assert fake.calls[1][1] == {"granules": [{"granule": EMIT_NAME}], "local_path": str(tmp_path / "emit")}
    assert waits == backoff_delays(4, 2.0, 60.0)[:1]
    result = crawl_archive(tmp_path)
    assert result.rejected.empty
    assert list(result.catalog["instrument"]) == ["EMIT"]
    assert result.catalog["path"].iloc[0] == str(paths[0])


def test_download_with_no_granules_returns_empty(tmp_path: Path) -> None:
    class Empty(RecordingEarthaccess):
        def search_data(self, **kwargs):
            self.calls.append(("search_data", kwargs))
            return []

    fake = Empty(SAMPLE_ARCHIVE / "emit" / EMIT_NAME)
    assert download_granules(EarthdataSearch("EMITL1BRAD", T0, T1, BBOX), tmp_path, client=fake) == []
    assert [name for name, _ in fake.calls] == ["search_data"]


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
    fake = RecordingEarthaccess(SAMPLE_ARCHIVE / "emit" / EMIT_NAME)
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
    search = EarthdataSearch("EMITL1BRAD", datetime(2024, 10, 6, 16, 0, tzinfo=UTC),
                             datetime(2024, 10, 6, 18, 0, tzinfo=UTC), (-103.8, 31.7, -103.4, 32.1))
    with tempfile.TemporaryDirectory() as tmp:
        paths = download_granules(search, tmp)
        assert all(path.is_file() for path in paths)
        assert len(crawl_archive(tmp).catalog) == len(paths)
