"""Settings of one event's analysis: search windows, inventories, alert thresholds and the inversion.

:class:`EventSettings` is the one definition; the Dagster resource
(:class:`attribution_assets.resources.AnalysisSettings`) takes its defaults from here and builds one
with :meth:`~attribution_assets.resources.AnalysisSettings.event_settings`, so a notebook, an asset and
the service run with the same typed value, passed whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from attribution_assets.events import DetectionEvent
from attribution_assets.paths import REFERENCE_DIR
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.units import METRES_PER_DEG_LAT

INSTRUMENTS = ("EMIT", "TROPOMI", "GHGSAT", "OCO2")
"""Every instrument, in the order the tables list them."""
MET_SOURCES = ("ERA5", "WRF")
INSTRUMENT_GAS = {"EMIT": "CH4", "TROPOMI": "CH4", "GHGSAT": "CH4", "OCO2": "CO2"}
"""The gas each instrument measures."""
MET_HALF_WIDTH_KM = 0.5
"""Half-width (km) of the box around the source used to query, and request, met data."""

BBox = tuple[float, float, float, float]
"""(west, south, east, north) in degrees."""


@dataclass(frozen=True)
class EventSettings:
    """Everything an event's analysis depends on besides its inputs (frozen, hashable).

    ``time_window_h`` (hours): overpasses within ± this of the event time. ``*_half_width_km`` (km):
    half-width of each instrument's AOI square around the alert point, and of the attribution AOI.
    Inventories: a facility list (CSV/GeoJSON), the WRI power-plant CSV and an EDGAR NetCDF (an empty
    string switches one off; the defaults are the bundled samples). ``facility_location_sd_m`` (m):
    location uncertainty of a facility whose list gives none. ``alert_threshold_*_kg_h`` (kg h-1): the
    alert score is P(rate > threshold). ``inversion``: the sampler, optimiser and prior settings.
    """

    time_window_h: float = 12.0
    emit_half_width_km: float = 4.0
    ghgsat_half_width_km: float = 4.0
    tropomi_half_width_km: float = 60.0
    oco2_half_width_km: float = 80.0
    attribution_half_width_km: float = 4.0
    facility_list: str = str(REFERENCE_DIR / "facilities_sample.csv")
    power_plants: str = str(REFERENCE_DIR / "wri_gppd_sample.csv")
    edgar: str = str(REFERENCE_DIR / "edgar_ch4_sample.nc")
    facility_location_sd_m: float = 100.0
    alert_threshold_ch4_kg_h: float = 100.0
    alert_threshold_co2_kg_h: float = 100_000.0
    inversion: InversionSettings = field(default_factory=InversionSettings)

    def half_width_km(self, instrument: str) -> float:
        """AOI half-width (km) of ``instrument``; 0 for a met source."""
        return {
            "EMIT": self.emit_half_width_km,
            "GHGSAT": self.ghgsat_half_width_km,
            "TROPOMI": self.tropomi_half_width_km,
            "OCO2": self.oco2_half_width_km,
        }.get(instrument, 0.0)

    def bbox(self, event: DetectionEvent, half_width_km: float) -> BBox:
        """(west, south, east, north) in degrees of a square of ``2 * half_width_km`` around the event."""
        km_per_deg = METRES_PER_DEG_LAT / 1000.0
        dlat = half_width_km / km_per_deg
        dlon = half_width_km / (km_per_deg * max(math.cos(math.radians(event.latitude)), 1e-3))
        return (event.longitude - dlon, event.latitude - dlat, event.longitude + dlon, event.latitude + dlat)

    def alert_threshold_kg_h(self, gas: str) -> float:
        """The alert threshold (kg h-1) of ``gas``."""
        return self.alert_threshold_co2_kg_h if gas == "CO2" else self.alert_threshold_ch4_kg_h

    def fast(self) -> EventSettings:
        """The same settings with the fast answer's inversion: a cheaper multi-start MAP + Laplace draws
        (:meth:`~attribution_assets.science.inversion.settings.InversionSettings.fast_answer`)."""
        return replace(self, inversion=self.inversion.fast_answer())

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable values (for provenance)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], inventories: str | Path = REFERENCE_DIR) -> EventSettings:
        """The settings :meth:`as_dict` wrote (a posterior row's ``provenance["settings"]``). An
        inventory given by file name alone, as provenance keeps it, is looked up in ``inventories``
        (default: the bundled reference folder); an empty one stays switched off. Raises ``ValueError``
        naming any field these settings do not have."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        inversion = dict(values.get("inversion", {}))
        known = {f.name for f in fields(InversionSettings)}
        unknown += sorted(f"inversion.{name}" for name in set(inversion) - known)
        if unknown:
            raise ValueError(f"not event settings: {', '.join(unknown)}")
        if "position_prior_xy_m" in inversion:
            inversion["position_prior_xy_m"] = tuple(inversion["position_prior_xy_m"])
        given = {name: value for name, value in values.items() if name != "inversion"}
        for name in ("facility_list", "power_plants", "edgar"):
            if given.get(name) and Path(given[name]).name == given[name]:
                given[name] = str(Path(inventories) / given[name])
        return cls(**given, inversion=InversionSettings(**inversion))

    @classmethod
    def from_provenance(cls, provenance: str | Mapping[str, Any], inventories: str | Path = REFERENCE_DIR
                        ) -> EventSettings:
        """The settings a posterior row was computed with, from its ``provenance`` column (JSON text or
        its parsed value): rerunning the event with them gives the row's answer (same inputs and code
        version). Inventories as in :meth:`from_dict`."""
        record = json.loads(provenance) if isinstance(provenance, str) else provenance
        return cls.from_dict(record["settings"], inventories)
