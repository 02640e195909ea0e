"""Satellite greenhouse-gas source attribution as an event-partitioned Dagster asset graph.

Importing the package sets one XLA CPU option unless ``XLA_FLAGS`` already sets it. XLA reads it
once, when JAX initialises its backend (the first computation), so it must be set before that,
which importing any part of the package does: with jaxlib 0.10, sums are not handed to the YNNPACK
reduction fusion, which evaluates the fused plume arithmetic element by element. On 2 cores the
value and gradient of a 74 000-point three-instrument likelihood takes 1.9 ms without it and
4.5-5 ms with it (``benchmarks/bench_forward.py``).
"""

import os
from importlib import metadata


def _xla_flags(current: str) -> str:
    flags = [current] if current else []
    try:
        jaxlib = tuple(int(part) for part in metadata.version("jaxlib").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        jaxlib = (0, 0)
    if jaxlib[:2] == (0, 10) and "xla_cpu_experimental_ynn_fusion_type" not in current:
        flags.append("--xla_cpu_experimental_ynn_fusion_type=-reduce")
    return " ".join(flags)


os.environ["XLA_FLAGS"] = _xla_flags(os.environ.get("XLA_FLAGS", ""))
