"""Joint Bayesian inversion of a point source from several instruments and overpasses.

One job per module, in the order an inversion runs them:

- :mod:`.settings`: :class:`InversionSettings`, the one definition of the sampler, optimiser and
  prior settings (the Dagster resource and the CLI derive theirs from it);
- :mod:`.albedo`: a linear albedo artefact regressed out of blocks that report a surface albedo;
- :mod:`.correlated_error`: a Gaussian Markov random field of an imager block's errors, fitted on
  its pixel grid and used as the likelihood's error precision;
- :mod:`.structured_error`: the likelihood weight of a block whose residuals look like plumes;
- :mod:`.groups`: the arrays of each block the likelihood evaluates, with its error precision;
- :mod:`.problem`: observation groups and priors of one event (:func:`prepare`);
- :mod:`.model`: the forward model, likelihood, potential and NumPyro model, with the analytically
  marginalised source-presence indicator;
- :mod:`.optimise`: multi-start MAP (:func:`find_modes`, :func:`find_map`), each overpass's wind
  turned alone from the best optimum;
- :mod:`.laplace`: difference Hessian, Newton polish continued to a minimum, Laplace fits, the
  closed-form no-source fit;
- :mod:`.sampler`: the compiled NUTS chain runner; :mod:`.screening`: which observations NUTS
  evaluates; :mod:`.nuts`: the sampled posterior with its diagnostics;
- :mod:`.smc`: adaptive tempered SMC from a Laplace-mixture reference;
- :mod:`.diagnostics`: R-hat, ESS, divergences (:class:`SamplerDiagnostics`);
- :mod:`.confidence`: the Feldman-Cousins interval of the rate that a non-detection reports;
- :mod:`.result`: :class:`InversionResult`, :class:`PosteriorSummary`, :func:`posterior_predictive`;
- :mod:`.api`: :func:`invert`;
- :mod:`.streams`: the named random streams (:class:`RandomStream`), all derived from the seed;
- :mod:`.linear_gaussian`, :mod:`.simulation`: closed-form reference and simulated events for
  validation.

Inference: multi-start MAP, a Laplace approximation at the best MAP and at the other local optima,
then NUTS (Hoffman & Gelman 2014, JMLR 15, 1593) in Laplace-preconditioned coordinates where one
decisive mode makes that sound, adaptive tempered SMC otherwise (:func:`.api.choose_sampler`),
checked by rank-normalised R-hat, bulk/tail ESS and divergences. NUTS that fails the check, or whose
warm-up saturates its trees, is replaced by SMC once.

The names below are loaded on first use, so that reading :class:`InversionSettings` (the resource
and the command line do) does not import JAX and NumPyro (~5 s).
"""

from __future__ import annotations

from attribution_assets.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "albedo": ("AlbedoFit", "remove_albedo_artefacts"),
    "confidence": ("RateMeasurement", "confidence_interval_kg_h", "feldman_cousins", "rate_measurements"),
    "correlated_error": ("CorrelatedErrorFit", "model_correlated_errors"),
    "api": ("invert",),
    "diagnostics": ("ConvergenceDiagnostics", "SamplerDiagnostics"),
    "laplace": ("LaplaceFit", "absent_laplace_fit", "hessian", "laplace_fit"),
    "model": (
        "physical_draws",
        "potential",
        "potential_and_gradient",
        "predict_groups",
        "source_rate_kg_h",
        "unpack",
    ),
    "optimise": ("find_map", "find_modes", "starting_points"),
    "groups": ("ObservationGroup",),
    "problem": ("InversionProblem", "ModelConfig", "prepare"),
    "result": ("InversionResult", "LaplaceSummary", "PosteriorSummary", "posterior_predictive"),
    "settings": (
        "DEFAULT_Q_MEDIAN_KG_H",
        "SAMPLER_SETTINGS",
        "InversionSettings",
        "PotentialKind",
        "QPrior",
        "Sampler",
        "setting_help",
        "settings_dict",
    ),
    "streams": ("RandomStream",),
})
