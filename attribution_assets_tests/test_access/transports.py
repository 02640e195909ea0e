"""Local transports for the live-access code: the earthaccess and cdsapi call shapes, served from files.

``LocalEarthaccess.search_data`` answers with real ``earthaccess.DataGranule`` objects built from CMR
UMM-G granule records (``cmr_granules.json``: the search-result layout, for the bundled sample
granules); ``download`` copies the real sample file named by each link. ``LocalCds.retrieve`` copies a
real ERA5 sample file to the requested target. Both record every call, so tests compare the requests
the code builds with the documented shapes.
"""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from earthaccess.results import DataGranule

RECORDS = Path(__file__).with_name("cmr_granules.json")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class LocalEarthaccess:
    """The ``earthaccess`` module's ``login``/``search_data``/``download`` over a folder of product files.

    ``search_data`` returns the records of ``short_name`` whose time range meets ``temporal``;
    ``download`` fails ``fail_downloads`` times with a ``ConnectionError`` first.
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

    def download(self, granules: list[str], local_path: str | None = None) -> list[Path]:
        self.calls.append(("download", {"granules": list(granules), "local_path": local_path}))
        if self.fail_downloads:
            self.fail_downloads -= 1
            raise ConnectionError("connection reset by peer")
        paths = []
        for url in granules:
            name = url.rsplit("/", 1)[-1]
            target = Path(str(local_path)) / name
            shutil.copyfile(self.files[name], target)
            paths.append(target)
        return paths


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
