"""Stop requests that are not lost when Python swallows them.

A stop request reaches a process as a signal (SIGTERM from a container or pod stop or ``kill``, SIGINT
from Ctrl-C or from Dagster's run termination, which signals the run process itself), and its
handler raises an exception in the main thread at the next Python instruction. When that instruction
belongs to a garbage-collector callback (JAX registers one that runs on every full collection), a
finaliser or a weakref callback, CPython cannot propagate the exception: it reports it as
"Exception ignored in ..." through :data:`sys.unraisablehook` and carries on, and the stop request
is gone. :func:`redeliver_swallowed_stops` installs a hook that recognises these stop exceptions and
sends the signal again :data:`REDELIVER_AFTER_S` seconds later, so that it is handled outside the
callback. Other unraisable exceptions go to the hook that was there before.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

REDELIVER_AFTER_S = 0.05
"""Seconds between a swallowed stop exception and the signal sent again (out of the callback by then)."""

_STOP_EXCEPTIONS: set[type[BaseException]] = {KeyboardInterrupt}


def _signal_again(signum: int) -> None:
    os.kill(os.getpid(), signum)


class _RedeliveringHook:
    """:data:`sys.unraisablehook`: a swallowed stop exception is signalled again, anything else goes
    to the hook it replaced."""

    def __init__(self, previous: Callable[[Any], object]) -> None:
        self.previous = previous

    def __call__(self, unraisable: Any) -> None:
        error = unraisable.exc_value
        if isinstance(error, tuple(_STOP_EXCEPTIONS)):
            signum = getattr(error, "signum", signal.SIGINT)  # one handler serves SIGINT and SIGTERM
            timer = threading.Timer(REDELIVER_AFTER_S, _signal_again, (signum,))
            timer.daemon = True
            timer.start()
            return
        self.previous(unraisable)


def redeliver_swallowed_stops(*stop_exceptions: type[BaseException]) -> None:
    """Install the hook (once per process; installing again only adds exception types).

    ``stop_exceptions`` are the types a stop signal's handler raises besides :class:`KeyboardInterrupt`
    (Dagster's execution interruption in a run process); one with a ``signum`` attribute is signalled
    again with that signal, any other with SIGINT.
    """
    _STOP_EXCEPTIONS.update(stop_exceptions)
    if not isinstance(sys.unraisablehook, _RedeliveringHook):
        sys.unraisablehook = _RedeliveringHook(sys.unraisablehook)
