"""The chains' thread pool (:func:`map_interruptibly`): results in the jobs' order, a call's exception
raised while other calls still run, and a stop signal that ends the caller's wait even when the
operating system delivered it to a thread running a chain."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from attribution_assets.science.inversion.sampler import WAIT_SLICE_S, map_interruptibly


class Stopped(BaseException):
    """What the test's SIGTERM handler raises in the main thread (as a run process's handler does)."""


@pytest.fixture()
def release() -> Iterator[threading.Event]:
    """An event the blocking calls wait on; set at the end so no thread outlives the test by long."""
    event = threading.Event()
    yield event
    event.set()


def test_results_come_back_in_the_jobs_order_with_fewer_threads_than_jobs() -> None:
    def slow_square(x: int) -> int:
        time.sleep(0.01 * (7 - x))  # later jobs finish first
        return x * x

    assert map_interruptibly(slow_square, list(range(8)), workers=3) == [x * x for x in range(8)]
    assert map_interruptibly(slow_square, [], workers=3) == []


def test_a_failing_call_is_raised_without_waiting_for_the_others(release: threading.Event) -> None:
    def job(x: int) -> int:
        if x == 1:
            raise ValueError("chain 1 failed")
        release.wait(30)
        return x

    started = time.monotonic()
    with pytest.raises(ValueError, match="chain 1 failed"):
        map_interruptibly(job, [0, 1], workers=2)
    assert time.monotonic() - started < 5


def test_sigterm_delivered_to_a_chain_thread_interrupts_the_caller(release: threading.Event) -> None:
    """With a plain thread pool the main thread sleeps in one uninterruptible wait until every chain
    ends, and a signal the kernel delivered to another thread is handled only then."""

    def on_sigterm(signum: int, frame: object) -> None:
        raise Stopped()

    def deliver_to_a_chain_thread() -> None:
        time.sleep(0.5)
        (chain,) = [t for t in threading.enumerate() if t.name == "chain-0"]
        signal.pthread_kill(chain.ident, signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        threading.Thread(target=deliver_to_a_chain_thread, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(Stopped):
            map_interruptibly(lambda _: release.wait(30), [0], workers=1, name="chain")
        waited = time.monotonic() - started
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert waited < 0.5 + 4 * WAIT_SLICE_S, f"the caller noticed the signal after {waited:.1f} s"
    (chain,) = [t for t in threading.enumerate() if t.name == "chain-0"]
    assert chain.daemon and chain.is_alive(), "the chain under way is left to run on in its daemon thread"
