"""Bounding-box helpers in degrees, across the antimeridian."""

from __future__ import annotations

import numpy as np
import pytest

from attribution_assets.readers.bbox import in_bbox, normalise_lon, overlaps_bbox, validate_bbox


def test_bbox_helpers_handle_the_antimeridian() -> None:
    lon = np.array([179.5, -179.5, 0.0, 539.5, np.nan])
    lat = np.zeros(5)
    across = in_bbox(lon, lat, (179.0, -1.0, -179.0, 1.0))
    np.testing.assert_array_equal(across, [True, True, False, True, False])
    around_zero = in_bbox(lon, lat, (-10.0, -1.0, 10.0, 1.0))
    np.testing.assert_array_equal(around_zero, [False, False, True, False, False])
    # a pixel spanning the box without any corner inside it
    assert overlaps_bbox(
        np.array([-1.0]), np.array([1.0]), np.array([-1.0]), np.array([1.0]), (-0.1, -0.1, 0.1, 0.1)
    )[0]
    with pytest.raises(ValueError, match="south <= north"):
        validate_bbox("f.nc", (0, 10, 1, 5))


def test_normalise_lon_maps_to_minus_180_to_180() -> None:
    np.testing.assert_array_equal(normalise_lon(np.array([-180.0, 179.5, 180.0, 359.0, 540.0])),
                                  [-180.0, 179.5, -180.0, -1.0, -180.0])
