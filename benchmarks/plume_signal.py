"""How much signal the misspecified set's plumes leave in a scene, and how much of it the model's plume sees.

For every sourced event of a misspecified validation set (:mod:`attribution_assets.science.validation`)
whose instruments are exactly ``--instruments`` (default TROPOMI alone) and whose class is in
``--kinds`` (default strong), and for each of its blocks:

- ``snr``: the true plume's whole-scene signal in units of the noise, ``sqrt(sum p_i^2 / s_i^2)``
  (``p`` the puffs' noise-free enhancement, ``s`` the reported sigma);
- ``model_snr``: the same for the inversion's Gaussian plume at the true rate and source and the
  analysed (met prior) wind;
- ``projection``: the weighted least-squares rate of the true plume on that model plume, both less
  their weighted mean (the background takes it), as a share of the true rate (1 when the model's
  plume has the true plume's shape at the analysed wind; the share of the true signal a fixed-geometry
  fit would read);
- ``data_rate``: the same fit to the block's observations (noise and artefacts included), and its
  standard error ``data_rate_se``, as shares of the true rate;
- the analysed wind's speed over the true one at the overpass and its direction error (degrees).

With ``--results`` (a JSON written by ``validation_misspecified.py`` for the same set) each event also
gets whether its reported rate interval held the truth. Prints the medians and writes the rows as JSON.

    .venv/bin/python benchmarks/plume_signal.py [--events 300] [--seed 3] [--kinds strong]
        [--instruments TROPOMI] [--results validation_misspecified.json] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from report import write_results

from attribution_assets.compilation import set_xla_flags
from attribution_assets.science.forward import operators
from attribution_assets.science.units import kg_h_to_kg_s
from attribution_assets.science.validation import Scene, scene_kinds, set_scene

set_xla_flags()  # XLA CPU options, before the first computation


def _centred(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return values - np.sum(weight * values) / np.sum(weight)


def block_rows(scene: Scene) -> list[dict[str, object]]:
    """The module docstring's figures for every block of ``scene``."""
    truth, rows = scene.truth, []
    source = np.array([truth.source_x_m, truth.source_y_m])
    q_kg_s = kg_h_to_kg_s(truth.rate_kg_h)
    for observation in scene.observations:
        block = observation.block
        weight = 1.0 / np.asarray(block.sigma, float) ** 2
        met = scene.winds[block.overpass]
        true_u, true_v = truth.wind_u_m_s[block.overpass], truth.wind_v_m_s[block.overpass]
        unit = operators.jacobian(block, source, met)
        template = _centred(unit, weight)
        energy = float(np.sum(weight * template**2))

        plume, observed = np.asarray(observation.plume, float), np.asarray(block.y, float)
        projection, data_rate = (float(np.sum(weight * template * _centred(v, weight))) / energy / q_kg_s
                                 for v in (plume, observed))
        turn = met.direction_to_rad - math.atan2(true_v, true_u)
        rows.append({
            "instrument": block.instrument,
            "snr": math.sqrt(float(np.sum(weight * plume**2))),
            "model_snr": math.sqrt(float(np.sum(weight * (unit * q_kg_s) ** 2))),
            "projection": projection,
            "data_rate": data_rate,
            "data_rate_se": 1.0 / math.sqrt(energy) / q_kg_s,
            "speed_ratio": met.speed_m_s / math.hypot(true_u, true_v),
            "direction_error_deg": math.degrees((turn + math.pi) % (2.0 * math.pi) - math.pi),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=["strong"])
    parser.add_argument("--instruments", nargs="+", default=["TROPOMI"])
    parser.add_argument("--results", help="validation_misspecified.py JSON of the same set")
    parser.add_argument("--out", help="write the rows as JSON here (default: stdout)")
    args = parser.parse_args()
    covered = {}
    if args.results:
        covered = {e["index"]: e["rate_in90"] for e in json.loads(Path(args.results).read_text())["events"]}
    wanted = tuple(sorted(args.instruments))
    events = []
    for index, (kind, _) in enumerate(scene_kinds(args.events, args.seed)):
        if kind not in args.kinds:
            continue
        scene = set_scene(args.events, args.seed, index)
        if tuple(sorted(scene.instruments)) != wanted:
            continue
        events.append({"index": index, "kind": kind, "rate_kg_h": scene.truth.rate_kg_h,
                       "rate_covered": covered.get(index), "blocks": block_rows(scene)})
        b = events[-1]["blocks"][0]
        print(f"event {index:3d} {kind:7s} {scene.truth.rate_kg_h:8.0f} kg/h  snr {b['snr']:5.1f}  "
              f"model {b['model_snr']:5.1f}  projection {b['projection']:5.2f}  data {b['data_rate']:5.2f} "
              f"+- {b['data_rate_se']:4.2f}  covered {covered.get(index)}")
    blocks = [b for e in events for b in e["blocks"]]
    summary = {key: float(np.median([b[key] for b in blocks])) if blocks else None
               for key in ("snr", "model_snr", "projection", "speed_ratio")}
    missed = sum(e["rate_covered"] is False for e in events)
    print(f"{len(events)} events; medians: " + ", ".join(f"{k} {v:.2f}" for k, v in summary.items()
                                                        if v is not None)
          + (f"; rate interval missed the truth in {missed}" if covered else ""))
    write_results({"args": vars(args), "summary": summary, "events": events}, args.out)


if __name__ == "__main__":
    main()
