"""The event figures read as a researcher reads them: labelled axes in plain degrees, what the colours
show, and CO2 rates in t/h."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from attribution_assets.pipeline.figures import posterior_figure
from attribution_assets.science import inversion as inv
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.inversion.simulation import grid_block, met_prior


def test_posterior_figure_labels_its_axes_and_gives_co2_rates_in_tonnes() -> None:
    noise = 0.5 * np.random.default_rng(0).standard_normal(144)
    frame = LocalFrame(19.3308, 51.266)
    grid = grid_block("OCO2", "ppm", 12, 500.0, 1, 1.0, 0.5, 0, y=noise)
    lon, lat = frame.to_lonlat(grid.points_xy_m[:, 0, 0], grid.points_xy_m[:, 0, 1])
    block = replace(grid, gas="CO2", lon=lon, lat=lat)
    settings = inv.InversionSettings(sampler="laplace", laplace_draws=200, num_chains=2, num_samples=100)
    result = inv.invert([block], [met_prior(4.0, 1.0)], "CO2", settings)
    figure = posterior_figure(result, [block], frame, "Belchatow")
    FigureCanvasAgg(figure).draw()
    rate_ax, map_ax, colorbar = figure.axes
    assert rate_ax.get_xlabel() == "emission rate (t/h), source-present draws"
    assert map_ax.get_xlabel() == "longitude (degrees east)"
    assert map_ax.get_ylabel() == "latitude (degrees north)"
    assert colorbar.get_ylabel() == "OCO2: observed minus its median (ppm)"
    offsets = [axis.get_offset_text().get_text() for ax in (rate_ax, map_ax) for axis in (ax.xaxis, ax.yaxis)]
    assert offsets == [""] * 4, "plain degrees and rates, no '+5.126e1' or '1e7' offset"
