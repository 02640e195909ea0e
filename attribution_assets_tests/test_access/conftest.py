"""Loopback HTTP(S) servers for the network-fault and secret-hygiene tests (see ``loopback.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from attribution_assets_tests.test_access import loopback
from attribution_assets_tests.test_access.loopback import Loopback


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory):
    """A self-signed certificate for 127.0.0.1: (CA bundle path, server SSL context)."""
    return loopback.self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def server(tls, monkeypatch: pytest.MonkeyPatch) -> Iterator[Loopback]:
    """An HTTPS server on 127.0.0.1 whose certificate ``requests`` trusts (``REQUESTS_CA_BUNDLE``)."""
    cert, context = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    instance = Loopback(context)
    yield instance
    instance.close()


@pytest.fixture()
def plain() -> Iterator[Loopback]:
    """A plain-http server on 127.0.0.1 (credentials must never reach it)."""
    instance = Loopback()
    yield instance
    instance.close()
