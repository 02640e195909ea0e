"""Generate the bundled sample archive from the truth tables, deterministically from a seed.

Usage::

    python -m attribution_assets.samples.generate --out data/sample_archive --alerts data/sample_alerts.csv
    python -m attribution_assets.samples.generate --update-truth   # refresh the wind columns of
                                                                    # truth_overpasses.csv after editing

Every file gets its native name under ``<out>/<product>/`` (``emit``, ``tropomi``, ``ghgsat``, ``oco2``,
``era5``). Each (event, instrument) pair draws its noise from its own generator
``numpy.random.default_rng([seed, event_index, instrument_code])``, so a subset generates exactly the same
files as the full run. No wall-clock time enters any file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from attribution_assets.samples.formats.emit import emit_l1b_filename, write_emit_l1b
from attribution_assets.samples.formats.era5 import write_era5
from attribution_assets.samples.formats.ghgsat import ghgsat_filename, write_ghgsat_l2
from attribution_assets.samples.formats.oco2 import oco2_lite_filename, write_oco2_lite
from attribution_assets.samples.formats.tropomi import tropomi_ch4_filename, write_tropomi_ch4
from attribution_assets.samples.simulate.emit import emit_scene
from attribution_assets.samples.simulate.ghgsat import ghgsat_scene
from attribution_assets.samples.simulate.oco2 import oco2_scene
from attribution_assets.samples.simulate.tropomi import tropomi_scene
from attribution_assets.samples.truth import (
    TRUTH_OVERPASSES_CSV,
    Event,
    Overpass,
    load_events,
    load_overpasses,
)
from attribution_assets.samples.weather import computed_overpass_winds, era5_dataset
from attribution_assets.times import iso_z, parse_time

DEFAULT_SEED = 20250814
INSTRUMENTS = ("ERA5", "EMIT", "TROPOMI", "GHGSAT", "OCO2")
"""Instrument names; the position is the instrument code in the random-generator key."""
PRODUCT_DIR = {"ERA5": "era5", "EMIT": "emit", "TROPOMI": "tropomi", "GHGSAT": "ghgsat", "OCO2": "oco2"}
GHGSAT_SATELLITES = ("GHGSat-C5", "GHGSat-C2", "GHGSat-C7", "GHGSat-C9")
WIND_TOLERANCE_M_S = 2e-3
ISS_ORBITS_PER_DAY = 15.5


def rng_for(seed: int, ev: Event, instrument: str) -> np.random.Generator:
    """Independent, reproducible generator for one (event, instrument) pair."""
    return np.random.default_rng([seed, ev.index, INSTRUMENTS.index(instrument)])


def emit_orbit_id(when: datetime) -> str:
    """EMIT 7-digit orbit id ``YYDOYNN`` (NN = ISS orbit of the day, ~15.5 per day)."""
    nn = 1 + int((when.hour + when.minute / 60.0) * ISS_ORBITS_PER_DAY / 24.0)
    return f"{when:%y}{when.timetuple().tm_yday:03d}{nn:02d}"


def era5_filename(ev: Event) -> str:
    """Name chosen by whoever downloaded the CDS request (ERA5 is found by content, not by name)."""
    return f"era5_single_levels_{ev.event_id}_{ev.day_start:%Y%m%d}.nc"


def _write_emit(ev: Event, op: Overpass, ds: xr.Dataset, out: Path) -> Path:
    path = out / "emit" / emit_l1b_filename(op.time, emit_orbit_id(op.time), 1 + ev.index)
    write_emit_l1b(ds, path)
    return path


def _write_tropomi(ev: Event, op: Overpass, ds: xr.Dataset, out: Path) -> Path:
    start = parse_time(ds.attrs["time_coverage_start"])
    end = parse_time(ds.attrs["time_coverage_end"])
    path = out / "tropomi" / tropomi_ch4_filename(start, end, int(ds.attrs["orbit"]))
    write_tropomi_ch4(ds, path)
    return path


def _write_ghgsat(ev: Event, op: Overpass, ds: xr.Dataset, out: Path) -> Path:
    satellite = GHGSAT_SATELLITES[ev.index % len(GHGSAT_SATELLITES)]
    target = ev.event_id.split("-")[0]
    path = out / "ghgsat" / ghgsat_filename(satellite, op.time, target)
    write_ghgsat_l2(ds, path, satellite, target)
    return path


def _write_oco2(ev: Event, op: Overpass, ds: xr.Dataset, out: Path) -> Path:
    path = out / "oco2" / oco2_lite_filename(op.time.date())
    write_oco2_lite(ds, path)
    return path


SCENES: dict[str, tuple[Callable[..., xr.Dataset], Callable[[Event, Overpass, xr.Dataset, Path], Path]]] = {
    "EMIT": (emit_scene, _write_emit),
    "TROPOMI": (tropomi_scene, _write_tropomi),
    "GHGSAT": (ghgsat_scene, _write_ghgsat),
    "OCO2": (oco2_scene, _write_oco2),
}


def check_truth_winds(ev: Event, op: Overpass, era5: xr.Dataset) -> None:
    """Raise if the wind columns of ``truth_overpasses.csv`` disagree with the ERA5 field and perturbation."""
    expected = computed_overpass_winds(ev, op, era5)
    for name, value in expected.items():
        if abs(getattr(op, name) - value) > WIND_TOLERANCE_M_S:
            raise ValueError(
                f"{TRUTH_OVERPASSES_CSV}: {ev.event_id}/{op.instrument} {name} = "
                f"{getattr(op, name)} but the ERA5 field gives {value}; run "
                "`python -m attribution_assets.samples.generate --update-truth`"
            )


def update_truth_overpasses(path: Path = TRUTH_OVERPASSES_CSV) -> pd.DataFrame:
    """Recompute the ERA5 and true wind columns of the overpass truth table and rewrite it."""
    events = {ev.event_id: ev for ev in load_events()}
    era5 = {ev_id: era5_dataset(ev) for ev_id, ev in events.items()}
    table = pd.read_csv(path, dtype={"overpass_time": str})
    names = ["era5_u10_m_s", "era5_v10_m_s", "true_u_m_s", "true_v_m_s"]
    table[names] = table[names].astype(float)
    for i, op in enumerate(load_overpasses(path)):
        for name, value in computed_overpass_winds(events[op.event_id], op, era5[op.event_id]).items():
            table.loc[i, name] = value
    table.to_csv(path, index=False, float_format="%.3f", lineterminator="\n")
    return table


def write_alerts(events: Iterable[Event], path: Path) -> Path:
    """Operator alert CSV: ``event_id, event_time, latitude, longitude, gas``."""
    rows = [
        {
            "event_id": ev.event_id,
            "event_time": iso_z(ev.alert_time),
            "latitude": f"{ev.alert_lat:.4f}",
            "longitude": f"{ev.alert_lon:.4f}",
            "gas": ev.gas,
        }
        for ev in events
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False, lineterminator="\n")
    return path


def generate_event(
    ev: Event, overpasses: Sequence[Overpass], out: Path, seed: int, instruments: Iterable[str] | None = None
) -> list[Path]:
    """Write the ERA5 file and every instrument file of one event; return their paths."""
    wanted = set(instruments) if instruments is not None else set(INSTRUMENTS)
    era5 = era5_dataset(ev)
    written = []
    if "ERA5" in wanted:
        path = out / "era5" / era5_filename(ev)
        write_era5(era5, path, layout=ev.era5_layout)
        written.append(path)
    for op in overpasses:
        if op.instrument not in wanted:
            continue
        check_truth_winds(ev, op, era5)
        simulate, write = SCENES[op.instrument]
        ds = simulate(ev, op, era5, rng_for(seed, ev, op.instrument))
        written.append(write(ev, op, ds, out))
    return written


def generate(
    out: str | Path,
    alerts: str | Path | None = None,
    seed: int = DEFAULT_SEED,
    event_ids: Iterable[str] | None = None,
    instruments: Iterable[str] | None = None,
    verbose: bool = False,
) -> list[Path]:
    """Generate the sample archive under ``out`` (and the alert CSV at ``alerts``); return written paths.

    ``event_ids`` / ``instruments`` restrict the run to a subset; the files written are identical to the
    same files of a full run.
    """
    out = Path(out)
    events = [ev for ev in load_events() if event_ids is None or ev.event_id in set(event_ids)]
    overpasses = load_overpasses()
    written: list[Path] = []
    for ev in events:
        t0 = time.perf_counter()
        paths = generate_event(
            ev, [op for op in overpasses if op.event_id == ev.event_id], out, seed, instruments
        )
        written.extend(paths)
        if verbose:
            print(f"{ev.event_id}: {len(paths)} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if alerts is not None:
        written.append(write_alerts(events, Path(alerts)))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample_archive"), help="archive root")
    parser.add_argument(
        "--alerts",
        type=Path,
        help="alert CSV to write (default: data/sample_alerts.csv for a full archive, none for a subset)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="noise seed")
    parser.add_argument("--event", action="append", dest="events", help="only this event id (repeatable)")
    parser.add_argument(
        "--instrument",
        action="append",
        dest="instruments",
        choices=INSTRUMENTS,
        help="only this instrument (repeatable)",
    )
    parser.add_argument(
        "--update-truth",
        action="store_true",
        help="recompute the wind columns of truth_overpasses.csv and exit",
    )
    args = parser.parse_args(argv)
    if args.update_truth:
        print(update_truth_overpasses().to_string(index=False))
        return 0
    alerts = args.alerts
    if alerts is None and not (args.events or args.instruments):
        alerts = Path("data/sample_alerts.csv")
    for path in generate(args.out, alerts, args.seed, args.events, args.instruments, verbose=True):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
