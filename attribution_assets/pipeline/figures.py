"""Figures of one event (object-oriented Matplotlib: no pyplot state, drawable in any process or
thread): observed vs simulated plume, the rate and position posterior, and the posterior predictive;
and the helpers the week's figure shares with them (:func:`new_figure`, :func:`rate_unit`,
:func:`geographic_axes`), which import neither JAX nor NumPyro."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from attribution_assets.science.units import kg_s_to_kg_h

if TYPE_CHECKING:
    from attribution_assets.pipeline.forward import ForwardModel
    from attribution_assets.science.forward.operators import ObservationBlock
    from attribution_assets.science.geometry import LocalFrame
    from attribution_assets.science.inversion import InversionResult
    from attribution_assets.science.met.wind import OverpassWind


def new_figure(
    nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8), squeeze: bool = True
) -> tuple[Figure, Any]:
    """A figure and its axes (as ``Figure.subplots`` returns them), size in inches."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(nrows, ncols, squeeze=squeeze)


def rate_unit(gas: str) -> tuple[float, str]:
    """The factor from kg/h and the unit a figure gives a gas's emission rates in: t/h for CO2 (power
    plants emit millions of kg/h), kg/h otherwise."""
    return (1e-3, "t/h") if gas.upper() == "CO2" else (1.0, "kg/h")


def geographic_axes(ax: Any) -> None:
    """Longitude and latitude labels in degrees, ticks as plain degrees (no ``+5.126e1`` offset), at
    most four longitudes so that they do not run into each other."""
    ax.set_xlabel("longitude (degrees east)")
    ax.set_ylabel("latitude (degrees north)")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.xaxis.set_major_locator(MaxNLocator(4))  # full longitudes such as -103.615 need the room


def observed_vs_simulated(forward: ForwardModel, title: str) -> Figure:
    """For each block, observed minus background next to the simulated plume (linear fit at the alert
    point)."""
    from attribution_assets.pipeline.forward import linear_rate_kg_s  # JAX: when an event is drawn

    blocks, jacobians = forward.blocks, forward.jacobians
    fig, axes = new_figure(len(blocks), 2, figsize=(9, 3.6 * len(blocks)), squeeze=False)
    for row, (block, jac) in enumerate(zip(blocks, jacobians, strict=True)):
        rate, background = linear_rate_kg_s(block, jac)
        observed, simulated = block.y - background, rate * jac
        limit = float(np.nanpercentile(np.abs(observed), 99)) or 1.0
        size = 4 if block.size > 2000 else 25
        for ax, values, label in (
            (axes[row, 0], observed, "observed - background"),
            (axes[row, 1], simulated, f"simulated, Q = {kg_s_to_kg_h(rate):,.0f} kg/h"),
        ):
            art = ax.scatter(block.lon, block.lat, c=values, s=size, cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"{block.instrument}: {label}", fontsize=9)
            geographic_axes(ax)
            fig.colorbar(art, ax=ax, label=f"enhancement ({block.units})")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def posterior_figure(
    result: InversionResult, blocks: Sequence[ObservationBlock], frame: LocalFrame, title: str
) -> Figure:
    """Emission-rate posterior and the posterior of the source position over the finest observations."""
    fig, (ax_q, ax_map) = new_figure(1, 2, figsize=(10, 4))
    q = np.ravel(result.draws["emission_rate_kg_h"])
    present = q[q > 0]
    scale, unit = rate_unit(result.gas)
    if present.size:
        ax_q.hist(present * scale, bins=60, color="tab:orange", alpha=0.8)
    ax_q.set_xlabel(f"emission rate ({unit}), source-present draws")
    ax_q.set_ylabel("draws")
    ax_q.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax_q.set_title(
        f"P(source) = {result.p_source:.2f}, {present.size / max(q.size, 1):.0%} of draws > 0", fontsize=9
    )
    finest = min(blocks, key=lambda b: np.median(np.abs(np.diff(b.lon))) if b.size > 1 else np.inf)
    art = ax_map.scatter(finest.lon, finest.lat, c=finest.y - np.median(finest.y), s=6, cmap="RdBu_r")
    fig.colorbar(art, ax=ax_map, label=f"{finest.instrument}: observed minus its median ({finest.units})")
    lon, lat = frame.to_lonlat(np.ravel(result.draws["source_x_m"]), np.ravel(result.draws["source_y_m"]))
    ax_map.scatter(lon[::10], lat[::10], s=2, c="k", alpha=0.3, label="posterior source position")
    ax_map.plot(frame.lon0_deg, frame.lat0_deg, "g^", label="alert")
    ax_map.legend(fontsize=7, loc="lower right")
    geographic_axes(ax_map)
    ax_map.set_title("source position posterior", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def predictive_figure(
    result: InversionResult,
    blocks: Sequence[ObservationBlock],
    winds: Sequence[OverpassWind],
    title: str,
    predictive: Sequence[dict[str, np.ndarray]] | None = None,
) -> Figure:
    """Observed vs posterior-predictive mean per instrument block, with the 1:1 line; ``predictive``:
    the :func:`~attribution_assets.science.inversion.posterior_predictive` of ``result`` when the caller
    has it already (computed here otherwise)."""
    if predictive is None:
        from attribution_assets.science.inversion import posterior_predictive

        predictive = posterior_predictive(result, blocks, winds)
    fig, axes = new_figure(1, len(blocks), figsize=(3.6 * len(blocks), 3.4), squeeze=False)
    for ax, block, pred in zip(axes[0], blocks, predictive, strict=True):
        ax.scatter(block.y, pred["mean"], s=3, alpha=0.4, color="tab:blue", rasterized=True)
        lo, hi = np.percentile(np.r_[block.y, pred["mean"]], [0.5, 99.5])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        z = (block.y - pred["mean"]) / block.sigma
        ax.set_title(f"{block.instrument} (overpass {block.overpass})\n"
                     f"RMS of (obs - pred) / sigma = {np.sqrt(np.mean(z**2)):.2f}", fontsize=8)
        ax.set_xlabel(f"observed ({block.units})")
        ax.set_ylabel(f"posterior predictive ({block.units})")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
