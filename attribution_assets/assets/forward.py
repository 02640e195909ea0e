"""Gaussian-plume forward model: every instrument's observations as blocks with their Jacobian
(observation per kg s-1) at the met prior, and a figure of observed vs simulated."""

import numpy as np
import xarray as xr
from dagster import AssetExecutionContext, MetadataValue, asset
from matplotlib.figure import Figure

from attribution_assets.assets.common import event_of, figure_metadata, new_figure
from attribution_assets.assets.met import winds_from_dataset
from attribution_assets.partitions import detection_events
from attribution_assets.resources import OutputStore
from attribution_assets.science.forward.blocks import block_to_dataset
from attribution_assets.science.forward.emit import emit_block
from attribution_assets.science.forward.ghgsat import ghgsat_block
from attribution_assets.science.forward.oco2 import oco2_block
from attribution_assets.science.forward.operators import ObservationBlock, jacobian
from attribution_assets.science.forward.tropomi import tropomi_block
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import kg_s_to_kg_h


def build_blocks(
    frame: LocalFrame,
    winds: list[OverpassWind],
    granules: list[str],
    emit: dict[str, xr.Dataset],
    ghgsat: dict[str, xr.Dataset],
    tropomi: dict[str, xr.Dataset],
    oco2: dict[str, xr.Dataset],
) -> list[ObservationBlock]:
    """One observation block per granule, empty ones included (a granule whose AOI holds no valid
    pixel); ``granules`` orders the overpasses (met_conditions)."""
    index = {granule: i for i, granule in enumerate(granules)}
    blocks = []
    for granule, enh in sorted(emit.items()):
        blocks.append(emit_block(enh, frame, index[granule]))
    for granule, ds in sorted(ghgsat.items()):
        blocks.append(ghgsat_block(ds, frame, index[granule], winds[index[granule]].surface_pressure_pa))
    for granule, ds in sorted(tropomi.items()):
        blocks.append(tropomi_block(ds, frame, index[granule], winds[index[granule]].pblh_m))
    for granule, ds in sorted(oco2.items()):
        blocks.append(oco2_block(ds, frame, index[granule]))
    return blocks


def valid_pixels(blocks: list[ObservationBlock], granules: list[str]) -> dict[str, dict[str, int]]:
    """Valid pixels (observations) per instrument and granule, zeros included."""
    counts: dict[str, dict[str, int]] = {}
    for block in blocks:
        counts.setdefault(block.instrument, {})[granules[block.overpass]] = int(block.size)
    return counts


def linear_rate_kg_s(block: ObservationBlock, jac: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares fit ``y = b + Q * J``: emission rate (kg s-1) and background."""
    weights = 1.0 / np.asarray(block.sigma, float) ** 2
    design = np.column_stack([np.ones_like(jac), jac]) * np.sqrt(weights)[:, None]
    (background, rate), *_ = np.linalg.lstsq(design, block.y * np.sqrt(weights), rcond=None)
    return float(rate), float(background)


def observed_vs_simulated(blocks: list[ObservationBlock], jacobians: list[np.ndarray], title: str) -> Figure:
    """Figure: for each block, observed minus background next to the simulated plume (linear fit)."""
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
            ax.set_xlabel("longitude")
            ax.set_ylabel("latitude")
            fig.colorbar(art, ax=ax, label=block.units)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


@asset(
    partitions_def=detection_events,
    group_name="forward",
    description="Per-instrument observation blocks at native resolution with the Jacobian of each "
    "observation with respect to the emission rate (Gaussian plume, Briggs sigma, met prior).",
)
def plume_forward(
    context: AssetExecutionContext,
    met_conditions: xr.Dataset,
    emit_enhancement: dict[str, xr.Dataset],
    ghgsat_aoi: dict[str, xr.Dataset],
    tropomi_aoi: dict[str, xr.Dataset],
    oco2_aoi: dict[str, xr.Dataset],
    store: OutputStore,
) -> dict[str, xr.Dataset]:
    event = event_of(context)
    frame = LocalFrame(event.longitude, event.latitude)
    winds = winds_from_dataset(met_conditions)
    granules = [str(g) for g in met_conditions["granule"].values]
    blocks = build_blocks(frame, winds, granules, emit_enhancement, ghgsat_aoi, tropomi_aoi, oco2_aoi)
    counts = valid_pixels(blocks, granules)
    for block in blocks:
        if block.size == 0:
            context.log.warning(f"{block.instrument}: 0 valid pixels in AOI ({granules[block.overpass]}); "
                                "the instrument's granule is left out")
    blocks = [block for block in blocks if block.size > 0]
    if not blocks:
        context.log.warning(f"{event.key}: no instrument observed the event")
        context.add_output_metadata({"blocks": 0, "valid_pixels": MetadataValue.json(counts)})
        return {}
    jacobians = [jacobian(block, np.zeros(2), winds[block.overpass]) for block in blocks]
    result = {
        f"{b.instrument}:{granules[b.overpass]}": block_to_dataset(b, j)
        for b, j in zip(blocks, jacobians, strict=True)
    }
    quick = {
        f"{b.instrument}:{granules[b.overpass]}": {
            "observations": b.size,
            "units": b.units,
            "linear_rate_kg_h_at_alert_point": round(kg_s_to_kg_h(linear_rate_kg_s(b, j)[0]), 1),
            "max_jacobian_per_kg_s": float(np.max(j)),
        }
        for b, j in zip(blocks, jacobians, strict=True)
    }
    figure = observed_vs_simulated(blocks, jacobians, f"{event.key}: observed vs simulated at the met prior")
    context.add_output_metadata(
        {
            "blocks": len(blocks),
            "valid_pixels": MetadataValue.json(counts),
            "per_block": MetadataValue.json(quick),
            **figure_metadata(figure, store.figure_path("plume_forward", event.key)),
        }
    )
    return result
