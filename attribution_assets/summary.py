"""The summary table ``attribution run``, ``demo`` and ``backfill`` print: one line per event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from attribution_assets.science.attribution import UNLISTED_ID

if TYPE_CHECKING:
    from attribution_assets.cli import EventOutcome


def _attribution(row: pd.Series) -> str:
    if not row["detected"]:
        return "-"
    unlisted = (
        row.get("attributed_facility_id") == UNLISTED_ID
        or not row.get("attributed_facility_name")
        or row["p_unlisted_source"] > row["attributed_probability"]
    )
    if unlisted:
        return f"unlisted source ({row['p_unlisted_source']:.2f})"
    return f"{row['attributed_facility_name'][:26]} ({row['attributed_probability']:.2f})"


def _interval(row: pd.Series) -> str:
    """The posterior mean and the 90 % interval; a non-detection's interval alone (the mean of draws
    mostly without a source, a few kg/h for a null, is no estimate of anything)."""
    from attribution_assets.pipeline.posterior import interval_text

    mean = f"{row['emission_rate_kg_h']:>12,.0f}" if row["detected"] else f"{'-':>12}"
    return f"{mean}  [{interval_text(row, lambda q: f'{q:,.0f}')}]"


def summary_table(outcomes: Sequence[EventOutcome], truth: pd.DataFrame | None = None) -> str:
    """One line per event: id, instruments, emission mean (kg/h; none for a non-detection) and 90 %
    interval (a non-detection's: below
    its upper limit, or its confidence interval where that excludes 0), detection (and the truth,
    and whether the interval holds it)."""
    from attribution_assets.pipeline.posterior import rate_interval

    lines = []
    header = (
        f"{'event':<18} {'gas':<4} {'instruments':<20} {'mean kg/h  [90% interval]':<42} {'detected':<9}"
        f" {'attributed to (probability)':<34}"
    )
    if truth is not None:
        header += f" {'truth kg/h':>11} {'in 90%':>6}"
    lines += [header, "-" * len(header)]
    for outcome in outcomes:
        name = outcome.event.event_id or outcome.event.key
        if not outcome.success:
            lines.append(f"{name:<18} {outcome.event.gas:<4} FAILED: {outcome.error[:120]}")
            continue
        row = outcome.row
        line = (
            f"{name:<18} {row['gas']:<4} {row['instruments']:<20} {_interval(row):<42} "
            f"{'yes' if row['detected'] else 'no':<9} {_attribution(row):<34}"
        )
        if truth is not None and name in truth.index:
            q = float(truth.loc[name, "emission_rate_kg_h"])
            low, high = rate_interval(row)
            inside = low <= q <= high
            line += f" {q:>11,.0f} {'yes' if inside else 'NO':>6}"
        lines.append(line)
    return "\n".join(lines)
