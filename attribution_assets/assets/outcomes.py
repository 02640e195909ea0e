"""Per-instrument outcomes of an event as recorded on the instance.

The AOI assets record every file's outcome in their ``outcomes`` metadata and ``plume_forward``
records the valid pixels per granule in its ``valid_pixels`` metadata; these are the inputs of
:func:`attribution_assets.pipeline.posterior.instrument_outcomes`, which ``event_posterior`` writes
into the posterior row (the same function the notebook API calls on the in-memory stage outputs).
"""

from __future__ import annotations

from dagster import AssetCheckExecutionContext, AssetExecutionContext, AssetKey, AssetRecordsFilter

from attribution_assets.pipeline.posterior import instrument_outcomes
from attribution_assets.pipeline.settings import INSTRUMENTS


def latest_metadata(
    context: AssetExecutionContext | AssetCheckExecutionContext, asset_name: str, partition: str
) -> dict[str, object]:
    """The metadata values (plain Python) of the latest materialization of ``asset_name`` for
    ``partition``; empty when there is none."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset_name), asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {name: value.value for name, value in records[0].asset_materialization.metadata.items()}


def event_instrument_outcomes(context: AssetExecutionContext, partition: str) -> dict[str, str]:
    """:func:`instrument_outcomes` of ``partition`` from the latest AOI and forward materializations."""
    aoi = {
        name: dict(latest_metadata(context, f"{name.lower()}_aoi", partition).get("outcomes") or {})
        for name in INSTRUMENTS
    }
    forward = latest_metadata(context, "plume_forward", partition).get("valid_pixels") or {}
    return instrument_outcomes(aoi, dict(forward))
