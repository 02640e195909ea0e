"""How much more the retrieval error of the misspecified set looks like a plume than like a shift of one.

The inversion tempers each block's likelihood by ``1 / c_b^2``
(:mod:`attribution_assets.science.inversion.structured_error`), with ``c_b`` the robust sd of the
matched projections of the block's residuals onto plume templates. A power likelihood widens every
direction of the posterior by ``c_b``; a composite likelihood's sandwich (Godambe) variance widens
the direction of a parameter ``k`` by the error's scale along that parameter's score, ``d mu / d k``
(Varin, Reid & Firth 2011, Statistica Sinica 21, 5, section 2; Ribatet, Cooley & Davison 2012,
Statistica Sinica 22, 813, the curvature adjustment). For each EMIT and GHGSat block of the
misspecified set (``attribution_assets.science.validation``) this script measures both: the scale
for the same 96 plume templates as the inversion (sources within two prior sds, random directions,
the met speed and stability) and for their derivatives with respect to the source position (central
differences of 10 m along x and y, 192 templates). The rate and the evidence of a source go with the
plume templates, the position with their derivatives; a ratio below 1 says the power likelihood
widens the position more than the error asks for.

It also splits each block's whitened residuals and templates, less their constant part (the
background's), into a smooth part (the span of the ``--band-order``^2 lowest 2-D cosines over the
block's footprint centres but the constant, orthonormalised in the noise-whitened metric over its
quiet observations) and the rest, and gives each part's scale and
the smooth part's share of a template's whitened energy ``E``. A likelihood tempered per band
instead of per block keeps ``E / c_smooth^2 + (1 - E) / c_rest^2`` of a plume's evidence instead of
``1 / c_b^2``; their ratio (the "band gain") is what such a likelihood would recover.

The blocks are measured as the inversion tempers them: after the albedo artefact of blocks that
report a surface albedo (GHGSat) is regressed out (:mod:`attribution_assets.science.inversion.albedo`)
and under the error field fitted to imager blocks where it is significant
(:mod:`attribution_assets.science.inversion.correlated_error`; "whitened" is then by the Cholesky
factor of its precision); ``--no-albedo`` and ``--no-correlated-error`` measure them without either.

    .venv/bin/python benchmarks/structured_error_scales.py [--events 120] [--seed 1] [--band-order 4]
        [--no-albedo] [--no-correlated-error] [--out F.json]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from report import write_results

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.inversion import InversionSettings, structured_error
from attribution_assets.science.inversion.albedo import remove_albedo_artefacts
from attribution_assets.science.inversion.correlated_error import model_correlated_errors
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.validation import scene_kinds, set_scene

POSITION_STEP_M = 10.0
"""Half the central-difference step of the position derivatives (m)."""
POSITION_SD_M = InversionSettings().position_sd_m
"""Position prior sd (m) over which the template sources spread: the inversion's default (300 m)."""


def whitener(block: ObservationBlock) -> tuple[np.ndarray, np.ndarray]:
    """The block's quiet observations (n,) mask and a whitening matrix ``W`` (m, m) over them, with
    ``W' W`` the block's error precision among them (``diag(1 / s^2)`` for independent errors)."""
    quiet = structured_error.quiet_observations(block)
    precision = block.precision()[quiet][:, quiet].toarray()
    return quiet, np.linalg.cholesky(precision).T


def smooth_basis(block: ObservationBlock, order: int, quiet: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """Orthonormal columns (m, order^2) spanning the ``order x order`` lowest 2-D cosines over the
    block's footprint centres (scaled to their bounding box), whitened by ``whiten`` over its
    ``quiet`` observations; the first column is the constant's."""
    centres = np.asarray(block.points_xy_m, float).mean(axis=1)
    low, high = centres.min(axis=0), centres.max(axis=0)
    unit = ((centres - low) / np.maximum(high - low, 1.0))[quiet]
    cosines = [np.cos(np.pi * a * unit[:, 0]) * np.cos(np.pi * b * unit[:, 1])
               for a in range(order) for b in range(order)]
    basis, _ = np.linalg.qr(whiten @ np.stack(cosines, axis=1))
    return basis


def _whitened_projections(templates: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """``t.r / |t|`` for every whitened template row (NaN where ``|t| < MIN_TEMPLATE_NORM``)."""
    norm = np.linalg.norm(templates, axis=1)
    z = templates @ residuals / np.where(norm > 0.0, norm, 1.0)
    return np.where(norm >= structured_error.MIN_TEMPLATE_NORM, z, np.nan)


def block_scales(
    block: ObservationBlock, wind: OverpassWind, seed: list[int], band_order: int
) -> dict[str, float]:
    """The scales of one block (robust sds of matched projections of its residuals, before the
    significance test): ``plume`` (``structured_error.projections`` onto plume templates, the
    inversion's ``c_b``), ``position`` (onto their position derivatives), ``smooth`` and ``rest``
    (the plume templates' and residuals' parts in and out of :func:`smooth_basis`), and
    ``smooth_share``, the median share of a template's whitened energy in the smooth part."""

    def plumes(shift: np.ndarray) -> np.ndarray:
        # the inversion's templates, every source shifted by ``shift`` (m): the same draws each time
        generator = np.random.default_rng(seed)
        return structured_error.templates(block, wind, shift, POSITION_SD_M, generator)

    step = POSITION_STEP_M
    centred = plumes(np.zeros(2))
    derivatives = [plumes(np.array(d) * step) - plumes(-np.array(d) * step) for d in ((1.0, 0.0), (0.0, 1.0))]
    # the projections are invariant to a template's scale; the scale only sets which count (norm >= 1)
    unit = [d * (np.linalg.norm(centred, axis=1, keepdims=True)
                 / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-30)) for d in derivatives]
    plume_z = structured_error.projections(block, centred)
    position_z = np.concatenate([structured_error.projections(block, d) for d in unit])
    quiet, whiten = whitener(block)
    basis = smooth_basis(block, band_order, quiet, whiten)
    constant, smooth = basis[:, :1], basis[:, 1:]  # the first cosine is the background's

    def parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # (the part the background does not take, its smooth part) of whitened rows x
        return x - (x @ constant) @ constant.T, (x @ smooth) @ smooth.T

    template, smooth_t = parts(centred[:, quiet] @ whiten.T)
    residual, smooth_r = parts(whiten @ (np.asarray(block.y, float) - np.median(block.y))[quiet])
    norm = np.linalg.norm(template, axis=1)
    counted = norm >= structured_error.MIN_TEMPLATE_NORM
    share = np.linalg.norm(smooth_t, axis=1) ** 2 / np.where(norm > 0.0, norm, 1.0) ** 2
    scale = structured_error.robust_scale
    return {
        "plume": scale(plume_z),
        "position": scale(position_z),
        "smooth": scale(_whitened_projections(smooth_t, smooth_r)),
        "rest": scale(_whitened_projections(template - smooth_t, residual - smooth_r)),
        "smooth_share": float(np.median(share[counted])) if counted.any() else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120, help="events in the misspecified set")
    parser.add_argument("--seed", type=int, default=1, help="seed of the misspecified set")
    parser.add_argument("--band-order", type=int, default=4, help="cosines per axis of the smooth part")
    parser.add_argument("--no-albedo", action="store_true",
                        help="measure the blocks before their albedo artefact is regressed out")
    parser.add_argument("--no-correlated-error", action="store_true",
                        help="measure the blocks with independent errors, without their fitted error field")
    parser.add_argument("--out", default="structured_error_scales.json")
    args = parser.parse_args()
    scales: dict[str, list[dict[str, float]]] = defaultdict(list)
    for index, (kind, gas) in enumerate(scene_kinds(args.events, args.seed)):
        if gas != "CH4":
            continue
        scene = set_scene(args.events, args.seed, index)
        blocks = scene.blocks if args.no_albedo else remove_albedo_artefacts(scene.blocks)[0]
        if not args.no_correlated_error:
            blocks = model_correlated_errors(blocks)[0]
        for name, block in zip(scene.instruments, blocks, strict=True):
            if name in ("EMIT", "GHGSAT"):
                seed = [args.seed, index, block.overpass]
                scales[f"{name}, {'no source' if kind == 'none' else 'source'}"].append(
                    block_scales(block, scene.winds[block.overpass], seed, args.band_order))
    summary = {}
    print("| blocks | n | plume-template scale c_b | position-derivative scale | ratio | smooth / rest scale "
          "| template energy in the smooth part | band gain |\n|---|---|---|---|---|---|---|---|")
    for name, values in sorted(scales.items()):
        table = {key: np.array([v[key] for v in values]) for key in values[0]}
        table["ratio"] = table["position"] / table["plume"]
        e = table["smooth_share"]
        table["band_gain"] = (e / table["smooth"] ** 2 + (1.0 - e) / table["rest"] ** 2) * table["plume"] ** 2
        summary[name] = {key: np.nanpercentile(v, [25, 50, 75]).tolist() for key, v in table.items()}
        summary[name]["n"] = len(values)
        m = {key: q[1] for key, q in summary[name].items() if key != "n"}
        print(f"| {name} | {len(values)} | {m['plume']:.2f} | {m['position']:.2f} | {m['ratio']:.2f} "
              f"| {m['smooth']:.2f} / {m['rest']:.2f} | {m['smooth_share']:.2f} | {m['band_gain']:.2f} |")
    print("\n(medians over the blocks; the JSON has the quartiles too)")
    write_results({"args": vars(args), "summary": summary}, args.out)


if __name__ == "__main__":
    main()
