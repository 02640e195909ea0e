"""JAX set-up for this package's entry points: one XLA CPU option and the persistent compilation cache.

Nothing here runs at import. :func:`configure_jax` is called by the entry points: ``definitions.py``
for the Dagster code location (its code servers and run processes), ``cli.main``, the HTTP service
(``service.runtime``) and :func:`~attribution_assets.pipeline.attribute_event`; the benchmarks set the
XLA flag alone (:func:`set_xla_flags`). It must run before JAX initialises its backend (the first
computation).

- **XLA flag.** XLA reads ``XLA_FLAGS`` once, when JAX initialises its backend. With jaxlib 0.10,
  sums are not handed to the YNNPACK reduction fusion (``--xla_cpu_experimental_ynn_fusion_type=-reduce``),
  which evaluates the fused plume arithmetic element by element: on 2 cores the value and gradient of a
  74 000-point three-instrument likelihood takes 1.9 ms with the option and 4.5-5 ms without it
  (``benchmarks/bench_forward.py``).
- **Compilation cache.** Dagster runs every materialisation in a new process, where JAX would otherwise
  compile the plume likelihood, its gradient, the Laplace Hessian and the NUTS sampler again for every
  event (tens of seconds on a 2-core machine). With the cache, programs compiled once are loaded from disk.
  Before JAX is imported, the cache is set through the environment variables JAX reads at import
  (``JAX_COMPILATION_CACHE_DIR``, ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``), so configuring it
  does not import JAX (about 1 s): a Dagster process that runs no event step never does.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

CACHE_ENV = "ATTRIBUTION_JAX_CACHE_DIR"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "attribution_assets" / "jax"
MIN_COMPILE_TIME_S = 0.5
"""Only programs that took at least this long to compile are written to the cache."""
CACHE_DIR_JAX_ENV = "JAX_COMPILATION_CACHE_DIR"
MIN_COMPILE_TIME_JAX_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
"""The environment variables JAX reads, when it is imported, for its cache directory and threshold."""
YNN_FUSION_OPTION = "xla_cpu_experimental_ynn_fusion_type"
YNN_REDUCE_OFF_FLAG = f"--{YNN_FUSION_OPTION}=-reduce"


def _jaxlib_version() -> tuple[int, int]:
    try:
        major, minor = metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (metadata.PackageNotFoundError, ValueError):
        return (0, 0)


def xla_flags(current: str, jaxlib_version: tuple[int, int] | None = None) -> str:
    """``XLA_FLAGS`` with the YNNPACK reduction fusion switched off on jaxlib 0.10.

    ``current`` is kept as it is, and is returned unchanged when it already sets the option (or for
    other jaxlib versions). ``jaxlib_version`` (major, minor) defaults to the installed one.
    """
    version = _jaxlib_version() if jaxlib_version is None else jaxlib_version
    flags = [current] if current else []
    if version[:2] == (0, 10) and YNN_FUSION_OPTION not in current:
        flags.append(YNN_REDUCE_OFF_FLAG)
    return " ".join(flags)


def _backend_initialised() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:
        return False
    return bool(getattr(xla_bridge, "backends_are_initialized", lambda: False)())


def set_xla_flags() -> str:
    """Set ``XLA_FLAGS`` in this process's environment (:func:`xla_flags`) and return the value.

    Warns when JAX has already initialised its backend: the value then only reaches child processes.
    """
    before = os.environ.get("XLA_FLAGS", "")
    value = xla_flags(before)
    if value != before and _backend_initialised():
        warnings.warn(
            "XLA_FLAGS set after JAX initialised its backend: it applies to new processes only; "
            "call attribution_assets.compilation.configure_jax() before the first JAX computation",
            RuntimeWarning,
            stacklevel=2,
        )
    os.environ["XLA_FLAGS"] = value
    return value


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path | None:
    """Point JAX's persistent compilation cache at ``directory``.

    Defaults to ``$ATTRIBUTION_JAX_CACHE_DIR`` or ``~/.cache/attribution_assets/jax``. The settings
    go into this process's environment, which JAX reads when it is imported and every child process
    inherits, and into JAX's configuration when JAX is imported already; JAX is not imported here. A
    ``JAX_COMPILATION_CACHE_DIR`` set before is replaced. The value ``off`` removes that variable (a
    parent's or a user's) and JAX's cache directory: the cache is off in this process, if JAX has not
    compiled yet, and in its children. Returns the directory in use (``None`` when off).
    """
    chosen = directory if directory is not None else os.environ.get(CACHE_ENV, str(DEFAULT_CACHE_DIR))
    jax = sys.modules.get("jax")
    if str(chosen).strip().lower() == "off":
        os.environ.pop(CACHE_DIR_JAX_ENV, None)
        if jax is not None:
            jax.config.update("jax_compilation_cache_dir", None)
        return None
    path = Path(chosen).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_DIR_JAX_ENV] = str(path)
    os.environ[MIN_COMPILE_TIME_JAX_ENV] = str(MIN_COMPILE_TIME_S)
    if jax is not None:
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    return path


def no_compilation_cache(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for a child process whose JAX compiles everything itself: the package's cache
    switched off (:data:`CACHE_ENV` ``off``) and JAX's own cache directory variable removed, which
    :func:`enable_compilation_cache` sets in any process that called it (a test process that loaded
    the definitions included) and children inherit."""
    return {**{k: v for k, v in environ.items() if k != CACHE_DIR_JAX_ENV}, CACHE_ENV: "off"}


def configure_jax(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Set the XLA flag (:func:`set_xla_flags`) and enable the persistent compilation cache
    (:func:`enable_compilation_cache` with ``cache_dir``); returns the cache directory or ``None``.

    Call it before the first JAX computation. Calling it again is harmless.
    """
    set_xla_flags()
    return enable_compilation_cache(cache_dir)
