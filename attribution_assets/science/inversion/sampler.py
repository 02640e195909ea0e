"""NUTS with mode-jumping steps: the compiled chain runner and the chains of one run.

NUTS (Hoffman & Gelman 2014, JMLR 15, 1593) runs in Laplace-preconditioned coordinates
``z = z_map + L w`` (``L L^T`` the Laplace covariance, :func:`~.model.preconditioned_model`), with
chain 0 started at the MAP and the others at small Laplace-scaled offsets from it, so that chains
do not start in different (wind direction, position) modes. Every NUTS transition is followed by a
mode-jumping Metropolis-Hastings step (:mod:`.proposal`).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import NUTS

from attribution_assets.science.inversion.laplace import LaplaceFit, cholesky
from attribution_assets.science.inversion.model import log_bayes_factors, preconditioned_model
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig
from attribution_assets.science.inversion.proposal import JumpProposal, proposal_log_density
from attribution_assets.science.inversion.settings import InversionSettings


class ChainRunner:
    """One chain, ``(key, w0, model_args, proposal, tries) -> (w draws, divergences, leapfrog steps,
    jump accepted)``, compiled ahead of time once per argument shape (under a lock), so that several
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


def _chain_program(kernel: NUTS, dim: int, warmup: int, samples: int, jumps: bool) -> Any:
    """The function one :class:`ChainRunner` compiles (see :func:`chain_runner`)."""

    def run(
        key: jax.Array, w0: jax.Array, model_args: tuple, proposal: JumpProposal, tries: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        nuts_key, jump_key = jax.random.split(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            state = kernel.init(nuts_key, warmup, {"w": w0}, model_args, {})
        potential_fn = kernel.get_potential_fn(model_args, {})

        def attempt(i: jax.Array, carry: tuple) -> tuple:
            w, energy, log_q, moved, key = carry
            k_component, k_noise, k_accept = jax.random.split(jax.random.fold_in(key, i), 3)
            component = jax.random.categorical(k_component, proposal.log_weights)
            noise = jax.random.normal(k_noise, (dim,))
            w_new = proposal.means[component] + proposal.chols[component] @ noise
            energy_new = potential_fn({"w": w_new})
            log_q_new = proposal_log_density(w_new, proposal)
            log_ratio = energy - energy_new + log_q - log_q_new
            accepted = jnp.log(jax.random.uniform(k_accept)) < log_ratio  # NaN: rejected
            kept = jax.tree.map(
                partial(jnp.where, accepted), (w_new, energy_new, log_q_new), (w, energy, log_q)
            )
            return (*kept, moved | accepted, key)

        def jump(state: Any, key: jax.Array) -> tuple[Any, jax.Array]:
            w_old = state.z["w"]
            log_q = proposal_log_density(w_old, proposal)
            start = (w_old, state.potential_energy, log_q, jnp.zeros((), bool), key)
            w, _, _, moved, _ = jax.lax.fori_loop(0, tries, attempt, start)
            state = jax.lax.cond(
                moved,
                lambda s: kernel.refresh(s._replace(z={"w": w}), model_args, {}),
                lambda s: s,
                state,
            )
            return state, moved

        def step(carry: tuple[Any, jax.Array], _: None) -> tuple[tuple[Any, jax.Array], tuple]:
            state, key = carry
            key, k_jump = jax.random.split(key)
            state = kernel.sample(state, model_args, {})
            moved, accepted = jump(state, k_jump) if jumps else (state, jnp.zeros((), bool))
            return (moved, key), (moved.z["w"], state.diverging, state.num_steps, accepted)

        carry, _ = jax.lax.scan(step, (state, jump_key), None, length=warmup)
        return jax.lax.scan(step, carry, None, length=samples)[1]

    return run


def chain_runner(
    config: ModelConfig, warmup: int, samples: int, accept: float, depth: int, jumps: bool
) -> ChainRunner:
    """The chain runner for this model structure, cached per process.

    The runner is one compiled program, ``(key, w0, model_args, proposal, tries) -> (w draws,
    divergences, leapfrog steps, jump accepted)``: the kernel's initialisation at ``w0``, ``warmup``
    adaptation steps (step size and diagonal mass matrix, the kernel's own schedule) then ``samples`` draws,
    both as ``lax.scan``. Every NUTS transition is followed by a mode-jumping Metropolis-Hastings
    step with an independence proposal from the Gaussian mixture ``proposal`` (Tjelmeland & Hegstad
    2001, Scand. J. Stat. 28, 205): NUTS explores within a mode, and the jump moves a chain between
    modes separated by low-density regions that Hamiltonian trajectories do not cross, with the
    acceptance ratio ``p(w') q(w) / (p(w) q(w'))``. Both steps leave the posterior invariant, so
    their composition does too. ``tries`` such Metropolis-Hastings steps follow each transition
    (each invariant, so their sequence is); ``jumps=False`` leaves the jumps out (plain NUTS).

    It is compiled once per problem shape and reused by every later event and chain (``MCMC.run``
    compiles its collection loop again on every call, which also grows JIT code memory without bound
    in a long-lived process). Initialising inside the program matters: run eagerly, the kernel's
    initialisation evaluates the model operation by operation, one small compilation each.
    """
    key = (config, warmup, samples, accept, depth, jumps)
    if key in _RUNNERS:
        _RUNNERS.move_to_end(key)
        return _RUNNERS[key]
    model = partial(preconditioned_model, config=config)
    kernel = NUTS(model, target_accept_prob=accept, max_tree_depth=depth)
    _RUNNERS[key] = ChainRunner(_chain_program(kernel, config.dim, warmup, samples, jumps))
    while len(_RUNNERS) > _RUNNER_CACHE_SIZE:
        _RUNNERS.popitem(last=False)
    return _RUNNERS[key]


class Chains(NamedTuple):
    """Output of :func:`run_nuts`, per chain and draw (C, D, ...)."""

    w: np.ndarray  # (C, D, P) preconditioned coordinates
    z: np.ndarray  # (C, D, P) whitened coordinates
    log_bf: np.ndarray  # (C, D) log Bayes factor of source presence
    diverging: np.ndarray  # (C, D)
    steps: np.ndarray  # (C, D) leapfrog steps
    jumped: np.ndarray  # (C, D) mode jump accepted


def run_nuts(
    data: InversionProblem,
    config: ModelConfig,
    frame: LaplaceFit,
    init: np.ndarray,
    proposal: JumpProposal,
    warmup: int,
    accept: float,
    settings: InversionSettings,
    key: jax.Array,
    tries: int = 1,
) -> Chains:
    """NUTS with mode-jumping steps (:func:`chain_runner`) from ``init`` (C, P), the chains' starting
    points in the preconditioned coordinates ``w`` of ``frame`` (``z = frame.mean + L w``).

    Chains run in one thread per CPU core, each through the same compiled program (one chain per
    call: batching chains in one program makes every chain wait for the longest trajectory); each
    chain has its own key, so the draws do not depend on the number of threads.
    """
    shift, chol = frame.mean, cholesky(frame.cov)
    run = chain_runner(
        config, warmup, settings.num_samples, accept, settings.max_tree_depth, settings.mode_jumps
    )
    model_args = (data, jnp.asarray(shift, jnp.float32), jnp.asarray(chol, jnp.float32))
    keys = jax.random.split(key, settings.num_chains)
    jobs = [
        (keys[c], jnp.asarray(init[c], jnp.float32), model_args, proposal, jnp.asarray(tries, jnp.int32))
        for c in range(settings.num_chains)
    ]
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        chains = list(pool.map(lambda job: [np.asarray(x) for x in run(*job)], jobs))
    w, diverging, steps, jumped = (np.stack([chain[i] for chain in chains]) for i in range(4))
    w = w.astype(float)
    z = shift + w @ chol.T
    return Chains(w, z, log_bayes_factors(z, data, config), diverging, steps, jumped)
