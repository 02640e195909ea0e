"""The code location loads with every stage of the asset graph (fast: nothing is materialised)."""

from __future__ import annotations

from attribution_assets.definitions import build_defs


def test_definitions_load_with_every_stage() -> None:
    defs = build_defs()
    defs.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "overpass_catalog",
        "event_overpasses",
        "emit_aoi",
        "tropomi_aoi",
        "ghgsat_aoi",
        "oco2_aoi",
        "emit_enhancement",
        "met_conditions",
        "plume_forward",
        "source_posterior",
        "event_posterior",
        "weekly_posteriors",
        "alerts",
    } <= keys
