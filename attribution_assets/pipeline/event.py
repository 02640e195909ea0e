"""One event end to end, outside any orchestrator: :func:`attribute_event` composes the stage
functions that the Dagster assets wrap, so a notebook, a materialisation and the service give the same
posterior row for the same inputs and settings."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import xarray as xr

from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.compilation import configure_jax
from attribution_assets.events import DetectionEvent
from attribution_assets.layout import OutputLayout
from attribution_assets.paths import output_root
from attribution_assets.pipeline.aoi import AoiExtract, extract_aois
from attribution_assets.pipeline.attribution import attribute, load_candidates
from attribution_assets.pipeline.baselines import quantify_baselines
from attribution_assets.pipeline.enhancement import enhance_emit
from attribution_assets.pipeline.forward import ForwardModel, build_forward
from attribution_assets.pipeline.inversion import EventInversion, invert_event
from attribution_assets.pipeline.met import prepare_met
from attribution_assets.pipeline.overpasses import (
    GranuleService,
    MetService,
    fetch_live,
    resolve_overpasses,
    update_catalog,
)
from attribution_assets.pipeline.posterior import alert_score, instrument_outcomes, posterior_row
from attribution_assets.pipeline.provenance import provenance_json
from attribution_assets.pipeline.settings import EventSettings

LOG = logging.getLogger(__name__)


@dataclass
class EventResult:
    """Every stage's output for one event, and the posterior row.

    ``aois``: per instrument, the AOI datasets and every file's outcome; ``enhancement``: the EMIT
    matched-filter enhancement per granule (ppm·m); ``met``: the met prior per overpass; ``forward``:
    the observation blocks and Jacobians; ``inversion``: the posterior (``inversion.result.draws``) and
    its summary; ``attribution``: the probability of each candidate facility and of an unlisted source;
    ``row``: the posterior row (output schema); ``seconds``: wall time per stage (s).
    """

    event: DetectionEvent
    settings: EventSettings
    overpasses: gpd.GeoDataFrame
    aois: dict[str, AoiExtract]
    enhancement: dict[str, xr.Dataset]
    met: xr.Dataset
    forward: ForwardModel
    baselines: gpd.GeoDataFrame
    inversion: EventInversion
    candidates: pd.DataFrame
    attribution: gpd.GeoDataFrame
    outcomes: dict[str, str]
    row: gpd.GeoDataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self):
        """The posterior summary (:class:`~attribution_assets.science.inversion.PosteriorSummary`)."""
        return self.inversion.summary


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[stage] = round(time.perf_counter() - started, 3)


def aoi_datasets(aois: dict[str, AoiExtract]) -> dict[str, dict[str, xr.Dataset]]:
    """The AOI datasets per instrument and granule."""
    return {name: extract.datasets for name, extract in aois.items()}


def attribute_event(
    event: DetectionEvent,
    archive: str | Path,
    settings: EventSettings | None = None,
    *,
    output: str | Path | None = None,
    fast: bool = False,
    earthdata: GranuleService | None = None,
    cds: MetService | None = None,
    log: logging.Logger = LOG,
    crawl: bool = True,
) -> EventResult:
    """Attribute one detection event from the product files under ``archive``.

    ``settings``: the analysis settings (default :class:`EventSettings`); ``output``: the output root
    whose catalog is updated by an incremental crawl of ``archive`` (default ``$ATTRIBUTION_OUTPUT`` or
    ``./attribution_output``); nothing else is written there. ``fast``: the fast answer (multi-start
    MAP + Laplace draws) instead of the full posterior. ``earthdata`` and ``cds``: live services to
    fill the archive first (default: none, the local archive only). Raises
    :class:`~attribution_assets.pipeline.inversion.NoObservationsError` when no instrument saw it.
    ``crawl=False`` skips the incremental crawl and uses the output's catalog as it is (for a caller
    that keeps the catalog up to date itself, as the service does).

    It first sets JAX up as the Dagster runs do (:func:`~attribution_assets.compilation.configure_jax`:
    the XLA option changes the float rounding of the plume sums, so without it a notebook's answer
    differs from production's in the last digits, and the compilation cache); JAX computations made
    before the first call run without the option, and a warning says so.
    """
    configure_jax()
    settings = settings or EventSettings()
    if fast:  # every stage, the provenance and the result then name the fast answer's own inversion
        settings = settings.fast()
    archive = Path(archive)
    layout = OutputLayout(str(output or output_root()))
    seconds: dict[str, float] = {}
    with _timed(seconds, "catalog"):
        if crawl:
            update_catalog(archive, layout.catalog_files, log)
        if earthdata is not None and cds is not None:
            fetch_live(event, archive, layout.catalog_files, settings, earthdata, cds, log)
        overpasses = resolve_overpasses(event, layout.catalog_path, settings, log, layout.rejected_path)
    with _timed(seconds, "aoi"):
        aois = extract_aois(event, overpasses, settings, log)
    with _timed(seconds, "enhancement"):
        enhancement = enhance_emit(aois["EMIT"].datasets)
    with _timed(seconds, "met"):
        met = prepare_met(event, overpasses, aoi_datasets(aois), log)
    with _timed(seconds, "forward"):
        forward = build_forward(
            event, met, enhancement, aois["GHGSAT"].datasets, aois["TROPOMI"].datasets, aois["OCO2"].datasets
        )
        baselines = quantify_baselines(event, enhancement, aois["GHGSAT"].datasets, met)
    with _timed(seconds, "inversion"):
        inversion = invert_event(event, forward, met, settings.inversion, log)
    with _timed(seconds, "attribution"):
        candidates = load_candidates(event, settings, log)
        attribution, _ = attribute(event, inversion.inference_data, candidates, settings)
    outcomes = instrument_outcomes({n: a.outcomes for n, a in aois.items()}, forward.valid_pixels)
    threshold = settings.alert_threshold_kg_h(event.gas)
    score = alert_score(inversion.result.draws["emission_rate_kg_h"], threshold)
    provenance = provenance_json(overpasses, list(inversion.summary.granules), met, settings, event.gas)
    row = posterior_row(event, inversion.summary, score, baselines, attribution, outcomes, provenance)
    return EventResult(
        event, settings, overpasses, aois, enhancement, met, forward, baselines, inversion, candidates,
        attribution, outcomes, row, seconds,
    )


def write_posterior(result: EventResult, output: str | Path) -> Path:
    """Write the result's row (atomically) to its ISO-week partition of the posterior dataset under
    ``output``; returns the path."""
    layout = OutputLayout(str(output))
    return write_geoparquet(result.row, layout.posterior_path(result.event.iso_week, result.event.key))
