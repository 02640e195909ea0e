"""One settings definition: InversionSettings, its help texts, and the resource and CLI built from it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

from attribution_assets import cli
from attribution_assets.resources import AnalysisSettings
from attribution_assets.science import inversion as inv
from attribution_assets.science.inversion.settings import SAMPLER_SETTINGS, InversionSettings, setting_help
from attribution_assets.science.inversion.streams import RandomStream


def test_settings_reject_unknown_sampler_and_prior() -> None:
    with pytest.raises(ValueError, match="sampler must be"):
        InversionSettings(sampler="hmc")
    with pytest.raises(ValueError, match="q_prior must be"):
        InversionSettings(q_prior="uniform")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("num_chains", 0, "num_chains must be an integer >= 1, got 0"),
    ("num_samples", -1, "num_samples must be an integer >= 1, got -1"),
    ("num_warmup", -1, "num_warmup must be an integer >= 0, got -1"),
    ("laplace_draws", 2.5, "laplace_draws must be an integer >= 1, got 2.5"),
    ("smc_particles", True, "smc_particles must be an integer >= 1, got True"),
    ("target_accept", 1.0, "target_accept must lie strictly between 0 and 1, got 1.0"),
    ("prior_p_source", 0.0, "prior_p_source must lie strictly between 0 and 1, got 0.0"),
])
def test_settings_refuse_counts_and_probabilities_no_sampler_can_run(
    name: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        InversionSettings(**{name: value})
    InversionSettings(num_warmup=0, smc_final_moves=0)  # the boundaries themselves are allowed


def test_every_setting_has_a_help_text() -> None:
    assert all(setting_help(f.name) for f in fields(InversionSettings))
    with pytest.raises(KeyError, match="no field"):
        setting_help("chains")


def test_resource_defaults_and_descriptions_come_from_the_settings() -> None:
    resource, defaults = AnalysisSettings(), InversionSettings()
    for name in SAMPLER_SETTINGS:
        assert getattr(resource, name) == getattr(defaults, name)
        assert AnalysisSettings.model_fields[name].description == setting_help(name)
    assert resource.event_settings().inversion == defaults
    chosen = AnalysisSettings(num_chains=2, num_warmup=30, num_samples=40, seed=7, escalate=False)
    assert chosen.event_settings().inversion == InversionSettings(
        num_chains=2, num_warmup=30, num_samples=40, seed=7, escalate=False
    )


def test_cli_options_default_to_the_settings_and_pass_every_one_through() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["demo"])
    assert AnalysisSettings(**cli.sampler_settings(args)).event_settings().inversion == InversionSettings()
    argv = ["demo", "--chains", "3", "--warmup", "20", "--samples", "30", "--seed", "5", "--no-escalate"]
    settings = AnalysisSettings(**cli.sampler_settings(parser.parse_args(argv))).event_settings().inversion
    assert settings == InversionSettings(num_chains=3, num_warmup=20, num_samples=30, seed=5, escalate=False)


def test_package_exports_resolve_and_settings_load_without_jax() -> None:
    for name in inv.__all__:
        assert getattr(inv, name) is not None, name
    with pytest.raises(AttributeError):
        _ = inv.no_such_name
    code = (
        "import sys\n"
        "from attribution_assets.science.inversion import InversionSettings\n"
        "assert InversionSettings().num_chains > 0\n"
        "assert 'jax' not in sys.modules and 'numpyro' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_random_streams_are_pinned() -> None:
    """Renumbering a stream would change every posterior drawn with a given seed."""
    assert {s.name: int(s) for s in RandomStream} == {
        "LAPLACE_DRAWS": 1,
        "PRESENCE": 2,
        "CHAIN_INIT": 3,
        "SCREENING": 4,
        "SMC": 6,
        "STRUCTURED_ERROR": 7,
        "FLUX_FACTOR": 8,
    }
    np.testing.assert_array_equal(
        RandomStream.SCREENING.generator(11).standard_normal(3),
        np.random.default_rng([11, 4]).standard_normal(3),
    )
