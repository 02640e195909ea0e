"""Resources: where products come from (the local archive and the live services that fill it), where
outputs go, and the analysis settings."""

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from datetime import datetime
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, ResourceDependency
from pydantic import Field, ValidationError

from attribution_assets.access import cds as cds_access
from attribution_assets.access import earthdata as earthdata_access
from attribution_assets.access.live import LiveDecision, decide_live
from attribution_assets.alerting.resource import NotifierResource
from attribution_assets.layout import OutputPaths
from attribution_assets.orchestration.config import INTERMEDIATE_DIR
from attribution_assets.paths import archive_root, output_root
from attribution_assets.pipeline.settings import EventSettings
from attribution_assets.science.inversion.settings import (
    MINIMUM_COUNTS,
    SAMPLER_SETTINGS,
    InversionSettings,
    Sampler,
    setting_help,
)


class ProductArchive(ConfigurableResource):
    """A local archive of native product files (anything under ``root`` is crawled)."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


class OutputStore(OutputPaths, ConfigurableResource):
    """The output root: catalog, per-partition intermediates, posteriors, weekly roll-ups, figures
    (layout: :class:`~attribution_assets.layout.OutputPaths`)."""

    root: str


_EVENT = EventSettings()
"""The defaults of :class:`AnalysisSettings`."""


class AnalysisSettings(ConfigurableResource):
    """Search windows, inference and attribution settings of every event, as a Dagster resource.

    The fields and defaults are those of :class:`~attribution_assets.pipeline.settings.EventSettings`
    (half-widths in km around the alert point, window in hours; inventories, an empty string switches
    one off) plus the sampler settings a deployment chooses (``SAMPLER_SETTINGS``), whose defaults and
    descriptions come from :class:`~attribution_assets.science.inversion.settings.InversionSettings`.
    :meth:`event_settings` gives the typed value the pipeline functions take.
    """

    time_window_h: float = _EVENT.time_window_h
    emit_half_width_km: float = _EVENT.emit_half_width_km
    ghgsat_half_width_km: float = _EVENT.ghgsat_half_width_km
    tropomi_half_width_km: float = _EVENT.tropomi_half_width_km
    oco2_half_width_km: float = _EVENT.oco2_half_width_km
    sampler: Sampler = Field(default=InversionSettings.sampler, description=setting_help("sampler"))
    num_chains: int = Field(default=InversionSettings.num_chains, ge=MINIMUM_COUNTS["num_chains"],
                          description=setting_help("num_chains"))
    num_warmup: int = Field(default=InversionSettings.num_warmup, ge=MINIMUM_COUNTS["num_warmup"],
                          description=setting_help("num_warmup"))
    num_samples: int = Field(default=InversionSettings.num_samples, ge=MINIMUM_COUNTS["num_samples"],
                          description=setting_help("num_samples"))
    seed: int = Field(default=InversionSettings.seed, description=setting_help("seed"))
    escalate: bool = Field(default=InversionSettings.escalate, description=setting_help("escalate"))
    attribution_half_width_km: float = _EVENT.attribution_half_width_km
    facility_list: str = _EVENT.facility_list
    power_plants: str = _EVENT.power_plants
    edgar: str = _EVENT.edgar
    facility_location_sd_m: float = _EVENT.facility_location_sd_m
    alert_threshold_ch4_kg_h: float = _EVENT.alert_threshold_ch4_kg_h
    alert_threshold_co2_kg_h: float = _EVENT.alert_threshold_co2_kg_h

    def config_values(self) -> dict[str, object]:
        """Every field by name: the run config of a ``settings`` resource that gives a run these
        settings (run config for a resource replaces its whole configuration, so all of them travel)."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def event_settings(self) -> EventSettings:
        """The settings the pipeline runs with: this resource's fields, the sampler settings in
        ``inversion`` (the other inversion settings keep the defaults of :class:`InversionSettings`)."""
        inversion = InversionSettings(**{name: getattr(self, name) for name in SAMPLER_SETTINGS})
        names = [f.name for f in fields(EventSettings) if f.name != "inversion"]
        return EventSettings(**{name: getattr(self, name) for name in names}, inversion=inversion)


Log = logging.Logger | Callable[[str], None] | None


class EarthdataResource(ConfigurableResource):
    """NASA Earthdata through ``earthaccess``: search the event's EMIT, TROPOMI and OCO-2 granules and
    download the missing ones into the archive (``access.earthdata.download_granules``).

    ``live``: ``None`` (default) = on exactly when credentials are found (``EARTHDATA_TOKEN``, or
    ``EARTHDATA_USERNAME`` + ``EARTHDATA_PASSWORD``, or a ``urs.earthdata.nasa.gov`` entry in
    ``~/.netrc``); ``False`` = off; ``True`` = on, and an error without credentials.
    ``short_names``: the collections searched. ``attempts`` and ``backoff_s`` (seconds, first wait):
    retries of each search and download (timeouts, connection errors, 5xx, short or corrupt files; a
    refused credential is never retried). ``timeout_s`` (seconds): per connection and read.
    ``client``: the transport, anything with earthaccess's ``login``, ``search_data`` and
    ``get_requests_https_session`` (default ``None``: the ``earthaccess`` module).
    """

    live: bool | None = None
    short_names: list[str] = list(earthdata_access.PRODUCTS)
    attempts: int = 4
    backoff_s: float = 2.0
    timeout_s: float = 60.0
    client: ResourceDependency[Any] = None

    def decision(self) -> LiveDecision:
        """On or off, and why (see ``live``); raises ``CredentialsError`` for live=True without them."""
        return decide_live(
            "NASA Earthdata", self.live, earthdata_access.has_credentials(), earthdata_access.HOW_TO
        )

    def fetch(
        self,
        aois: Sequence[tuple[str, tuple[float, float, float, float]]],
        t0: datetime,
        t1: datetime,
        archive_dir: Path,
        known: set[str],
        log: Log = None,
    ) -> Iterator[earthdata_access.GranuleFetch]:
        """Log in, then for each (instrument, bbox in degrees) with a collection in ``short_names``
        search [``t0``, ``t1``] and download the product files whose names are not in ``known``; yields
        one result per search as it completes (a failing search raises after the earlier ones)."""
        wanted = [
            (earthdata_access.SHORT_NAMES[instrument], bbox)
            for instrument, bbox in aois
            if earthdata_access.SHORT_NAMES.get(instrument) in self.short_names
        ]
        if not wanted:
            return
        earthdata_access.login(client=self.client)
        for short_name, bbox in wanted:
            yield earthdata_access.download_granules(
                earthdata_access.EarthdataSearch(short_name, t0, t1, bbox),
                archive_dir,
                self.client,
                known=known,
                attempts=self.attempts,
                base_s=self.backoff_s,
                log=log,
                timeout_s=self.timeout_s,
            )


class CdsResource(ConfigurableResource):
    """The Copernicus Climate Data Store through ``cdsapi``: ERA5 single levels for an event's AOI and
    time window, downloaded into ``<archive>/era5/`` (``access.cds.download_era5``).

    ``live``: ``None`` (default) = on exactly when credentials are found (``CDSAPI_URL`` and
    ``CDSAPI_KEY``, or ``~/.cdsapirc``); ``False`` = off; ``True`` = on, and an error without them.
    ``variables``: CDS variable names. ``attempts`` and ``backoff_s`` (seconds, first wait): retries
    (timeouts, connection errors, 5xx, short downloads; a refused key is never retried). ``timeout_s``
    (seconds): per request. ``client``: the transport, anything with ``cdsapi.Client``'s
    ``retrieve(name, request, target)`` (default ``None``: ``access.cds.default_client()``, https only).
    """

    live: bool | None = None
    variables: list[str] = list(cds_access.DEFAULT_VARIABLES)
    attempts: int = 4
    backoff_s: float = 2.0
    timeout_s: float = 60.0
    client: ResourceDependency[Any] = None

    def decision(self) -> LiveDecision:
        """On or off, and why (see ``live``); raises ``CredentialsError`` for live=True without them."""
        return decide_live("Copernicus CDS", self.live, cds_access.has_cds_credentials(), cds_access.HOW_TO)

    def fetch(
        self,
        bbox: tuple[float, float, float, float],
        t0: datetime,
        t1: datetime,
        archive_dir: Path,
        log: Log = None,
    ) -> tuple[Path, bool]:
        """ERA5 single levels for ``bbox`` (degrees) and [``t0``, ``t1``] in the archive: the file and
        whether it was fetched now (``False``: the same request was downloaded before)."""
        request = cds_access.era5_request(bbox, t0, t1, self.variables)
        existing = cds_access.era5_existing(archive_dir, t0, request)
        if existing is not None:
            return existing, False
        factory = None if self.client is None else (lambda: self.client)
        path = cds_access.download_era5(
            bbox,
            t0,
            t1,
            archive_dir,
            factory,
            variables=self.variables,
            attempts=self.attempts,
            base_s=self.backoff_s,
            log=log,
            timeout_s=self.timeout_s,
        )
        return path, True


def build_resources(
    archive: str | Path,
    output: str | Path,
    settings: AnalysisSettings | None = None,
    live: bool | None = None,
) -> dict[str, object]:
    """The resources of the code location for an archive root and an output root.

    ``live`` switches both live services (``None``: each is on when its credentials are found).
    """
    from attribution_assets.io_manager import EventStoreIOManager

    return {
        "archive": ProductArchive(root=str(archive)),
        "store": OutputStore(root=str(output)),
        "settings": settings or AnalysisSettings(),
        "earthdata": EarthdataResource(live=live),
        "cds": CdsResource(live=live),
        "notifier": NotifierResource(),
        "io_manager": EventStoreIOManager(root=os.path.join(str(output), INTERMEDIATE_DIR)),
    }


def settings_from_file(path: str | os.PathLike[str]) -> AnalysisSettings:
    """:class:`AnalysisSettings` from a JSON file of its fields (those absent keep their defaults).

    Raises ``ValueError`` with a one-line message naming the file (and the field) for a missing or
    unreadable file, malformed JSON, an unknown field or a wrong type.
    """
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError included
        raise ValueError(f"{path}: cannot read the analysis settings: {error}") from error
    if not isinstance(values, dict):
        raise ValueError(f"{path}: the analysis settings must be a JSON object of AnalysisSettings fields")
    known = list(AnalysisSettings.model_fields)
    unknown = sorted(set(values) - set(known))
    if unknown:
        guesses = [f"{name!r} (did you mean {close[0]!r}?)" if (close := get_close_matches(name, known, 1))
                   else repr(name) for name in unknown]
        raise ValueError(f"{path}: unknown analysis settings {', '.join(guesses)}; the fields are "
                         f"{', '.join(known)}")
    try:
        return AnalysisSettings(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc']))}: {problem['msg']} (found {problem['input']!r:.60})"
            for problem in error.errors()
        )
        raise ValueError(f"{path}: invalid analysis settings: {problems}") from error


def default_resources() -> dict[str, object]:
    """Resources built from ``ATTRIBUTION_ARCHIVE`` / ``ATTRIBUTION_OUTPUT`` (see :mod:`paths`) and, when
    ``ATTRIBUTION_SETTINGS`` names a JSON file, the analysis settings in it (:func:`settings_from_file`):
    what sensor-triggered and UI-launched runs of a deployment use unless their run config says
    otherwise."""
    path = os.environ.get("ATTRIBUTION_SETTINGS")
    return build_resources(archive_root(), output_root(), settings_from_file(path) if path else None)
