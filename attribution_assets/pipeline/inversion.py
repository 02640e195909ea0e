"""Joint Bayesian inversion of one event over every instrument that saw it."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

import xarray as xr

from attribution_assets.events import DetectionEvent
from attribution_assets.pipeline.forward import ForwardModel
from attribution_assets.pipeline.met import winds_from_dataset
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.inversion import InversionResult, PosteriorSummary, invert
from attribution_assets.science.inversion.settings import InversionSettings

LOG = logging.getLogger(__name__)
SETTINGS_ATTR = "inversion_settings"
"""Attribute of the posterior group holding the settings (JSON) the inversion ran with."""


class NoObservationsError(ValueError):
    """No instrument observed the event (outside every footprint, or every granule rejected or empty)."""


@dataclass
class EventInversion:
    """The inversion of one event: the sampler's result, its summary located in degrees with the
    granules it used, and the ArviZ InferenceData (the summary and the settings in the posterior
    group's attributes)."""

    result: InversionResult
    summary: PosteriorSummary
    inference_data: Any


def inversion_settings_of(inference_data: Any, default: InversionSettings) -> InversionSettings:
    """The settings an inversion ran with, from its InferenceData (``default`` when not recorded)."""
    raw = inference_data.posterior.attrs.get(SETTINGS_ATTR)
    if not raw:
        return default
    values = json.loads(raw)
    values["position_prior_xy_m"] = tuple(values["position_prior_xy_m"])
    return InversionSettings(**values)


def invert_event(
    event: DetectionEvent,
    forward: ForwardModel,
    met: xr.Dataset,
    settings: InversionSettings,
    log: logging.Logger = LOG,
) -> EventInversion:
    """Posterior of the event's emission rate, source position and nuisances from ``forward``'s blocks
    and ``met``'s priors; raises :class:`NoObservationsError` when there is no block."""
    if not forward.blocks:
        raise NoObservationsError(
            f"{event.key}: no instrument observed the event (outside every footprint or every granule "
            "rejected); nothing to invert"
        )
    winds = winds_from_dataset(met)
    log.info(
        f"inverting {sum(b.size for b in forward.blocks)} observations from {len(forward.blocks)} blocks"
    )
    result = invert(forward.blocks, winds, event.gas, settings, log)
    frame = LocalFrame(event.longitude, event.latitude)
    summary = replace(result.summary().located(frame), granules=tuple(forward.block_names))
    idata = result.to_inference_data(summary)
    idata.posterior.attrs[SETTINGS_ATTR] = json.dumps(asdict(settings), sort_keys=True)
    idata.posterior.attrs.update(local_frame_lon0_deg=frame.lon0_deg, local_frame_lat0_deg=frame.lat0_deg)
    return EventInversion(result, summary, idata)
