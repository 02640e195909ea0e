"""Secret hygiene: a planted Earthdata token and CDS key, both refused by the services, never appear in
the logs, the Dagster event log and run storage, the metadata, the error messages or the output files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from dagster import AssetSelection, instance_for_test, materialize

from attribution_assets.access.http import redact, secret_values
from attribution_assets.access.retry import with_backoff
from attribution_assets.definitions import ASSETS
from attribution_assets.partitions import register_events
from attribution_assets.resources import CdsResource, EarthdataResource, build_resources
from attribution_assets_tests.test_access import loopback
from attribution_assets_tests.test_access.loopback import Loopback
from attribution_assets_tests.test_access.test_http_faults import (
    API,
    EMIT_NAME,
    EMIT_PATH,
    KEY,
    TOKEN,
    Cmr,
    granule_record,
)
from attribution_assets_tests.test_access.test_live import CREDENTIAL_VARIABLES

ERA5_NAME = "era5_single_levels_permian-ch4_20250814.nc"


def files_holding(root: Path, secrets: list[bytes]) -> list[str]:
    """Every file under ``root`` (read as bytes) that holds one of ``secrets``."""
    return [str(p) for p in root.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in secrets)]


@pytest.mark.slow
def test_planted_secrets_appear_nowhere(
    tmp_path: Path,
    sample_archive: Path,
    sample_events,
    server: Loopback,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    for name in (*CREDENTIAL_VARIABLES, "CDSAPI_RC"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cdsapirc").write_text(f"url: {server.url('/api')}\nkey: {KEY}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(tmp_path / "absent_netrc"))
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    # both services refuse the credentials and echo them back in the error body
    server.script("/api/catalogue/v1/messages", loopback.json_body({"messages": []}))
    server.script(EMIT_PATH, loopback.status(403, f"token {TOKEN} is not approved for LP DAAC"))
    server.script(f"{API}/processes/reanalysis-era5-single-levels", loopback.status(401, f"bad key {KEY}"))
    archive = tmp_path / "archive"
    shutil.copytree(sample_archive, archive)
    (archive / "emit" / EMIT_NAME).unlink()
    (archive / "era5" / ERA5_NAME).unlink()
    output = tmp_path / "output"
    resources = {
        **build_resources(archive, output),
        "earthdata": EarthdataResource(client=Cmr(granule_record(server.url(EMIT_PATH))), backoff_s=0.0),
        "cds": CdsResource(backoff_s=0.0, timeout_s=5.0),
    }
    caplog.set_level(logging.DEBUG)
    instance_dir = tmp_path / "instance"
    instance_dir.mkdir()
    with instance_for_test(temp_dir=str(instance_dir)) as instance:
        catalog = AssetSelection.assets("overpass_catalog")
        assert materialize(ASSETS, instance=instance, resources=resources, selection=catalog).success
        key = register_events(instance, [sample_events["permian-ch4"]])[0]
        result = materialize(
            ASSETS,
            instance=instance,
            resources=resources,
            partition_key=key,
            selection=AssetSelection.assets("event_overpasses"),
        )
        assert result.success
        (event,) = [e for e in result.get_asset_materialization_events()]
        report = event.step_materialization_data.materialization.metadata["live_access"].data
        messages = [str(e.message) for e in instance.all_logs(result.run_id)]

    # the secrets were really planted, used and refused
    assert {s.headers.get("Authorization") for s in server.requests_to(EMIT_PATH)} == {f"Bearer {TOKEN}"}
    cds_calls = server.requests_to(f"{API}/processes/reanalysis-era5-single-levels")
    assert len(cds_calls) == 1 and cds_calls[0].headers["PRIVATE-TOKEN"] == KEY
    assert report["NASA Earthdata"].startswith("failed: NASA Earthdata refused the credentials (HTTP 403")
    assert report["Copernicus CDS"].startswith("failed: Copernicus CDS refused the credentials (HTTP 401")
    assert any("refused the credentials" in m for m in messages)

    secrets = [TOKEN.encode(), KEY.encode()]
    assert not any(s.decode() in m for s in secrets for m in [*messages, str(report)])
    captured = capfd.readouterr()
    assert not any(s.decode() in text for s in secrets for text in (caplog.text, captured.out, captured.err))
    stored = [p for p in instance_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in stored), "the instance's SQLite storage is searched"
    assert files_holding(instance_dir, secrets) == []
    assert files_holding(output, secrets) == [] and files_holding(archive, secrets) == []
    assert files_holding(home, secrets) == [str(home / ".cdsapirc")], "the search finds a planted secret"


def test_live_false_keeps_everything_local(
    tmp_path: Path, sample_archive: Path, sample_events, server: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``live: false`` with credentials for a reachable server: not one request is made."""
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    monkeypatch.setenv("CDSAPI_URL", server.url("/api"))
    monkeypatch.setenv("CDSAPI_KEY", KEY)
    server.script(EMIT_PATH, loopback.ok((sample_archive / "emit" / EMIT_NAME).read_bytes()))
    archive = tmp_path / "archive"
    shutil.copytree(sample_archive, archive)
    (archive / "emit" / EMIT_NAME).unlink()
    (archive / "era5" / ERA5_NAME).unlink()
    resources = {
        **build_resources(archive, tmp_path / "output"),
        "earthdata": EarthdataResource(live=False, client=Cmr(granule_record(server.url(EMIT_PATH)))),
        "cds": CdsResource(live=False),
    }
    with instance_for_test() as instance:
        catalog = AssetSelection.assets("overpass_catalog")
        assert materialize(ASSETS, instance=instance, resources=resources, selection=catalog).success
        key = register_events(instance, [sample_events["permian-ch4"]])[0]
        result = materialize(
            ASSETS, instance=instance, resources=resources, partition_key=key,
            selection=AssetSelection.assets("event_overpasses"),
        )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    report = event.step_materialization_data.materialization.metadata["live_access"].data
    assert report == {"NASA Earthdata": "off: live=False", "Copernicus CDS": "off: live=False"}
    assert server.seen == []
    assert not (archive / "emit" / EMIT_NAME).exists()


def test_redact_covers_environment_cdsapirc_and_netrc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, net = tmp_path / "cdsapirc", tmp_path / "netrc"
    rc.write_text("url: https://cds.climate.copernicus.eu/api\nkey: 1234:abcd-rc-key\n")
    net.write_text("machine urs.earthdata.nasa.gov login someone password netrc-pass-99\n")
    env = {"EARTHDATA_TOKEN": TOKEN, "CDSAPI_KEY": KEY, "CDSAPI_RC": str(rc), "NETRC": str(net)}
    secrets = secret_values(env)
    assert {TOKEN, KEY, "1234:abcd-rc-key", "abcd-rc-key", "netrc-pass-99"} <= set(secrets)
    text = f"GET https://x/?token={TOKEN} key={KEY} rc=1234:abcd-rc-key pw=netrc-pass-99"
    assert redact(text, secrets) == "GET https://x/?token=*** key=*** rc=*** pw=***"
    messages: list[str] = []

    def refused() -> None:
        raise ConnectionError(f"reset while sending {TOKEN}")

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConnectionError):
        with_backoff(refused, attempts=2, sleep=lambda s: None, log=messages.append)
    assert messages and TOKEN not in messages[0] and "***" in messages[0]
