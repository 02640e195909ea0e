"""The per-event pipeline as plain functions: one per stage, and :func:`attribute_event` composing them.

No Dagster here: every asset of the code location is a thin wrapper (read inputs, call one of these,
write the output and metadata), a notebook calls them directly, and the HTTP service answers with
them. Stages, in order:

- :func:`resolve_overpasses` (and :func:`fetch_live`, :func:`update_catalog`): the event's granules;
- :func:`extract_aois`: each instrument's AOI from every granule;
- :func:`enhance_emit`: the EMIT matched filter;
- :func:`prepare_met`: the met prior per overpass (met source chosen per overpass);
- :func:`build_forward`: observation blocks and Jacobians; :func:`quantify_baselines`: IME/CSF;
- :func:`invert_event`: the joint posterior;
- :func:`load_candidates`, :func:`attribute`: the facility attribution;
- :func:`posterior_row`: the output row.
"""

from attribution_assets.pipeline.aoi import AoiExtract, extract_aoi, extract_aois
from attribution_assets.pipeline.attribution import attribute, load_candidates
from attribution_assets.pipeline.baselines import quantify_baselines
from attribution_assets.pipeline.enhancement import enhance_emit
from attribution_assets.pipeline.event import EventResult, attribute_event, write_posterior
from attribution_assets.pipeline.forward import ForwardModel, build_forward
from attribution_assets.pipeline.inversion import EventInversion, NoObservationsError, invert_event
from attribution_assets.pipeline.met import MetDataError, prepare_met
from attribution_assets.pipeline.overpasses import fetch_live, resolve_overpasses, update_catalog
from attribution_assets.pipeline.posterior import alert_score, instrument_outcomes, posterior_row
from attribution_assets.pipeline.settings import EventSettings

__all__ = [
    "AoiExtract",
    "EventInversion",
    "EventResult",
    "EventSettings",
    "ForwardModel",
    "MetDataError",
    "NoObservationsError",
    "alert_score",
    "attribute",
    "attribute_event",
    "build_forward",
    "enhance_emit",
    "extract_aoi",
    "extract_aois",
    "fetch_live",
    "instrument_outcomes",
    "invert_event",
    "load_candidates",
    "posterior_row",
    "prepare_met",
    "quantify_baselines",
    "resolve_overpasses",
    "update_catalog",
    "write_posterior",
]
