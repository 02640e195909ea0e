"""Per-class coverage of the correctly specified model: the reference for the misspecified set.

``benchmarks/validation_misspecified.py`` reports coverage per source class (weak 80-300, medium
300-2000, strong above 2000 kg h-1). Only the average over the prior of an exact posterior's
coverage is 90 % (Talts et al. 2018, arXiv:1804.06788); coverage conditional on a class of truths
can differ, and over 20-60 events per class it scatters by its binomial error. This script measures
what the right model scores in each class, so that the misspecified set's per-class figures can be
read against it: events from the inversion's own prior and plume model
(``inversion.simulation.simulate_event``: an EMIT-like imager and a TROPOMI-like grid, truth drawn
from the prior), kept by rejection until each class holds ``--per-class`` events, inverted with the
production settings (presence indicator on), and scored with the misspecified set's rows, intervals
(the confidence interval for a non-detection) and table.

``--twin-of N`` scores instead the model's twin of the misspecified set of ``N`` events (``--seed``):
each event keeps its instruments, footprints, reported noise, met priors, true rate and true source
position, and its observations come from the inversion's own model (:func:`model_twin`). The twin
has the misspecified set's classes, truths and sensitivities with none of its model error, so what
separates the two tables is the model error alone.

    .venv/bin/python benchmarks/validation_reference.py [--per-class 30] [--twin-of N] [--seed 0]
        [--out F.json]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np
from report import write_results
from validation_misspecified import class_summary, event_row, markdown_table

from attribution_assets.compilation import set_xla_flags
from attribution_assets.science import inversion
from attribution_assets.science.inversion.model import unpack
from attribution_assets.science.inversion.problem import prepare
from attribution_assets.science.inversion.simulation import SimulatedEvent, model_observations, simulate_event
from attribution_assets.science.validation import KINDS, Scene, SceneTruth, set_scene
from attribution_assets.science.validation.scenes import RATE_KG_H

set_xla_flags()  # XLA CPU options, before the first computation
INSTRUMENTS = ("EMIT", "TROPOMI")
"""The simulated event's blocks (:func:`simulate_event`)."""


def rate_class(rate_kg_h: float) -> str | None:
    """The misspecified set's CH4 class of a rate (kg h-1), or None outside every class."""
    for kind, (low, high) in RATE_KG_H.items():
        if low <= rate_kg_h < high or (kind == "strong" and rate_kg_h >= low):
            return kind
    return None


def as_scene(event: SimulatedEvent, index: int, kind: str) -> Scene:
    """A simulated event in the validation set's shape, so that ``event_row`` scores it alike: its
    overpasses share one time (the met priors') and its plumes are steady (a release that began
    infinitely long before); the stability index is its first overpass's."""
    t = event.truth
    overpasses = len(event.winds)
    truth = SceneTruth(
        kind=kind, gas="CH4", rate_kg_h=float(t["emission_rate_if_present_kg_h"]),
        source_x_m=float(t["source_x_m"]), source_y_m=float(t["source_y_m"]),
        stability_index=float(np.ravel(t["stability_index"])[0]), overpass_hours=(0.0,) * overpasses,
        wind_u_m_s=tuple(map(float, t["wind_u_m_s"])), wind_v_m_s=tuple(map(float, t["wind_v_m_s"])),
        release_hours=(math.inf,) * overpasses)
    return Scene(index=index, blocks=event.blocks, winds=event.winds, gas="CH4", truth=truth,
                 instruments=INSTRUMENTS, observations=())


def class_events(per_class: int, seed: int, settings: inversion.InversionSettings) -> list[Scene]:
    """``per_class`` prior-drawn events in each class, in the order drawn (draw ``i`` uses
    ``default_rng([seed, i])``; draws whose rate falls in a full class, or below every class, are
    skipped)."""
    counts = dict.fromkeys(RATE_KG_H, 0)
    scenes: list[Scene] = []
    draw = 0
    while min(counts.values()) < per_class:
        event = simulate_event(np.random.default_rng([seed, draw]), settings)
        kind = rate_class(float(event.truth["emission_rate_if_present_kg_h"]))
        if kind is not None and counts[kind] < per_class:
            counts[kind] += 1
            scenes.append(as_scene(event, draw, kind))
        draw += 1
    return scenes


def model_twin(scene: Scene, rng: np.random.Generator, settings: inversion.InversionSettings) -> Scene:
    """``scene`` with observations from the inversion's own model at its true rate and source position.

    The nuisance parameters are drawn from the model's priors: per overpass the wind (met prior,
    gusts and meander), stability, apparent plume origin (jitter about the source) and, for fine
    imagers, the plume's bend, and the plumes' rate (the source rate times the model's log-normal
    flux factor); the backgrounds are the prior means, the noise is the reported sigma (inflation
    1). A "none" event gets background and noise only."""
    if settings.q_prior != "lognormal" or settings.fix_position:
        raise ValueError("the twin draws the plumes' log rate and the source position: it needs the "
                         "log-normal rate prior and a free position")
    truth = scene.truth
    data, config = prepare(scene.blocks, scene.winds, scene.gas, settings)
    layout = config.layout()
    z = rng.standard_normal(config.dim)
    for fixed in ("background", "inflation"):
        if fixed in layout:
            z[layout[fixed]] = 0.0
    if truth.rate_kg_h > 0.0:
        plume_rate = math.log(truth.rate_kg_h) + float(data.flux_log_sd) * rng.standard_normal()
        z[layout["q"]] = (plume_rate - float(data.q_loc)) / float(data.q_scale)
        offset = np.array([truth.source_x_m, truth.source_y_m]) - np.asarray(data.pos_center, float)
        z[layout["position"]] = offset / float(data.pos_sd)
    phys = unpack(z, data, config)
    if truth.rate_kg_h <= 0.0:
        phys["plume_rate_kg_h"] = 0.0
    return replace(scene, blocks=model_observations(scene.blocks, phys, rng), observations=())


def twin_events(n_events: int, seed: int, settings: inversion.InversionSettings) -> list[Scene]:
    """The model's twins (:func:`model_twin`) of the misspecified set of ``n_events`` events of ``seed``
    (event ``i`` generated with ``default_rng([seed, i])``, its twin drawn with
    ``default_rng([seed, i, 1])``)."""
    return [model_twin(set_scene(n_events, seed, i), np.random.default_rng([seed, i, 1]), settings)
            for i in range(n_events)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=30, help="events in each source class")
    parser.add_argument("--twin-of", type=int, default=0, metavar="N",
                        help="score the model's twin of the misspecified set of N events instead")
    parser.add_argument("--seed", type=int, default=0, help="seed of the events and the inversion")
    parser.add_argument("--out", default="validation_reference.json")
    args = parser.parse_args()
    settings = inversion.InversionSettings(seed=args.seed)
    if args.twin_of:
        scenes = twin_events(args.twin_of, args.seed, settings)
        kinds = [kind for kind in KINDS if any(scene.truth.kind == kind for scene in scenes)]
    else:
        scenes = class_events(args.per_class, args.seed, settings)
        kinds = list(RATE_KG_H)
    rows = []
    start = time.perf_counter()
    for n, scene in enumerate(scenes, 1):
        t0 = time.perf_counter()
        result = inversion.invert(scene.blocks, scene.winds, scene.gas, settings)
        rows.append(event_row(scene, result, time.perf_counter() - t0))
        row = rows[-1]
        print(f"event {n:3d}/{len(scenes)}: {row['kind']:<15} Q {row['truth_kg_h']:8.0f} kg/h, 90% "
              f"[{row['interval_kg_h'][0]:8.0f}, {row['interval_kg_h'][1]:8.0f}], P(source) "
              f"{row['p_source']:.2f}{' detected' if row['detected'] else ''} ({row['seconds']:.1f} s)",
              flush=True)
    summary = {kind: class_summary([r for r in rows if r["kind"] == kind]) for kind in kinds}
    summary["all sourced"] = class_summary([r for r in rows if r["truth_kg_h"] > 0.0])
    total = time.perf_counter() - start
    print(f"\n{len(rows)} events in {total:.0f} s\n")
    print(markdown_table(summary))
    write_results({"settings": inversion.settings_dict(settings), "args": vars(args), "summary": summary,
                   "seconds": total, "events": rows}, args.out)


if __name__ == "__main__":
    main()
