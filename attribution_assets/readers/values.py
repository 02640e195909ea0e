"""File values as Python values: attribute text and masked arrays (fill values become NaN)."""

from __future__ import annotations

import numpy as np


def attribute_text(value: object) -> str:
    """An HDF5/netCDF attribute value as text (bytes decoded, 1-element arrays unwrapped)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def masked_to_nan(values: np.ndarray) -> np.ndarray:
    """A (possibly masked) array as float64 with masked (fill/missing) elements as NaN."""
    return np.ma.filled(np.ma.asarray(values).astype(np.float64), np.nan)
