"""Settings of one inversion: the one definition of the sampler, optimiser and prior settings.

The Dagster resource (:class:`attribution_assets.resources.AnalysisSettings`) and the command line
(:mod:`attribution_assets.cli`) take their defaults and help texts from here. This module imports
nothing heavy, so reading the settings does not load JAX.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, get_args

Sampler = Literal["auto", "nuts", "smc", "laplace"]
"""``"auto"``: NUTS when the Laplace fits say the posterior is one mode of a source that is present,
SMC otherwise (see :func:`~attribution_assets.science.inversion.api.invert`); ``"nuts"``: NUTS;
``"smc"``: adaptive tempered SMC; ``"laplace"``: draws from the Laplace approximation only."""
QPrior = Literal["lognormal", "normal"]
"""Family of the emission-rate prior."""
DEFAULT_Q_MEDIAN_KG_H = {"CH4": 1000.0, "CO2": 1.0e6}
"""Median of the emission-rate prior per gas, kg h-1 (``InversionSettings.q_median_kg_h`` overrides)."""
PotentialKind = Literal["model", "present", "absent"]
"""Density of a potential: ``"model"`` (the presence mixture when presence is on), ``"present"``
(source always present) or ``"absent"`` (no source)."""


def _setting(default: Any, help: str) -> Any:
    """A settings field with its default and a one-line help text (for the resource and the CLI)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class InversionSettings:
    """Sampler, optimiser and prior settings of :func:`~attribution_assets.science.inversion.invert`
    (all frozen, hashable).

    Emission prior: ``q_prior`` "lognormal" (median ``q_median_kg_h``, default per gas, and natural-log
    sd ``q_log_sd``) or "normal" (``q_mean_kg_h``, ``q_sd_kg_h``). ``presence=False`` makes the
    source always present (no mixture). ``fix_*`` pin wind (to the met prior), position (to
    ``position_prior_xy_m``), stability (to the met prior) or noise inflation (to 1); with all four
    fixed and a Normal ``Q`` prior the model is linear-Gaussian in ``Q`` and the backgrounds.
    Model error of a steady plume (what a snapshot of a real plume sees and an hourly met analysis does
    not; :mod:`~attribution_assets.science.inversion.model`): ``speed_turbulence_log_sd`` 0.2 (gusts:
    surface-layer turbulence intensity sigma_u / U of 0.1-0.3, averaged over the minutes a plume takes
    to cross a scene), ``direction_meander_deg`` 15 (lateral wind-direction fluctuations sigma-theta of
    7.5-22.5 degrees in Pasquill classes D to A; US EPA 2000, EPA-454/R-99-005, the sigma-theta method)
    and ``origin_jitter_m`` 8 (a straight plume fitted to a meandering one starts beside the source: an
    eighth of an EMIT and a third of a GHGSat pixel). On 120 events of the misspecified validation set
    (``benchmarks/validation_misspecified.py --events 120 --seed 1``) an origin jitter, together with
    the structured-error mask of bright plume pixels, took the position coverage of 90 % intervals from
    88 % with the two wind terms alone to 96-97 % (sources above 2 t/h: 11 of 19 to 17-18 of 19), with
    no false alarm in 42 events without a source. Its size is the location error of the detected strong
    sources, whose position sd it sets (their plumes pin the apparent origin): with the bend below, the
    90th percentile of their error was 17.6 m (44 sources, ``--events 300 --seed 2``) and 15.8 m (16,
    seed 1), the 90 % radius (2.15 sd) of a 2-D Gaussian of sd 8 m. Their squared Mahalanobis distances
    scale as ``1 / jitter^2``: with the bend and 12 m all 44 of seed 2 lay inside their ellipses (median
    0.39, against 1.39 when calibrated), with 9 m all 44 (0.51), with 6 m 32 (1.16). Before the bend it
    was 12 m, sized on the 25 m 90th percentile of the medium and strong sources' error.
    ``plume_turn_deg`` 15 (fine imagers only): a snapshot's centre line turns with the wind while its
    puffs travel, so the plume an imager sees is bent, and a straight plume fitted to it starts downwind
    of the source (a weak detection of the misspecified set, 171 kg/h seen by GHGSat, was placed 150 m
    downwind with a 90 % ellipse of 40 m). Each such overpass's bend has the prior sd ``plume_turn_deg``
    over half its scene's diagonal (:func:`~attribution_assets.science.inversion.problem.bend_sd_per_m`:
    10 degrees per km for EMIT's 2.2 km scenes, 21 for GHGSat's 1 km). Its size is the bends that the
    noise-free plumes of the misspecified set's EMIT and GHGSat overpasses (seed 2, 34 medium and strong
    EMIT and 40 GHGSat overpasses, fitted by least squares at the true source, speed and stability) ask
    for: a median turn of 9-10 degrees over half an EMIT scene and 12-13 degrees over half a GHGSat
    scene, the medians of normals of sd 14-15 and 17-19 degrees. The bent fits left a median 4-8 % less
    misfit than the best straight plume (up to half). All four at 0 give the model without them.
    ``flux_error_log_sd`` 0.2 (log-normal emission prior only): the plumes carry the source rate times
    one log-normal flux factor per event (a snapshot of an unsteady plume holds more or less than the
    mean rate's mass; single-overpass rate errors of 15-65 % from plume variability and wind, Varon et
    al. 2018, AMT 11, 5673). The data see only the plumes' rate, so the model samples that rate (prior
    log-sd ``hypot(q_log_sd, flux_error_log_sd)``) and draws the source rate from its exact conditional
    given it (:func:`~attribution_assets.science.inversion.model.source_rate_kg_h`). Without it, on the
    same 120 events, ``ln Q`` of the 34 detected sources lay 0.50 (rms) from the posterior centre
    against a posterior sd of 0.33 (rms), asking for 0.37 more in quadrature (0.20 over the 23 with
    several overpasses); with it the rate coverage of the sourced events went from 86 to 91 % (medium 85
    to 90, strong 74 to 79, CO2 84 to 95 %), with no false alarm and position coverage unchanged (97 %).
    0.37 gave medium 100, strong 84 and CO2 89 %. That was 0.3, sized on the model of the time. With the
    later terms and MAP search (2026-12-06), the 225 detections of three sets (seeds 1, 2 and 3,
    720 events) lay 0.40 (rms) from their posterior median against a posterior sd of 0.47 (rms), and
    the z-scores of their true ``ln Q`` had an sd of 0.64-0.73 per class: 0.3 made their intervals 1.4
    times too wide. Without the factor's share (0.09 of the variance) they ask for 0.15 in
    quadrature (seeds 1 and 2 alone 0.24; seed 3 none; single-overpass detections 0.25, several
    overpasses 0.09), hence 0.2. 0 gives the model without it.
    ``sampler``: see :data:`Sampler` ("auto" by default); ``escalate``: sample with SMC when the NUTS
    diagnostics fail or its warm-up saturates its trees. ``smc_*``: the SMC settings
    (:mod:`~attribution_assets.science.inversion.smc`).
    Chains run in parallel threads (one per CPU core) through one compiled NUTS program per problem
    shape (on CPU, batching chains makes every chain wait for the longest trajectory, and chains on
    separate devices recompile on every run). :func:`setting_help` gives each field's help text.
    """

    num_chains: int = _setting(4, "NUTS chains; SMC's independent particle populations")
    num_warmup: int = _setting(500, "NUTS warm-up iterations per chain")
    num_samples: int = _setting(1000, "NUTS draws per chain (with the chains, both samplers' ESS target)")
    target_accept: float = _setting(0.9, "NUTS target acceptance probability")
    max_tree_depth: int = _setting(8, "NUTS maximum tree depth")
    seed: int = _setting(0, "random seed (the same seed gives the same draws)")
    sampler: Sampler = _setting("auto", "'auto' (NUTS or SMC by the Laplace fits), 'nuts', 'smc', 'laplace'")
    escalate: bool = _setting(True, "sample with SMC when NUTS fails its diagnostics or saturates its trees")
    nuts_log_odds: float = _setting(10.0, "'auto': Laplace log-odds of a source above which NUTS samples")
    nuts_mode_gap: float = _setting(10.0, "'auto': SMC when another optimum's Laplace evidence is this close")
    map_steps: int = _setting(300, "L-BFGS iterations at most of each polished MAP start")
    map_screen_steps: int = _setting(40, "L-BFGS iterations of every MAP start before polishing")
    map_keep: int = _setting(6, "MAP starts polished to convergence, at most")
    map_keep_within: float = _setting(100.0, "polish starts within this potential of the best")
    map_position_grid: int = _setting(13, "grid points per axis of the MAP start-position search")
    map_position_extent_sd: float = _setting(2.0, "half-width of the start-position search, prior sd")
    map_starts_per_direction: int = _setting(2, "MAP starts per wind rotation")
    laplace_draws: int = _setting(2000, "draws from the Laplace approximation")
    smc_particles: int = _setting(1024, "SMC particles in all (num_chains populations)")
    smc_ess_fraction: float = _setting(0.5, "SMC: effective sample size kept at each temperature, share")
    smc_moves: int = _setting(3, "SMC: Metropolis-Hastings move pairs per temperature")
    smc_final_moves: int = _setting(200, "SMC: move pairs at most at the posterior (until converged)")
    smc_max_temperatures: int = _setting(
        100, "SMC: tempering steps at most; the last goes straight to the posterior (bounded time)")
    q_prior: QPrior = _setting("lognormal", "emission-rate prior family, 'lognormal' or 'normal'")
    q_median_kg_h: float | None = _setting(None, "median of the emission prior, kg h-1 (default per gas)")
    q_log_sd: float = _setting(2.0, "natural-log sd of the log-normal emission prior")
    q_mean_kg_h: float | None = _setting(None, "mean of the Normal emission prior, kg h-1")
    q_sd_kg_h: float | None = _setting(None, "sd of the Normal emission prior, kg h-1")
    position_prior_xy_m: tuple[float, float] = _setting((0.0, 0.0), "source position prior centre, local m")
    position_sd_m: float = _setting(300.0, "source position prior sd, m")
    origin_jitter_m: float = _setting(
        8.0, "sd per axis of each overpass's apparent plume origin about the source (meander), m")
    plume_turn_deg: float = _setting(
        15.0, "sd of a fine imager's plume centre line's turn over half its scene (meander), deg")
    flux_error_log_sd: float = _setting(
        0.2, "natural-log sd of the plumes' rate about the source rate (unsteady plume), per event")
    stability_sd: float = _setting(1.0, "stability prior sd, classes")
    speed_turbulence_log_sd: float = _setting(
        0.2, "natural-log sd of a snapshot's transport speed about the met speed (gusts), in quadrature")
    direction_meander_deg: float = _setting(
        15.0, "sd of a snapshot's plume direction about the met direction (meander), deg, in quadrature")
    background_sd_factor: float = _setting(10.0, "background prior sd over the robust spread of a block")
    noise_inflation_log_sd: float = _setting(0.5, "natural-log sd of the noise-inflation prior")
    prior_p_source: float = _setting(0.5, "prior probability that a source is present")
    presence: bool = _setting(True, "marginalise a source-present indicator (False: always present)")
    fix_wind: bool = _setting(False, "pin the wind to the met prior")
    fix_position: bool = _setting(False, "pin the source position to position_prior_xy_m")
    fix_stability: bool = _setting(False, "pin the stability to the met prior")
    fix_noise_inflation: bool = _setting(False, "pin the noise inflation to 1")
    urban: bool = _setting(False, "Briggs urban dispersion curves instead of open-country")
    structured_error: bool = _setting(True, "temper blocks whose residuals look like plumes")
    albedo_regression: bool = _setting(
        True, "remove a linear albedo artefact from blocks that report a surface albedo")
    correlated_error: bool = _setting(
        True, "fit a correlated error field to imager blocks and use it in the likelihood")

    def __post_init__(self) -> None:
        if self.sampler not in get_args(Sampler):
            raise ValueError(f"sampler must be one of {get_args(Sampler)}, got {self.sampler!r}")
        if self.q_prior not in get_args(QPrior):
            raise ValueError(f"q_prior must be 'lognormal' or 'normal', got {self.q_prior!r}")
        for name, minimum in MINIMUM_COUNTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name in ("target_accept", "prior_p_source"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {getattr(self, name)!r}")

    def fast_answer(self) -> InversionSettings:
        """These settings for the fast first answer of the alert path: draws from the Laplace
        approximation (no NUTS), after a cheaper multi-start MAP (:data:`FAST_ANSWER_MAP`). Priors,
        seed and everything else are unchanged. Its coverage is in
        ``benchmarks/validation_misspecified.py --fast-answer`` and ``benchmarks/validation.py
        --fast-answer``, its time in ``benchmarks/bench_inversion.py``."""
        return replace(self, sampler="laplace", **FAST_ANSWER_MAP)


MINIMUM_COUNTS = {
    "num_chains": 1, "num_warmup": 0, "num_samples": 1, "max_tree_depth": 1, "map_steps": 1,
    "map_screen_steps": 1, "map_keep": 1, "map_position_grid": 1, "map_starts_per_direction": 1,
    "laplace_draws": 1, "smc_particles": 1, "smc_moves": 1, "smc_final_moves": 0, "smc_max_temperatures": 1,
}
"""The smallest value of each count setting: a run with no chain or no draw failed deep inside the sampler
(``IndexError``) after its event's other stages had run."""


FAST_ANSWER_MAP = {"map_starts_per_direction": 1, "map_position_grid": 7, "map_screen_steps": 20}
"""The multi-start MAP of the fast answer (:meth:`InversionSettings.fast_answer`): the best start
position per wind rotation on a grid of 7 x 7 over +-2 prior sd (0.67 sd apart) instead of the two
best of 13 x 13, each screened for 20 L-BFGS iterations instead of 40. For the three-instrument event
of ``benchmarks/bench_inversion.py`` on 2 cores (2026-12-06, same process): 1.79 s warm median
against 2.44 s with 20 screening iterations on the 9 x 9 grid and 3.03 s with 40 on it, with the
same answer."""


SAMPLER_SETTINGS = ("sampler", "num_chains", "num_warmup", "num_samples", "seed", "escalate")
"""The settings a deployment chooses: the fields of the Dagster resource
(:class:`attribution_assets.resources.AnalysisSettings`) and the sampler options of the command line;
the others keep their defaults."""


def setting_help(name: str) -> str:
    """The one-line help text of the :class:`InversionSettings` field ``name``."""
    for f in fields(InversionSettings):
        if f.name == name:
            return f.metadata["help"]
    raise KeyError(f"InversionSettings has no field {name!r}")


def settings_dict(settings: InversionSettings) -> dict[str, Any]:
    """The settings as a plain dict (for provenance)."""
    return asdict(settings)
