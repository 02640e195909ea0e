"""Parsers for the native file names of products that have one (EMIT, TROPOMI, OCO-2, WRF).

Each parser returns a :class:`NativeName` or ``None`` when the name is not of that product. The
``granule`` field identifies the observation independently of its processing, and ``processing`` is
a string that sorts newest-last, so duplicates can be resolved to the newest processing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from attribution_assets.readers.wrf import parse_wrf_filename


@dataclass(frozen=True)
class NativeName:
    """What a native file name says about its granule."""

    instrument: str
    product: str
    version: str
    granule: str
    processing: str
    time_start: datetime | None
    time_end: datetime | None


_EMIT = re.compile(
    r"^EMIT_L1B_RAD_(?P<version>\d{3})_(?P<start>\d{8}T\d{6})_(?P<orbit>\d{7})_(?P<scene>\d{3})\.nc$"
)
_TROPOMI = re.compile(
    r"^S5P_(?P<mode>OFFL|NRTI|RPRO)_L2__CH4____(?P<start>\d{8}T\d{6})_(?P<end>\d{8}T\d{6})_"
    r"(?P<orbit>\d{5})_(?P<collection>\d{2})_(?P<processor>\d{6})_(?P<production>\d{8}T\d{6})\.nc$"
)
_OCO2 = re.compile(
    r"^oco2_LtCO2_(?P<day>\d{6})_(?P<build>B\d+)(?P<tag>[A-Za-z]*)_(?P<processing>\d{12}s?)\.nc4$"
)
_MODE_RANK = {"NRTI": "0", "OFFL": "1", "RPRO": "2"}


def _name_time(text: str, fmt: str) -> datetime:
    """A time stamp of a native file name (fixed format ``fmt``, always UTC) as aware UTC."""
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def parse_emit(name: str) -> NativeName | None:
    """``EMIT_L1B_RAD_001_<YYYYMMDDTHHMMSS>_<orbit7>_<scene3>.nc``."""
    m = _EMIT.match(name)
    if m is None:
        return None
    start = _name_time(m["start"], "%Y%m%dT%H%M%S")
    return NativeName(
        "EMIT",
        "L1B_RAD",
        m["version"],
        f"EMIT_{m['start']}_{m['orbit']}_{m['scene']}",
        m["version"],
        start,
        None,
    )


def parse_tropomi(name: str) -> NativeName | None:
    """``S5P_<mode>_L2__CH4____<start>_<end>_<orbit5>_<collection2>_<processor6>_<production>.nc``."""
    m = _TROPOMI.match(name)
    if m is None:
        return None
    processing = f"{m['collection']}_{m['processor']}_{_MODE_RANK[m['mode']]}_{m['production']}"
    return NativeName(
        "TROPOMI",
        "L2_CH4",
        m["processor"],
        f"S5P_CH4_{m['orbit']}",
        processing,
        _name_time(m["start"], "%Y%m%dT%H%M%S"),
        _name_time(m["end"], "%Y%m%dT%H%M%S"),
    )


def parse_oco2(name: str) -> NativeName | None:
    """``oco2_LtCO2_<YYMMDD>_<build><tag>_<processing>.nc4``."""
    m = _OCO2.match(name)
    if m is None:
        return None
    day = _name_time(m["day"], "%y%m%d")
    return NativeName(
        "OCO2", "LITE_FP", m["build"], f"OCO2_LITE_{m['day']}", f"{m['build']}_{m['processing']}", day, None
    )


def parse_wrf(name: str) -> NativeName | None:
    """``wrfout_d0N_YYYY-MM-DD_HH:MM:SS`` (``_`` accepted for ``:`` on file systems without colons)."""
    parsed = parse_wrf_filename(name)
    if parsed is None:
        return None
    domain, start = parsed[0], parsed[1].replace(tzinfo=UTC)
    return NativeName("WRF", "WRFOUT", "", f"WRF_d{domain:02d}_{start:%Y-%m-%d_%H:%M:%S}", "", start, None)


PARSERS = (parse_emit, parse_tropomi, parse_oco2, parse_wrf)


def parse_native_name(name: str) -> NativeName | None:
    """The first parser that recognises ``name``, or ``None`` for a user-chosen name."""
    for parser in PARSERS:
        parsed = parser(name)
        if parsed is not None:
            return parsed
    return None
