"""``attribution``: run the asset graph headless, list events, backfill a week, or open the UI.

Every run goes through a Dagster instance (``DAGSTER_HOME``; ``./.dagster_home`` is created when it
is unset), so runs started here show in the UI next to sensor-triggered ones. ``run``, ``demo`` and
``backfill`` exit with :data:`EXIT_OK` when every event succeeded, :data:`EXIT_PARTIAL` when some
failed and the others were written, :data:`EXIT_FAILED` when none succeeded; each failed event leaves
``<output>/failures/<event_key>.json`` with the reason (removed once the event succeeds). A bad command
line or input file exits with :data:`EXIT_USAGE` before anything is registered or written.

Runs are configured with the analysis settings of the ``ATTRIBUTION_SETTINGS`` file, when set, and the
sampler options given on the command line in place of the file's (:func:`analysis_settings`).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import geopandas as gpd
import pandas as pd

from attribution_assets.atomic import atomic_path
from attribution_assets.compilation import configure_jax
from attribution_assets.events import (
    AlertFormatError,
    DetectionEvent,
    RegistryError,
    distinct_events,
    parse_iso_week,
    read_alerts,
    record_events,
    registered_events,
)
from attribution_assets.paths import (
    REPO_ROOT,
    SAMPLE_ALERTS,
    SAMPLE_ARCHIVE,
    SAMPLE_TRUTH,
    archive_root,
    output_root,
)
from attribution_assets.science.inversion.settings import (
    MINIMUM_COUNTS,
    SAMPLER_SETTINGS,
    InversionSettings,
    Sampler,
    setting_help,
)
from attribution_assets.summary import summary_table

EXIT_OK = 0
"""Every event succeeded."""
EXIT_FAILED = 1
"""No event succeeded (or nothing to run, or the event registry cannot be read)."""
EXIT_USAGE = 2
"""A bad command line: an argument the parser refuses, or an input file (``--alerts``, the
``ATTRIBUTION_SETTINGS`` file) that cannot be read or does not follow its format."""
EXIT_PARTIAL = 3
"""Some events failed, the others were written (or every event was written and a week's roll-up
failed)."""


EXIT_CODES_HELP = (
    "exit status: 0 every event succeeded; 3 some events failed, the others were written (or a week's "
    "roll-up failed); 1 no event succeeded; 2 bad command line or input file (alerts, "
    "ATTRIBUTION_SETTINGS), before anything is registered. Each failed event leaves "
    "OUTPUT/failures/<event_key>.json with the reason, removed once the event succeeds."
)
ARCHIVE_HELP = "product archive root (default $ATTRIBUTION_ARCHIVE, else the bundled sample archive)"
OUTPUT_HELP = "output root (default $ATTRIBUTION_OUTPUT, else ./attribution_output)"
SETTINGS_VARIABLE = "ATTRIBUTION_SETTINGS"
"""Environment variable naming the JSON file of analysis settings (see :func:`analysis_settings`)."""
OFFLINE_HELP = (
    "never contact NASA Earthdata or the Copernicus CDS, even with credentials: use only the local "
    "archive (default: each service is on when its credentials are found)"
)


class CommandError(Exception):
    """An error the command reports in one line (``attribution: <message>`` on stderr) before it exits
    with ``exit_code`` (default :data:`EXIT_USAGE`)."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class EventOutcome:
    """What happened to one event in a headless run."""

    event: DetectionEvent
    success: bool
    seconds: float
    row: pd.Series | None
    error: str = ""


def ensure_instance_home() -> Path:
    """``DAGSTER_HOME``, or a local ``./.dagster_home`` (with the repository's dagster.yaml) when unset,
    with its storage created (under a lock: two commands starting on a fresh home both created its
    SQLite databases, and the instance no longer loaded). Raises :class:`CommandError` naming the
    folder when it cannot be written."""
    from attribution_assets.orchestration.daemon import InstanceDatabaseUnreachable, initialise_instance

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path.cwd() / ".dagster_home")
        os.environ["DAGSTER_HOME"] = home
    path = Path(home)
    try:
        path.mkdir(parents=True, exist_ok=True)
        config = REPO_ROOT / "dagster.yaml"
        if config.exists() and not (path / "dagster.yaml").exists():
            with atomic_path(path / "dagster.yaml") as tmp:
                shutil.copy(config, tmp)
        initialise_instance(path)
    except OSError as error:
        reason = error.strerror or error
        raise CommandError(f"DAGSTER_HOME {path}: cannot write the instance there ({reason})", EXIT_FAILED) \
            from error
    except InstanceDatabaseUnreachable as error:
        raise CommandError(str(error), EXIT_FAILED) from error
    return path


def log_config(args: argparse.Namespace) -> dict:
    """Console log level of the runs (the instance keeps every event regardless)."""
    level = "INFO" if getattr(args, "verbose", False) else "WARNING"
    return {"loggers": {"console": {"config": {"log_level": level}}}}


def sampler_settings(args: argparse.Namespace) -> dict[str, object]:
    """The sampler options (``SAMPLER_SETTINGS``, fields of
    :class:`~attribution_assets.resources.AnalysisSettings`) given on the command line; an option left
    out is absent."""
    given = {name: getattr(args, name, None) for name in SAMPLER_SETTINGS}
    return {name: value for name, value in given.items() if value is not None}


def archive_dir(args: argparse.Namespace) -> Path:
    """The product archive a command reads (``--archive``, ``$ATTRIBUTION_ARCHIVE`` or the bundled
    samples). Raises :class:`CommandError` (:data:`EXIT_USAGE`) when it is not a folder: a mistyped path
    otherwise gave an empty catalog and, later, an error about the catalog."""
    archive = Path(args.archive or archive_root())
    if not archive.is_dir():
        raise CommandError(
            f"archive {archive}: no such folder (give --archive or ATTRIBUTION_ARCHIVE; an empty folder "
            "is an archive the live services fill)"
        )
    return archive


def output_dir(args: argparse.Namespace) -> Path:
    """The output root a command writes (``--output``, ``$ATTRIBUTION_OUTPUT`` or
    ``./attribution_output``). Raises :class:`CommandError` (:data:`EXIT_USAGE`) when a file cannot be
    written there, or in its nearest existing folder when it does not exist yet (nothing is left
    behind): a read-only folder otherwise ended the command in a traceback once events were registered."""
    output = Path(args.output or output_root())
    existing = next((folder for folder in (output, *output.absolute().parents) if folder.exists()), output)
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise CommandError(f"output {output}: cannot write there ({error.strerror or error}); give a "
                           "writable --output or ATTRIBUTION_OUTPUT") from error
    return output


def analysis_settings(args: argparse.Namespace) -> dict[str, object]:
    """Every field of :class:`~attribution_assets.resources.AnalysisSettings` a run is configured with:
    the ``ATTRIBUTION_SETTINGS`` file's settings when the variable is set (the fields it leaves out, and
    every field without it, keep their defaults), with the sampler options given on the command line
    (:func:`sampler_settings`) in place of the file's.

    The whole resource travels in the run config, because run config for a resource replaces its
    configuration: a run given only the sampler fields would lose the file's other settings. Raises
    :class:`CommandError` (:data:`EXIT_USAGE`) naming the file, and the field, when the file cannot be
    read or does not hold valid settings.
    """
    from attribution_assets.resources import AnalysisSettings, settings_from_file

    path = os.environ.get(SETTINGS_VARIABLE)
    try:
        base = settings_from_file(path) if path else AnalysisSettings()
    except ValueError as error:
        raise CommandError(f"{SETTINGS_VARIABLE}: {error}") from error
    return base.config_values() | sampler_settings(args)


def run_config(archive: Path, output: Path, args: argparse.Namespace) -> dict:
    """The run config of every run a command submits: archive, output (:func:`resources_config`), the
    analysis settings (:func:`analysis_settings`), the live switch (``args.offline`` switches both live
    services off) and the console log level (:func:`log_config`)."""
    from attribution_assets.orchestration.config import resources_config

    live = False if getattr(args, "offline", False) else None
    return resources_config(archive, output, analysis_settings(args), live) | log_config(args)


def failure_path(output: Path, key: str) -> Path:
    """The failure record of event ``key`` under the output root."""
    return output / "failures" / f"{key}.json"


def record_outcome(output: Path, outcome: EventOutcome, key: str, run_id: str | None) -> None:
    """Write (atomically, fsynced) or remove the failure record of one event: written with the reason
    when the event failed, removed when it succeeded."""
    path = failure_path(output, key)
    if outcome.success:
        path.unlink(missing_ok=True)
        return
    record = {
        "event_key": key,
        "event_id": outcome.event.event_id,
        "event_time": outcome.event.time.isoformat(),
        "gas": outcome.event.gas,
        "reason": outcome.error,
        "run_id": run_id,
        "failed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(outcome.seconds, 1),
    }
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def exit_code(outcomes: Sequence[EventOutcome]) -> int:
    """:data:`EXIT_OK` when every event succeeded, :data:`EXIT_PARTIAL` when some did,
    :data:`EXIT_FAILED` when none did (or there were none)."""
    done = sum(o.success for o in outcomes)
    if outcomes and done == len(outcomes):
        return EXIT_OK
    return EXIT_PARTIAL if done else EXIT_FAILED


@dataclass
class RunEventsResult:
    """What :func:`run_events` did: each event's outcome, and why each week whose roll-up failed
    failed (ISO week -> reason)."""

    outcomes: list[EventOutcome]
    failed_rollups: dict[str, str]

    @property
    def exit_code(self) -> int:
        """:func:`exit_code` of the outcomes; :data:`EXIT_PARTIAL` instead of :data:`EXIT_OK` when a
        roll-up failed (every event was written, its week's table and alerts were not)."""
        code = exit_code(self.outcomes)
        return EXIT_PARTIAL if code == EXIT_OK and self.failed_rollups else code


def crawl_catalog(instance, workspace, config: dict, tags: Mapping[str, str], archive: Path,
                  output: Path) -> None:
    """Run the ``crawl_catalog`` job and wait for it. Raises :class:`CommandError` (:data:`EXIT_FAILED`)
    naming the archive and the reason when the run fails: every event would otherwise fail later on a
    missing catalog, which hides the cause."""
    from dagster import DagsterRunStatus

    from attribution_assets.orchestration.failures import run_failure
    from attribution_assets.orchestration.submit import RunProgress, submit_run, wait_for_runs

    crawl = RunProgress(submit_run(instance, workspace, "crawl_catalog", config, tags=tags).run_id, "crawl")
    wait_for_runs(instance, [crawl])
    if crawl.status != DagsterRunStatus.SUCCESS:
        reason = run_failure(instance, crawl.run_id)
        raise CommandError(f"the catalog crawl of {archive} into {output} failed (run {crawl.run_id[:8]}): "
                           f"{reason}; no event run was submitted", EXIT_FAILED)


def run_events(
    events: Sequence[DetectionEvent],
    archive: Path,
    output: Path,
    args: argparse.Namespace,
    echo=print,
) -> RunEventsResult:
    """Register the events, then submit to the instance a crawl (:func:`crawl_catalog`), one
    ``attribute_event`` run per event (longest first,
    :func:`~attribution_assets.orchestration.submit.longest_first`) and one ``weekly_rollup`` run per
    ISO week the events touch (:func:`submit_rollups`), each as soon as the week's last event run has
    finished, and wait for them, printing each event's stages as they finish (numbered in the alerts'
    order). Events of the same event key are one event, the first kept
    (:func:`~attribution_assets.events.distinct_events`). Every run carries the command's id, so a stop
    ends its runs only (:func:`~attribution_assets.orchestration.shutdown.cancel_runs_on_signal`).

    The runs go through the instance's run coordinator (queue and limits) and are executed by its
    daemon: a running one (``dagster-daemon``), or the one commands start and share
    (:func:`~attribution_assets.orchestration.daemon.daemon`). The
    archive, output and settings travel in each run's config (:func:`run_config`). The settings and the
    event registry are read before anything is registered: a bad settings file raises
    :class:`CommandError`, an unreadable registry :class:`~attribution_assets.events.RegistryError`.
    Each event's failure record is written or removed (:func:`record_outcome`).
    """
    from dagster import DagsterInstance, DagsterRunStatus

    from attribution_assets.orchestration.daemon import daemon, daemon_in_use
    from attribution_assets.orchestration.failures import run_failure
    from attribution_assets.orchestration.shutdown import cancel_runs_on_signal, exit_on_signal
    from attribution_assets.orchestration.submit import RunProgress, longest_first, submit_run, wait_for_runs
    from attribution_assets.orchestration.workspace import open_workspace
    from attribution_assets.partitions import register_events
    from attribution_assets.resources import OutputStore

    config = run_config(archive, output, args)
    events, _ = distinct_events(events)
    store = OutputStore(root=str(output))
    registered_events(store.event_registry_path)  # an unreadable registry stops here (RegistryError)
    ensure_instance_home()
    with exit_on_signal(echo), DagsterInstance.get() as instance:  # a stop before the runs: clean exit
        record_events(store.event_registry_path, events)
        keys = register_events(instance, events)
        echo(f"archive {archive}\noutput  {output}\ninstance {os.environ['DAGSTER_HOME']}")
        started = time.perf_counter()
        with daemon(instance) as lease, open_workspace(instance) as workspace, \
                cancel_runs_on_signal(instance, echo=echo) as submitted:  # SIGTERM/SIGINT: end its runs, exit
            echo(daemon_in_use(lease, instance))
            crawl_catalog(instance, workspace, config, submitted.tags, archive, output)
            catalog = gpd.read_parquet(store.catalog_path) if store.catalog_path.exists() else []
            echo(f"catalog: {len(catalog)} overpass rows ({time.perf_counter() - started:.1f} s)")
            event_of = dict(zip(keys, events, strict=True))

            def submit_event(key: str) -> RunProgress:
                tags = {**submitted.tags, "attribution/gas": event_of[key].gas}
                run = submit_run(instance, workspace, "attribute_event", config, partition_key=key, tags=tags)
                return RunProgress(run.run_id, key)

            runs = {key: submit_event(key) for key in longest_first(event_of, store.catalog_path)}
            echo(f"submitted {len(runs)} event runs; the queue runs them (see the UI's Runs page)")
            numbers = {key: i for i, key in enumerate(keys, start=1)}
            unfinished = Counter(event.iso_week for event in events)
            rollups: list[RunProgress] = []
            rolled_up: list[str] = []

            def on_step(progress: RunProgress, step: str, outcome: str) -> None:
                echo(f"  [{numbers[progress.label]}/{len(runs)}] {progress.label}: {step} {outcome} "
                     f"({progress.seconds:.0f} s)")

            def on_finish(progress: RunProgress) -> None:
                done = progress.status == DagsterRunStatus.SUCCESS
                echo(f"[{numbers[progress.label]}/{len(runs)}] {progress.label} "
                     f"{'done' if done else progress.status.value} in {progress.seconds:.0f} s")
                week = event_of[progress.label].iso_week
                unfinished[week] -= 1
                if not unfinished[week]:  # the week's last event: its roll-up can run beside the others
                    rollups.extend(submit_rollups(instance, workspace, [week], config, echo, submitted.tags))
                    rolled_up.append(week)

            wait_for_runs(instance, list(runs.values()), on_step, on_finish)
            outcomes = []
            for event, key in zip(events, keys, strict=True):
                progress = runs[key]
                path = store.posterior_path(event.iso_week, key)
                if progress.status == DagsterRunStatus.SUCCESS and path.exists():
                    outcome = EventOutcome(event, True, progress.seconds, gpd.read_parquet(path).iloc[0])
                else:
                    outcome = EventOutcome(event, False, progress.seconds, None,
                                           run_failure(instance, progress.run_id))
                    echo(f"{key} FAILED: {outcome.error}")
                outcomes.append(outcome)
                record_outcome(output, outcome, key, progress.run_id)
            wait_for_runs(instance, rollups)
            failed_rollups = {progress.label.removeprefix("roll-up "): run_failure(instance, progress.run_id)
                              for progress in rollups if progress.status != DagsterRunStatus.SUCCESS}
    for week, reason in failed_rollups.items():
        echo(f"roll-up {week} FAILED: {reason}; the week's posteriors table and alerts are as they were "
             f"before: once the cause is fixed, `attribution backfill --week {week}` writes them")
    for week in rolled_up:
        if week not in failed_rollups:
            report_pending_deliveries(store, week, echo)
    return RunEventsResult(outcomes, failed_rollups)


def report_pending_deliveries(store, week: str, echo=print) -> int:
    """Print one line per alert of ``week`` whose webhook delivery failed and waits in the delivery
    ledger (:class:`~attribution_assets.alerting.delivery.DeliveryLedger`), and how it goes out: the
    next materialisation of the week's ``alerts`` resends it with the same idempotency key, which the
    ``alert_delivery_sensor`` requests on its own when it is on. Returns the number of such deliveries
    (0 when no webhook is configured or every alert went out)."""
    from attribution_assets.alerting.delivery import DeliveryLedger, LedgerError
    from attribution_assets.assets.alerts import ledger_path
    from attribution_assets.partitions import partition_of_week

    try:
        pending = DeliveryLedger.load(ledger_path(store, week)).pending()
    except LedgerError as error:
        echo(f"roll-up {week}: {error}")
        return 0
    for _, event_key, record in pending:
        echo(f"roll-up {week}: {record['status']} alert {event_key} NOT DELIVERED "
             f"(failed in {record['failures']} materialisation(s)): {record['error']}")
    if pending:
        monday = partition_of_week(week)
        echo(f"roll-up {week}: {len(pending)} alert delivery(ies) pending; they are resent with the same "
             f"idempotency key when the week's alerts are materialised again: by the "
             f"alert_delivery_sensor when it is on (no response, 5xx and 429 only), from the UI, or by "
             f"`dagster asset materialize -m attribution_assets.definitions --select alerts "
             f"--partition {monday}`")
    return len(pending)


def submit_rollups(instance, workspace, weeks: Sequence[str], config: dict, echo=print,
                   tags: Mapping[str, str] | None = None) -> list:
    """Submit one partitioned ``weekly_rollup`` run per ISO week of ``weeks`` (each once, in order)
    without waiting; a week outside the week partitions is reported and skipped. Returns the runs'
    :class:`~attribution_assets.orchestration.submit.RunProgress`.

    The runs carry the queue priority :data:`~attribution_assets.jobs.ROLLUP_PRIORITY`: a finished
    week's roll-up and alerts take the next free run slot ahead of queued event runs (a roll-up takes
    seconds; an event run takes a minute), so alerts go out as soon as their week is done and the
    roll-ups do not all wait for the last event."""
    from dagster._core.storage.tags import PRIORITY_TAG

    from attribution_assets.jobs import ROLLUP_PRIORITY
    from attribution_assets.orchestration.submit import RunProgress, submit_run
    from attribution_assets.partitions import partition_of_week, weekly_partitions

    runs = []
    for week in sorted(set(weeks)):
        key = partition_of_week(week)
        if not weekly_partitions.has_partition_key(key):
            echo(f"roll-up {week}: outside the week partitions (from {weekly_partitions.start:%Y-%m-%d})")
            continue
        run = submit_run(instance, workspace, "weekly_rollup", config, partition_key=key,
                         tags={**(tags or {}), PRIORITY_TAG: str(ROLLUP_PRIORITY)})
        runs.append(RunProgress(run.run_id, f"roll-up {week}"))
    return runs


def _alert_name(event: DetectionEvent) -> str:
    return repr(event.event_id) if event.event_id else "(no event_id)"


def load_alerts(path: Path) -> list[DetectionEvent]:
    """The events of the alert file ``path``, one per event key: an alert of the same event as an
    earlier one (same time, place and gas) is dropped with a warning on stderr naming both alerts.
    Raises :class:`CommandError` (:data:`EXIT_USAGE`) naming the file for a file that cannot be read or
    does not follow the alert format (or a bad ``ATTRIBUTION_MAX_ALERT_ROWS``)."""
    try:
        events, repeats = distinct_events(read_alerts(path))
    except ValueError as error:  # AlertFormatError, or ATTRIBUTION_MAX_ALERT_ROWS
        raise CommandError(str(error)) from error
    for repeat, kept in repeats:
        print(
            f"attribution: warning: {path}: alert {_alert_name(repeat)} is the same event as alert "
            f"{_alert_name(kept)} ({kept.key}); the event runs once, as {_alert_name(kept)}",
            file=sys.stderr,
        )
    return events


def cmd_demo(args: argparse.Namespace) -> int:
    events = load_alerts(SAMPLE_ALERTS)
    output = output_dir(args)
    result = run_events(events, SAMPLE_ARCHIVE, output, args)
    truth = pd.read_csv(SAMPLE_TRUTH).set_index("event_id")
    print()
    print(summary_table(result.outcomes, truth))
    print(f"\nposteriors: {output / 'posteriors'}   weekly roll-ups and alerts: {output / 'weekly'}")
    return result.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    events = load_alerts(Path(args.alerts))
    archive, output = archive_dir(args), output_dir(args)
    result = run_events(events, archive, output, args)
    print()
    print(summary_table(result.outcomes))
    return result.exit_code


def cmd_events(args: argparse.Namespace) -> int:
    from attribution_assets.resources import OutputStore

    store = OutputStore(root=str(args.output or output_root()))
    events = registered_events(store.event_registry_path)
    if not events:
        print(f"no events registered under {store.path}")
        return 0
    print(f"{'event_key':<42} {'event_id':<18} {'week':<9} {'posterior':<10}")
    for event in events:
        done = store.posterior_path(event.iso_week, event.key).exists()
        print(f"{event.key:<42} {event.event_id or '':<18} {event.iso_week:<9} {'yes' if done else 'no':<10}")
    return 0


def _week_events(args: argparse.Namespace, output: Path) -> list[DetectionEvent]:
    """The registered events of ``args.week`` under ``output``, plus those of ``args.alerts`` in it (an
    alert's id replaces a registered event's)."""
    from attribution_assets.resources import OutputStore

    start, end = parse_iso_week(args.week)
    alerts = load_alerts(Path(args.alerts)) if args.alerts else []
    events = [e for e in registered_events(OutputStore(root=str(output)).event_registry_path)
              if start <= e.time < end]
    events += [e for e in alerts if start <= e.time < end]
    return list({e.key: e for e in events}.values())


def backfill_outcomes(
    instance, watched, keys: Sequence[str], events: dict, output: Path
) -> list[EventOutcome]:
    """One :class:`EventOutcome` per event key of a watched backfill (the last run of each key), with
    its failure record written or removed."""
    from dagster import DagsterRunStatus

    from attribution_assets.events import parse_event_key
    from attribution_assets.orchestration.failures import run_failure
    from attribution_assets.resources import OutputStore

    store = OutputStore(root=str(output))
    last = {p.label: p for p in watched.runs.values()}
    outcomes = []
    for key in keys:
        event = events.get(key) or parse_event_key(key)
        progress = last.get(key)
        path = store.posterior_path(event.iso_week, key)
        if progress is not None and progress.status == DagsterRunStatus.SUCCESS and path.exists():
            outcome = EventOutcome(event, True, progress.seconds, gpd.read_parquet(path).iloc[0])
        elif progress is None:
            outcome = EventOutcome(event, False, 0.0, None, f"no run: backfill {watched.status.value}")
        else:
            reason = run_failure(instance, progress.run_id)
            outcome = EventOutcome(event, False, progress.seconds, None, reason)
        outcomes.append(outcome)
        record_outcome(output, outcome, key, progress.run_id if progress else None)
    return outcomes


def cmd_backfill(args: argparse.Namespace) -> int:
    """One Dagster backfill of the week's events, then its roll-up, executed by the daemon; progress is
    printed per event and stage as the backfill's runs go. ``--from-failure``: re-execute the week's
    latest backfill from failure instead (the UI's "Re-execute from failure")."""
    from dagster import DagsterInstance

    from attribution_assets.orchestration import backfill as bf
    from attribution_assets.orchestration.daemon import daemon, daemon_in_use
    from attribution_assets.orchestration.shutdown import cancel_runs_on_signal, exit_on_signal
    from attribution_assets.orchestration.workspace import open_workspace
    from attribution_assets.partitions import register_events
    from attribution_assets.resources import OutputStore

    archive, output = archive_dir(args), output_dir(args)
    config = run_config(archive, output, args)
    events = {e.key: e for e in _week_events(args, output)}
    if not events and not args.from_failure:
        print(f"no registered events in {args.week} (register them with `attribution run` or --alerts FILE)")
        return EXIT_FAILED
    ensure_instance_home()
    with exit_on_signal(), DagsterInstance.get() as instance:  # a stop before the runs: clean exit
        register_events(instance, events.values())
        record_events(OutputStore(root=str(output)).event_registry_path, list(events.values()))
        with daemon(instance) as lease, open_workspace(instance) as workspace, \
                cancel_runs_on_signal(instance) as submitted:  # SIGTERM/SIGINT: cancel the backfill, exit
            print(daemon_in_use(lease, instance))
            if args.from_failure:
                parent = bf.latest_week_backfill(instance, args.week)
                if parent is None:
                    print(f"no backfill of {args.week} to re-execute")
                    return EXIT_FAILED
                try:
                    backfill = submitted.track_backfill(bf.reexecute_failed(workspace, parent.backfill_id))
                except RuntimeError as error:  # still in progress, or nothing left to re-execute
                    raise CommandError(str(error), EXIT_FAILED) from error
            else:
                crawl_catalog(instance, workspace, config, submitted.tags, archive, output)
                try:
                    backfill = submitted.track_backfill(
                        bf.launch_week_backfill(instance, workspace, args.week, config, submitted.tags))
                except (ValueError, AlertFormatError) as error:
                    print(f"attribution: {error} (register events with `attribution run` or --alerts FILE)")
                    return EXIT_FAILED
            keys = bf.backfill_event_keys(backfill)
            print(f"backfill {backfill.backfill_id}: {backfill.title} (the UI's Backfills page)")
            watched = bf.watch_backfill(instance, backfill.backfill_id, *_backfill_echoes(keys))
        print(f"backfill {backfill.backfill_id} {watched.status.value} in {watched.seconds:.0f} s")
        outcomes = backfill_outcomes(instance, watched, keys, events, output)
    print()
    print(summary_table(outcomes))
    if exit_code(outcomes) != EXIT_OK:
        print(f"\nthe roll-up of {args.week} waits for every event of the backfill: once the cause is fixed, "
              f"`attribution backfill --week {args.week} --from-failure` (or \"Re-execute from failure\" "
              "on the UI's Backfills page) runs only what failed, then the roll-up")
    else:
        report_pending_deliveries(OutputStore(root=str(output)), args.week)
    return exit_code(outcomes)


def _backfill_echoes(keys: Sequence[str]) -> tuple:
    """``on_step``, ``on_finish`` and ``on_run`` callbacks that print a backfill's progress."""
    numbers = {key: f"[{i}/{len(keys)}] " for i, key in enumerate(keys, start=1)}

    def on_step(progress, step: str, outcome: str) -> None:
        number = numbers.get(progress.label, "")
        print(f"  {number}{progress.label}: {step} {outcome} ({progress.seconds:.0f} s)")

    def on_finish(progress) -> None:
        print(f"{numbers.get(progress.label, '')}{progress.label} {progress.status.value.lower()} "
              f"in {progress.seconds:.0f} s")

    def on_run(progress) -> None:
        print(f"{numbers.get(progress.label, '')}{progress.label}: run {progress.run_id[:8]} queued")

    return on_step, on_finish, on_run


def cmd_dev(args: argparse.Namespace) -> int:
    analysis_settings(args)  # a bad ATTRIBUTION_SETTINGS file stops here, not in the code location
    ensure_instance_home()
    os.environ.setdefault("ATTRIBUTION_ARCHIVE", str(archive_dir(args)))
    os.environ.setdefault("ATTRIBUTION_OUTPUT", str(args.output or output_root()))
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "attribution_assets.definitions",
        "-p",
        str(args.port),
    ]
    return subprocess.call(command)


def cmd_serve(args: argparse.Namespace) -> int:
    """The HTTP alert service on ``--host``/``--port`` until interrupted (see
    :mod:`attribution_assets.service`); ``--with-daemon`` starts a daemon for one-machine set-ups."""
    import uvicorn

    from attribution_assets.service import ServiceConfig, create_app

    analysis = analysis_settings(args)  # a bad ATTRIBUTION_SETTINGS file stops here, not in the code location
    ensure_instance_home()
    config = ServiceConfig(
        archive=archive_dir(args),
        output=output_dir(args),
        analysis=analysis,
        live=False if args.offline else None,
        with_daemon=args.with_daemon,
    )
    level = "info" if args.verbose else "warning"
    print(f"attribution service on http://{args.host}:{args.port} (readiness /health, API /docs)", flush=True)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=level)
    return EXIT_OK


_SAMPLER_FLAGS = {
    "sampler": "--sampler",
    "num_chains": "--chains",
    "num_warmup": "--warmup",
    "num_samples": "--samples",
    "seed": "--seed",
    "escalate": "--escalate",
}
"""Command-line flag of each of ``SAMPLER_SETTINGS`` (a boolean also gets ``--no-...``)."""


def _add_sampler_options(parser: argparse.ArgumentParser) -> None:
    """One option per sampler setting, with the default and help text of ``InversionSettings``. An
    option left out stays ``None``, so the ``ATTRIBUTION_SETTINGS`` file's value (or the default) holds
    (:func:`analysis_settings`)."""
    defaults = InversionSettings()
    for name in SAMPLER_SETTINGS:
        default = getattr(defaults, name)
        if isinstance(default, bool):
            kind = {"action": argparse.BooleanOptionalAction}
        elif name == "sampler":
            kind = {"choices": get_args(Sampler)}
        elif name in MINIMUM_COUNTS:
            kind = {"type": _count(MINIMUM_COUNTS[name]), "metavar": "N"}
        else:
            kind = {"type": type(default), "metavar": "N"}
        help_text = f"{setting_help(name)} (default {default}, or the {SETTINGS_VARIABLE} file's)"
        parser.add_argument(_SAMPLER_FLAGS[name], dest=name, default=None, help=help_text, **kind)
    parser.add_argument("--verbose", action="store_true", help="print every step's log on the console")
    parser.add_argument("--offline", action="store_true", help=OFFLINE_HELP)


def _count(minimum: int) -> Callable[[str], int]:
    """An argument type: an integer of at least ``minimum``; the parser refuses anything else
    (:data:`EXIT_USAGE`), before anything is registered."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _iso_week(text: str) -> str:
    """An ISO week ``YYYY-Www`` argument; the parser refuses anything else (:data:`EXIT_USAGE`)."""
    try:
        parse_iso_week(text)
    except AlertFormatError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attribution", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="run the whole graph on the bundled sample archive and print a summary",
        epilog=EXIT_CODES_HELP,
    )
    demo.add_argument("--output", help=OUTPUT_HELP)
    _add_sampler_options(demo)
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser(
        "run", help="headless: register the alerts' events and materialise each one", epilog=EXIT_CODES_HELP
    )
    run.add_argument("--archive", help=ARCHIVE_HELP)
    run.add_argument("--alerts", required=True, help="operator alerts (CSV or GeoJSON)")
    run.add_argument("--output", help=OUTPUT_HELP)
    _add_sampler_options(run)
    run.set_defaults(func=cmd_run)
    events = sub.add_parser("events", help="list registered events and whether their posterior exists")
    events.add_argument("--output", help=OUTPUT_HELP)
    events.set_defaults(func=cmd_events)
    backfill = sub.add_parser(
        "backfill", help="one Dagster backfill of every registered event of one ISO week, then the week's "
        "roll-up (executed by the daemon; on the UI's Backfills page)", epilog=EXIT_CODES_HELP
    )
    backfill.add_argument("--week", required=True, type=_iso_week, help="ISO week, e.g. 2025-W33")
    backfill.add_argument("--archive", help=ARCHIVE_HELP)
    backfill.add_argument("--output", help=OUTPUT_HELP)
    backfill.add_argument("--alerts", help="also register these alerts' events of that week")
    backfill.add_argument(
        "--from-failure", action="store_true",
        help="re-execute the week's latest backfill from failure: only what was not materialised runs again",
    )
    _add_sampler_options(backfill)
    backfill.set_defaults(func=cmd_backfill)
    dev = sub.add_parser("dev", help="open the Dagster UI on this code location")
    dev.add_argument("--archive", help=ARCHIVE_HELP)
    dev.add_argument("--output", help=OUTPUT_HELP)
    dev.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default 3000)")
    dev.set_defaults(func=cmd_dev)
    serve = sub.add_parser(
        "serve", help="HTTP alert service: fast posterior per alert, then the full run (see /docs)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--archive", help=ARCHIVE_HELP)
    serve.add_argument("--output", help=OUTPUT_HELP)
    serve.add_argument(
        "--with-daemon", action="store_true",
        help="start a Dagster daemon for the service's life unless one runs (one-machine set-ups)",
    )
    _add_sampler_options(serve)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns its exit status. A refused command line exits
    (``SystemExit``) with :data:`EXIT_USAGE`; an input file that cannot be read returns
    :data:`EXIT_USAGE`, an event registry that cannot be read :data:`EXIT_FAILED`, each with one line
    on stderr that names the file."""
    args = build_parser().parse_args(argv)
    configure_jax()
    try:
        return args.func(args)
    except CommandError as error:
        print(f"attribution: {error}", file=sys.stderr)
        return error.exit_code
    except RegistryError as error:
        print(f"attribution: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
