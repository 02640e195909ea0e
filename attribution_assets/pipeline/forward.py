"""Gaussian-plume forward model of one event: every instrument's observations as blocks with their
Jacobian (observation per kg s-1) at the met prior."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from attribution_assets.events import DetectionEvent
from attribution_assets.pipeline.met import winds_from_dataset
from attribution_assets.science.forward.blocks import block_from_dataset, block_to_dataset
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
    emit: Mapping[str, xr.Dataset],
    ghgsat: Mapping[str, xr.Dataset],
    tropomi: Mapping[str, xr.Dataset],
    oco2: Mapping[str, xr.Dataset],
) -> list[ObservationBlock]:
    """One observation block per granule, empty ones included (a granule whose AOI holds no valid
    pixel); ``granules`` orders the overpasses (the met dataset's ``granule``), so each granule gets
    its own overpass wind."""
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


@dataclass
class ForwardModel:
    """The non-empty observation blocks of an event with their Jacobians (per kg s-1) at the met prior,
    the granule of every overpass, and the valid pixels per instrument and granule (zeros included:
    a granule with none is left out of the blocks)."""

    blocks: list[ObservationBlock]
    jacobians: list[np.ndarray]
    granules: list[str]
    valid_pixels: dict[str, dict[str, int]]

    @property
    def block_names(self) -> list[str]:
        """``INSTRUMENT:granule`` of every block."""
        return [f"{b.instrument}:{self.granules[b.overpass]}" for b in self.blocks]

    @property
    def empty_granules(self) -> list[tuple[str, str]]:
        """(instrument, granule) of every granule whose AOI held no valid observation."""
        return [(i, g) for i, counts in self.valid_pixels.items() for g, n in counts.items() if n == 0]

    def only(self, instrument: str) -> ForwardModel:
        """The blocks of one instrument (e.g. to compare its posterior alone with the joint one)."""
        keep = [i for i, b in enumerate(self.blocks) if b.instrument == instrument]
        return ForwardModel(
            [self.blocks[i] for i in keep],
            [self.jacobians[i] for i in keep],
            self.granules,
            {k: v for k, v in self.valid_pixels.items() if k == instrument},
        )

    @property
    def instruments(self) -> list[str]:
        """The instruments with at least one block, in block order."""
        return list(dict.fromkeys(b.instrument for b in self.blocks))

    def to_datasets(self) -> dict[str, xr.Dataset]:
        """Each block with its Jacobian as a dataset, keyed by ``INSTRUMENT:granule``."""
        return {
            name: block_to_dataset(b, j)
            for name, b, j in zip(self.block_names, self.blocks, self.jacobians, strict=True)
        }

    @classmethod
    def from_datasets(cls, datasets: Mapping[str, xr.Dataset], met: xr.Dataset) -> ForwardModel:
        """Inverse of :meth:`to_datasets` (the valid-pixel counts of the non-empty blocks only)."""
        blocks = [block_from_dataset(ds) for ds in datasets.values()]
        granules = [str(g) for g in met["granule"].values]
        jacobians = [np.asarray(ds["jacobian"].values) for ds in datasets.values()]
        return cls(blocks, jacobians, granules, valid_pixels(blocks, granules))

    def per_block(self) -> dict[str, dict[str, object]]:
        """Observations, units, the linear rate at the alert point (kg h-1) and the largest Jacobian."""
        return {
            name: {
                "observations": b.size,
                "units": b.units,
                "linear_rate_kg_h_at_alert_point": round(kg_s_to_kg_h(linear_rate_kg_s(b, j)[0]), 1),
                "max_jacobian_per_kg_s": float(np.max(j)),
            }
            for name, b, j in zip(self.block_names, self.blocks, self.jacobians, strict=True)
        }


def build_forward(
    event: DetectionEvent,
    met: xr.Dataset,
    emit_enhancement: Mapping[str, xr.Dataset],
    ghgsat_aoi: Mapping[str, xr.Dataset],
    tropomi_aoi: Mapping[str, xr.Dataset],
    oco2_aoi: Mapping[str, xr.Dataset],
) -> ForwardModel:
    """The event's observation blocks (empty ones dropped) and their Jacobians at the met prior, with
    the source at the alert point."""
    frame = LocalFrame(event.longitude, event.latitude)
    winds = winds_from_dataset(met)
    granules = [str(g) for g in met["granule"].values]
    blocks = build_blocks(frame, winds, granules, emit_enhancement, ghgsat_aoi, tropomi_aoi, oco2_aoi)
    counts = valid_pixels(blocks, granules)
    blocks = [block for block in blocks if block.size > 0]
    jacobians = [jacobian(block, np.zeros(2), winds[block.overpass]) for block in blocks]
    return ForwardModel(blocks, jacobians, granules, counts)
