"""The service's long-lived state: the Dagster instance, the workspace (a code server kept for the life of
the process), the warm-up, the inversion lock and the fast answers.

Start-up (:meth:`ServiceRuntime.start`) runs in background threads so ``/health`` answers at once: one
thread opens the workspace (and starts a daemon when asked), the other crawls the archive into the
output's catalog and computes one fast answer of the bundled three-instrument sample event, so JAX has
compiled the inversion before the first request. The service is ready when both are done.

Inversions are CPU-bound (JAX uses every core): they are **serialised** by one lock, so concurrent
requests queue for the inversion and each runs at full speed; the Dagster bookkeeping of one request
(partition, observation, run submission) overlaps the next request's inversion.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
from dagster import AssetKey, AssetObservation, AssetRecordsFilter, DagsterInstance, DagsterRun, RunsFilter

from attribution_assets.access.http import redact
from attribution_assets.compilation import configure_jax
from attribution_assets.events import DetectionEvent, parse_event_key, read_alerts, record_events
from attribution_assets.layout import OutputLayout
from attribution_assets.orchestration.config import resources_config
from attribution_assets.orchestration.daemon import daemon, daemon_running
from attribution_assets.orchestration.submit import FINISHED, PARTITION_TAG, submit_run
from attribution_assets.orchestration.workspace import LOCATION_NAME, open_workspace
from attribution_assets.partitions import register_events
from attribution_assets.paths import SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.pipeline import EventResult, EventSettings, attribute_event, update_catalog
from attribution_assets.resources import AnalysisSettings
from attribution_assets.service.answers import (
    event_answer,
    event_status,
    observation_metadata,
    row_values,
    run_state,
    values_from_observation,
)
from attribution_assets.service.problems import ProblemError
from attribution_assets.service.schemas import EventAnswer, EventStatus, Health, RunState
from attribution_assets.times import iso_z

LOG = logging.getLogger(__name__)

JOB_NAME = "attribute_event"
"""The job the service launches per event (every per-event stage)."""
POSTERIOR_ASSET = "event_posterior"
"""The asset the fast answer is recorded on, as a runless observation of the event's partition."""
RUN_TAGS = {"attribution/submitted_by": "http-service"}
"""Tags on the runs the service launches (filter them in the UI's Runs page)."""
WARM_UP_EVENT_ID = "permian-ch4"
"""The bundled sample alert seen by three instruments (EMIT, GHGSat, TROPOMI): the warm-up event."""
READY_WAIT_S = 120.0
"""How long a request waits for a starting service before it is answered 503, s."""
RETRY_AFTER_S = 5
CATALOG_REFRESH_S = 30.0
"""A fast answer re-crawls the archive (incrementally) when the last crawl is older than this, s: a
crawl lists every file of the archive, which costs ~0.3 s on the sample archive and seconds on a large
one, and new files arrive through the overpass sensor on a timescale of minutes."""
FAST_ANSWERS_KEPT = 1000
"""Fast answers kept in memory (exact); older ones are read back from the instance (rounded)."""


@dataclass(frozen=True)
class ServiceConfig:
    """What the service runs on: the archive and output roots, the analysis settings (fields of
    :class:`~attribution_assets.resources.AnalysisSettings`; those left out keep their defaults) of both
    the fast answers and the full runs, the live switch of the full runs (``None``: on when credentials
    are found), whether to start a daemon for one-machine set-ups, and whether to warm JAX up at start."""

    archive: Path
    output: Path
    analysis: Mapping[str, Any] = field(default_factory=dict)
    live: bool | None = None
    with_daemon: bool = False
    warm_up: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.analysis) - set(AnalysisSettings.model_fields)
        if unknown:
            raise ValueError(f"unknown analysis settings {sorted(unknown)}; expected AnalysisSettings fields")

    @property
    def settings(self) -> EventSettings:
        """The analysis settings of the fast answers, the same the full runs get from :attr:`run_config`."""
        return AnalysisSettings(**dict(self.analysis)).event_settings()

    @property
    def run_config(self) -> dict[str, Any]:
        """Run config of the full runs: archive, output, analysis settings, live switch."""
        return resources_config(self.archive, self.output, dict(self.analysis) or None, self.live)

    @property
    def layout(self) -> OutputLayout:
        return OutputLayout(str(self.output))


@dataclass(frozen=True)
class FastAnswer:
    """A fast answer kept for ``GET``: the row values, when it was computed (ISO 8601 UTC and POSIX s)."""

    values: dict[str, Any]
    answered_at: str
    timestamp: float


@dataclass(frozen=True)
class Launch:
    """What became of a posted event: its run (or why none), the event's status, and when the fast
    answer was recorded (ISO 8601 UTC)."""

    run: RunState
    status: EventStatus
    answered_at: str


def warm_up_event() -> DetectionEvent:
    """The bundled three-instrument sample event (:data:`WARM_UP_EVENT_ID`)."""
    return next(e for e in read_alerts(SAMPLE_ALERTS) if e.event_id == WARM_UP_EVENT_ID)


class ServiceRuntime:
    """The state behind the routes; :meth:`start` once, :meth:`close` at shutdown."""

    def __init__(self, config: ServiceConfig, instance: DagsterInstance | None = None) -> None:
        self.config = config
        self.instance = instance
        self.workspace: Any = None
        self._owned = ExitStack()
        self._dagster = ExitStack()
        self._inversion_lock = threading.Lock()
        self._dagster_lock = threading.Lock()
        self._ready = threading.Event()
        self._failure: str | None = None
        self._fast: OrderedDict[str, FastAnswer] = OrderedDict()
        self._starter: threading.Thread | None = None
        self.started = time.monotonic()
        self.ready_after_s: float | None = None
        self.steps_s: dict[str, float] = {}
        self._crawled_at = -math.inf

    # --- start-up --------------------------------------------------------------------------------

    def start(self) -> None:
        """Set JAX up (:func:`configure_jax`), get the instance (``DAGSTER_HOME`` unless one was given)
        and start the warm-up threads."""
        self.started = time.monotonic()
        configure_jax()
        if self.instance is None:
            self.instance = self._owned.enter_context(DagsterInstance.get())
        self._starter = threading.Thread(target=self._start_up, name="service-start", daemon=True)
        self._starter.start()

    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.steps_s[name] = round(time.perf_counter() - started, 2)

    def _open_dagster(self) -> None:
        if self.config.with_daemon:
            with self._step("daemon"):
                self._dagster.enter_context(daemon(self.instance))
        with self._step("workspace"):
            # in this process: a code server would be a second interpreter importing the package on
            # the same cores as the warm-up inversion (11-30 s of the cold start on 2 cores)
            self.workspace = self._dagster.enter_context(open_workspace(self.instance, in_process=True))

    def _warm(self) -> None:
        with self._step("catalog"), self._inversion_lock:
            update_catalog(self.config.archive, self.config.layout.catalog_files, LOG)
            self._crawled_at = time.monotonic()
        if not self.config.warm_up:
            return
        # the sample archive's rows must not enter another archive's catalog: warm up on its own output
        same = self.config.archive.resolve() == SAMPLE_ARCHIVE.resolve()
        with (
            nullcontext(str(self.config.output)) if same else tempfile.TemporaryDirectory() as output,
            self._step("compile"),
            self._inversion_lock,
        ):
            attribute_event(warm_up_event(), SAMPLE_ARCHIVE, self.config.settings, output=output, fast=True,
                            crawl=not same)  # the service's own archive was crawled just before

    def _start_up(self) -> None:
        errors: list[str] = []

        def guarded(step: Any) -> None:
            try:
                step()
            except Exception as error:  # reported on /health and to every request
                LOG.exception("service start-up step failed")
                errors.append(redact(f"{type(error).__name__}: {error}"))

        opener = threading.Thread(target=guarded, args=(self._open_dagster,), name="service-dagster")
        opener.start()
        guarded(self._warm)
        opener.join()
        if errors:
            self._failure = "; ".join(errors)
        else:
            self.ready_after_s = round(time.monotonic() - self.started, 2)
            LOG.warning(f"attribution service ready after {self.ready_after_s:.1f} s ({self.steps_s})")
        self._ready.set()

    def close(self) -> None:
        """Wait for the start-up threads, then close the workspace (its code server), the daemon started
        here (its runs go on) and the instance opened here."""
        if self._starter is not None:
            self._starter.join()
        self._dagster.close()
        self._owned.close()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._failure is None

    def wait_ready(self, timeout_s: float = READY_WAIT_S) -> None:
        """Return once the service is ready; raise a 503 problem when start-up failed or is still going."""
        if not self._ready.wait(timeout_s):
            raise ProblemError(
                503, "starting", "Service starting", f"still warming up after {timeout_s:.0f} s; retry",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        if self._failure is not None:
            raise ProblemError(503, "start-up-failed", "Service start-up failed", self._failure)

    def health(self, token_required: bool) -> Health:
        """Readiness, start-up timings and what the service runs on (``token_required``: whether the
        event routes need a bearer token)."""
        status = "failed" if self._failure else ("ready" if self._ready.is_set() else "starting")
        detail = {
            "failed": self._failure or "",
            "ready": "ready: code location loaded, catalog crawled"
            + (", inversion compiled" if self.config.warm_up else " (no warm-up inversion)"),
            "starting": "starting: loading the code location, crawling the catalog, compiling the inversion",
        }[status]
        return Health(
            status=status,
            ready=status == "ready",
            detail=detail,
            uptime_s=round(time.monotonic() - self.started, 2),
            ready_after_s=self.ready_after_s,
            steps_s=dict(self.steps_s),
            archive=str(self.config.archive),
            output=str(self.config.output),
            daemon=self.instance is not None and daemon_running(self.instance),
            token_required=token_required,
        )

    # --- events ----------------------------------------------------------------------------------

    def fast_answer(self, event: DetectionEvent) -> tuple[EventResult, float]:
        """The fast answer (MAP + Laplace) of ``event`` and its wall time including the wait for the
        inversion lock (s); raises ``NoObservationsError`` when no instrument saw the event and
        ``MetDataError`` when no usable met data serves one of its overpasses."""
        self.wait_ready()
        started = time.perf_counter()
        with self._inversion_lock:
            crawl = time.monotonic() - self._crawled_at >= CATALOG_REFRESH_S
            result = attribute_event(
                event, self.config.archive, self.config.settings, output=self.config.output, fast=True,
                crawl=crawl,
            )
            if crawl:
                self._crawled_at = time.monotonic()
        return result, time.perf_counter() - started

    def register_and_launch(self, event: DetectionEvent, values: dict[str, Any], seconds: float) -> Launch:
        """Register the event (dynamic partition and the output's event registry), record the fast
        answer as an observation of its ``event_posterior`` partition, keep it for ``GET``, and submit
        the full run, unless a run this service submitted with the same config is still queued or
        running for the event (that run is reused). A run that cannot be submitted is reported in the
        state, not raised."""
        key = event.key
        now = datetime.now(UTC)
        with self._dagster_lock:
            register_events(self.instance, [event])
            record_events(self.config.layout.event_registry_path, [event])
            self.instance.report_runless_asset_event(
                AssetObservation(
                    asset_key=POSTERIOR_ASSET, partition=key,
                    metadata=observation_metadata(values, "fast", seconds),
                )
            )
            self._fast[key] = FastAnswer(values, iso_z(now), now.timestamp())
            self._fast.move_to_end(key)
            while len(self._fast) > FAST_ANSWERS_KEPT:
                self._fast.popitem(last=False)
            try:
                run = self._in_flight(key) or self._submit(key)
            except Exception as error:  # the fast answer stands; the reason goes to the client and the log
                LOG.exception(f"{key}: the full run could not be submitted")
                reason = redact(f"{type(error).__name__}: {error}").strip().splitlines()
                state = RunState(run_id=None, status="NOT_SUBMITTED", error=reason[-1][:500])
                return Launch(state, "not submitted", iso_z(now))
        return Launch(run_state(run), event_status(run), iso_z(now))

    def _in_flight(self, key: str) -> DagsterRun | None:
        """The event's latest run when this service submitted it with the same config and it has not
        finished; else ``None``."""
        run = self.latest_run(key)
        if run is None or run.status in FINISHED or run.run_config != self.config.run_config:
            return None
        return run if RUN_TAGS.items() <= run.tags.items() else None

    def _submit(self, key: str) -> DagsterRun:
        """Submit the event's full run; when the code location did not load (e.g. while its code was
        being changed at start-up), load it again once and retry."""
        config = self.config.run_config
        try:
            return submit_run(self.instance, self.workspace, JOB_NAME, config, RUN_TAGS, partition_key=key)
        except RuntimeError as error:
            if "code location" not in str(error):
                raise
            LOG.warning(f"reloading the code location before submitting {key}: {error}")
            process = self.workspace.process_context
            process.reload_code_location(LOCATION_NAME)
            self.workspace = process.create_request_context()
            return submit_run(self.instance, self.workspace, JOB_NAME, config, RUN_TAGS, partition_key=key)

    def latest_run(self, key: str) -> DagsterRun | None:
        """The latest run of :data:`JOB_NAME` for partition ``key``, or ``None``."""
        runs = self.instance.get_runs(RunsFilter(job_name=JOB_NAME, tags={PARTITION_TAG: key}), limit=1)
        return runs[0] if runs else None

    def _observed(self, key: str) -> FastAnswer | None:
        """The latest fast answer recorded on the instance for ``key`` (numbers rounded), or ``None``."""
        records = self.instance.fetch_observations(
            AssetRecordsFilter(asset_key=AssetKey(POSTERIOR_ASSET), asset_partitions=[key]), limit=1
        ).records
        if not records or records[0].asset_observation is None:
            return None
        metadata = {name: value.value for name, value in records[0].asset_observation.metadata.items()}
        if metadata.get("answer") != "fast":
            return None
        stamp = records[0].timestamp
        when = iso_z(datetime.fromtimestamp(stamp, UTC))
        return FastAnswer(values_from_observation(key, metadata), when, stamp)

    def _full(self, event: DetectionEvent) -> FastAnswer | None:
        """The full run's posterior row of ``event`` (its file's time as the answer's), or ``None``."""
        path = self.config.layout.posterior_path(event.iso_week, event.key)
        try:
            stamp = path.stat().st_mtime
            row = gpd.read_parquet(path).iloc[0]
        except FileNotFoundError:
            return None
        return FastAnswer(row_values(row), iso_z(datetime.fromtimestamp(stamp, UTC)), stamp)

    def latest(self, key: str) -> EventAnswer:
        """The latest posterior of event ``key``: the full run's row or the fast answer, whichever is
        newer, with the status of the event's latest run. Raises ``AlertFormatError`` for a malformed
        key and ``LookupError`` when the service has no posterior of the event."""
        event = parse_event_key(key)
        run = self.latest_run(key)
        full = self._full(event)
        fast = self._fast.get(key) or self._observed(key)
        present = [(a.timestamp, kind, a) for kind, a in (("full", full), ("fast", fast)) if a is not None]
        if not present:
            raise LookupError(f"{key}: no posterior yet; POST the event to /events first")
        _, kind, answer = max(present, key=lambda candidate: candidate[0])
        return event_answer(answer.values, kind, event_status(run), run_state(run), answer.answered_at)
