"""Resources: where products come from, where outputs go, and the analysis settings."""

from __future__ import annotations

import math
import os
from pathlib import Path

from dagster import ConfigurableResource

from attribution_assets.events import DetectionEvent
from attribution_assets.paths import REFERENCE_DIR, archive_root, output_root

KM_PER_DEG_LAT = 111.32


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
    """

    time_window_h: float = 12.0
    emit_half_width_km: float = 4.0
    ghgsat_half_width_km: float = 4.0
    tropomi_half_width_km: float = 60.0
    oco2_half_width_km: float = 80.0
    num_chains: int = 4
    num_warmup: int = 500
    num_samples: int = 1000
    seed: int = 0
    escalate: bool = True
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
        dlat = half_width_km / KM_PER_DEG_LAT
        dlon = half_width_km / (KM_PER_DEG_LAT * max(math.cos(math.radians(event.latitude)), 1e-3))
        return (event.longitude - dlon, event.latitude - dlat, event.longitude + dlon, event.latitude + dlat)

    def alert_threshold_kg_h(self, gas: str) -> float:
        return self.alert_threshold_co2_kg_h if gas == "CO2" else self.alert_threshold_ch4_kg_h


def build_resources(
    archive: str | Path, output: str | Path, settings: AnalysisSettings | None = None
) -> dict[str, object]:
    """The resources of the code location for an archive root and an output root."""
    from attribution_assets.io_manager import EventStoreIOManager

    return {
        "archive": ProductArchive(root=str(archive)),
        "store": OutputStore(root=str(output)),
        "settings": settings or AnalysisSettings(),
        "io_manager": EventStoreIOManager(root=os.path.join(str(output), "intermediate")),
    }


def default_resources() -> dict[str, object]:
    """Resources built from ``ATTRIBUTION_ARCHIVE`` / ``ATTRIBUTION_OUTPUT`` (see :mod:`paths`)."""
    return build_resources(archive_root(), output_root())
