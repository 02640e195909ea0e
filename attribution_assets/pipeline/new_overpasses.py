"""New overpasses: which archive files are new, what they catalogue, which events they create or touch,
and the run keys of the runs they cause. No Dagster here: the new-overpass sensor is a thin wrapper.

One tick (:func:`plan_tick`):

1. optionally polls NASA Earthdata for new granules over a watch list of named boxes
   (:func:`poll_watch_list`, downloads land in the archive);
2. lists the archive (path, size, mtime; no file is opened) and compares it with the *ledger*, the
   table of files the sensor has handled, to find the new or changed files, oldest first;
3. catalogues them with the incremental crawl (:func:`attribution_assets.pipeline.update_catalog`)
   when at most ``batch_files`` of them are uncatalogued and unseen by the last successful crawl run
   (changed, by their ctime, after it started), else asks for one crawl run (the caller requests it)
   and waits for it, so a first tick on a large archive opens no file;
4. takes at most ``batch_files`` of the new files (and stops scanning after ``scan_budget_s``): a
   rejected file is reported with the crawl's reason, a catalogued EMIT, TROPOMI or OCO-2 granule is
   scanned (:func:`attribution_assets.pipeline.detections.scan_granule`);
5. merges the detections into events, dropping any within ``merge_radius_km`` and ``merge_window_h``
   of a registered event (or of one found earlier in the tick), and records the new ones in the registry;
6. finds the registered events whose window (± ``EventSettings.time_window_h``) and per-instrument AOI
   a new granule covers: a new overpass changes their inputs;
7. gives one run per new or touched event, keyed ``<event key>:<inputs digest>``, the digest being over
   the fingerprints of every catalogued file that covers the event: a rerun of the same inputs has the
   same key (the run is not repeated), a new overpass gives a new key (the event runs again).

The ledger is a Parquet table in the output store named by its content digest
(``catalog/overpass_sensor/ledger-<digest>.parquet``); the sensor's cursor holds that digest, so a tick
whose result is not committed leaves the previous ledger in force and the cursor stays small. Without a
cursor (a new or reset sensor) the ledger starts from the catalog: files catalogued before the sensor
started are taken as seen (the ``detections`` asset scans a whole catalog), and every file that is not
catalogued yet is new.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from attribution_assets.atomic import atomic_path
from attribution_assets.catalog.crawl import _walk, empty_catalog
from attribution_assets.catalog.store import CatalogFiles, read_geoparquet
from attribution_assets.events import DetectionEvent, record_events, registered_events
from attribution_assets.pipeline.detections import is_scanned, scan_granule
from attribution_assets.pipeline.overpasses import GranuleService, event_window, update_catalog
from attribution_assets.pipeline.settings import INSTRUMENT_GAS, MET_HALF_WIDTH_KM, EventSettings
from attribution_assets.science.sphere import haversine_km
from attribution_assets.science.units import SECONDS_PER_HOUR
from attribution_assets.times import as_utc, iso_z

LOG = logging.getLogger(__name__)

LEDGER_DIR = Path("catalog") / "overpass_sensor"
"""Folder of the ledgers under the output root."""
LEDGER_COLUMNS = ["path", "size_bytes", "mtime_ns", "outcome"]
LEDGER_KEEP_S = 3600.0
"""Ledgers other than the current and the new one are removed once this old (s)."""
POLL_INSTRUMENTS = ("EMIT", "TROPOMI", "OCO2")
BOX_COLUMNS = ("west", "south", "east", "north")
"""Columns of a CSV watch list besides ``name`` (degrees)."""
"""Instruments whose granules the Earthdata poll searches over each watch area."""


@dataclass(frozen=True)
class OverpassSettings:
    """Settings of the new-overpass sensor (environment variable in brackets).

    ``batch_files``: files taken per tick; the rest wait for the next ticks (ATTRIBUTION_OVERPASS_BATCH).
    ``scan_budget_s`` (s): no further granule is scanned in a tick after this; the rest wait
    (ATTRIBUTION_OVERPASS_SCAN_BUDGET_S). ``merge_radius_km`` (km) and ``merge_window_h`` (h): a detection
    this close in distance and time to a registered event (same gas) is that event
    (ATTRIBUTION_EVENT_MERGE_KM, ATTRIBUTION_EVENT_MERGE_H). ``watch_list``: CSV or GeoJSON of named
    boxes polled on NASA Earthdata (ATTRIBUTION_WATCH_LIST; empty: no poll). ``poll_lookback_h`` (h):
    the poll searches granules from this long ago until now (ATTRIBUTION_WATCH_LOOKBACK_H);
    ``poll_interval_s`` (s): at most one poll per this interval (ATTRIBUTION_WATCH_POLL_S).
    """

    batch_files: int = 200
    scan_budget_s: float = 40.0
    merge_radius_km: float = 2.0
    merge_window_h: float = 6.0
    watch_list: str = ""
    poll_lookback_h: float = 48.0
    poll_interval_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.batch_files < 1:
            raise ValueError(f"batch_files must be at least 1, got {self.batch_files}")
        for name in ("scan_budget_s", "merge_radius_km", "merge_window_h", "poll_lookback_h"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OverpassSettings:
        """The settings from the environment variables named in the class doc (defaults where unset)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for item in fields(cls):
            text = env.get(ENV_VARS[item.name], "").strip()
            if not text:
                continue
            kind = {"int": int, "float": float}.get(str(item.type), str)
            try:
                values[item.name] = kind(text)
            except ValueError as error:
                raise ValueError(f"{ENV_VARS[item.name]}={text!r} is not a valid {item.type}") from error
        return cls(**values)


ENV_VARS = {
    "batch_files": "ATTRIBUTION_OVERPASS_BATCH",
    "scan_budget_s": "ATTRIBUTION_OVERPASS_SCAN_BUDGET_S",
    "merge_radius_km": "ATTRIBUTION_EVENT_MERGE_KM",
    "merge_window_h": "ATTRIBUTION_EVENT_MERGE_H",
    "watch_list": "ATTRIBUTION_WATCH_LIST",
    "poll_lookback_h": "ATTRIBUTION_WATCH_LOOKBACK_H",
    "poll_interval_s": "ATTRIBUTION_WATCH_POLL_S",
}


# --- the watch list and the Earthdata poll ------------------------------------------------------------


@dataclass(frozen=True)
class WatchArea:
    """A named area polled for new granules: (west, south, east, north) in degrees."""

    name: str
    bbox: tuple[float, float, float, float]


def _area(name: object, bounds: Iterable[object], where: str) -> WatchArea:
    try:
        west, south, east, north = (float(v) for v in bounds)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: west, south, east, north must be numbers ({error})") from error
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ValueError(f"{where}: box ({west}, {south}, {east}, {north}) is not west < east, south < north")
    text = str(name or "").strip()
    if not text:
        raise ValueError(f"{where}: the area has no name")
    return WatchArea(text, (west, south, east, north))


def read_watch_list(path: str | os.PathLike[str]) -> list[WatchArea]:
    """Named boxes from a CSV (``name, west, south, east, north``, degrees) or a GeoJSON
    FeatureCollection (``properties.name`` and any geometry; its bounds are the box).

    Raises ``ValueError`` naming the file and the row or feature.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: watch list not found")
    if path.suffix.lower() in {".geojson", ".json"}:
        try:
            features = json.loads(path.read_text(encoding="utf-8"))["features"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a GeoJSON FeatureCollection ({error})") from error
        areas = []
        for i, feature in enumerate(features):
            where = f"{path} feature {i}"
            try:
                bounds = shapely.geometry.shape(feature["geometry"]).bounds
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise ValueError(f"{where}: no valid geometry ({error})") from error
            areas.append(_area((feature.get("properties") or {}).get("name"), bounds, where))
    else:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
        areas = [
            _area(row.get("name"), [row.get(k) for k in BOX_COLUMNS], f"{path} row {i + 2}")
            for i, row in enumerate(rows)
        ]
    if not areas:
        raise ValueError(f"{path}: the watch list has no area")
    return areas


@dataclass
class PollReport:
    """What the Earthdata poll did: ``state`` (``on``, ``off`` or ``failed``), why, and the files it
    downloaded into the archive."""

    state: str
    reason: str
    downloaded: list[str] = field(default_factory=list)
    polled_at: str | None = None

    def __str__(self) -> str:
        extra = f"; {len(self.downloaded)} file(s) downloaded" if self.state == "on" else ""
        return f"Earthdata poll {self.state}: {self.reason}{extra}"


def poll_watch_list(
    service: GranuleService,
    settings: OverpassSettings,
    archive: Path,
    known_names: Callable[[], set[str]],
    last_poll: str | None,
    now: datetime,
    log: logging.Logger = LOG,
) -> PollReport:
    """Search Earthdata for EMIT, TROPOMI and OCO-2 granules over each watch area in the last
    ``poll_lookback_h`` hours and download those the archive lacks (``known_names()``: the file names
    known to the catalog).

    Off (and the report says why) without credentials, with ``live=False``, or without a watch list;
    skipped until ``poll_interval_s`` after ``last_poll`` (ISO time). A failing search or download is
    reported as ``failed`` with the error; the tick goes on with the archive.
    """
    decision = service.decision()
    if not decision.on:
        return PollReport("off", decision.reason)
    if not settings.watch_list:
        return PollReport("off", f"no watch list ({ENV_VARS['watch_list']} is not set)")
    if last_poll is not None and (now - as_utc(last_poll)).total_seconds() < settings.poll_interval_s:
        return PollReport("on", f"last poll at {last_poll}; next after {settings.poll_interval_s:.0f} s",
                          polled_at=last_poll)
    t0 = now - timedelta(hours=settings.poll_lookback_h)
    searched = f"{decision.reason}; searched {iso_z(t0)} .. {iso_z(now)}"
    report = PollReport("on", searched, polled_at=iso_z(now))
    try:
        areas = read_watch_list(settings.watch_list)
        known = known_names()
        for area in areas:
            aois = [(instrument, area.bbox) for instrument in POLL_INSTRUMENTS]
            for fetch in service.fetch(aois, t0, now, archive, known, log.warning):
                report.downloaded += [str(path) for path in fetch.downloaded]
                log.info(f"watch area {area.name}: {fetch.search.short_name}: {len(fetch.links)} files, "
                         f"{len(fetch.downloaded)} downloaded")
    except Exception as error:  # any service failure: the archive part of the tick goes on
        log.error(f"Earthdata poll failed: {error}")
        return PollReport("failed", str(error), report.downloaded, iso_z(now))
    return report


# --- the archive listing and the ledger ---------------------------------------------------------------


def list_archive(root: Path) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Every file the crawl would visit under ``root``: path -> (size in bytes, mtime in ns), and
    path -> ctime in ns (when the file last changed on this file system: a copy that keeps an old
    mtime still has a new ctime). Opens no file."""
    listing: dict[str, tuple[int, int]] = {}
    changed_at: dict[str, int] = {}
    for path in _walk(root):
        try:
            stat = path.stat()
        except OSError:
            continue  # removed while listing
        listing[str(path)] = (stat.st_size, stat.st_mtime_ns)
        changed_at[str(path)] = stat.st_ctime_ns
    return listing, changed_at


def _stats(frame: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime) of a catalog or ledger table (first row per path)."""
    if frame.empty:
        return {}
    first = frame.drop_duplicates("path")
    return dict(
        zip(
            first["path"].astype(str),
            zip(first["size_bytes"].astype(np.int64), first["mtime_ns"].astype(np.int64), strict=True),
            strict=True,
        )
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ledger_digest(ledger: pd.DataFrame) -> str:
    """Content digest (16 hex) of a ledger table, independent of its row order."""
    ordered = ledger.sort_values("path")[LEDGER_COLUMNS].astype(str)
    return _digest(ordered.to_csv(index=False))


def ledger_path(folder: Path, digest: str) -> Path:
    return folder / f"ledger-{digest}.parquet"


def read_ledger(folder: Path, digest: str) -> pd.DataFrame:
    """The ledger named ``digest`` in ``folder``; ``FileNotFoundError`` when it is gone."""
    return pd.read_parquet(ledger_path(folder, digest))


def write_ledger(folder: Path, ledger: pd.DataFrame, keep: str | None) -> str:
    """Write ``ledger`` under its digest (atomically) and remove ledgers older than
    :data:`LEDGER_KEEP_S` other than ``keep`` and the new one. Returns the digest."""
    digest = ledger_digest(ledger)
    target = ledger_path(folder, digest)
    folder.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        with atomic_path(target) as tmp:
            ledger[LEDGER_COLUMNS].sort_values("path").to_parquet(tmp, index=False)
    now = time.time()
    for old in folder.glob("ledger-*.parquet"):
        if old.name not in {target.name, ledger_path(folder, keep or "").name}:
            try:
                if now - old.stat().st_mtime > LEDGER_KEEP_S:
                    old.unlink()
            except OSError:
                continue
    return digest


STAT_COLUMNS = ["path", "size_bytes", "mtime_ns"]


def _columns(path: Path, columns: list[str]) -> pd.DataFrame:
    """Some plain columns of a catalog GeoParquet file (no geometry decoded; empty when absent)."""
    if not path.exists():
        return pd.DataFrame(columns=columns)
    return pd.read_parquet(path, columns=columns)


def _read_rows(path: Path) -> pd.DataFrame:
    return read_geoparquet(path) if path.exists() else empty_catalog()


def _read_rejected(path: Path) -> dict[str, str]:
    if not path.exists() or path.stat().st_size == 0:
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return dict(zip(table["path"], table["reason"], strict=True))


def baseline_ledger(files: CatalogFiles, listing: Mapping[str, tuple[int, int]]) -> pd.DataFrame:
    """The ledger of a sensor without a cursor: the files catalogued (or superseded) with their current
    size and mtime are taken as seen; everything else is new."""
    known = _stats(_columns(files.catalog, STAT_COLUMNS)) | _stats(_columns(files.superseded, STAT_COLUMNS))
    seen = [path for path, stat in listing.items() if known.get(path) == stat]
    return pd.DataFrame(
        {
            "path": seen,
            "size_bytes": [listing[p][0] for p in seen],
            "mtime_ns": [listing[p][1] for p in seen],
            "outcome": "catalogued before the sensor started",
        },
        columns=LEDGER_COLUMNS,
    )


# --- events: merge, coverage, run keys ------------------------------------------------------------------


def deduplicate(
    candidates: Iterable[DetectionEvent],
    registered: Iterable[DetectionEvent],
    radius_km: float,
    window_h: float,
) -> list[DetectionEvent]:
    """The events of ``candidates`` (in order) farther than ``radius_km`` (great circle, km) or
    ``window_h`` (hours) from every registered event of the same gas and from every event kept before."""
    kept: list[DetectionEvent] = []
    pool = list(registered)
    for event in candidates:
        same = [e for e in pool if e.gas == event.gas]
        if same:
            lon = np.array([e.longitude for e in same])
            lat = np.array([e.latitude for e in same])
            dt_h = np.abs(np.array([(e.time - event.time).total_seconds() for e in same])) / SECONDS_PER_HOUR
            near = haversine_km(event.longitude, event.latitude, lon, lat) <= radius_km
            if np.any(near & (dt_h <= window_h)):
                continue
        kept.append(event)
        pool.append(event)
    return kept


def _instrument_matters(instrument: str, gas: str) -> bool:
    """A met source matters to every event, an instrument only to events of the gas it measures."""
    return INSTRUMENT_GAS.get(instrument, gas) == gas


def covering_rows(rows: pd.DataFrame, event: DetectionEvent, settings: EventSettings) -> np.ndarray:
    """Boolean mask of the catalog ``rows`` that are inputs of ``event``: time span overlapping the
    event's window and footprint meeting the instrument's AOI box (at least the met box), as
    :func:`~attribution_assets.pipeline.overpasses.resolve_overpasses` queries them, for the
    instruments of the event's gas and every met source."""
    mask = np.zeros(len(rows), dtype=bool)
    if rows.empty:
        return mask
    t0, t1 = (pd.Timestamp(t) for t in event_window(event, settings))
    in_time = ((rows["time_end"] >= t0) & (rows["time_start"] <= t1)).to_numpy()
    instruments = rows["instrument"].to_numpy()
    geometry = np.asarray(rows.geometry.values)
    for instrument in np.unique(instruments[in_time]):
        if not _instrument_matters(str(instrument), event.gas):
            continue
        half_width = max(settings.half_width_km(str(instrument)), MET_HALF_WIDTH_KM)
        select = np.flatnonzero(in_time & (instruments == instrument))
        box = shapely.box(*settings.bbox(event, half_width))
        mask[select[shapely.intersects(geometry[select], box)]] = True
    return mask


def inputs_digest(rows: pd.DataFrame) -> str:
    """Digest (16 hex) of the granules of ``rows`` with their files' fingerprints (order-free): a file
    moved or copied under another path gives the same digest, a new granule or new content another."""
    pairs = rows["granule_id"].astype(str) + "|" + rows["fingerprint"].astype(str)
    return _digest("\n".join(sorted(set(pairs))))


def run_key(event_key: str, digest: str) -> str:
    """The run key of an event's run on inputs with :func:`inputs_digest` ``digest``."""
    return f"{event_key}:{digest}"


@dataclass(frozen=True)
class EventRun:
    """One run to request: the event, its run key, why (``new event`` / ``new overpass``) and the new
    granule files that caused it."""

    event_key: str
    run_key: str
    reason: str
    granules: tuple[str, ...]


def event_runs(
    new_events: list[DetectionEvent],
    registered: list[DetectionEvent],
    new_rows: pd.DataFrame,
    catalog: pd.DataFrame,
    settings: EventSettings,
) -> list[EventRun]:
    """The runs caused by ``new_events`` and by the ``new_rows`` (catalog rows of the new granules) that
    cover a registered event, one per event, keyed by the fingerprints of all its inputs in ``catalog``."""
    causes: dict[str, tuple[DetectionEvent, str, set[str]]] = {}
    for event in registered:
        hit = covering_rows(new_rows, event, settings)
        if hit.any():
            names = {Path(p).name for p in new_rows.loc[hit, "path"]}
            causes[event.key] = (event, "new overpass", names)
    for event in new_events:
        hit = covering_rows(new_rows, event, settings)
        names = {Path(p).name for p in new_rows.loc[hit, "path"]} if hit.any() else set()
        causes[event.key] = (event, "new event", names)
    runs = []
    for key, (event, reason, names) in causes.items():
        inputs = catalog[covering_rows(catalog, event, settings)]
        runs.append(EventRun(key, run_key(key, inputs_digest(inputs)), reason, tuple(sorted(names))))
    return runs


# --- one tick -----------------------------------------------------------------------------------------


@dataclass
class TickPlan:
    """What a tick found and what the caller must request.

    ``runs``: one per new or touched event; ``new_events``: events recorded in the registry this tick;
    ``crawl_key``: the run key of a crawl run to request (``None``: none needed); ``outcomes``: file
    path -> what happened to it; ``rejected``: path -> the crawl's reason; ``backlog``: new files left
    for the next ticks; ``cursor``: the cursor to store; ``messages``: one line per notable thing.
    """

    runs: list[EventRun] = field(default_factory=list)
    new_events: list[DetectionEvent] = field(default_factory=list)
    crawl_key: str | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    backlog: int = 0
    cursor: str = ""
    poll: PollReport | None = None
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: files taken, events, runs, backlog, the poll."""
        parts = [
            f"{len(self.outcomes)} new file(s) taken",
            f"{len(self.rejected)} rejected",
            f"{len(self.new_events)} new event(s)",
            f"{len(self.runs)} run(s)",
            f"{self.backlog} file(s) left for the next ticks",
        ]
        if self.crawl_key:
            parts.append("a crawl run requested")
        text = "; ".join(parts)
        if self.rejected:
            shown = [f"{Path(path).name}: {reason[:200]}" for path, reason in list(self.rejected.items())[:5]]
            text += ". Rejected " + "; ".join(shown)
        return f"{text}. {self.poll}" if self.poll is not None else text


@dataclass(frozen=True)
class CrawlRuns:
    """What the instance says about the crawl runs: whether one is queued or running, when the last
    successful one started (ns since the epoch, UTC) and the id of the latest one when it failed."""

    in_flight: bool = False
    last_success_start_ns: int | None = None
    failed_run_id: str | None = None


def crawl_key(uncatalogued: Mapping[str, tuple[int, int]]) -> str:
    """Run key of a crawl run for these uncatalogued files (path, size, mtime)."""
    return "crawl:" + _digest(json.dumps(sorted(uncatalogued.items())))


@dataclass
class _Tick:
    """Working state of :func:`plan_tick`."""

    plan: TickPlan
    files: CatalogFiles
    superseded: dict[str, tuple[int, int]]
    rejected: dict[str, str]
    seen: set[str]
    _catalog: pd.DataFrame | None = None
    _instruments: dict[str, str] | None = None

    @property
    def catalog(self) -> pd.DataFrame:
        """The catalog rows with their footprints (read on first use: an idle tick needs none)."""
        if self._catalog is None:
            self._catalog = _read_rows(self.files.catalog)
        return self._catalog

    @property
    def instruments(self) -> dict[str, str]:
        """path -> instrument of the catalog rows (read once per catalog)."""
        if self._instruments is None:
            table = _columns(self.files.catalog, ["path", "instrument"])
            self._instruments = dict(zip(table["path"], table["instrument"].astype(str), strict=True))
        return self._instruments

    def reload(self) -> None:
        """Forget what was read of the catalog (after a crawl)."""
        self._catalog, self._instruments = None, None


def _load_ledger(folder: Path, cursor: Mapping[str, object], files: CatalogFiles,
                 listing: Mapping[str, tuple[int, int]], plan: TickPlan) -> tuple[pd.DataFrame, str | None]:
    digest = cursor.get("ledger")
    if isinstance(digest, str):
        try:
            return read_ledger(folder, digest), digest
        except (OSError, ValueError) as error:
            plan.messages.append(f"ledger {digest} unreadable ({error}); starting again from the catalog")
    return baseline_ledger(files, listing), None


def _catalogue(
    state: _Tick, archive: Path, files: CatalogFiles, uncatalogued: dict[str, tuple[int, int]],
    changed_at: Mapping[str, int], settings: OverpassSettings, crawls: CrawlRuns, log: logging.Logger,
) -> None:
    """Crawl inline (at most a batch of files no crawl has seen) or ask for a crawl run (more); files
    that the last successful crawl run saw (changed before it started) need no crawl: they are
    rejected or not products. Adds the files a crawl has seen to ``state.seen``."""
    if not uncatalogued:
        return
    start = crawls.last_success_start_ns
    unseen = {p: stat for p, stat in uncatalogued.items() if start is None or changed_at[p] >= start}
    state.seen |= set(uncatalogued) - set(unseen)
    if not unseen:
        return
    if crawls.in_flight:
        state.plan.messages.append(f"{len(unseen)} file(s) wait for the crawl run in progress")
        return
    if len(unseen) > settings.batch_files:
        key = crawl_key(unseen)
        state.plan.crawl_key = key if crawls.failed_run_id is None else f"{key}:after-{crawls.failed_run_id}"
        failed = f" (the last crawl run {crawls.failed_run_id} failed)" if crawls.failed_run_id else ""
        state.plan.messages.append(
            f"{len(unseen)} uncatalogued file(s) > batch of {settings.batch_files}: a crawl run "
            f"catalogues them{failed}"
        )
        return
    update = update_catalog(archive, files, log)
    state.plan.messages.append(f"crawl: {update.crawl.n_read} file(s) read, {update.crawl.n_reused} reused")
    state.reload()
    state.superseded = _stats(_columns(files.superseded, STAT_COLUMNS))
    state.rejected = _read_rejected(files.rejected)
    state.seen |= set(uncatalogued)


def _take(
    state: _Tick, path: str, stat: tuple[int, int], catalog_stats: Mapping[str, tuple[int, int]],
    deadline: float, log: logging.Logger,
) -> tuple[str, list[DetectionEvent]] | None:
    """What happens to one new file: its outcome and its events; ``None`` when it must wait."""
    if catalog_stats.get(path) == stat:
        instrument = state.instruments[path]
        if not is_scanned(instrument):
            return f"catalogued ({instrument}, not scanned)", []
        if time.monotonic() > deadline:
            return None
        scan = scan_granule(path, instrument, log)
        return f"catalogued ({instrument}), scan: {scan.outcome}", scan.events
    if state.superseded.get(path) == stat:
        return "superseded by a newer processing of its granule", []
    if path not in state.seen:
        return None
    if path in state.rejected:
        state.plan.rejected[path] = state.rejected[path]
        log.warning(f"rejected {path}: {state.rejected[path]}")
        return f"rejected: {state.rejected[path]}", []
    return "ignored: not a product file", []


def plan_tick(
    archive: Path,
    files: CatalogFiles,
    registry: Path,
    ledger_dir: Path,
    cursor: str | None,
    settings: OverpassSettings,
    event_settings: EventSettings,
    crawls: CrawlRuns,
    earthdata: GranuleService | None = None,
    log: logging.Logger = LOG,
    now: datetime | None = None,
) -> TickPlan:
    """One tick of the new-overpass sensor (see the module doc); ``crawls``: the state of the crawl runs.
    Records the new events in ``registry`` and writes the new ledger; the caller
    requests ``plan.runs`` (and the partitions of their events) and ``plan.crawl_key``, and stores
    ``plan.cursor``."""
    started = time.monotonic()
    plan = TickPlan()
    state_in: dict[str, object] = json.loads(cursor) if cursor else {}
    if earthdata is not None:
        def known() -> set[str]:
            return {Path(p).name for p in _read_rows(files.catalog)["path"]}

        plan.poll = poll_watch_list(
            earthdata, settings, archive, known, state_in.get("polled_at"),  # type: ignore[arg-type]
            now or datetime.now(UTC), log,
        )
    listing, changed_at = list_archive(archive)
    ledger_frame, old_digest = _load_ledger(ledger_dir, state_in, files, listing, plan)
    ledger = {
        str(p): (int(s), int(m), str(o))
        for p, s, m, o in ledger_frame[LEDGER_COLUMNS].itertuples(index=False)
        if p in listing
    }
    new = sorted(
        (path for path, stat in listing.items() if ledger.get(path, (None, None))[:2] != stat),
        key=lambda p: (listing[p][1], p),
    )
    state = _Tick(plan, files, _stats(_columns(files.superseded, STAT_COLUMNS)),
                  _read_rejected(files.rejected), seen=set())
    catalog_stats = _stats(_columns(files.catalog, STAT_COLUMNS))
    uncatalogued = {
        p: listing[p]
        for p in new
        if catalog_stats.get(p) != listing[p] and state.superseded.get(p) != listing[p]
    }
    _catalogue(state, archive, files, uncatalogued, changed_at, settings, crawls, log)
    catalog_stats = _stats(_columns(files.catalog, STAT_COLUMNS))
    found: list[DetectionEvent] = []
    taken: list[str] = []
    deadline = started + settings.scan_budget_s
    for path in new:
        if len(taken) >= settings.batch_files:
            break
        outcome = _take(state, path, listing[path], catalog_stats, deadline, log)
        if outcome is None:
            continue
        plan.outcomes[path], events = outcome
        ledger[path] = (*listing[path], outcome[0])
        taken.append(path)
        found += events
    plan.backlog = len(new) - len(taken)
    catalogued = [path for path in taken if catalog_stats.get(path) == listing[path]]
    if found or catalogued:  # else nothing can create or touch an event: the registry is not read
        registered = registered_events(registry)
        plan.new_events = deduplicate(sorted(found, key=lambda e: (e.time, e.key)), registered,
                                      settings.merge_radius_km, settings.merge_window_h)
        if plan.new_events:
            record_events(registry, plan.new_events)
        new_rows = state.catalog[state.catalog["path"].isin(catalogued)]
        plan.runs = event_runs(plan.new_events, registered, new_rows, state.catalog, event_settings)
    frame = pd.DataFrame(
        [(p, s, m, o) for p, (s, m, o) in ledger.items()], columns=LEDGER_COLUMNS
    ).astype({"size_bytes": np.int64, "mtime_ns": np.int64})
    digest = write_ledger(ledger_dir, frame, old_digest)
    polled_at = plan.poll.polled_at if plan.poll is not None else state_in.get("polled_at")
    plan.cursor = json.dumps({"ledger": digest, "polled_at": polled_at})
    return plan
