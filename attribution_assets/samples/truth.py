"""The truth tables of the bundled sample scenes: one :class:`Event` per row of ``truth_table.csv``, one
:class:`Overpass` per row of ``truth_overpasses.csv`` (every column is described in ``samples/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from attribution_assets.science.geometry import LocalFrame
from attribution_assets.times import parse_time

SAMPLES_DIR = Path(__file__).resolve().parent
TRUTH_TABLE_CSV = SAMPLES_DIR / "truth_table.csv"
TRUTH_OVERPASSES_CSV = SAMPLES_DIR / "truth_overpasses.csv"


@dataclass(frozen=True)
class Event:
    """One row of ``truth_table.csv``: the true source and the analytic weather of one event.

    Positions in degrees, ``emission_rate_kg_h`` in kg h-1, winds in m s-1 (gradients per degree),
    temperature in K, heat flux in W m-2, elevation and roughness in m; ``alert_time`` is aware UTC.
    """

    index: int
    event_id: str
    gas: str
    alert_time: datetime
    alert_lon: float
    alert_lat: float
    source_lon: float
    source_lat: float
    emission_rate_kg_h: float
    surface_elevation_m: float
    wind_u0_m_s: float
    wind_v0_m_s: float
    wind_du_dlon_m_s_per_deg: float
    wind_dv_dlat_m_s_per_deg: float
    diurnal_rotation_deg: float
    t2m_sea_level_k: float
    total_cloud_cover: float
    roughness_m: float
    sensible_heat_max_w_m2: float
    era5_layout: str

    @cached_property
    def frame(self) -> LocalFrame:
        """Local metric frame centred on the alert point."""
        return LocalFrame(self.alert_lon, self.alert_lat)

    @property
    def day_start(self) -> datetime:
        """00:00 UTC of the event day."""
        return self.alert_time.replace(hour=0, minute=0, second=0, microsecond=0)

    def hours_utc(self, when: datetime) -> float:
        """Hours since 00:00 UTC of the event day."""
        return (when - self.day_start).total_seconds() / 3600.0

    @property
    def source_xy_m(self) -> np.ndarray:
        """True source position in the local frame, m."""
        x, y = self.frame.to_xy(self.source_lon, self.source_lat)
        return np.array([float(x), float(y)])


@dataclass(frozen=True)
class Overpass:
    """One row of ``truth_overpasses.csv``: the truth of one instrument overpass.

    ``time`` aware UTC; ``stability_index`` 0-5 (Pasquill-Gifford A-F); winds in m s-1 (the direction
    the air moves to); ``wind_direction_offset_deg`` clockwise, degrees.
    """

    event_id: str
    instrument: str
    time: datetime
    stability_index: float
    wind_speed_factor: float
    wind_direction_offset_deg: float
    era5_u10_m_s: float
    era5_v10_m_s: float
    true_u_m_s: float
    true_v_m_s: float


def load_events(path: str | Path = TRUTH_TABLE_CSV) -> list[Event]:
    """Read the event truth table."""
    table = pd.read_csv(path, dtype={"event_id": str, "gas": str, "era5_layout": str})
    events = []
    for i, row in enumerate(table.to_dict("records")):
        row["alert_time"] = parse_time(row["alert_time"])
        events.append(
            Event(index=i, **{k: (v if isinstance(v, (str, datetime)) else float(v)) for k, v in row.items()})
        )
    return events


def load_overpasses(path: str | Path = TRUTH_OVERPASSES_CSV) -> list[Overpass]:
    """Read the per-overpass truth table."""
    table = pd.read_csv(path, dtype={"event_id": str, "instrument": str, "overpass_time": str})
    out = []
    for row in table.to_dict("records"):
        time = parse_time(row.pop("overpass_time"))
        out.append(
            Overpass(time=time, **{k: (v if isinstance(v, str) else float(v)) for k, v in row.items()})
        )
    return out
