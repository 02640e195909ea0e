"""Per-instrument outcomes of an event: what became of each instrument's data, in words.

An instrument can drop out of an event for many reasons: it does not measure the gas, no granule
covers the event, the granule was rejected, the AOI holds no pixel (outside the footprint, all cloud,
all fill), or every pixel in the AOI is unusable (NaN, bad quality) so its observation block is
empty. The AOI assets record the first kinds in their ``outcomes`` metadata and ``plume_forward``
records the valid pixels per granule in its ``valid_pixels`` metadata; :func:`instrument_outcomes`
turns both into one line per instrument (e.g. ``"0 valid pixels in AOI (GHGSat_L2_....h5)"``), which
``event_posterior`` writes into the posterior row and its metadata.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import AssetExecutionContext, AssetKey, AssetRecordsFilter

from attribution_assets.assets.common import INSTRUMENTS


def latest_metadata(context: AssetExecutionContext, asset_name: str, partition: str) -> dict[str, object]:
    """The metadata values (plain Python) of the latest materialization of ``asset_name`` for
    ``partition``; empty when there is none."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset_name), asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {name: value.value for name, value in records[0].asset_materialization.metadata.items()}


def _granule_stem(name: str) -> str:
    """A granule's file name without its suffix (the AOI assets key their datasets by file stem)."""
    return name.rsplit(".", 1)[0] if "." in name else name


def instrument_outcome(aoi_outcomes: Mapping[str, str], valid_pixels: Mapping[str, int]) -> str:
    """One instrument's outcome from its AOI ``outcomes`` (file name -> outcome) and the valid pixels
    per granule (file stem -> count) of its observation blocks."""
    if not aoi_outcomes:
        return "not run"
    if set(aoi_outcomes) == {"-"}:
        return aoi_outcomes["-"]
    parts = []
    for name, outcome in sorted(aoi_outcomes.items()):
        if outcome != "read":
            parts.append(f"{outcome} ({name})")
            continue
        count = valid_pixels.get(_granule_stem(name))
        if count is None:
            parts.append(f"read, not in the forward model ({name})")
        elif count == 0:
            parts.append(f"0 valid pixels in AOI ({name})")
        else:
            parts.append(f"{count} valid pixels ({name})")
    return "; ".join(parts)


def instrument_outcomes(
    aoi: Mapping[str, Mapping[str, str]], valid_pixels: Mapping[str, Mapping[str, int]]
) -> dict[str, str]:
    """Outcome of every instrument: ``aoi`` maps an instrument to its AOI asset's ``outcomes``,
    ``valid_pixels`` maps it to the valid pixels per granule recorded by ``plume_forward``."""
    return {name: instrument_outcome(aoi.get(name, {}), valid_pixels.get(name, {})) for name in INSTRUMENTS}


def event_instrument_outcomes(context: AssetExecutionContext, partition: str) -> dict[str, str]:
    """:func:`instrument_outcomes` of ``partition`` from the latest AOI and forward materializations."""
    aoi = {
        name: dict(latest_metadata(context, f"{name.lower()}_aoi", partition).get("outcomes") or {})
        for name in INSTRUMENTS
    }
    forward = latest_metadata(context, "plume_forward", partition).get("valid_pixels") or {}
    return instrument_outcomes(aoi, dict(forward))
