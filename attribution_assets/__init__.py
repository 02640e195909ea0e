"""Satellite greenhouse-gas source attribution as an event-partitioned Dagster asset graph.

Importing the package sets two XLA CPU options before JAX initialises its backend (they are read
once, at initialisation, so they must be set here, before anything imports JAX), each only when
``XLA_FLAGS`` does not already set it:

- one CPU device per core (at least 4), so that NUTS chains run in parallel (``chain_method="auto"``);
- with jaxlib 0.10, sums are not handed to the YNNPACK reduction fusion, which evaluates the fused
  plume arithmetic element by element: on 2 cores the value and gradient of a 74 000-point
  three-instrument likelihood takes 1.9 ms without it and 4.5-5 ms with it
  (``benchmarks/bench_forward.py``).
"""

import os
import sys
from importlib import metadata


def _xla_flags(current: str) -> str:
    flags = [current] if current else []
    if "xla_force_host_platform_device_count" not in current:
        flags.append(f"--xla_force_host_platform_device_count={max(4, os.cpu_count() or 1)}")
    try:
        jaxlib = tuple(int(part) for part in metadata.version("jaxlib").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        jaxlib = (0, 0)
    if jaxlib[:2] == (0, 10) and "xla_cpu_experimental_ynn_fusion_type" not in current:
        flags.append("--xla_cpu_experimental_ynn_fusion_type=-reduce")
    return " ".join(flags)


if "jax" not in sys.modules:
    os.environ["XLA_FLAGS"] = _xla_flags(os.environ.get("XLA_FLAGS", ""))
