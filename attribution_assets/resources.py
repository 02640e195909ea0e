"""Resources: where products come from (the local archive and the live services that fill it), where
outputs go, and the analysis settings."""

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, ResourceDependency
from pydantic import Field

from attribution_assets.access import cds as cds_access
from attribution_assets.access import earthdata as earthdata_access
from attribution_assets.access.live import LiveDecision, decide_live
from attribution_assets.catalog.store import CatalogFiles
from attribution_assets.events import DetectionEvent
from attribution_assets.paths import REFERENCE_DIR, archive_root, output_root
from attribution_assets.science.inversion.settings import SAMPLER_SETTINGS, InversionSettings, setting_help
from attribution_assets.science.units import METRES_PER_DEG_LAT


class ProductArchive(ConfigurableResource):
    """A local archive of native product files (anything under ``root`` is crawled)."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


class OutputStore(ConfigurableResource):
    """The output root: catalog, per-partition intermediates, posteriors, weekly roll-ups, figures."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)

    @property
    def catalog_path(self) -> Path:
        return self.path / "catalog" / "overpass_catalog.parquet"

    @property
    def event_registry_path(self) -> Path:
        return self.path / "events" / "registry.csv"

    @property
    def rejected_path(self) -> Path:
        return self.path / "catalog" / "rejected_files.csv"

    @property
    def superseded_path(self) -> Path:
        """Rows of archive files whose granule exists in a newer processing (kept so re-crawls skip them)."""
        return self.path / "catalog" / "superseded_files.parquet"

    @property
    def catalog_lock_path(self) -> Path:
        """Lock file held while the catalog is updated (crawl, live downloads)."""
        return self.path / "catalog" / ".catalog.lock"

    @property
    def catalog_files(self) -> CatalogFiles:
        """The catalog, superseded-row, rejected-file and lock paths, for ``catalog.store``."""
        return CatalogFiles(
            catalog=self.catalog_path,
            superseded=self.superseded_path,
            rejected=self.rejected_path,
            lock=self.catalog_lock_path,
        )

    def posterior_path(self, week: str, key: str) -> Path:
        return self.path / "posteriors" / f"week={week}" / f"{key}.parquet"

    @property
    def posteriors_dir(self) -> Path:
        return self.path / "posteriors"

    @property
    def weekly_dir(self) -> Path:
        return self.path / "weekly"

    def figure_path(self, asset: str, key: str) -> Path:
        return self.path / "figures" / asset / f"{key}.png"

    def inference_data_path(self, key: str) -> Path:
        return self.path / "inference" / f"{key}.nc"


class AnalysisSettings(ConfigurableResource):
    """Search windows, inference and attribution settings.

    Half-widths in km around the alert point, window in hours; inventories (facility list CSV/GeoJSON,
    WRI power-plant CSV, EDGAR NetCDF; an empty string switches one off) default to the bundled samples.
    The sampler settings take their defaults and descriptions from
    :class:`~attribution_assets.science.inversion.settings.InversionSettings`.
    """

    time_window_h: float = 12.0
    emit_half_width_km: float = 4.0
    ghgsat_half_width_km: float = 4.0
    tropomi_half_width_km: float = 60.0
    oco2_half_width_km: float = 80.0
    num_chains: int = Field(default=InversionSettings.num_chains, description=setting_help("num_chains"))
    num_warmup: int = Field(default=InversionSettings.num_warmup, description=setting_help("num_warmup"))
    num_samples: int = Field(default=InversionSettings.num_samples, description=setting_help("num_samples"))
    seed: int = Field(default=InversionSettings.seed, description=setting_help("seed"))
    escalate: bool = Field(default=InversionSettings.escalate, description=setting_help("escalate"))
    attribution_half_width_km: float = 4.0
    facility_list: str = str(REFERENCE_DIR / "facilities_sample.csv")
    power_plants: str = str(REFERENCE_DIR / "wri_gppd_sample.csv")
    edgar: str = str(REFERENCE_DIR / "edgar_ch4_sample.nc")
    facility_location_sd_m: float = 100.0
    alert_threshold_ch4_kg_h: float = 100.0
    alert_threshold_co2_kg_h: float = 100_000.0

    def half_width_km(self, instrument: str) -> float:
        return {
            "EMIT": self.emit_half_width_km,
            "GHGSAT": self.ghgsat_half_width_km,
            "TROPOMI": self.tropomi_half_width_km,
            "OCO2": self.oco2_half_width_km,
        }.get(instrument, 0.0)

    def bbox(self, event: DetectionEvent, half_width_km: float) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees of a square of ``2 * half_width_km`` around the event."""
        km_per_deg = METRES_PER_DEG_LAT / 1000.0
        dlat = half_width_km / km_per_deg
        dlon = half_width_km / (km_per_deg * max(math.cos(math.radians(event.latitude)), 1e-3))
        return (event.longitude - dlon, event.latitude - dlat, event.longitude + dlon, event.latitude + dlat)

    def alert_threshold_kg_h(self, gas: str) -> float:
        return self.alert_threshold_co2_kg_h if gas == "CO2" else self.alert_threshold_ch4_kg_h

    def inversion_settings(self) -> InversionSettings:
        """The settings the inversion runs with: this resource's sampler settings
        (``SAMPLER_SETTINGS``), the defaults of :class:`InversionSettings` for the others."""
        return InversionSettings(**{name: getattr(self, name) for name in SAMPLER_SETTINGS})


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
        "io_manager": EventStoreIOManager(root=os.path.join(str(output), "intermediate")),
    }


def default_resources() -> dict[str, object]:
    """Resources built from ``ATTRIBUTION_ARCHIVE`` / ``ATTRIBUTION_OUTPUT`` (see :mod:`paths`)."""
    return build_resources(archive_root(), output_root())
