"""NUTS: the compiled chain runner and the chains of one run.

NUTS (Hoffman & Gelman 2014, JMLR 15, 1593) runs in Laplace-preconditioned coordinates
``z = z_map + L w`` (``L L^T`` the Laplace covariance, :func:`~.model.preconditioned_model`), with
chain 0 started at the MAP and the others at small Laplace-scaled offsets from it.

Where the Laplace fit preconditions the posterior badly, NUTS builds trees of the maximum depth on
every draw: a draw costs ``2^depth - 1`` gradient evaluations instead of the usual 7-15, and such
chains rarely pass their diagnostics (on the misspecified validation sets the four events that took
56-58 s had NUTS at 252 leapfrog steps per draw, then SMC re-sampled them). A chain whose mean
leapfrog steps over the second half of its warm-up reach ``SATURATED_TREE_SHARE`` of that maximum
can stop there, without its draws, so that the caller samples with SMC at once.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from functools import partial
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import NUTS

from attribution_assets.science.inversion.laplace import LaplaceFit, cholesky
from attribution_assets.science.inversion.model import log_bayes_factors, preconditioned_model
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig
from attribution_assets.science.inversion.settings import InversionSettings


class ChainRunner:
    """One chain (:func:`chain_runner`), compiled
    ahead of time once per argument shape (under a lock), so that several
    threads can run chains of the same executable at once without tracing it concurrently."""

    def __init__(self, run: Any) -> None:
        self._jitted = jax.jit(run)
        self._executables: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> tuple[jax.Array, ...]:
        leaves, tree = jax.tree.flatten(args)
        signature = (tree, tuple((x.shape, str(x.dtype)) for x in leaves))
        with self._lock:
            if signature not in self._executables:
                self._executables[signature] = self._jitted.lower(*args).compile()
        return self._executables[signature](*args)


_RUNNERS: OrderedDict[tuple, ChainRunner] = OrderedDict()
_RUNNER_CACHE_SIZE = 8


SATURATED_TREE_SHARE = 0.5
"""Share of the most leapfrog steps a tree can take (``2^depth - 1``) at which a chain's mean over
the second half of its warm-up counts as saturated (half the maximum: depth 7 or more on average,
ten times a well-preconditioned chain's cost)."""


def saturated_steps(max_tree_depth: int) -> float:
    """Mean leapfrog steps per warm-up draw at which a chain is saturated (:data:`SATURATED_TREE_SHARE`
    of ``2^max_tree_depth - 1``)."""
    return SATURATED_TREE_SHARE * (2**max_tree_depth - 1)


def _chain_program(kernel: NUTS, warmup: int, samples: int) -> Any:
    """The function one :class:`ChainRunner` compiles (see :func:`chain_runner`)."""

    def run(
        key: jax.Array, w0: jax.Array, model_args: tuple, stop_steps: jax.Array
    ) -> tuple[jax.Array, ...]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            state = kernel.init(key, warmup, {"w": w0}, model_args, {})

        def step(state: Any, _: None) -> tuple[Any, tuple]:
            state = kernel.sample(state, model_args, {})
            return state, (state.z["w"], state.diverging, state.num_steps)

        state, (_, _, warm_steps) = jax.lax.scan(step, state, None, length=warmup)
        late_steps = jnp.mean(warm_steps[warmup // 2:].astype(jnp.float32))

        def draws(state: Any) -> tuple:
            return jax.lax.scan(step, state, None, length=samples)[1]

        def stopped(state: Any) -> tuple:
            w = state.z["w"]
            return (jnp.zeros((samples,) + w.shape, w.dtype), jnp.zeros(samples, bool),
                    jnp.zeros(samples, warm_steps.dtype))

        w, diverging, steps = jax.lax.cond(late_steps >= stop_steps, stopped, draws, state)
        return w, diverging, steps, late_steps

    return run


def chain_runner(config: ModelConfig, warmup: int, samples: int, accept: float, depth: int) -> ChainRunner:
    """The chain runner for this model structure, cached per process.

    The runner is one compiled program, ``(key, w0, model_args, stop_steps) -> (w draws, divergences,
    leapfrog steps, mean leapfrog steps over the second half of the warm-up)``: the kernel's
    initialisation at ``w0``, ``warmup`` adaptation steps (step size and diagonal mass matrix, the
    kernel's own schedule) then ``samples`` draws, both as ``lax.scan``. A chain whose late warm-up
    mean reaches ``stop_steps`` returns zeros instead of draws (``inf`` never stops).

    It is compiled once per problem shape and reused by every later event and chain (``MCMC.run``
    compiles its collection loop again on every call, which also grows JIT code memory without bound
    in a long-lived process). Initialising inside the program matters: run eagerly, the kernel's
    initialisation evaluates the model operation by operation, one small compilation each.
    """
    key = (config, warmup, samples, accept, depth)
    if key in _RUNNERS:
        _RUNNERS.move_to_end(key)
        return _RUNNERS[key]
    model = partial(preconditioned_model, config=config)
    kernel = NUTS(model, target_accept_prob=accept, max_tree_depth=depth)
    _RUNNERS[key] = ChainRunner(_chain_program(kernel, warmup, samples))
    while len(_RUNNERS) > _RUNNER_CACHE_SIZE:
        _RUNNERS.popitem(last=False)
    return _RUNNERS[key]


_Job = TypeVar("_Job")
_Result = TypeVar("_Result")
WAIT_SLICE_S = 0.25
"""Seconds the caller of :func:`map_interruptibly` blocks at a time before its signal handlers may run."""


def map_interruptibly(
    fn: Callable[[_Job], _Result], jobs: Sequence[_Job], workers: int, name: str = "worker"
) -> list[_Result]:
    """``[fn(job) for job in jobs]`` in ``workers`` daemon threads, in the jobs' order.

    The caller waits in slices of :data:`WAIT_SLICE_S` s, so a signal handler of the main thread
    (SIGTERM or SIGINT raising an interruption, as a run process's does) runs within that time
    even when the signal was delivered to a worker thread; an interrupted caller does not wait for
    the calls under way. Those run on in their daemon threads until they return or the process
    exits, and no further job starts. The first exception raised by a call is raised here.
    """
    futures: list[Future] = [Future() for _ in jobs]
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(jobs)):
        pending.put(index)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            future = futures[index]
            future.set_running_or_notify_cancel()
            try:
                future.set_result(fn(jobs[index]))
            except BaseException as error:  # handed to the caller through the future
                future.set_exception(error)

    for k in range(max(1, min(workers, len(jobs)))):
        threading.Thread(target=work, name=f"{name}-{k}", daemon=True).start()
    try:
        while True:
            done, running = wait(futures, timeout=WAIT_SLICE_S, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    future.result()  # raises the call's exception
            if not running:
                return [future.result() for future in futures]
    finally:
        stop.set()


class Chains(NamedTuple):
    """Output of :func:`run_nuts`, per chain and draw (C, D, ...)."""

    z: np.ndarray  # (C, D, P) whitened coordinates
    log_bf: np.ndarray  # (C, D) log Bayes factor of source presence
    diverging: np.ndarray  # (C, D)
    steps: np.ndarray  # (C, D) leapfrog steps


class SaturatedWarmup(NamedTuple):
    """NUTS stopped after a warm-up whose trees saturated: ``mean_steps``, the largest mean leapfrog
    steps per draw over a chain's second half of the warm-up, reached ``limit``
    (:func:`saturated_steps`)."""

    mean_steps: float
    limit: float


def run_nuts(
    data: InversionProblem,
    config: ModelConfig,
    frame: LaplaceFit,
    init: np.ndarray,
    settings: InversionSettings,
    key: jax.Array,
    stop_if_saturated: bool = False,
) -> Chains | SaturatedWarmup:
    """NUTS (:func:`chain_runner`) from ``init`` (C, P), the chains' starting points in the
    preconditioned coordinates ``w`` of ``frame`` (``z = frame.mean + L w``). With
    ``stop_if_saturated``, a chain whose trees saturate in its warm-up (:func:`saturated_steps`)
    stops there, no further chain starts, and the result is a :class:`SaturatedWarmup`.

    Chains run in one thread per CPU core, each through the same compiled program (one chain per
    call: batching chains in one program makes every chain wait for the longest trajectory); each
    chain has its own key, so the draws do not depend on the number of threads. A stop request
    (SIGTERM or SIGINT raised in the main thread) ends the wait for the chains within
    :data:`WAIT_SLICE_S` s (:func:`map_interruptibly`).
    """
    shift, chol = frame.mean, cholesky(frame.cov)
    run = chain_runner(
        config, settings.num_warmup, settings.num_samples, settings.target_accept, settings.max_tree_depth
    )
    model_args = (data, jnp.asarray(shift, jnp.float32), jnp.asarray(chol, jnp.float32))
    limit = saturated_steps(settings.max_tree_depth) if stop_if_saturated else np.inf
    keys = jax.random.split(key, settings.num_chains)
    stop_steps = np.float32(limit)
    jobs = [(keys[c], jnp.asarray(init[c], jnp.float32), model_args, jnp.float32(stop_steps))
            for c in range(settings.num_chains)]
    saturated = threading.Event()

    def chain(job: tuple) -> list[np.ndarray] | None:
        if saturated.is_set():
            return None
        out = [np.asarray(x) for x in run(*job)]
        if out[3] >= stop_steps:
            saturated.set()
        return out

    results = map_interruptibly(chain, jobs, os.cpu_count() or 1, name="nuts-chain")
    if saturated.is_set():
        return SaturatedWarmup(max(float(r[3]) for r in results if r is not None), limit)
    w, diverging, steps = (np.stack([r[i] for r in results]) for i in range(3))
    z = shift + w.astype(float) @ chol.T
    return Chains(z, log_bayes_factors(z, data, config), diverging, steps)
