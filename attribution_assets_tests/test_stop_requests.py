"""A stop signal whose exception Python swallows (raised inside a garbage-collector callback, as JAX's
runs on every full collection) is delivered again and stops the code outside the callback; other
unraisable exceptions still reach the previous hook."""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from attribution_assets.orchestration.shutdown import exit_on_signal
from attribution_assets.stop_requests import redeliver_swallowed_stops


class Stopped(BaseException):
    """What the test's SIGTERM handler raises (as Dagster's handler raises its interruption)."""

    signum = signal.SIGTERM


@pytest.fixture()
def sigterm_raises_stopped(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """SIGTERM raises :class:`Stopped`; a gc callback signals SIGTERM in :func:`_work_for`'s collection
    and then runs Python code, so the handler's exception is raised inside the callback. Yields what
    reached the previous unraisable hook."""
    reached: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: reached.append(unraisable.exc_value))

    def on_sigterm(signum: int, frame: object) -> None:
        raise Stopped()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with _signalled_in_the_collection(signal.SIGTERM):
            yield reached
    finally:
        signal.signal(signal.SIGTERM, previous)


_armed: list[bool] = []
"""Set by :func:`_work_for` just before its collection: the gc callbacks signal in that one only (not in
an automatic collection during pytest's set-up, before the code under test is in place)."""


def _inside_the_full_collection(phase: str, info: dict) -> bool:
    """Whether this gc callback call is the start of :func:`_work_for`'s collection (then disarms)."""
    if phase == "start" and info["generation"] == 2 and _armed \
            and threading.current_thread() is threading.main_thread():
        _armed.clear()
        return True
    return False


@contextmanager
def _signalled_in_the_collection(signum: int) -> Iterator[list[bool]]:
    """Within the block, a gc callback sends ``signum`` at the start of :func:`_work_for`'s collection
    and then runs Python code, so the signal's handler runs inside the callback. Yields a list that
    gets an entry when it has fired."""
    fired: list[bool] = []

    def signal_inside_gc(phase: str, info: dict) -> None:
        if _inside_the_full_collection(phase, info):
            fired.append(True)
            signal.raise_signal(signum)
            sum(range(1000))  # Python instructions: the handler runs here, inside the callback

    gc.callbacks.append(signal_inside_gc)
    try:
        yield fired
    finally:
        gc.callbacks.remove(signal_inside_gc)


def _work_for(seconds: float) -> None:
    """Python work that triggers a full collection, then runs until ``seconds`` have passed."""
    _armed.append(True)
    gc.collect()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_stop_swallowed_in_a_gc_callback_is_lost_without_the_hook(sigterm_raises_stopped) -> None:
    _work_for(1.0)  # no Stopped: the exception went to the unraisable hook
    assert [type(e) for e in sigterm_raises_stopped] == [Stopped]


def test_a_stop_swallowed_in_a_gc_callback_is_delivered_again(sigterm_raises_stopped) -> None:
    redeliver_swallowed_stops(Stopped)
    started = time.monotonic()
    with pytest.raises(Stopped):
        _work_for(10.0)
    assert time.monotonic() - started < 5.0  # 0.05 s on an idle machine; lost, it would take 10 s
    assert sigterm_raises_stopped == [], "the swallowed stop is not reported as an ignored exception"


def test_other_unraisable_exceptions_reach_the_previous_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: reached.append(unraisable.exc_value))
    redeliver_swallowed_stops()
    error = ValueError("in a finaliser")
    sys.unraisablehook(SimpleNamespace(exc_type=ValueError, exc_value=error, exc_traceback=None,
                                       err_msg=None, object=None))
    assert reached == [error]


def test_a_commands_stop_swallowed_in_a_gc_callback_still_exits_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C while a command loaded its code location landed in JAX's gc callback and was lost: the
    command ran its events to the end and exited 0."""
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)  # no hook left by other tests
    started = time.monotonic()
    with _signalled_in_the_collection(signal.SIGINT) as fired, pytest.raises(SystemExit) as stopped, \
            exit_on_signal(echo=lambda line: None):
        _work_for(10.0)
    assert fired and stopped.value.code == 128 + signal.SIGINT
    assert time.monotonic() - started < 5.0
