"""Persistent XLA compilation cache, so that a fresh run process reuses compiled programs.

Dagster runs every materialisation in a new process, where JAX would otherwise compile the plume
likelihood, its gradient, the Laplace Hessian and the NUTS sampler again for every event (tens of
seconds on a 2-core machine). With the cache, programs compiled once are loaded from disk.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ATTRIBUTION_JAX_CACHE_DIR"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "attribution_assets" / "jax"
MIN_COMPILE_TIME_S = 0.5
"""Only programs that took at least this long to compile are written to the cache."""


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path | None:
    """Point JAX's persistent compilation cache at ``directory``.

    Defaults to ``$ATTRIBUTION_JAX_CACHE_DIR`` or ``~/.cache/attribution_assets/jax``; the value
    ``off`` disables the cache. Returns the directory in use (``None`` when disabled).
    """
    import jax

    chosen = directory if directory is not None else os.environ.get(CACHE_ENV, str(DEFAULT_CACHE_DIR))
    if str(chosen).strip().lower() == "off":
        return None
    path = Path(chosen).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    return path
