"""A generated week of mixed detection events in native product files, for the throughput benchmark.

Each of the seven days of ISO week 2025-W33 gets six events built on the four sample scenes of
``attribution_assets.samples`` (their weather, surfaces, overpass geometry and noise model) with a new
source rate, a new day and, where two would share a place, a longitude shift:

- slots 0 and 1: the Permian scene (EMIT, GHGSat and TROPOMI; CH4), at its place and 25.2 deg east;
- slot 2: the Korpezhe scene (GHGSat and TROPOMI; CH4);
- slots 3 and 4: the Turkmenistan scene (EMIT and TROPOMI; CH4), 50.4 deg east and 25.2 deg west;
- slot 5: the Belchatow scene (OCO-2; CO2). OCO-2 Lite files hold one day each, so one CO2 event a day.

A shift of 25.2 deg is one TROPOMI orbit (100.9 min): a TROPOMI file holds one orbit, so two events of
a day on the same orbit would need one file, and the generator writes one file per event.

CH4 rates cycle through ``CH4_RATES_KG_H`` and CO2 rates through ``CO2_RATES_KG_H`` (0 = no source), so
the week holds nulls, weak, medium and strong CH4 sources and power plants with 1 to 3 instruments. The
overpass and alert times keep their local solar time (a shift east is earlier, 4 min per degree, as
for a sun-synchronous orbit); the truth winds of each overpass
are recomputed from the shifted ERA5 field (``computed_overpass_winds``), so every file is consistent
with its own truth.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from attribution_assets.samples.generate import DEFAULT_SEED, generate_event, write_alerts
from attribution_assets.samples.simulate.tropomi import tropomi_orbit
from attribution_assets.samples.truth import Event, Overpass, load_events, load_overpasses
from attribution_assets.samples.weather import computed_overpass_winds, era5_dataset

WEEK = "2025-W33"
MONDAY = datetime(2025, 8, 11, tzinfo=UTC)
SLOTS = (
    ("permian-ch4", 0.0),
    ("permian-ch4", 25.2),
    ("korpezhe-ch4", 0.0),
    ("turkmen-null-ch4", 50.4),
    ("turkmen-null-ch4", -25.2),
    ("belchatow-co2", 0.0),
)
"""(sample scene, longitude shift in degrees) of each event slot of a day."""
CH4_RATES_KG_H = (0.0, 150.0, 0.0, 400.0, 1000.0, 0.0, 3000.0, 10000.0)
CO2_RATES_KG_H = (0.0, 1.5e6, 4.2e6, 9.0e6)


def shifted(ev: Event, index: int, day: int, lon_shift_deg: float, rate_kg_h: float) -> Event:
    """``ev`` moved to day ``day`` of the week and ``lon_shift_deg`` east (same local solar time), with
    a new rate (kg/h), id and noise index."""
    place, gas = ev.event_id.split("-")[0], ev.gas.lower()
    day_start = MONDAY + timedelta(days=day)
    when = ev.alert_time - ev.day_start + day_start - timedelta(hours=lon_shift_deg / 15.0)
    return replace(
        ev, index=100 + index, event_id=f"{place}{index:02d}-{gas}", alert_time=when,
        alert_lon=ev.alert_lon + lon_shift_deg, source_lon=ev.source_lon + lon_shift_deg,
        emission_rate_kg_h=rate_kg_h,
    )


def moved_overpass(op: Overpass, ev: Event, template: Event) -> Overpass:
    """``op`` of ``template`` moved as ``ev``'s alert was (day and local solar time), with its truth
    winds recomputed there."""
    moved = replace(op, event_id=ev.event_id, time=op.time + (ev.alert_time - template.alert_time))
    return replace(moved, **computed_overpass_winds(ev, moved, era5_dataset(ev)))


def week_events() -> list[tuple[Event, list[Overpass]]]:
    """The 42 events of the week with their overpasses."""
    templates = {ev.event_id: ev for ev in load_events()}
    overpasses = load_overpasses()
    events, ch4, co2 = [], 0, 0
    for day in range(7):
        for scene, lon_shift in SLOTS:
            template = templates[scene]
            if template.gas == "CO2":
                rate, co2 = CO2_RATES_KG_H[co2 % len(CO2_RATES_KG_H)], co2 + 1
            else:
                rate, ch4 = CH4_RATES_KG_H[ch4 % len(CH4_RATES_KG_H)], ch4 + 1
            ev = shifted(template, len(events), day, lon_shift, rate)
            ops = [moved_overpass(op, ev, template) for op in overpasses if op.event_id == scene]
            events.append((ev, ops))
    orbits = [tropomi_orbit(op.time) for _, ops in events for op in ops if op.instrument == "TROPOMI"]
    if len(set(orbits)) != len(orbits):
        raise ValueError("two events share a TROPOMI orbit: the catalog would keep one of their files")
    return events


def write_week(archive: Path, alerts: Path, seed: int = DEFAULT_SEED) -> list[tuple[Event, list[Overpass]]]:
    """Write every event's ERA5 and instrument files under ``archive`` and the alert CSV ``alerts``;
    returns the events (their truth) with their overpasses."""
    events = week_events()
    for ev, ops in events:
        generate_event(ev, ops, archive, seed)
    write_alerts([ev for ev, _ in events], alerts)
    return events
