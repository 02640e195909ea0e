"""Validation events from a different physics than the inversion's, for calibration under model error.

The inversion (:mod:`attribution_assets.science.inversion`) fits a steady Gaussian plume in one wind
per overpass with a constant background per block. These scenes break each of those assumptions the
way real data does, so that ``benchmarks/validation_misspecified.py`` can report how well the
posterior is calibrated per source class when the model is wrong:

- :mod:`.meander`: the true wind, a synoptic wind with direction meander and speed gusts;
- :mod:`.puffs`: a Gaussian-puff model of the continuous release advected by that wind (Slade 1968
  instantaneous-puff spread);
- :mod:`.footprints`: rectangular footprints (with point-spread blur) and the exact puff mean over them;
- :mod:`.surfaces`: spatially correlated albedo and surface fields;
- :mod:`.artefacts`: albedo biases, regional gradients, surface clutter and footprint biases;
- :mod:`.instruments`: EMIT-, GHGSat-, TROPOMI- and OCO-2-like overpasses as observation blocks;
- :mod:`.met_analysis`: the met prior, the true wind with an analysis error;
- :mod:`.scenes`: source classes, :func:`generate_scene` and :func:`validation_set`.

Pure numpy/scipy: nothing here runs the inversion.
"""

from attribution_assets.science.validation.scenes import (
    KINDS,
    Scene,
    SceneTruth,
    generate_scene,
    scene_kinds,
    set_scene,
    validation_set,
)

__all__ = ["KINDS", "Scene", "SceneTruth", "generate_scene", "scene_kinds", "set_scene", "validation_set"]
