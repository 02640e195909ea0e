"""How much more the retrieval error of the misspecified set looks like a plume than like a shift of one.

The inversion tempers each block's likelihood by ``1 / c_b^2``
(:mod:`attribution_assets.science.inversion.structured_error`), with ``c_b`` the robust sd of the
matched projections of the block's residuals onto plume templates. A power likelihood widens every
direction of the posterior by ``c_b``; a composite likelihood's sandwich (Godambe) variance widens
the direction of a parameter ``k`` by the error's scale along that parameter's score, ``d mu / d k``
(Varin, Reid & Firth 2011, Statistica Sinica 21, 5, eq. 3; Ribatet, Cooley & Davison 2012,
Statistica Sinica 22, 813, the curvature adjustment). For each EMIT and GHGSat block of the
misspecified set (``attribution_assets.science.validation``) this script measures both: the scale
for the same 96 plume templates as the inversion (sources within two prior sds, random directions,
the met speed and stability) and for their derivatives with respect to the source position (central
differences of 10 m along x and y, 192 templates). The rate and the evidence of a source go with the
plume templates, the position with their derivatives; a ratio below 1 says the power likelihood
widens the position more than the error asks for.

    .venv/bin/python benchmarks/structured_error_scales.py [--events 120] [--seed 1] [--out F.json]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from report import write_results

from attribution_assets.science.forward.operators import ObservationBlock, jacobians
from attribution_assets.science.inversion import structured_error
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import MAD_TO_SD
from attribution_assets.science.validation import scene_kinds
from attribution_assets.science.validation.scenes import generate_scene

POSITION_STEP_M = 10.0
"""Half the central-difference step of the position derivatives (m)."""
POSITION_SD_M = 300.0
"""Position prior sd (m) over which the template sources spread, as the inversion's default."""


def robust_sd(z: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of the finite values of ``z``."""
    z = z[np.isfinite(z)]
    return MAD_TO_SD * float(np.median(np.abs(z - np.median(z))))


def block_scales(
    block: ObservationBlock, wind: OverpassWind, rng: np.random.Generator
) -> tuple[float, float]:
    """(plume-template scale, position-derivative scale) of one block: the robust sds of the matched
    projections (``structured_error.projections``) of its residuals, before the significance test."""
    n = structured_error.TEMPLATES
    sources = rng.uniform(-2.0, 2.0, (n, 2)) * POSITION_SD_M
    angles = rng.uniform(0.0, 2.0 * np.pi, n)
    speed = max(wind.speed_m_s, 0.5)
    u, v = speed * np.cos(angles), speed * np.sin(angles)

    def plumes(shift: np.ndarray) -> np.ndarray:
        return jacobians(block, sources + shift, u, v, wind.stability_index)

    step = POSITION_STEP_M
    derivatives = [plumes(np.array(d) * step) - plumes(-np.array(d) * step) for d in ((1.0, 0.0), (0.0, 1.0))]
    # the projections are invariant to a template's scale; the scale only sets which count (norm >= 1)
    unit = [d * (np.linalg.norm(plumes(np.zeros(2)), axis=1, keepdims=True)
                 / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-30)) for d in derivatives]
    plume_z = structured_error.projections(block, plumes(np.zeros(2)))
    position_z = np.concatenate([structured_error.projections(block, d) for d in unit])
    return robust_sd(plume_z), robust_sd(position_z)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120, help="events in the misspecified set")
    parser.add_argument("--seed", type=int, default=1, help="seed of the misspecified set")
    parser.add_argument("--out", default="structured_error_scales.json")
    args = parser.parse_args()
    scales: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for index, (kind, gas) in enumerate(scene_kinds(args.events, args.seed)):
        if gas != "CH4":
            continue
        scene = generate_scene(np.random.default_rng([args.seed, index]), kind, gas, index=index)
        for name, block in zip(scene.instruments, scene.blocks, strict=True):
            if name in ("EMIT", "GHGSAT"):
                rng = np.random.default_rng([args.seed, index, block.overpass])
                scales[f"{name}, {'no source' if kind == 'none' else 'source'}"].append(
                    block_scales(block, scene.winds[block.overpass], rng))
    summary = {}
    print("| blocks | n | plume-template scale, median [p25, p75] | position-derivative scale, median "
          "[p25, p75] | ratio, median [p25, p75] |\n|---|---|---|---|---|")
    for name, values in sorted(scales.items()):
        plume, position = np.array(values).T
        rows = {"plume": plume, "position": position, "ratio": position / plume}
        summary[name] = {k: np.percentile(v, [25, 50, 75]).tolist() for k, v in rows.items()}
        summary[name]["n"] = len(values)
        cells = " | ".join(f"{q[1]:.2f} [{q[0]:.2f}, {q[2]:.2f}]" for q in
                           (summary[name][k] for k in ("plume", "position", "ratio")))
        print(f"| {name} | {len(values)} | {cells} |")
    write_results({"args": vars(args), "summary": summary}, args.out)


if __name__ == "__main__":
    main()
