"""Why a run failed, in one line for people: from the instance's event log (or an in-process
result's events), the first failed blocking check with what it found, else the first failed step and
the last line of its error, else (a run whose process was killed, or which the daemon's run monitoring
marked failed) the step it was in and the run failure's reason; and whether an error means the
instance database did not answer."""

from __future__ import annotations

import re

from dagster import AssetCheckSeverity, DagsterEventType, DagsterInstance

from attribution_assets.access.http import redact

QUALIFIED_CLASS = re.compile(r"^(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*: ")
"""A leading ``package.module.Class: `` in an error message."""


def run_failure(instance: DagsterInstance, run_id: str) -> str:
    """Why the run failed, in one line with secrets redacted (:func:`step_failure` of its events)."""
    return redact(step_failure(run_step_failures(instance, run_id)))


def run_step_failures(instance: DagsterInstance, run_id: str) -> list:
    """The step starts, successes and failures, asset-check evaluations and run failure of a run, in
    order (from the instance's event log): what :func:`step_failure` needs to say why the run failed."""
    kinds = (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
             DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.RUN_FAILURE)
    records = [r for kind in kinds for r in instance.get_records_for_run(run_id, of_type=kind).records]
    return [record.event_log_entry.dagster_event for record in sorted(records, key=lambda r: r.storage_id)]


def _failed_blocking_check(event) -> str | None:
    """``check_step: what the check found`` for a blocking check evaluation that failed with ERROR."""
    if event is None or event.event_type != DagsterEventType.ASSET_CHECK_EVALUATION:
        return None
    evaluation = event.asset_check_evaluation_data
    if evaluation.passed or evaluation.blocking is False or evaluation.severity != AssetCheckSeverity.ERROR:
        return None
    return f"{event.step_key}: {evaluation.description or evaluation.check_name + ' failed'}"


def step_failure(events) -> str:
    """Why a run failed, from ``events`` (Dagster events: an ``execute_in_process`` result's
    ``all_events`` or :func:`run_step_failures`): the first failed blocking check with what it found,
    else the first failed step and the last line of its error message (without a leading dotted class
    name such as ``dagster._core.definitions.events.Failure:``)."""
    events = list(events)
    for event in events:
        check = _failed_blocking_check(event)
        if check is not None:
            return check
    for event in events:
        if event is not None and event.is_step_failure:
            error = event.step_failure_data.error
            return f"{event.step_key}: {_last_line(error) if error else 'failed'}"
    return _run_failure_without_step_failure(events)


def _last_line(error) -> str:
    """The last line of a Dagster error's message (its cause's, when it has one) without a leading
    dotted class name; "failed" when it has no message."""
    message = (error.cause or error).message.strip()
    return QUALIFIED_CLASS.sub("", message.splitlines()[-1]) if message else "failed"


def _run_failure_without_step_failure(events: list) -> str:
    """A run that failed with no failed step (its process killed, its Celery worker lost, or the run
    marked failed by the daemon's run monitoring): the step it was in, the run failure's first
    sentence and, where the failure carries an error, that error's last line (``WorkerLostError:
    Worker exited prematurely: signal 9 (SIGKILL)``; the first sentence alone said "Execution of
    run ... failed")."""
    started = [e.step_key for e in events if e is not None and e.event_type == DagsterEventType.STEP_START]
    ended = {e.step_key for e in events if e is not None and e.event_type == DagsterEventType.STEP_SUCCESS}
    running = [step for step in started if step not in ended]
    failure = next((e for e in reversed(events) if e is not None
                    and e.event_type == DagsterEventType.RUN_FAILURE), None)
    message = (failure.message or "").strip() if failure is not None else ""
    first = message.splitlines()[0].split(". ")[0].rstrip(".") if message else ""
    error = getattr(failure.event_specific_data, "error", None) if failure is not None else None
    if error is not None:
        cause = error.cause or error
        last = _last_line(error)
        if last != "failed" and cause.cls_name and not last.startswith(cause.cls_name):
            last = f"{cause.cls_name}: {last}"  # a lost worker: its error's type is the news
        if last != "failed" and last not in first:
            first = f"{first}; {last}" if first else last
    text = "run failed" + (f" during {running[-1]}" if running else "")
    return f"{text}: {first}" if first else text


_CONNECTION_WORDS = ("could not connect", "connection refused", "not currently accepting connections",
                     "server closed the connection", "terminating connection", "connection to server",
                     "too many retries for db connection", "could not translate host name")
"""Words of the PostgreSQL client (libpq through psycopg2, and dagster-postgres's own retry) that say
the server did not answer, as opposed to a query that failed."""
_DATABASE_MODULES = ("dagster_postgres", "psycopg2", "sqlalchemy")


def instance_database_unreachable(error: BaseException) -> bool:
    """Whether ``error``, or an exception it was raised from or while handling, is the instance
    database's client saying that the server did not answer (dagster-postgres, psycopg2 or SQLAlchemy
    with a connection message). A failed query, a full disk, and DuckDB's or SQLite's own errors are
    not: they are faults to report, not outages to wait out."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        module = type(current).__module__.split(".")[0]
        message = str(current).lower()
        if module in _DATABASE_MODULES and any(words in message for words in _CONNECTION_WORDS):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
