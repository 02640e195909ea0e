"""Asset checks that run after an asset (the sampler check is emitted by ``source_posterior`` itself)."""

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from attribution_assets.assets.catalog import overpass_catalog
from attribution_assets.resources import OutputStore


@asset_check(asset=overpass_catalog, description="Every product file in the archive could be read.")
def no_rejected_files(store: OutputStore) -> AssetCheckResult:
    rejected = pd.read_csv(store.rejected_path) if store.rejected_path.exists() else pd.DataFrame()
    return AssetCheckResult(passed=rejected.empty, severity=AssetCheckSeverity.WARN,
                            metadata={"rejected_files": len(rejected)})
