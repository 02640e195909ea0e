"""Alert payloads: a posterior row (:func:`attribution_assets.pipeline.posterior.posterior_row`) as the
JSON an operator's webhook receives, the test for a *material* change, and the idempotency key.

Field names follow what UNEP-IMEO MARS publishes for a plume (``lat``, ``lon``, ``<gas>_fluxrate``,
``<gas>_fluxrate_std``, ``tile_date``, ``satellite``), with the gas in the name: a CH4 event has
``ch4_fluxrate``, a CO2 event ``co2_fluxrate``. Every rate is in kg/h (``fluxrate_units``), positions in
degrees (WGS 84), probabilities in [0, 1]. The plume polygon is the plume mask outline of the
``quantification_baselines`` table (GeoJSON geometry; ``None`` where no mask exists).

Pure: no Dagster, no file or network I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from attribution_assets.events import iso_week
from attribution_assets.science.attribution import UNLISTED_ID
from attribution_assets.times import as_utc, iso_z

SCHEMA = "attribution-alert/1"
"""``schema`` field of every payload: bumped when a field changes meaning."""
FLUXRATE_UNITS = "kg/h"
SATELLITES = {"EMIT": "EMIT", "GHGSAT": "GHGSat", "TROPOMI": "Sentinel-5P", "OCO2": "OCO-2"}
"""Instrument -> the satellite (platform) name a MARS-style record gives."""
FINEST_FIRST = ("EMIT", "GHGSAT", "TROPOMI", "OCO2")
"""Instruments ordered by ground resolution: the finest one that saw the event names the ``satellite``."""
STATUS_NEW, STATUS_UPDATE, STATUS_WITHDRAWN = "new", "update", "withdrawn"


@dataclass(frozen=True)
class AlertPolicy:
    """Which events become alerts and when a facility is named.

    ``min_alert_score`` (1): an event is an alert when its ``alert_score`` (posterior probability that the
    rate exceeds the gas's alert threshold in kg/h) is at least this. ``min_facility_probability`` (1):
    the attributed facility is named only when its posterior probability is at least this; otherwise
    the alert says ``"unlisted"``.
    """

    min_alert_score: float = 0.5
    min_facility_probability: float = 0.5


@dataclass(frozen=True)
class ChangeTolerance:
    """What counts as a *material* change of an alert already sent (see :func:`material_changes`).

    A rate (mean, sd, 5th and 95th percentile, kg/h) changes materially when it moves by more than
    ``max(rate_rel * max(|old|, |new|), rate_abs_kg_h)``: 1 % is the resolution the alert table shows
    (three significant figures) and lies above the Monte-Carlo noise of a rerun with another seed. The
    source position changes materially when it moves by more than ``position_deg`` degrees (1e-4 deg,
    about 11 m: the precision of an event key). Detection (``detected``) and attribution (the named
    facility or ``"unlisted"``) changes are always material.
    """

    rate_rel: float = 0.01
    rate_abs_kg_h: float = 1.0
    position_deg: float = 1e-4


@dataclass(frozen=True)
class PlumeObservation:
    """The overpass an alert is reported for: instrument, granule (file stem), acquisition time (UTC,
    ``None`` when unknown) and the plume mask outline (degrees; ``None`` without a mask)."""

    instrument: str
    granule: str = ""
    time: datetime | None = None
    polygon: BaseGeometry | None = None


def _number(value: Any, digits: int | None = None) -> float | None:
    """A finite float (rounded to ``digits`` decimals) or ``None`` for missing and non-finite values."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return round(number, digits) if digits is not None else number


def _text(value: Any) -> str:
    """``value`` as text; missing values (``None``, NaN) as ``""``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def instruments_of(row: Mapping[str, Any]) -> list[str]:
    """The instruments of the row's joint likelihood (``instruments``, comma-separated)."""
    return [name for name in _text(row.get("instruments")).split(",") if name]


def is_alert(row: Mapping[str, Any], policy: AlertPolicy = AlertPolicy()) -> bool:
    """True when the row's ``alert_score`` is at least ``policy.min_alert_score``."""
    score = _number(row.get("alert_score"))
    return score is not None and score >= policy.min_alert_score


def attributed_facility(
    row: Mapping[str, Any], policy: AlertPolicy = AlertPolicy()
) -> tuple[str, str, float | None]:
    """(facility id, name, probability) of the row's most probable listed facility when its probability
    reaches ``policy.min_facility_probability``; otherwise (``"unlisted"``, ``"unlisted"``, ``None``)."""
    facility = _text(row.get("attributed_facility_id"))
    probability = _number(row.get("attributed_probability"))
    listed = facility and facility != UNLISTED_ID
    if listed and probability is not None and probability >= policy.min_facility_probability:
        return facility, _text(row.get("attributed_facility_name")) or facility, probability
    return UNLISTED_ID, UNLISTED_ID, None


def _granules_used(provenance: Mapping[str, Any]) -> dict[str, str]:
    """Instrument -> first granule (file stem) the inversion used, from the provenance."""
    found: dict[str, str] = {}
    for item in provenance.get("granules_used", []) if isinstance(provenance, Mapping) else []:
        instrument, _, granule = str(item).partition(":")
        found.setdefault(instrument, granule)
    return found


def plume_observation(
    row: Mapping[str, Any],
    baselines: pd.DataFrame | None = None,
    overpasses: pd.DataFrame | None = None,
) -> PlumeObservation:
    """The overpass an alert reports: the instrument of the row's IME baseline (the finest instrument
    with a plume mask), else the finest instrument of the joint likelihood.

    ``baselines``: the event's ``quantification_baselines`` table (``instrument``, ``granule``,
    ``method``, polygon ``geometry``); the first IME row of the instrument gives the granule and the plume
    outline. ``overpasses``: the event's ``event_overpasses`` table (``path``, ``time_start``); the
    granule's ``time_start`` is the acquisition time. Without them the granule comes from the row's
    provenance (``granules_used``) and the time stays ``None``.
    """
    instruments = instruments_of(row)
    chosen = _text(row.get("ime_instrument")) or next(
        (name for name in FINEST_FIRST if name in instruments), instruments[0] if instruments else ""
    )
    granule, polygon = "", None
    if baselines is not None and len(baselines) and "instrument" in baselines:
        rows = baselines[(baselines["instrument"] == chosen) & (baselines["method"] == "IME")]
        if len(rows):
            granule = _text(rows.iloc[0]["granule"])
            geometry = rows.iloc[0].get("geometry")
            polygon = geometry if isinstance(geometry, BaseGeometry) and not geometry.is_empty else None
    if not granule:
        granule = _granules_used(_provenance(row)).get(chosen, "")
    time = None
    if granule and overpasses is not None and len(overpasses) and "path" in overpasses:
        stems = overpasses["path"].map(lambda p: str(p).replace("\\", "/").rsplit("/", 1)[-1].split(".")[0])
        match = overpasses[stems == granule]
        if len(match) and not pd.isna(match.iloc[0]["time_start"]):
            time = as_utc(match.iloc[0]["time_start"])
    return PlumeObservation(chosen, granule, time, polygon)


def _provenance(row: Mapping[str, Any]) -> Any:
    """The row's ``provenance`` JSON as an object (the text itself when it is not JSON)."""
    text = _text(row.get("provenance"))
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return text


def gas_prefix(gas: str) -> str:
    """Field prefix of a gas: ``"ch4"`` or ``"co2"``."""
    return (gas or "CH4").strip().lower()


def alert_payload(
    row: Mapping[str, Any],
    run_id: str,
    observation: PlumeObservation | None = None,
    policy: AlertPolicy = AlertPolicy(),
) -> dict[str, Any]:
    """The alert of one posterior row as a JSON-ready dict (no NaN: missing numbers are ``None``).

    Fields: ``schema``, ``event_key``, ``event_id``, ``event_time`` (ISO 8601 UTC), ``week``
    (``YYYY-Www``), ``gas``; MARS-style ``lat``, ``lon`` (posterior mean source position, degrees),
    ``<gas>_fluxrate`` and ``<gas>_fluxrate_std`` (posterior mean and sd, kg/h; ``ch4_`` for CH4,
    ``co2_`` for CO2), ``<gas>_fluxrate_p05`` / ``_p95`` (the 90 % interval, kg/h), ``fluxrate_units``,
    ``tile_date`` (``YYYY-MM-DD`` of the reported overpass, UTC; the event's date when the overpass time
    is unknown), ``observation_time``, ``satellite``, ``instrument``, ``granule``, ``instruments``;
    ``plume`` (GeoJSON geometry of the plume mask or ``None``); ``p_source``, ``alert_score``,
    ``detected``; ``facility_id``, ``facility_name``, ``facility_probability`` (``"unlisted"`` and
    ``None`` below ``policy.min_facility_probability``), ``p_unlisted_source``; the IME/CSF baselines
    (kg/h); ``alert_latitude`` / ``alert_longitude`` (the operator alert position); ``run_id`` and
    ``provenance`` (the row's provenance JSON as an object). :func:`for_delivery` adds ``status``,
    ``idempotency_key`` and ``supersedes``.
    """
    observation = observation or plume_observation(row)
    gas = _text(row.get("gas")) or "CH4"
    prefix = gas_prefix(gas)
    event_time = as_utc(row["event_time"])
    facility_id, facility_name, facility_probability = attributed_facility(row, policy)
    tile = observation.time or event_time
    plume = json.loads(shapely.to_geojson(observation.polygon)) if observation.polygon is not None else None
    return {
        "schema": SCHEMA,
        "event_key": _text(row.get("event_key")),
        "event_id": _text(row.get("event_id")) or _text(row.get("event_key")),
        "event_time": iso_z(event_time),
        "week": iso_week(event_time),
        "gas": gas,
        "lat": _number(row.get("source_lat"), 6),
        "lon": _number(row.get("source_lon"), 6),
        "source_location_sd_m": _number(row.get("source_location_sd_m"), 1),
        f"{prefix}_fluxrate": _number(row.get("emission_rate_kg_h"), 1),
        f"{prefix}_fluxrate_std": _number(row.get("emission_rate_kg_h_sd"), 1),
        f"{prefix}_fluxrate_p05": _number(row.get("emission_rate_kg_h_p05"), 1),
        f"{prefix}_fluxrate_p95": _number(row.get("emission_rate_kg_h_p95"), 1),
        "fluxrate_units": FLUXRATE_UNITS,
        "tile_date": tile.date().isoformat(),
        "observation_time": iso_z(observation.time) if observation.time else None,
        "satellite": SATELLITES.get(observation.instrument, observation.instrument),
        "instrument": observation.instrument,
        "granule": observation.granule,
        "instruments": instruments_of(row),
        "plume": plume,
        "p_source": _number(row.get("p_source"), 4),
        "alert_score": _number(row.get("alert_score"), 4),
        "detected": bool(row.get("detected")),
        "facility_id": facility_id,
        "facility_name": facility_name,
        "facility_probability": None if facility_probability is None else round(facility_probability, 4),
        "p_unlisted_source": _number(row.get("p_unlisted_source"), 4),
        "ime_fluxrate": _number(row.get("ime_emission_rate_kg_h"), 1),
        "ime_fluxrate_std": _number(row.get("ime_emission_rate_kg_h_sd"), 1),
        "csf_fluxrate": _number(row.get("csf_emission_rate_kg_h"), 1),
        "csf_fluxrate_std": _number(row.get("csf_emission_rate_kg_h_sd"), 1),
        "alert_latitude": _number(row.get("latitude"), 6),
        "alert_longitude": _number(row.get("longitude"), 6),
        "run_id": run_id,
        "provenance": _provenance(row),
    }


def withdrawal_payload(event_key: str, reason: str, run_id: str, week: str) -> dict[str, Any]:
    """The payload that withdraws an alert sent before (its event no longer passes the alert policy, or
    its posterior is gone); ``reason`` says which."""
    return {
        "schema": SCHEMA,
        "event_key": event_key,
        "week": week,
        "reason": reason,
        "run_id": run_id,
    }


def rate_fields(payload: Mapping[str, Any]) -> list[str]:
    """The payload's ``<gas>_fluxrate*`` fields (kg/h) that the material-change test compares."""
    prefix = gas_prefix(str(payload.get("gas", "CH4")))
    return [f"{prefix}_fluxrate{suffix}" for suffix in ("", "_std", "_p05", "_p95")]


def material_state(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a payload whose change is worth a new delivery: rates (kg/h), the source position
    (degrees), ``detected`` and the named facility; ``{"withdrawn": True}`` for a withdrawal."""
    if "reason" in payload and "gas" not in payload:
        return {"withdrawn": True}
    state: dict[str, Any] = {name: payload.get(name) for name in rate_fields(payload)}
    state.update(
        gas=payload.get("gas"),
        lat=payload.get("lat"),
        lon=payload.get("lon"),
        detected=bool(payload.get("detected")),
        facility_id=payload.get("facility_id"),
    )
    return state


def _moved(old: Any, new: Any, tolerance: float) -> bool:
    """True when two numbers (``None`` = missing) differ by more than ``tolerance``."""
    if old is None or new is None:
        return (old is None) != (new is None)
    return abs(float(new) - float(old)) > tolerance


def material_changes(
    previous: Mapping[str, Any] | None,
    current: Mapping[str, Any],
    tolerance: ChangeTolerance | None = None,
) -> list[str]:
    """Names of the material-state fields (:func:`material_state`) that changed beyond ``tolerance``
    between the state last delivered (``None``: never delivered) and ``current``; empty = not material.
    """
    tolerance = tolerance or ChangeTolerance()
    if previous is None:
        return ["new"]
    if bool(previous.get("withdrawn")) or bool(current.get("withdrawn")):
        return [] if bool(previous.get("withdrawn")) == bool(current.get("withdrawn")) else ["withdrawn"]
    changed = [name for name in ("gas", "detected", "facility_id") if previous.get(name) != current.get(name)]
    for name in (k for k in current if "fluxrate" in k):
        old, new = previous.get(name), current.get(name)
        scale = max(abs(float(old or 0.0)), abs(float(new or 0.0)))
        if _moved(old, new, max(tolerance.rate_rel * scale, tolerance.rate_abs_kg_h)):
            changed.append(name)
    changed += [name for name in ("lat", "lon") if _moved(previous.get(name), current.get(name),
                                                         tolerance.position_deg)]
    return changed


def idempotency_key(event_key: str, state: Mapping[str, Any]) -> str:
    """Deterministic key of one revision of an alert: sha256 over the event key and its material state
    (its numbers rounded to 1e-6; the payload already holds rates to 0.1 kg/h and positions to 1e-6
    deg), 40 hex digits. The same posterior gives the same key, so
    a receiver that keeps keys drops a repeated delivery even when the delivery ledger is lost."""
    canonical = {
        name: (round(float(value), 6) if isinstance(value, float) else value) for name, value in state.items()
    }
    text = json.dumps({"event_key": event_key, "state": canonical}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def for_delivery(payload: Mapping[str, Any], status: str, key: str, supersedes: str | None) -> dict[str, Any]:
    """``payload`` with its delivery fields: ``status`` (``new``, ``update`` or ``withdrawn``),
    ``idempotency_key`` (also the ``Idempotency-Key`` header) and ``supersedes`` (the key of the revision
    this one replaces; ``None`` for a new alert)."""
    return {**payload, "status": status, "idempotency_key": key, "supersedes": supersedes}


def json_body(payload: Mapping[str, Any]) -> bytes:
    """The payload as UTF-8 JSON (keys sorted; NaN refused, so a receiver always gets strict JSON)."""
    return json.dumps(payload, sort_keys=True, allow_nan=False, separators=(",", ":")).encode()
