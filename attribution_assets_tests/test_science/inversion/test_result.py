"""Typed contracts of the inversion result: diagnostics of every sampler, the posterior summary in
NetCDF attributes."""

from __future__ import annotations

import math
from dataclasses import replace

import arviz as az
import numpy as np
import pytest

from attribution_assets.science import inversion as inv
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.inversion.result import weighted_percentile
from attribution_assets.science.inversion.simulation import grid_block, met_prior


@pytest.fixture(scope="module")
def laplace_result() -> inv.InversionResult:
    noise = 300.0 * np.random.default_rng(0).standard_normal(144)
    block = grid_block("EMIT", "ppm m", 12, 60.0, 1, 1.0, 300.0, 0, y=noise)
    settings = inv.InversionSettings(sampler="laplace", laplace_draws=200, num_chains=2, num_samples=100)
    return inv.invert([block], [met_prior(3.0, 1.0)], "CH4", settings)


def test_laplace_sampler_reports_complete_diagnostics(laplace_result: inv.InversionResult) -> None:
    diagnostics = laplace_result.diagnostics
    assert isinstance(diagnostics, inv.SamplerDiagnostics)
    assert diagnostics.ess_target == 50.0  # a quarter of 2 x 100 draws
    assert diagnostics.observations_evaluated == 1.0
    assert not diagnostics.converged and math.isnan(diagnostics.r_hat_max)
    assert diagnostics.sampling_s >= 0.0 and diagnostics.map_laplace_s > 0.0


def test_summary_survives_netcdf_attributes(laplace_result: inv.InversionResult, tmp_path) -> None:
    frame = LocalFrame(-103.61, 31.9)
    summary = replace(laplace_result.summary().located(frame), granules=("EMIT_L1B_1", "EMIT_L1B_2"))
    assert summary.instruments == ("EMIT",)
    lon, lat = frame.to_lonlat(np.array([summary.source_x_m]), np.array([summary.source_y_m]))
    assert (summary.source_lon, summary.source_lat) == (float(lon[0]), float(lat[0]))
    path = tmp_path / "posterior.nc"
    laplace_result.to_inference_data(summary).to_netcdf(str(path))
    back = inv.PosteriorSummary.from_attrs(az.from_netcdf(str(path)).posterior.attrs)
    assert repr(back) == repr(summary)  # equal values and types (NaN R-hat and ESS of Laplace draws)
    assert isinstance(back.detected, bool) and isinstance(back.divergences, int)


def test_every_variable_of_the_draws_file_carries_units_and_a_long_name(
    laplace_result: inv.InversionResult, tmp_path
) -> None:
    path = tmp_path / "posterior.nc"
    laplace_result.to_inference_data().to_netcdf(str(path))
    idata = az.from_netcdf(str(path))
    groups = ("posterior", "sample_stats", "observed_data")
    variables = {name: v for group in groups for name, v in idata[group].data_vars.items()}
    assert {"emission_rate_kg_h", "source_x_m", "wind_to_direction_rad", "y_block0"} <= set(variables)
    missing = [name for name, v in variables.items() if not {"units", "long_name"} <= set(v.attrs)]
    assert not missing
    assert variables["emission_rate_kg_h"].attrs["units"] == "kg h-1"
    assert variables["y_block0"].attrs["units"] == "ppm m"  # the block's own units


def test_summary_from_attributes_without_one_is_an_error() -> None:
    with pytest.raises(KeyError, match="no posterior summary"):
        inv.PosteriorSummary.from_attrs({"gas": "CH4", "summary_method": "x"})


def test_weighted_percentile_matches_analytic_quantiles() -> None:
    x = np.arange(1.0, 1001.0)
    rng = np.random.default_rng(3)
    shuffled = rng.permutation(x)
    assert weighted_percentile(shuffled, np.ones(1000), 90.0) == 900.0
    # weights proportional to x: the cumulative weight grows as x^2, so the p-quantile is 1000 sqrt(p)
    assert weighted_percentile(shuffled, shuffled, 90.0) == pytest.approx(1000.0 * math.sqrt(0.9), abs=1.0)
    assert weighted_percentile(shuffled, np.zeros(1000), 50.0) == 500.0, "no weight at all: unweighted"
