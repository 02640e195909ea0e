"""The posterior of one inversion: draws, source indicator, summaries and the posterior predictive.

``detected`` requires ``P(source | y) >= 0.5`` and a 5th percentile of the emission above 0 (i.e.
fewer than 5 % of draws in the no-source component).

Every interval the summary reports is a 90 % one. A detection's is the central interval of the
emission draws (5th to 95th percentile). A non-detection's is the Feldman-Cousins confidence
interval of the rate (:mod:`~attribution_assets.science.inversion.confidence`), ``[lower limit,
upper limit]``: ``[0, upper limit]`` unless the scene holds more than 1.28 sd of signal at the
posterior's plume geometry. Where ``P(source | y)`` is small the central interval of the mixture
cannot cover a source that is there (its 95th percentile is a low percentile of the rate if present,
the 72nd at ``P = 0.18``), and a Bayesian upper limit of the rate if present covers on average over
the prior only: on the misspecified validation sets the 90th percentile held 85 of the 86
undetected sources below 300 kg/h and 10 of the 21 above 2000 kg/h.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from math import nan
from typing import Any, ClassVar, NamedTuple, get_type_hints

import jax.numpy as jnp
import numpy as np

from attribution_assets.science.forward.operators import ObservationBlock
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.inversion.albedo import AlbedoFit
from attribution_assets.science.inversion.confidence import RateMeasurement, confidence_interval_kg_h
from attribution_assets.science.inversion.correlated_error import CorrelatedErrorFit
from attribution_assets.science.inversion.diagnostics import SamplerDiagnostics
from attribution_assets.science.inversion.groups import per_observation
from attribution_assets.science.inversion.laplace import LaplaceFit, cholesky
from attribution_assets.science.inversion.model import physical_draws, predict_groups
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig, prepare
from attribution_assets.science.inversion.settings import InversionSettings
from attribution_assets.science.inversion.streams import RandomStream
from attribution_assets.science.met.wind import OverpassWind


class Quantiles(NamedTuple):
    """Mean, sd (ddof 1; 0 for one draw) and 5th, 50th, 95th percentiles of draws, in their units."""

    mean: float
    sd: float
    p05: float
    p50: float
    p95: float


def weighted_percentile(x: np.ndarray, weights: np.ndarray, percent: float) -> float:
    """The ``percent`` percentile of the draws ``x`` with non-negative ``weights`` (same shape):
    the smallest draw whose cumulative weight reaches ``percent`` % of the total (NumPy's
    ``inverted_cdf``, the one method that takes weights); unweighted when the weights sum to 0."""
    x = np.ravel(np.asarray(x, dtype=float))
    w = np.ravel(np.asarray(weights, dtype=float))
    return float(np.percentile(x, percent, weights=w if w.sum() > 0.0 else None, method="inverted_cdf"))


def is_detected(p_source: float, emission_p05_kg_h: float) -> bool:
    """The source is more likely present than not, and fewer than 5 % of the emission draws fall in
    the no-source component (their 5th percentile, ``emission_p05_kg_h``, is above 0; with the
    presence indicator off, the 90 % interval excludes zero)."""
    return bool(p_source >= 0.5 and emission_p05_kg_h > 0.0)


def quantiles(x: np.ndarray) -> Quantiles:
    """:class:`Quantiles` of all elements of ``x``."""
    x = np.ravel(np.asarray(x, dtype=float))
    p05, p50, p95 = np.percentile(x, [5.0, 50.0, 95.0])
    return Quantiles(
        mean=float(np.mean(x)),
        sd=float(np.std(x, ddof=1)) if x.size > 1 else 0.0,
        p05=float(p05),
        p50=float(p50),
        p95=float(p95),
    )


@dataclass(frozen=True)
class LaplaceSummary:
    """Summary of the draws from the Laplace approximation at the MAP: emission rate (kg h-1, 0 in
    the no-source component), source position mean and sd (m, local frame), ``p_source`` from the
    Laplace evidences of the source and no-source models, and the Hessian directions the fit left
    unresolved (:attr:`~attribution_assets.science.inversion.laplace.LaplaceFit.unresolved_directions`;
    above 0 its intervals describe no posterior)."""

    emission_rate_kg_h_mean: float
    emission_rate_kg_h_sd: float
    emission_rate_kg_h_p05: float
    emission_rate_kg_h_p50: float
    emission_rate_kg_h_p95: float
    source_x_m_mean: float
    source_x_m_sd: float
    source_y_m_mean: float
    source_y_m_sd: float
    p_source: float
    unresolved_directions: int = 0

    def as_dict(self) -> dict[str, float]:
        """Every field by name (for metadata)."""
        return asdict(self)


_LIST_SEPARATOR = "\n"


def _encode(value: Any) -> str | float | int:
    """A NetCDF attribute value: booleans as 0/1, tuples of names joined by ``_LIST_SEPARATOR``."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, tuple):
        return _LIST_SEPARATOR.join(value)
    return value


def _decode(kind: Any, value: Any) -> Any:
    """Inverse of :func:`_encode` for a field of type ``kind``."""
    if kind in (bool, int):
        return kind(int(value))
    if kind in (float, str):
        return kind(value)
    return tuple(name for name in str(value).split(_LIST_SEPARATOR) if name)


@dataclass(frozen=True)
class PosteriorSummary:
    """Posterior summary of one event in the output-table columns.

    Emission rate (kg h-1) mean, percentiles and sd, and its 90 % confidence interval ``[lower
    limit, upper limit]`` (Feldman-Cousins: a non-detection's interval, see the module docstring);
    posterior mean source position (m, local
    frame; ``source_lon``/``source_lat`` in degrees once :meth:`located`) and its sd
    ``sqrt((var x + var y) / 2)`` (m); ``p_source``, ``detected`` (see the module docstring), the
    sampler diagnostics, ``method``, the instruments of the blocks and the granules the posterior
    was computed from. :meth:`to_attrs` and :meth:`from_attrs` carry it in NetCDF attributes.
    """

    emission_rate_kg_h: float
    emission_rate_kg_h_p05: float
    emission_rate_kg_h_p50: float
    emission_rate_kg_h_p95: float
    emission_rate_kg_h_sd: float
    source_x_m: float
    source_y_m: float
    source_location_sd_m: float
    p_source: float
    detected: bool
    r_hat_max: float
    ess_bulk_min: float
    divergences: int
    converged: bool
    method: str
    instruments: tuple[str, ...]
    source_lon: float = float("nan")
    source_lat: float = float("nan")
    granules: tuple[str, ...] = ()
    emission_rate_upper_limit_kg_h: float = float("nan")
    emission_rate_lower_limit_kg_h: float = float("nan")

    ATTR_PREFIX: ClassVar[str] = "summary_"
    """Prefix of the summary's attribute names among the other attributes of a dataset."""

    def located(self, frame: LocalFrame) -> PosteriorSummary:
        """The summary with ``source_lon``/``source_lat`` (degrees) of its source position in ``frame``."""
        lon, lat = frame.to_lonlat(np.array([self.source_x_m]), np.array([self.source_y_m]))
        return replace(self, source_lon=float(lon[0]), source_lat=float(lat[0]))

    def to_attrs(self) -> dict[str, str | float | int]:
        """NetCDF attributes (``ATTR_PREFIX`` + field name; booleans as 0/1, name lists as
        newline-separated strings)."""
        return {self.ATTR_PREFIX + f.name: _encode(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> PosteriorSummary:
        """The summary written by :meth:`to_attrs` into ``attrs`` (other attributes are ignored)."""
        hints = get_type_hints(cls)
        values = {}
        for f in fields(cls):
            name = cls.ATTR_PREFIX + f.name
            if name in attrs:
                values[f.name] = _decode(hints[f.name], attrs[name])
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise KeyError(f"no posterior summary in these attributes: missing {', '.join(missing)}")
        return cls(**values)


DRAW_VARIABLES: dict[str, tuple[str, str]] = {
    "emission_rate_kg_h": ("kg h-1", "source emission rate (0 in draws without a source)"),
    "emission_rate_if_present_kg_h": ("kg h-1", "source emission rate if a source is present"),
    "plume_rate_kg_h": ("kg h-1", "emission rate the observed plumes carry (source rate times flux factor)"),
    "source_present": ("1", "source present in this draw (0 or 1)"),
    "source_x_m": ("m", "source position east of the alert point (azimuthal equidistant local frame)"),
    "source_y_m": ("m", "source position north of the alert point (azimuthal equidistant local frame)"),
    "plume_origin_x_m": ("m", "where the overpass's plume starts, east of the alert point"),
    "plume_origin_y_m": ("m", "where the overpass's plume starts, north of the alert point"),
    "plume_bend_per_m": ("rad m-1", "turn of the overpass's plume centre line per metre downwind"),
    "wind_speed_m_s": ("m s-1", "transport wind speed at the overpass"),
    "wind_to_direction_rad": ("rad", "direction the wind blows towards, counter-clockwise from east"),
    "wind_u_m_s": ("m s-1", "eastward transport wind at the overpass"),
    "wind_v_m_s": ("m s-1", "northward transport wind at the overpass"),
    "stability_index": ("1", "Pasquill-Gifford stability, continuous: 0 = A (unstable) .. 5 = F (stable)"),
    "background": ("block units", "block's background (units per block: the block_units attribute)"),
    "noise_inflation": ("1", "factor on the block's reported noise sd"),
    "diverging": ("1", "NUTS divergent transition (0 or 1)"),
    "p_source_conditional": ("1", "probability of a source given this draw's other parameters"),
    "log_bayes_factor": ("1", "natural log of the Bayes factor of a source against none, given the draw"),
}
"""Units and long name of each draw variable in :meth:`InversionResult.to_inference_data` (CF style)."""


@dataclass
class InversionResult:
    """Posterior of one inversion.

    ``draws`` maps names to arrays (chain, draw, ...): ``emission_rate_kg_h`` (0 in the no-source
    component), ``emission_rate_if_present_kg_h``, ``plume_rate_kg_h`` (the rate the plumes carry,
    :mod:`~attribution_assets.science.inversion.model`), ``source_present`` (0/1), ``p_source_conditional``,
    ``source_x_m``, ``source_y_m`` (local frame, m), per overpass ``wind_u_m_s``, ``wind_v_m_s``,
    ``wind_speed_m_s``, ``wind_to_direction_rad``, ``stability_index``, ``plume_origin_x_m`` and
    ``plume_origin_y_m`` (m, where each overpass's plume starts) and ``plume_bend_per_m`` (rad m-1,
    its bend), per block ``background`` (block units, see ``block_units``) and ``noise_inflation``
    (1), and per draw ``log_bayes_factor`` (of source presence) and ``diverging`` (NUTS).
    ``latent`` holds the whitened draws ``z`` (chain, draw, P) the physical ones were computed from.
    ``map_values``: the physical parameters at the MAP (units of the draws). ``observed``: per block,
    the observations the inversion saw (after its albedo artefact was removed, where ``albedo_fits``
    has a fit).
    ``correlated_error_fits``: per block, the error field fitted to it
    (:mod:`~attribution_assets.science.inversion.correlated_error`; None where none was fitted).
    ``rate_measurements``: the least-squares rate and its sd at plume geometries of the posterior
    that a non-detection's confidence interval is built from (none for a detection;
    :mod:`~attribution_assets.science.inversion.confidence`).
    """

    gas: str
    draws: dict[str, np.ndarray]
    p_source: float
    map_values: dict[str, float | np.ndarray]
    map_log_density: float
    laplace: LaplaceSummary
    diagnostics: SamplerDiagnostics
    method: str
    instruments: tuple[str, ...]
    block_units: tuple[str, ...]
    observed: tuple[np.ndarray, ...]
    rate_measurements: tuple[RateMeasurement, ...]
    settings: InversionSettings = field(repr=False)
    latent: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0, 0)))
    albedo_fits: tuple[AlbedoFit | None, ...] = ()
    correlated_error_fits: tuple[CorrelatedErrorFit | None, ...] = ()

    def as_inverted(self, blocks: Sequence[ObservationBlock]) -> list[ObservationBlock]:
        """``blocks`` (those the result was computed from) with the observations the inversion saw:
        the comparison the posterior predictive is for."""
        if len(blocks) != len(self.observed):
            raise ValueError(f"{len(blocks)} blocks for a result of {len(self.observed)}")
        return [replace(block, y=np.asarray(y)) for block, y in zip(blocks, self.observed, strict=True)]

    def summary(self) -> PosteriorSummary:
        """Posterior summary in the output-table columns (emission in kg h-1, positions in m).

        ``detected``: :func:`is_detected`. The lower and upper limits are the confidence interval of a
        non-detection (NaN for a detection, whose interval is the 5th to 95th percentile).
        """
        q = quantiles(self.draws["emission_rate_kg_h"])
        lower, upper = (nan, nan)
        if self.rate_measurements:
            lower, upper = confidence_interval_kg_h(self.rate_measurements)
        x = np.ravel(self.draws["source_x_m"])
        y = np.ravel(self.draws["source_y_m"])
        return PosteriorSummary(
            emission_rate_kg_h=q.mean,
            emission_rate_kg_h_p05=q.p05,
            emission_rate_kg_h_p50=q.p50,
            emission_rate_kg_h_p95=q.p95,
            emission_rate_kg_h_sd=q.sd,
            source_x_m=float(np.mean(x)),
            source_y_m=float(np.mean(y)),
            source_location_sd_m=float(np.sqrt(0.5 * (np.var(x) + np.var(y)))),
            p_source=float(self.p_source),
            detected=is_detected(self.p_source, q.p05),
            r_hat_max=self.diagnostics.r_hat_max,
            ess_bulk_min=self.diagnostics.ess_bulk_min,
            divergences=self.diagnostics.divergences,
            converged=self.diagnostics.converged,
            method=self.method,
            instruments=self.instruments,
            emission_rate_upper_limit_kg_h=upper,
            emission_rate_lower_limit_kg_h=lower,
        )

    def rate_if_present_percentile(self, percent: float) -> float:
        """The ``percent`` percentile (kg h-1) of the rate if a source is present: the draws of
        ``emission_rate_if_present_kg_h`` weighted by ``p_source_conditional``."""
        return weighted_percentile(
            self.draws["emission_rate_if_present_kg_h"], self.draws["p_source_conditional"], percent
        )

    def to_inference_data(self, summary: PosteriorSummary | None = None):
        """ArviZ InferenceData with ``posterior``, ``sample_stats`` and ``observed_data`` groups and
        the gas, method, instruments and convergence as its attributes; ``summary``
        (:meth:`PosteriorSummary.to_attrs`) goes into the attributes of the ``posterior`` group."""
        from attribution_assets.science.arviz_import import az
        stats_names = ("diverging", "p_source_conditional", "log_bayes_factor")
        posterior = {k: v for k, v in self.draws.items() if k not in stats_names}
        stats = {k: self.draws[k] for k in stats_names if k in self.draws}
        dims = {
            "plume_origin_x_m": ["overpass"],
            "plume_origin_y_m": ["overpass"],
            "plume_bend_per_m": ["overpass"],
            "wind_u_m_s": ["overpass"],
            "wind_v_m_s": ["overpass"],
            "wind_speed_m_s": ["overpass"],
            "wind_to_direction_rad": ["overpass"],
            "stability_index": ["overpass"],
            "background": ["block"],
            "noise_inflation": ["block"],
        }
        observed = {f"y_block{i}": np.asarray(y) for i, y in enumerate(self.observed)}
        dims.update({f"y_block{i}": [f"obs_block{i}"] for i in range(len(self.observed))})
        attrs = {
            "gas": self.gas,
            "method": self.method,
            "p_source": float(self.p_source),
            "instruments": ",".join(self.instruments),
            "block_units": ",".join(self.block_units),
            "converged": int(bool(self.diagnostics.converged)),
        }
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=stats,
            observed_data=observed,
            coords={"block": [f"{i}:{name}" for i, name in enumerate(self.instruments)]},
            dims=dims,
            attrs=attrs,
        )
        for group in (idata.posterior, idata.sample_stats):
            for name, variable in group.data_vars.items():
                if name in DRAW_VARIABLES:
                    variable.attrs["units"], variable.attrs["long_name"] = DRAW_VARIABLES[name]
        for i, units in enumerate(self.block_units):
            idata.observed_data[f"y_block{i}"].attrs.update(
                units=units, long_name=f"observations of block {i} ({self.instruments[i]}) the inversion saw")
        if summary is not None:
            idata.posterior.attrs.update(summary.to_attrs())
        return idata


def presence_draws(
    phys: dict[str, np.ndarray],
    log_bf: np.ndarray,
    config: ModelConfig,
    log_prior_odds: float,
    rng: np.random.Generator,
) -> float:
    """Draw the source indicator of every draw from its conditional ``sigmoid(logit(pi) + log BF)``;
    adds ``p_source_conditional``, ``source_present`` and ``emission_rate_kg_h`` (0 where absent) to
    ``phys``; returns ``P(source | y)``, the mean of the conditional probabilities."""
    if config.presence:
        p_cond = 1.0 / (1.0 + np.exp(-np.clip(log_prior_odds + log_bf.astype(float), -700, 700)))
    else:
        p_cond = np.ones_like(log_bf, dtype=float)
    present = rng.uniform(size=p_cond.shape) < p_cond
    phys["p_source_conditional"] = p_cond
    phys["source_present"] = present.astype(np.int8)
    phys["emission_rate_kg_h"] = np.where(present, phys["emission_rate_if_present_kg_h"], 0.0)
    return float(np.mean(p_cond))


class PosteriorDraws(NamedTuple):
    """Draws of one sampled posterior: whitened ``latent`` (C, D, P), physical ``draws`` (C, D, ...),
    ``P(source | y)`` and the sampler's diagnostics."""

    latent: np.ndarray
    draws: dict[str, np.ndarray]
    p_source: float
    diagnostics: SamplerDiagnostics


def sampled_posterior(
    z: np.ndarray,
    log_bf: np.ndarray,
    diverging: np.ndarray,
    data: InversionProblem,
    config: ModelConfig,
    seed: int,
    diagnostics: SamplerDiagnostics,
) -> PosteriorDraws:
    """The posterior of sampled whitened draws ``z`` (C, D, P) with their log Bayes factors and
    divergence flags (C, D): physical draws, each draw's source indicator (``PRESENCE`` stream,
    :func:`presence_draws`) and ``P(source | y)``."""
    phys = physical_draws(z, data, config, RandomStream.FLUX_FACTOR.generator(seed))
    rng = RandomStream.PRESENCE.generator(seed)
    p_source = presence_draws(phys, log_bf, config, float(data.log_prior_odds), rng)
    phys["log_bayes_factor"] = log_bf
    phys["diverging"] = diverging
    return PosteriorDraws(z, phys, p_source, diagnostics)


def laplace_draws(
    fit: LaplaceFit, p_source: float, data: InversionProblem, config: ModelConfig, settings: InversionSettings
) -> tuple[LaplaceSummary, np.ndarray, dict[str, np.ndarray]]:
    """``settings.laplace_draws`` draws from the Laplace approximation ``fit`` (``LAPLACE_DRAWS``
    stream): their summary, the whitened draws (1, n, P) and the physical draws (1, n, ...); each
    draw's source indicator is present with probability ``p_source`` (the Laplace evidence ratio)."""
    rng = RandomStream.LAPLACE_DRAWS.generator(settings.seed)
    chol = cholesky(fit.cov)
    z = fit.mean + rng.standard_normal((settings.laplace_draws, fit.mean.size)) @ chol.T
    phys = physical_draws(z[None], data, config, RandomStream.FLUX_FACTOR.generator(settings.seed))
    present = rng.uniform(size=(1, settings.laplace_draws)) < p_source
    phys["source_present"] = present.astype(np.int8)
    phys["p_source_conditional"] = np.full(present.shape, p_source)
    phys["emission_rate_kg_h"] = np.where(present, phys["emission_rate_if_present_kg_h"], 0.0)
    q = quantiles(phys["emission_rate_kg_h"])
    summary = LaplaceSummary(
        **{f"emission_rate_kg_h_{k}": v for k, v in q._asdict().items()},
        source_x_m_mean=float(np.mean(phys["source_x_m"])),
        source_x_m_sd=float(np.std(phys["source_x_m"])),
        source_y_m_mean=float(np.mean(phys["source_y_m"])),
        source_y_m_sd=float(np.std(phys["source_y_m"])),
        p_source=float(p_source),
        unresolved_directions=fit.unresolved_directions,
    )
    return summary, z[None], phys


def posterior_predictive(
    result: InversionResult,
    blocks: Sequence[ObservationBlock],
    winds: Sequence[OverpassWind],
    n_draws: int = 64,
) -> list[dict[str, np.ndarray]]:
    """Posterior-predictive mean and sd of every observation, per block, in block units.

    For ``n_draws`` posterior draws spread evenly over the chains, the modelled observation is the
    block background plus, when the draw's source indicator is 1, the plume; ``mean`` and ``sd``
    (n_b,) summarise it over the draws (the sd is that of the expected value, without observation
    noise). ``blocks`` and ``winds`` must be those the result was computed from.
    """
    data, config = prepare(blocks, winds, result.gas, result.settings)
    flat = result.latent.reshape(-1, result.latent.shape[-1])
    picks = np.linspace(0, flat.shape[0] - 1, min(n_draws, flat.shape[0])).astype(int)
    present = np.ravel(result.draws["source_present"])[picks]
    background = np.asarray(result.draws["background"]).reshape(flat.shape[0], -1)[picks]
    samples = [np.empty((picks.size, b.size)) for b in blocks]
    for i, (z, on) in enumerate(zip(flat[picks], present, strict=True)):
        plume = predict_groups(jnp.asarray(z, jnp.float32), data, config)
        for b, block in enumerate(blocks):
            samples[b][i] = background[i, b] + on * per_observation(data.groups[b], plume[b], block.size)
    return [{"mean": x.mean(axis=0), "sd": x.std(axis=0)} for x in samples]
