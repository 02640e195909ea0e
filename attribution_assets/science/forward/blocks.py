"""Observation blocks as xarray Datasets, so the forward stage can store them per event (NetCDF)
and the inversion stage can read them back unchanged."""

from __future__ import annotations

import numpy as np
import xarray as xr

from attribution_assets.science.forward.operators import ObservationBlock


def block_to_dataset(block: ObservationBlock, jacobian_per_kg_s: np.ndarray | None = None) -> xr.Dataset:
    """Dataset with dims ``obs`` and ``point``; attrs carry instrument, gas, units and overpass index;
    ``albedo`` (1) and the pixels' ``grid_row`` and ``grid_column`` where the block has them (an
    ``error_precision`` is the inversion's own estimate and is not stored).

    ``jacobian_per_kg_s`` (n,) optionally stores the modelled observation per kg s-1 at the met prior.
    """
    units = block.units
    data_vars = {
        "y": ("obs", block.y, {"units": units, "long_name": "observed value"}),
        "sigma": ("obs", block.sigma, {"units": units, "long_name": "reported 1-sigma precision"}),
        "points_x_m": (
            ("obs", "point"),
            block.points_xy_m[..., 0],
            {"units": "m", "long_name": "quadrature x (east)"},
        ),
        "points_y_m": (
            ("obs", "point"),
            block.points_xy_m[..., 1],
            {"units": "m", "long_name": "quadrature y (north)"},
        ),
        "weights": (("obs", "point"), block.weights, {"units": "1", "long_name": "quadrature weight"}),
        "kg_m2_to_obs": ("obs", block.kg_m2_to_obs, {"units": f"{units} per kg m-2"}),
        "lon": ("obs", block.lon, {"units": "degrees_east"}),
        "lat": ("obs", block.lat, {"units": "degrees_north"}),
    }
    if block.albedo is not None:
        data_vars["albedo"] = ("obs", block.albedo, {"units": "1", "long_name": "surface albedo"})
    if block.grid_index is not None:
        rows, columns = np.asarray(block.grid_index, np.int32).T
        data_vars["grid_row"] = ("obs", rows, {"long_name": "pixel row on the instrument grid"})
        data_vars["grid_column"] = ("obs", columns, {"long_name": "pixel column on the instrument grid"})
    if jacobian_per_kg_s is not None:
        data_vars["jacobian"] = (
            "obs",
            np.asarray(jacobian_per_kg_s, float),
            {"units": f"{units} per kg s-1", "long_name": "d(obs)/d(emission rate) at met prior"},
        )
    return xr.Dataset(
        data_vars,
        attrs={
            "instrument": block.instrument,
            "gas": block.gas,
            "units": units,
            "overpass": int(block.overpass),
            "sigma_floor_m": float(block.sigma_floor_m),
        },
    )


def block_from_dataset(ds: xr.Dataset) -> ObservationBlock:
    """Inverse of :func:`block_to_dataset`."""
    points = np.stack([ds["points_x_m"].values, ds["points_y_m"].values], axis=-1)
    return ObservationBlock(
        instrument=str(ds.attrs["instrument"]),
        gas=str(ds.attrs["gas"]),
        units=str(ds.attrs["units"]),
        y=ds["y"].values,
        sigma=ds["sigma"].values,
        points_xy_m=points,
        weights=ds["weights"].values,
        kg_m2_to_obs=ds["kg_m2_to_obs"].values,
        overpass=int(ds.attrs["overpass"]),
        lon=ds["lon"].values,
        lat=ds["lat"].values,
        sigma_floor_m=float(ds.attrs["sigma_floor_m"]),
        albedo=ds["albedo"].values if "albedo" in ds else None,
        grid_index=(np.stack([ds["grid_row"].values, ds["grid_column"].values], axis=-1).astype(int)
                    if "grid_row" in ds else None),
    )
