"""GeoParquet posterior partitions: one row per event
(:func:`attribution_assets.pipeline.posterior.posterior_row`).

Path: ``OUTPUT/posteriors/week=YYYY-Www/<event_key>.parquet``. The row's ``instrument_outcomes``
(JSON, instrument -> outcome) says what became of every instrument's data. The materialisation's
metadata are the event's summary card (``summary``: what an analyst reads first, with the posterior
figure of ``source_posterior``) and the row itself as a table (``row``), both built from the row that
was written, so they always agree with it.
"""

import geopandas as gpd
import pandas as pd
import xarray as xr
from dagster import AssetExecutionContext, AssetIn, MaterializeResult, MetadataValue, asset

from attribution_assets.assets.common import (
    CODE_VERSION,
    INFERENCE_DATA,
    ROW_COUNT,
    InferenceData,
    event_of,
    png_markdown,
    table_metadata,
)
from attribution_assets.assets.outcomes import event_instrument_outcomes
from attribution_assets.catalog.store import write_geoparquet
from attribution_assets.events import registered_events
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.posterior import alert_score, interval_text, posterior_row
from attribution_assets.pipeline.provenance import provenance_json
from attribution_assets.resources import AnalysisSettings, OutputStore
from attribution_assets.science.attribution import UNLISTED_ID

ROW_TABLE_COLUMNS = {
    "event_id": ("event_id", None),
    "gas": ("gas", None),
    "event_time_utc": ("event_time", None),
    "latitude_deg": ("latitude", 5),
    "longitude_deg": ("longitude", 5),
    "source_lat_deg": ("source_lat", 5),
    "source_lon_deg": ("source_lon", 5),
    "source_location_sd_m": ("source_location_sd_m", 0),
    "p_source": ("p_source", 3),
    "detected": ("detected", None),
    "emission_rate_kg_h": ("emission_rate_kg_h", 0),
    "emission_rate_kg_h_p05": ("emission_rate_kg_h_p05", 0),
    "emission_rate_kg_h_p50": ("emission_rate_kg_h_p50", 0),
    "emission_rate_kg_h_p95": ("emission_rate_kg_h_p95", 0),
    "emission_rate_kg_h_sd": ("emission_rate_kg_h_sd", 0),
    "emission_rate_lower_limit_kg_h": ("emission_rate_lower_limit_kg_h", 0),
    "emission_rate_upper_limit_kg_h": ("emission_rate_upper_limit_kg_h", 0),
    "alert_score": ("alert_score", 3),
    "attributed_facility_id": ("attributed_facility_id", None),
    "attributed_facility_name": ("attributed_facility_name", None),
    "attributed_probability": ("attributed_probability", 3),
    "p_unlisted_source": ("p_unlisted_source", 3),
    "ime_emission_rate_kg_h": ("ime_emission_rate_kg_h", 0),
    "csf_emission_rate_kg_h": ("csf_emission_rate_kg_h", 0),
    "instruments": ("instruments", None),
    "r_hat_max": ("r_hat_max", 3),
    "ess_bulk_min": ("ess_bulk_min", 0),
    "divergences": ("divergences", None),
    "converged": ("converged", None),
}
"""The posterior-row table of the metadata: display name (units in it) -> (row column, decimals)."""


def row_table(row: pd.DataFrame) -> MetadataValue:
    """The posterior row as a one-row UI table with its schema: units in the column names, numbers
    rounded (positions to 1e-5 degrees ~ 1 m, rates to 1 kg/h, probabilities to 3 decimals)."""
    frame = pd.DataFrame({name: row[column].to_numpy() for name, (column, _) in ROW_TABLE_COLUMNS.items()})
    frame["event_time_utc"] = pd.to_datetime(frame["event_time_utc"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    digits = {name: d for name, (_, d) in ROW_TABLE_COLUMNS.items() if d is not None}
    return table_metadata(frame, digits)


def _position(lat: float, lon: float) -> str:
    return f"{abs(lat):.5f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.5f}° {'E' if lon >= 0 else 'W'}"


def _rate(value_kg_h: float, gas: str) -> str:
    """A rate for people: kg/h with thousands separators (and t/h for CO2)."""
    return f"{value_kg_h:,.0f} kg/h" + (f" ({value_kg_h / 1000:,.1f} t/h)" if gas == "CO2" else "")


def attribution_text(r: pd.Series) -> str:
    """The row's top hypothesis for people: the facility (or an unlisted source) with its probability;
    nothing to attribute when no draw had a source; conditional wording when the event is not detected."""
    facility = str(r["attributed_facility_id"])
    if not facility:
        return "nothing to attribute (no posterior draw has a source)"
    if facility == UNLISTED_ID:
        text = f"a source not in the inventory (probability {r['attributed_probability']:.3f})"
    else:
        text = f"{r['attributed_facility_name']} ({facility}), probability {r['attributed_probability']:.3f}"
    return text if bool(r["detected"]) else f"not detected; if a source is present: {text}"


def summary_card(row: pd.DataFrame, figure_png: bytes | None, threshold_kg_h: float) -> str:
    """The event's summary card (markdown) from its posterior row: gas, time, alert and source position,
    ``p_source``, median and 90 % interval, top attribution, alert score, instruments, sampler, and the
    posterior figure inline (``figure_png``; a note when it is missing)."""
    r = row.iloc[0]
    gas = str(r["gas"])
    lines = [
        f"### {gas} event {r['event_id']}: {'detected' if bool(r['detected']) else 'not detected'}",
        "",
        "| | |",
        "|---|---|",
        f"| gas | {gas} |",
        f"| time (UTC) | {pd.Timestamp(r['event_time']):%Y-%m-%d %H:%M:%S} |",
        f"| alert position | {_position(r['latitude'], r['longitude'])} |",
        f"| source position (posterior mean ± sd) | {_position(r['source_lat'], r['source_lon'])} "
        f"± {r['source_location_sd_m']:,.0f} m |",
        f"| P(source present) | {r['p_source']:.3f} |",
        f"| emission rate, median | {_rate(r['emission_rate_kg_h_p50'], gas)} |",
        f"| 90 % interval | {interval_text(r, lambda q: _rate(q, gas))} |",
        f"| attributed to | {attribution_text(r)} |",
        f"| alert score, P(rate > {_rate(threshold_kg_h, gas)}) | {r['alert_score']:.3f} |",
        f"| instruments | {r['instruments'] or 'none'} |",
        f"| sampler | R-hat {r['r_hat_max']:.3f}, bulk ESS {r['ess_bulk_min']:,.0f}, "
        f"{int(r['divergences'])} divergences ({'converged' if bool(r['converged']) else 'not converged'}) |",
        "",
    ]
    if figure_png is None:
        lines.append("(posterior figure not found: materialise source_posterior)")
    else:
        lines.append(png_markdown(figure_png, "posterior").value)
    return "\n".join(lines)


@asset(
    partitions_def=detection_events,
    group_name="outputs",
    ins={"source_posterior": AssetIn(dagster_type=INFERENCE_DATA)},
    kinds={"geopandas", "geoparquet"},
    code_version=CODE_VERSION,
    description="The event's posterior as one GeoParquet row (schema in the README), written atomically "
    "into its ISO-week partition of the posterior dataset; its metadata are the event's summary card.",
)
def event_posterior(
    context: AssetExecutionContext,
    source_posterior: InferenceData,
    event_overpasses: gpd.GeoDataFrame,
    met_conditions: xr.Dataset,
    quantification_baselines: gpd.GeoDataFrame,
    source_attribution: gpd.GeoDataFrame,
    settings: AnalysisSettings,
    store: OutputStore,
) -> MaterializeResult:
    from attribution_assets.science.inversion import PosteriorSummary  # JAX: here, not at load

    event = event_of(context)
    event = {e.key: e for e in registered_events(store.event_registry_path)}.get(event.key, event)
    analysis = settings.event_settings()
    outcomes = event_instrument_outcomes(context, event.key)
    summary = PosteriorSummary.from_attrs(source_posterior.posterior.attrs)
    threshold = analysis.alert_threshold_kg_h(event.gas)
    score = alert_score(source_posterior.posterior["emission_rate_kg_h"].values, threshold)
    provenance = provenance_json(
        event_overpasses, list(summary.granules), met_conditions, analysis, event.gas
    )
    row = posterior_row(
        event, summary, score, quantification_baselines, source_attribution, outcomes, provenance
    )
    path = write_geoparquet(row, store.posterior_path(event.iso_week, event.key))
    figure = store.figure_path("source_posterior", event.key)
    return MaterializeResult(
        metadata={
            "summary": MetadataValue.md(
                summary_card(row, figure.read_bytes() if figure.is_file() else None, threshold)
            ),
            "row": row_table(row),
            ROW_COUNT: len(row),
            "path": MetadataValue.path(str(path)),
            "week": event.iso_week,
            "emission_rate_kg_h": round(float(summary.emission_rate_kg_h), 1),
            "detected": bool(summary.detected),
            "alert_score": round(score, 3),
            "instruments": ",".join(summary.instruments),
            "instrument_outcomes": MetadataValue.json(outcomes),
        }
    )
