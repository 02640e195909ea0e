"""Why a run failed, in one line: a failed step's error, or, for a run killed mid-step, the step and the
run monitor's reason."""

from __future__ import annotations

from dagster import DagsterEvent, DagsterEventType, instance_for_test, job, op
from dagster._core.events import JobFailureData, StepSuccessData
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._utils.error import SerializableErrorInfo

from attribution_assets.orchestration.failures import QUALIFIED_CLASS, run_failure, step_failure


@op
def _inputs() -> int:
    return 1


@op
def _explode(value: int) -> int:
    raise ValueError(f"inventory {value} unreadable\nno facility table in the archive")


@job
def _failing_job() -> None:
    _explode(_inputs())


@job
def _passing_job() -> None:
    _inputs()


def test_step_failure_names_the_failed_step_and_the_last_line_of_its_error() -> None:
    result = _failing_job.execute_in_process(raise_on_error=False)
    assert not result.success
    assert step_failure(result.all_events) == "_explode: no facility table in the archive"
    failure = "dagster._core.definitions.events.Failure: CH4_1.5S: no data: a.b"
    assert QUALIFIED_CLASS.sub("", failure) == "CH4_1.5S: no data: a.b"
    assert step_failure(_passing_job.execute_in_process().all_events) == "run failed"


def test_a_run_killed_mid_step_is_reported_with_its_step_and_the_run_monitors_reason() -> None:
    """A run process killed with SIGKILL has no failed step: the record said only "run failed"."""
    with instance_for_test() as instance:
        run = instance.add_run(DagsterRun(job_name="attribute_event", status=DagsterRunStatus.STARTED))
        for kind, step, data in [(DagsterEventType.STEP_START, "plume_forward", None),
                                 (DagsterEventType.STEP_SUCCESS, "plume_forward", StepSuccessData(1.0)),
                                 (DagsterEventType.STEP_START, "source_posterior", None)]:
            event = DagsterEvent(event_type_value=kind.value, job_name="attribute_event", step_key=step,
                                 event_specific_data=data)
            instance.report_dagster_event(event, run.run_id)
        killed = "Run execution process for 1a2b was terminated by signal 9 (SIGKILL)"
        instance.report_run_failed(run, f"{killed}. This usually indicates that the process was killed "
                                        "by the operating system due to running out of memory.")
        assert run_failure(instance, run.run_id) == f"run failed during source_posterior: {killed}"


def test_a_run_whose_celery_worker_died_names_the_error_its_failure_carries() -> None:
    """The run failure's first sentence is Dagster's generic one; the cause is in its error."""
    with instance_for_test() as instance:
        run = instance.add_run(DagsterRun(job_name="attribute_event", status=DagsterRunStatus.STARTED))
        instance.report_dagster_event(DagsterEvent(DagsterEventType.STEP_START.value, "attribute_event",
                                                   step_key="source_posterior"), run.run_id)
        lost = "celery.exceptions.WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 0.\n"
        failure = DagsterEvent(
            DagsterEventType.RUN_FAILURE.value, "attribute_event",
            message='Execution of run for "attribute_event" failed. An exception was thrown during '
                    "execution.",
            event_specific_data=JobFailureData(error=SerializableErrorInfo(lost, [], "WorkerLostError")),
        )
        instance.report_dagster_event(failure, run.run_id)
        assert run_failure(instance, run.run_id) == (
            'run failed during source_posterior: Execution of run for "attribute_event" failed; '
            "WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 0.")


def _raised(make_error):
    try:
        make_error()
    except Exception as error:  # the real error object, with its chain
        return error
    raise AssertionError("nothing raised")


def test_only_a_database_that_does_not_answer_counts_as_unreachable(tmp_path) -> None:
    """A refused PostgreSQL connection is an outage to wait out; a failed query, a corrupt DuckDB file or
    SQLite's own errors are faults to report (they used to be answered 503 as well)."""
    import sqlite3

    import duckdb
    import psycopg2

    from attribution_assets.orchestration.failures import instance_database_unreachable

    refused = _raised(lambda: psycopg2.connect(host="127.0.0.1", port=1, user="x", dbname="x"))
    assert instance_database_unreachable(refused)

    def wrapped() -> None:
        try:
            raise refused
        except psycopg2.OperationalError as error:
            raise RuntimeError("too many retries") from error

    assert instance_database_unreachable(_raised(wrapped))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    corrupt = _raised(lambda: duckdb.sql(f"select * from read_parquet('{broken}')").fetchall())
    no_table = _raised(lambda: sqlite3.connect(":memory:").execute("select * from runs"))
    assert not instance_database_unreachable(corrupt)
    assert not instance_database_unreachable(no_table)
    assert not instance_database_unreachable(ValueError("could not connect the dots"))
