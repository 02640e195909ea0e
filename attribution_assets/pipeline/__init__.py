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

The names below are loaded on first use, as :mod:`attribution_assets.science.inversion` loads its
own: the code location's definitions import the stage modules they need when a step runs, and a
Dagster process that runs no event step (a code server, a crawl, a roll-up) imports neither JAX,
NumPyro, ArviZ, Matplotlib nor SciPy's statistics.
"""

from __future__ import annotations

from attribution_assets.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "aoi": ("AoiExtract", "extract_aoi", "extract_aois"),
    "attribution": ("attribute", "load_candidates"),
    "baselines": ("quantify_baselines",),
    "enhancement": ("enhance_emit",),
    "event": ("EventResult", "attribute_event", "write_posterior"),
    "forward": ("ForwardModel", "build_forward"),
    "inversion": ("EventInversion", "NoObservationsError", "invert_event"),
    "met": ("MetDataError", "prepare_met"),
    "overpasses": ("fetch_live", "resolve_overpasses", "update_catalog"),
    "posterior": ("alert_score", "instrument_outcomes", "posterior_row"),
    "settings": ("EventSettings",),
})
