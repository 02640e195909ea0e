"""Local transports for the live-access code: the earthaccess and cdsapi call shapes, served from files.

``LocalEarthaccess.search_data`` answers with real ``earthaccess.DataGranule`` objects built from CMR
UMM-G granule records (``cmr_granules.json``: the search-result layout, for the bundled sample
granules); its https session (``get_requests_https_session``) answers each data link with the real
sample file of that name. ``LocalCds.retrieve`` copies a
real ERA5 sample file to the requested target. Both record every call, so tests compare the requests
the code builds with the documented shapes.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from earthaccess.results import DataGranule
from requests import PreparedRequest, Response
from requests.adapters import BaseAdapter

RECORDS = Path(__file__).with_name("cmr_granules.json")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class LocalEarthaccess:
    """The ``earthaccess`` module's ``login``/``search_data``/``get_requests_https_session`` over a folder
    of product files.

    ``search_data`` returns the records of ``short_name`` whose time range meets ``temporal``; the
    session's first ``fail_downloads`` requests fail with a ``ConnectionError``.
    """

    def __init__(self, source: Path, fail_downloads: int = 0) -> None:
        self.files = {p.name: p for p in Path(source).rglob("*") if p.is_file()}
        self.records = json.loads(RECORDS.read_text())
        self.fail_downloads = fail_downloads
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def login(self, strategy: str) -> str:
        self.calls.append(("login", {"strategy": strategy}))
        return "auth"

    def search_data(self, **kwargs: Any) -> list[DataGranule]:
        self.calls.append(("search_data", kwargs))
        t0, t1 = (_utc(t) for t in kwargs["temporal"])
        found = []
        for record in self.records:
            umm = record["umm"]
            extent = umm["TemporalExtent"]["RangeDateTime"]
            if umm["CollectionReference"]["ShortName"] != kwargs["short_name"]:
                continue
            if _utc(extent["BeginningDateTime"]) <= t1 and _utc(extent["EndingDateTime"]) >= t0:
                with warnings.catch_warnings():  # DataGranule.size() announces an API change
                    warnings.simplefilter("ignore", FutureWarning)
                    cloud = record["meta"]["provider-id"] == "LPCLOUD"
                    found.append(DataGranule(record, cloud_hosted=cloud))
        return found

    def get_requests_https_session(self) -> requests.Session:
        """A real ``requests.Session`` whose https requests are answered from the sample files
        (:class:`LocalFiles`); the requests are recorded as ``("get", {"url": ...})`` calls."""
        self.calls.append(("session", {}))
        session = requests.Session()
        session.mount("https://", LocalFiles(self))
        return session


class LocalFiles(BaseAdapter):
    """A ``requests`` transport adapter answering GET <link> with the sample file of that name (200,
    ``Content-Length``) or 404; the first ``owner.fail_downloads`` requests raise a ``ConnectionError``."""

    def __init__(self, owner: LocalEarthaccess) -> None:
        super().__init__()
        self.owner = owner

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        self.owner.calls.append(("get", {"url": request.url}))
        if self.owner.fail_downloads:
            self.owner.fail_downloads -= 1
            raise requests.ConnectionError("connection reset by peer")
        response = Response()
        response.request, response.url = request, str(request.url)
        path = self.owner.files.get(str(request.url).split("?", 1)[0].rsplit("/", 1)[-1])
        response.status_code = 200 if path else 404
        response.reason = "OK" if path else "Not Found"
        body = path.read_bytes() if path else b""
        response.headers["Content-Length"] = str(len(body))
        response.raw = io.BytesIO(body)
        return response

    def close(self) -> None:
        return None


class LocalCds:
    """``cdsapi.Client`` with ``retrieve(name, request, target)`` copying a real ERA5 file to ``target``."""

    def __init__(self, source: Path, fail: int = 0) -> None:
        self.source = Path(source)
        self.fail = fail
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    def retrieve(self, name: str, request: dict[str, Any], target: str) -> None:
        self.calls.append((name, request, target))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("503 Service Unavailable")
        shutil.copyfile(self.source, target)
