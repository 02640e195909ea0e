"""Bounding-box helpers in degrees, across the antimeridian."""

from __future__ import annotations

import numpy as np
import pytest

from attribution_assets.readers.bbox import (
    in_bbox,
    longitude_copies,
    normalise_lon,
    overlaps_bbox,
    validate_bbox,
)


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


@pytest.mark.parametrize(
    "bbox",
    [(179.0, -1.0, 180.5, 1.0), (179.0, -1.0, -179.5, 1.0), (-181.0, -1.0, -179.5, 1.0),
     (539.0, -1.0, 540.5, 1.0)],
)
def test_longitude_copies_cover_the_box_on_both_sides_of_the_antimeridian(bbox) -> None:
    copies = longitude_copies(bbox)
    assert all(west <= east and east - west == pytest.approx(1.5) for west, _, east, _ in copies)

    def covered(lon: float) -> bool:
        return any(west <= lon <= east for west, _, east, _ in copies)

    # the same places, in each convention a footprint may use; and a place outside the box
    assert covered(179.5) and covered(-179.75) and covered(180.25) and covered(-180.0)
    assert not covered(178.5) and not covered(-178.0) and not covered(181.0)


def test_longitude_copies_of_a_box_wider_than_the_globe_cover_every_longitude() -> None:
    assert longitude_copies((-200.0, -1.0, 170.0, 1.0)) == [(-540.0, -1.0, 540.0, 1.0)]
