"""Inversion cost for a three-instrument event: fresh process, warm MAP + Laplace, full NUTS.

The event is the one of ``bench_forward.py`` (EMIT 100 x 100 at 60 m, GHGSat 240 x 240 at 25 m,
TROPOMI 20 x 20 pixels with a 12-layer averaging kernel; one overpass each) with a 3000 kg/h source
at (150 m, -100 m) added through each block's unit-rate Jacobian at the met wind. Measured:

- a fresh interpreter (persistent compilation cache off) running MAP + Laplace and then NUTS on it:
  the first event's wall time, compilation included;
- in this process, after a first run: MAP + Laplace alone (``sampler="laplace"``), median of 3, and
  the alert path's fast answer (``InversionSettings().fast_answer()``: a cheaper multi-start MAP, then
  Laplace draws), median, minimum and maximum of 7;
- NUTS, 4 chains x (500 warm-up + 1000 draws), sequential chains: wall time, R-hat, bulk ESS,
  leapfrog steps per draw and the interval of the emission rate.

    .venv/bin/python benchmarks/bench_inversion.py [--out inversion.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_forward import WINDS, event_blocks
from report import write_results

from attribution_assets.compilation import no_compilation_cache, set_xla_flags
from attribution_assets.science import inversion
from attribution_assets.science.forward import operators

set_xla_flags()  # XLA CPU options, before the first computation

TRUTH_KG_H = 3000.0
SOURCE_XY_M = (150.0, -100.0)


def plume_event():
    """The benchmark event's blocks with the source's plume added to the observations."""
    blocks = event_blocks((100, 100), (240, 240), (20, 20), seed=0)
    out = []
    for block, wind in zip(blocks, WINDS, strict=True):
        unit = operators.jacobian(block, np.asarray(SOURCE_XY_M), wind)
        out.append(
            operators.ObservationBlock(**{**block.__dict__, "y": block.y + unit * TRUTH_KG_H / 3600.0})
        )
    return out


def summary(result: inversion.InversionResult) -> dict[str, float]:
    s = result.summary()
    return {
        "p05": s.emission_rate_kg_h_p05,
        "mean": s.emission_rate_kg_h,
        "p95": s.emission_rate_kg_h_p95,
        "r_hat_max": s.r_hat_max,
        "ess_bulk_min": s.ess_bulk_min,
        "divergences": s.divergences,
        "mean_leapfrog_steps": result.diagnostics.mean_leapfrog_steps,
        "observations_evaluated": result.diagnostics.observations_evaluated,
    }


def fresh_process() -> float:
    """Wall time (s) of a new interpreter's first event: imports, compilation, MAP, Laplace, NUTS."""
    here = str(Path(__file__).parent)
    code = (
        f"import time; t = time.perf_counter(); import sys; sys.path.insert(0, {here!r}); "
        "import bench_inversion as b; from attribution_assets.science import inversion as inv; "
        "inv.invert(b.plume_event(), b.WINDS, 'CH4', inv.InversionSettings()); "
        "print(time.perf_counter() - t)"
    )
    env = no_compilation_cache(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write results as JSON here (default: stdout)")
    args = parser.parse_args()
    results: dict[str, object] = {"fresh_process_first_event_s": fresh_process()}
    blocks = plume_event()
    laplace = inversion.InversionSettings(sampler="laplace")
    inversion.invert(blocks, WINDS, "CH4", laplace)  # compile
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        inversion.invert(blocks, WINDS, "CH4", laplace)
        times.append(time.perf_counter() - t0)
    results["warm_map_laplace_s"] = float(np.median(times))
    fast = inversion.InversionSettings().fast_answer()
    inversion.invert(blocks, WINDS, "CH4", fast)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        inversion.invert(blocks, WINDS, "CH4", fast)
        times.append(time.perf_counter() - t0)
    results["warm_fast_answer_s"] = {"median": float(np.median(times)), "min": min(times), "max": max(times)}
    nuts = inversion.InversionSettings()
    inversion.invert(blocks, WINDS, "CH4", nuts)  # compile the sampler for this shape
    t0 = time.perf_counter()
    result = inversion.invert(blocks, WINDS, "CH4", nuts)
    results["nuts_s"] = time.perf_counter() - t0
    results["nuts_sampling_s"] = result.diagnostics.sampling_s
    results["nuts"] = summary(result)
    print(
        f"fresh process, first event (compilation included): {results['fresh_process_first_event_s']:.1f} s"
    )
    print(f"warm MAP + Laplace: {results['warm_map_laplace_s']:.2f} s")
    f = results["warm_fast_answer_s"]
    print(f"warm fast answer: {f['median']:.2f} s median ({f['min']:.2f}-{f['max']:.2f} s over 7)")
    n = results["nuts"]
    print(
        f"NUTS 4 x (500 + 1000): {results['nuts_s']:.1f} s (sampling {results['nuts_sampling_s']:.1f} s); "
        f"R-hat {n['r_hat_max']:.3f}, bulk ESS {n['ess_bulk_min']:.0f}, {n['mean_leapfrog_steps']:.1f} "
        f"leapfrog steps per draw, {n['divergences']} divergences; Q {n['mean']:.0f} kg/h "
        f"[{n['p05']:.0f}, {n['p95']:.0f}] (truth {TRUTH_KG_H:.0f})"
    )
    write_results(results, args.out)


if __name__ == "__main__":
    main()
