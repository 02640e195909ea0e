"""Scene-level CH4 matched filter: an EMIT L1B reader carrier in, orthorectified enhancement maps out.

The filter runs on the raw ``(downtrack, crosstrack)`` geometry, where pixel errors are independent;
the maps are then resampled onto the ortho grid with the scene's geographic lookup table (GLT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from attribution_assets.science.detection.matched_filter.filter import (
    DEFAULT_OPTIONS,
    MatchedFilterOptions,
    matched_filter,
)

_OUTPUT_ATTRS = {
    "ch4_enhancement_ppm_m": {"units": "ppm m", "long_name": "CH4 path enhancement (matched filter)"},
    "ch4_enhancement_sd_ppm_m": {"units": "ppm m", "long_name": "1-sigma uncertainty of the CH4 enhancement"},
    "valid": {"units": "1", "long_name": "pixel passed screening and has matched-filter statistics"},
    "pixel_lat": {"units": "degrees_north", "long_name": "latitude of the raw pixel the cell shows"},
    "pixel_lon": {"units": "degrees_east", "long_name": "longitude of the raw pixel the cell shows"},
    "pixel_row": {"units": "1", "long_name": "downtrack index of the raw pixel the cell shows (-1 = none)"},
    "pixel_col": {"units": "1", "long_name": "crosstrack index of the raw pixel the cell shows (-1 = none)"},
}


@dataclass(frozen=True)
class GltIndex:
    """A geographic lookup table as one gather index: built once, it resamples any number of fields.

    Attributes:
        filled: ``(y, x)`` True where the ortho cell has a raw pixel.
        flat: raw flat index ``row * n_crosstrack + col`` of the ``filled`` cells, in C order.
        raw_shape: ``(downtrack, crosstrack)`` of the raw fields it applies to.
    """

    filled: np.ndarray
    flat: np.ndarray
    raw_shape: tuple[int, int]

    @classmethod
    def from_glt(cls, glt_row: np.ndarray, glt_col: np.ndarray, raw_shape: tuple[int, int]) -> GltIndex:
        """Index of 0-based GLT rows/columns (-1 = no data; EMIT V001 files store 1-based indices with
        0 = no data, the readers convert them) into raw fields of ``raw_shape``."""
        row = np.asarray(glt_row)
        col = np.asarray(glt_col)
        filled = (row >= 0) & (col >= 0)
        rows, cols = row[filled], col[filled]
        if rows.size and (rows.max() >= raw_shape[0] or cols.max() >= raw_shape[1]):
            reach = (int(rows.max()), int(cols.max()))
            raise ValueError(f"GLT indices reach {reach}, outside the raw shape {tuple(raw_shape)}")
        flat = rows.astype(np.int64) * raw_shape[1] + cols
        return cls(filled, flat, (int(raw_shape[0]), int(raw_shape[1])))

    def orthorectify(self, field: np.ndarray, fill: Any = np.nan) -> np.ndarray:
        """``field (downtrack, crosstrack, ...)`` on the ortho grid ``(y, x, ...)``, ``fill`` where empty."""
        field = np.asarray(field)
        if field.shape[:2] != self.raw_shape:
            raise ValueError(f"field of shape {field.shape} does not match the GLT raw {self.raw_shape}")
        out = np.full(self.filled.shape + field.shape[2:], fill, dtype=np.result_type(field, fill))
        out[self.filled] = field.reshape((-1,) + field.shape[2:])[self.flat]
        return out


def orthorectify(
    field: np.ndarray, glt_row: np.ndarray, glt_col: np.ndarray, fill: Any = np.nan
) -> np.ndarray:
    """Resample a raw-geometry field onto the ortho grid with a geographic lookup table.

    ``out[i, j] = field[glt_row[i, j], glt_col[i, j]]`` where both indices are >= 0, else ``fill``.
    ``field`` is ``(downtrack, crosstrack, ...)``; the GLT holds 0-based indices (EMIT V001 files store
    1-based indices with 0 = no data; readers convert them). Several fields of one scene: build one
    :class:`GltIndex` and call its :meth:`~GltIndex.orthorectify`.
    """
    field = np.asarray(field)
    return GltIndex.from_glt(glt_row, glt_col, field.shape[:2]).orthorectify(field, fill)


def enhance_emit_scene(
    ds: xr.Dataset,
    k_hi: tuple[np.ndarray, np.ndarray, np.ndarray],
    options: MatchedFilterOptions = DEFAULT_OPTIONS,
) -> xr.Dataset:
    """Matched-filter CH4 enhancement of an EMIT L1B reader dataset, orthorectified.

    Args:
        ds: reader carrier with ``radiance(downtrack, crosstrack, band)`` (uW cm-2 sr-1 nm-1), coords
            ``wavelength(band)``, ``fwhm(band)`` (nm), ``lat``/``lon(downtrack, crosstrack)`` (degrees),
            ``glt_row``/``glt_col(y, x)`` (0-based, -1 = none), ``y_lat(y)``, ``x_lon(x)`` and
            provenance attributes.
        k_hi: CH4 radiance LUT ``(wavelength_nm, radiance, concentration_ppm_m)``.
        options: :class:`~.filter.MatchedFilterOptions` of :func:`~.filter.matched_filter`.

    Returns:
        Dataset on ``(y, x)`` with ``ch4_enhancement_ppm_m``, ``ch4_enhancement_sd_ppm_m`` (float32, NaN
        where invalid), ``valid`` (bool), the geolocation of the raw pixel each cell shows
        (``pixel_lat``, ``pixel_lon``, degrees; the GLT picks the nearest pixel, up to ~40 m from the
        cell centre) and its (downtrack, crosstrack) index ``pixel_row``, ``pixel_col`` (-1 = none; a
        pixel nearest to several cells repeats), and coords ``lat(y)``, ``lon(x)`` (cell centres);
        the input attributes plus ``method``, ``matched_filter_n_column_groups`` and
        ``matched_filter_shrinkage_median``.
    """
    radiance = ds["radiance"].transpose("downtrack", "crosstrack", "band").values
    result = matched_filter(radiance, ds["wavelength"].values, ds["fwhm"].values, k_hi, options)
    glt = GltIndex.from_glt(
        ds["glt_row"].transpose("y", "x").values, ds["glt_col"].transpose("y", "x").values, radiance.shape[:2]
    )
    rows, cols = np.indices(radiance.shape[:2], dtype=np.int32)
    raw_lat, raw_lon = (ds[name].transpose("downtrack", "crosstrack").values.astype(np.float64)
                        for name in ("lat", "lon"))
    fields = {
        "ch4_enhancement_ppm_m": glt.orthorectify(result.enhancement_ppm_m, np.nan),
        "ch4_enhancement_sd_ppm_m": glt.orthorectify(result.sd_ppm_m, np.nan),
        "valid": glt.orthorectify(result.valid, False),
        "pixel_lat": glt.orthorectify(raw_lat),
        "pixel_lon": glt.orthorectify(raw_lon),
        "pixel_row": glt.orthorectify(rows, np.int32(-1)),
        "pixel_col": glt.orthorectify(cols, np.int32(-1)),
    }
    coords = {
        "lat": (
            "y",
            np.asarray(ds["y_lat"].values, dtype=np.float64),
            {"units": "degrees_north", "long_name": "latitude", "standard_name": "latitude"},
        ),
        "lon": (
            "x",
            np.asarray(ds["x_lon"].values, dtype=np.float64),
            {"units": "degrees_east", "long_name": "longitude", "standard_name": "longitude"},
        ),
    }
    attrs = dict(ds.attrs)
    attrs["method"] = options.describe()
    attrs["matched_filter_n_column_groups"] = int(result.shrinkage.size)
    attrs["matched_filter_shrinkage_median"] = (
        float(np.median(result.shrinkage)) if result.shrinkage.size else float("nan")
    )
    data_vars = {name: (("y", "x"), value, _OUTPUT_ATTRS[name]) for name, value in fields.items()}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
