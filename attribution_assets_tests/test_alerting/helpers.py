"""Shared parts of the alerting tests: a recording webhook on 127.0.0.1 and real posterior rows."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.events import DetectionEvent
from attribution_assets.layout import OutputLayout
from attribution_assets.pipeline.baselines import baselines_table
from attribution_assets.pipeline.posterior import posterior_row
from attribution_assets.science.attribution import UNLISTED_ID
from attribution_assets.science.inversion import PosteriorSummary
from attribution_assets.science.quantification.baselines import Baseline
from attribution_assets.science.quantification.ime import QuantificationResult

PERMIAN = DetectionEvent(datetime(2025, 8, 14, 17, 31, tzinfo=UTC), -103.61, 31.9095, "CH4", "permian-ch4")
BELCHATOW = DetectionEvent(datetime(2025, 8, 13, 12, 10, tzinfo=UTC), 19.3308, 51.266, "CO2", "belchatow")
WEEK = "2025-W33"
WEEK_PARTITION = "2025-08-11"
EMIT_GRANULE = "EMIT_L1B_RAD_001_20250814T173100_2522612_001"
GHGSAT_GRANULE = "GHGSat_L2_GHGSat-C5_20250814T164500Z_permian"
PLUME = shapely.Polygon([(-103.613, 31.907), (-103.611, 31.907), (-103.611, 31.909), (-103.613, 31.909)])


@dataclass
class Recorded:
    """One request the webhook received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Webhook:
    """A webhook on 127.0.0.1 that records every POST and answers from ``script`` (status, headers)
    in order, then ``default``."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: int = 200

    def keys(self) -> list[str]:
        return [r.headers.get("Idempotency-Key", "") for r in self.requests]


@contextmanager
def webhook_server(path: str = "/hook/s3cr3t-token-value") -> Iterator[Webhook]:
    """A running :class:`Webhook` (a ``ThreadingHTTPServer`` in a thread), stopped afterwards."""
    lock = threading.Lock()
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                hook.requests.append(Recorded(self.path, dict(self.headers.items()), body))
                status, headers = hook.script.pop(0) if hook.script else (hook.default, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (quiet test output)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a webhook that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summary(rate_kg_h: float = 6000.0, **overrides: Any) -> PosteriorSummary:
    """A posterior summary with a detected source of ``rate_kg_h`` (kg/h)."""
    values: dict[str, Any] = dict(
        emission_rate_kg_h=rate_kg_h,
        emission_rate_kg_h_p05=0.7 * rate_kg_h,
        emission_rate_kg_h_p50=0.98 * rate_kg_h,
        emission_rate_kg_h_p95=1.4 * rate_kg_h,
        emission_rate_kg_h_sd=0.2 * rate_kg_h,
        source_x_m=-120.0,
        source_y_m=-170.0,
        source_location_sd_m=35.0,
        p_source=1.0,
        detected=True,
        r_hat_max=1.003,
        ess_bulk_min=1300.0,
        divergences=0,
        converged=True,
        method="gaussian-plume NUTS (2 chains x 300)",
        instruments=("EMIT", "GHGSAT", "TROPOMI"),
        source_lon=-103.6112,
        source_lat=31.9080,
        granules=(f"EMIT:{EMIT_GRANULE}",),
    )
    values.update(overrides)
    return PosteriorSummary(**values)


def emit_baselines(polygon: shapely.Geometry | None = PLUME) -> gpd.GeoDataFrame:
    """A ``quantification_baselines`` table: EMIT IME and CSF with a plume mask, GHGSat IME without."""
    def result(method: str, instrument: str, rate: float) -> QuantificationResult:
        return QuantificationResult(rate, 0.25 * rate, 0.6 * rate, 1.4 * rate, rate, method, instrument, 500)

    return baselines_table([
        (EMIT_GRANULE, Baseline(result("IME", "EMIT", 6300.0), 1598, polygon)),
        (EMIT_GRANULE, Baseline(result("CSF", "EMIT", 7700.0), 1598, polygon)),
        (GHGSAT_GRANULE, Baseline(result("IME", "GHGSAT", 4500.0), 5964, None)),
    ])


def attribution(facility: str = "PERMIAN-PAD-A", name: str = "Permian well pad A", p: float = 0.93
                ) -> gpd.GeoDataFrame:
    """A ``source_attribution`` table: one listed facility with probability ``p`` and the unlisted rest."""
    frame = pd.DataFrame({"facility_id": [facility, UNLISTED_ID], "name": [name, "not in the inventory"],
                          "probability": [p, 1.0 - p]})
    return gpd.GeoDataFrame(frame, geometry=[shapely.Point(-103.6112, 31.908), None], crs="EPSG:4326")


def overpasses() -> gpd.GeoDataFrame:
    """An ``event_overpasses`` table with the EMIT granule's acquisition time."""
    frame = pd.DataFrame({
        "instrument": ["EMIT", "GHGSAT"],
        "path": [f"/archive/emit/{EMIT_GRANULE}.nc", f"/archive/ghgsat/{GHGSAT_GRANULE}.h5"],
        "time_start": pd.to_datetime(["2025-08-14T17:31:00Z", "2025-08-14T16:45:00Z"], utc=True),
    })
    return gpd.GeoDataFrame(frame, geometry=[None, None], crs="EPSG:4326")


PROVENANCE = json.dumps({"granules_used": [f"EMIT:{EMIT_GRANULE}"], "graph_hash": "0123456789abcdef",
                         "inputs": [{"instrument": "EMIT", "path": f"emit/{EMIT_GRANULE}.nc"}]})


def permian_row(rate_kg_h: float = 6000.0, p_facility: float = 0.93, event: DetectionEvent = PERMIAN,
                score: float = 1.0, **summary_overrides: Any) -> gpd.GeoDataFrame:
    """A real posterior row (:func:`posterior_row`) of a CH4 event with an EMIT plume mask."""
    return posterior_row(event, summary(rate_kg_h, **summary_overrides), score, emit_baselines(),
                         attribution(p=p_facility), {"EMIT": "10433 valid pixels"}, PROVENANCE)


def belchatow_row(rate_kg_h: float = 4.4e6) -> gpd.GeoDataFrame:
    """A real posterior row of a CO2 event seen by OCO-2 only (no plume mask)."""
    empty = emit_baselines().iloc[0:0]
    return posterior_row(BELCHATOW, summary(rate_kg_h, instruments=("OCO2",), source_lon=19.33,
                                            source_lat=51.27, granules=()),
                         0.99, empty, attribution("BELCHATOW", "Belchatow", 0.99), {}, json.dumps({}))


def write_event(root: Path, row: gpd.GeoDataFrame, baselines: gpd.GeoDataFrame | None = None,
                event_overpasses: gpd.GeoDataFrame | None = None) -> Path:
    """Write a posterior row where ``event_posterior`` does (and the event's intermediates)."""
    layout = OutputLayout(str(root))
    key = str(row["event_key"].iloc[0])
    path = write_geoparquet(row, layout.posterior_path(WEEK, key))
    if baselines is not None:
        write_geoparquet(baselines, root / "intermediate" / "quantification_baselines" / f"{key}.parquet")
    if event_overpasses is not None:
        write_geoparquet(event_overpasses, root / "intermediate" / "event_overpasses" / f"{key}.parquet")
    return path
