"""The live/offline decision of each service and of the Dagster resources that wrap them."""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution_assets.access.live import CredentialsError, LiveDecision, decide_live
from attribution_assets.resources import CdsResource, EarthdataResource, build_resources

CREDENTIAL_VARIABLES = (
    "EARTHDATA_TOKEN",
    "EARTHDATA_USERNAME",
    "EARTHDATA_PASSWORD",
    "CDSAPI_URL",
    "CDSAPI_KEY",
)


@pytest.fixture()
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment without Earthdata or CDS credentials (no variables, no netrc, no cdsapirc)."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent_netrc"))
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "absent_cdsapirc"))


def test_decide_live() -> None:
    assert decide_live("S", None, "netrc", "add it") == LiveDecision("S", True, "credentials from netrc")
    off = decide_live("S", None, None, "add it")
    assert not off.on and off.reason == "no credentials found; add it"
    assert str(off) == "S: off (no credentials found; add it)"
    assert decide_live("S", False, "environment", "add it") == LiveDecision("S", False, "live=False")
    assert decide_live("S", True, "environment", "add it").on
    with pytest.raises(CredentialsError, match="S: live=True but no credentials found; add it"):
        decide_live("S", True, None, "add it")


def test_resources_are_off_without_credentials(no_credentials: None) -> None:
    earthdata, cds = EarthdataResource(), CdsResource()
    assert not earthdata.decision().on and "EARTHDATA_TOKEN" in earthdata.decision().reason
    assert not cds.decision().on and "CDSAPI_KEY" in cds.decision().reason
    with pytest.raises(CredentialsError, match="NASA Earthdata"):
        EarthdataResource(live=True).decision()
    resources = build_resources("/archive", "/output")
    assert resources["earthdata"].live is None and resources["cds"].live is None
    assert build_resources("/archive", "/output", live=False)["cds"].live is False


def test_resources_are_on_with_credentials(
    no_credentials: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EARTHDATA_TOKEN", "token")
    rc = tmp_path / "cdsapirc"
    rc.write_text("url: https://cds.climate.copernicus.eu/api\nkey: abc\n")
    monkeypatch.setenv("CDSAPI_RC", str(rc))
    assert EarthdataResource().decision() == LiveDecision(
        "NASA Earthdata", True, "credentials from environment"
    )
    assert CdsResource().decision() == LiveDecision("Copernicus CDS", True, f"credentials from {rc}")
    assert not CdsResource(live=False).decision().on
