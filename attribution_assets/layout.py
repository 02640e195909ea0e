"""Where an output root keeps each output: the catalog, the event registry, intermediates, posterior
partitions, weekly roll-ups and figures (pure: the Dagster resource ``OutputStore`` and the notebook API
share it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attribution_assets.catalog.store import CatalogFiles


class OutputPaths:
    """The layout under ``self.root`` (a mixin: the class supplies ``root``)."""

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


@dataclass(frozen=True)
class OutputLayout(OutputPaths):
    """The layout of one output root, outside Dagster."""

    root: str
