"""Asset checks: is each event's data, sampler, fit and attribution good enough to go on?

Every per-event check is partitioned by detection event, so it is evaluated, shown and re-executed per
event. A *blocking* check that fails with ERROR severity stops that event's downstream assets (the
event's run fails at the check, naming it); every other event goes on. A check fails with ERROR only
where what comes after would be meaningless; where the result is usable but weaker than it should be,
it fails with WARN and the event goes on.

- ``enough_observations`` on ``plume_forward``, blocking: ERROR when no instrument has enough valid
  observations; WARN when an instrument with an overpass has too few.
- ``sampler_converged`` on ``source_posterior``, blocking: ERROR when R-hat > 1.1, ESS < 50 or more
  than 1 % of the draws diverge; WARN when only the strict targets are missed.
- ``posterior_predictive`` on ``source_posterior``, blocking: ERROR when a block's normalised residual
  RMS exceeds 4.69; WARN above 2.28.
- ``attribution_ess`` on ``source_attribution``, never blocking: WARN when the prior-correction ESS < 100.
- ``no_rejected_files`` on ``overpass_catalog`` (global), never blocking: WARN for any rejected file.

Each check reads what its asset recorded in the metadata of its latest materialisation of the
partition (the asset computes, the check judges), so a check can be re-executed alone from the UI.
The judgements (``*_verdict``) are plain functions of those values.
"""


import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    PreviewWarning,
    asset_check,
)

from attribution_assets.assets.common import ROW_COUNT, table_metadata
from attribution_assets.assets.outcomes import latest_metadata
from attribution_assets.events import parse_event_key
from attribution_assets.partitions import detection_events
from attribution_assets.pipeline.posterior import instrument_outcome
from attribution_assets.pipeline.settings import INSTRUMENT_GAS, INSTRUMENTS
from attribution_assets.resources import OutputStore
from attribution_assets.science.inversion.settings import InversionSettings

# Partitioned asset checks are a preview API of Dagster 1.13; the checks below depend on it (one
# verdict per event), so its warning at every code-location load says nothing a user can act on.
warnings.filterwarnings("ignore", "Specifying a partitions_def on an AssetCheckSpec", PreviewWarning)

MIN_VALID_OBSERVATIONS: dict[str, int] = {
    "EMIT": 250,
    "GHGSAT": 1600,
    "TROPOMI": 10,
    "OCO2": 24,
}
"""Fewest valid observations (pixels or soundings, summed over the event's granules) with which an
instrument constrains a source. Imagers: about 1 km2 around the source, the first kilometre of a
detectable plume with background beside it (EMIT 60 m pixels: 250 ≈ 0.9 km2; GHGSat 25 m pixels:
1600 = 1 km2). TROPOMI (5.5 x 7 km pixels): 10 pixels ≈ 385 km2, the one to three pixels a
tens-of-t/h plume fills and the background around them. OCO-2 (8 footprints of ≈ 1.3 x 2.3 km across
its swath): 24 soundings, three frames ≈ 7 km along track, a plume crossing with background on both
sides. The sample events hold 40 (EMIT, 10,433 pixels) down to 15 times (OCO-2, 519) these numbers."""

R_HAT_BLOCK = 1.1
"""Largest rank-normalised split R-hat (1) that does not stop the event: above it the chains sample
different regions (their between-chain variance is over a fifth of the within-chain one), so pooled
quantiles mix unconverged chains (Gelman & Rubin 1992's original threshold)."""
ESS_BLOCK = 50.0
"""Smallest bulk and tail ESS (draws) that does not stop the event: with n effective draws the 5th
percentile is the sd sqrt(0.05 x 0.95 / n) = 3.1 percentage points (at n = 50) uncertain in its
probability level, so below 50 the 90 % interval's ends are not estimated."""
DIVERGENT_FRACTION_BLOCK = 0.01
"""Largest fraction of divergent transitions (1) that does not stop the event: above 1 % the sampler
systematically fails to enter a high-curvature region, so the posterior is biased (Betancourt 2017)."""
ATTRIBUTION_ESS_WARN = 100.0
"""Smallest prior-correction ESS (draws) of the attribution without a warning: the Monte-Carlo sd of
a facility probability is at most 0.5 / sqrt(ESS), i.e. 0.05 at 100."""

_NOISE_LOG_SD = InversionSettings().noise_inflation_log_sd
PREDICTIVE_WARN_RMS = round(math.exp(1.645 * _NOISE_LOG_SD), 2)
"""RMS (1) of a block's normalised residuals ``(y - posterior predictive mean) / sigma`` above which the
check warns: the 95th percentile of the model's noise-inflation prior (log-normal, log sd 0.5: 2.28),
so the block's stated precision is worse than the model expects, or its plume is not a Gaussian plume
(a second source, a retrieval artefact); the emission rate is still fitted."""
PREDICTIVE_BLOCK_RMS = round(math.exp(3.090 * _NOISE_LOG_SD), 2)
"""RMS (1) above which the event stops: beyond the 99.9th percentile of the noise-inflation prior
(4.69), the model cannot describe the block even with its noise freedom (a unit or operator error, or
a scene that is not plume + background), so the posterior rests on a misfit. The sample events score
0.9 to 1.9."""


@dataclass(frozen=True)
class Verdict:
    """A check's judgement: ``passed``; ``blocks``: a failure stops the event (ERROR severity) rather
    than warns; ``summary``: one sentence for people; ``metadata``: the values judged."""

    passed: bool
    blocks: bool
    summary: str
    metadata: dict[str, object] = field(default_factory=dict)

    def result(self) -> AssetCheckResult:
        """The Dagster check result: ERROR severity when the failure blocks, else WARN."""
        severity = AssetCheckSeverity.ERROR if self.blocks else AssetCheckSeverity.WARN
        return AssetCheckResult(
            passed=self.passed,
            severity=severity,
            description=self.summary,
            metadata={"summary": self.summary, **self.metadata},
        )


def _number(value: object) -> float:
    """A metadata number as float (NaN for None or a missing value)."""
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]


def observations_verdict(
    gas: str, aoi_outcomes: Mapping[str, Mapping[str, str]], valid_pixels: Mapping[str, Mapping[str, int]]
) -> Verdict:
    """Enough valid observations per instrument (:data:`MIN_VALID_OBSERVATIONS`)?

    ``aoi_outcomes``: instrument -> the AOI asset's ``outcomes`` (file -> outcome); ``valid_pixels``:
    instrument -> granule -> valid observations (``plume_forward``'s ``valid_pixels``). An instrument
    without an overpass is a normal outcome. Fails blocking when no instrument of the event's gas has
    enough (the posterior would be the prior, or there is nothing to invert); warns when one with an
    overpass has too few (the inversion goes on with the others, the short one's few observations
    stay in the likelihood).
    """
    rows = []
    for name in (n for n in INSTRUMENTS if INSTRUMENT_GAS[n] == gas):
        files = {f: o for f, o in aoi_outcomes.get(name, {}).items() if f != "-"}
        counts = valid_pixels.get(name, {})
        total = sum(int(v) for v in counts.values())
        status = (
            "no overpass" if not files and not counts
            else "enough" if total >= MIN_VALID_OBSERVATIONS[name]
            else "too few"
        )
        rows.append({
            "instrument": name,
            "granules": max(len(files), len(counts)),
            "valid_observations": total,
            "minimum": MIN_VALID_OBSERVATIONS[name],
            "status": status,
            "outcome": instrument_outcome(aoi_outcomes.get(name, {}), counts),
        })
    table = pd.DataFrame(rows, columns=["instrument", "granules", "valid_observations", "minimum", "status",
                                        "outcome"])
    enough = [r["instrument"] for r in rows if r["status"] == "enough"]
    short = [f"{r['instrument']}: {r['valid_observations']} valid observations (minimum {r['minimum']})"
             for r in rows if r["status"] == "too few"]
    metadata = {"instruments": table_metadata(table), "enough": ", ".join(enough) or "none"}
    if not enough:
        reasons = "; ".join(f"{r['instrument']}: {r['outcome']}" for r in rows) or f"no instrument for {gas}"
        return Verdict(False, True, f"no instrument has enough valid observations ({reasons})", metadata)
    if short:
        return Verdict(False, False, f"{'; '.join(short)}; the inversion goes on with {', '.join(enough)}",
                       metadata)
    return Verdict(True, False, f"enough valid observations from {', '.join(enough)}", metadata)


def sampler_verdict(diagnostics: Mapping[str, object]) -> Verdict:
    """Did the sampler converge (NUTS chains, or SMC's particle populations)? ``diagnostics``:
    ``r_hat_max`` (1), ``ess_bulk_min``, ``ess_tail_min``, ``ess_target`` (draws), ``divergences``,
    ``draws`` (chains x samples) and ``converged`` (the strict targets: R-hat <= 1.01, ESS >= target,
    no divergence), as ``source_posterior`` records them.

    Fails blocking beyond :data:`R_HAT_BLOCK`, :data:`ESS_BLOCK` or :data:`DIVERGENT_FRACTION_BLOCK`;
    warns when only the strict targets are missed (the quantiles are usable, less precise). Draws from
    the Laplace approximation alone (no chains, no R-hat) warn.
    """
    r_hat = _number(diagnostics.get("r_hat_max"))
    ess = min(_number(diagnostics.get("ess_bulk_min")), _number(diagnostics.get("ess_tail_min")))
    divergences = int(diagnostics.get("divergences") or 0)
    draws = max(int(diagnostics.get("draws") or 0), 1)
    metadata = {
        "r_hat_max": r_hat, "ess_min": ess, "divergences": divergences, "draws": draws,
        "r_hat_block": R_HAT_BLOCK, "ess_block": ESS_BLOCK,
        "divergent_fraction_block": DIVERGENT_FRACTION_BLOCK,
    }
    if math.isnan(r_hat):
        return Verdict(False, False, "no MCMC chains (Laplace draws): R-hat and ESS undefined", metadata)
    gross = [
        *([f"R-hat {r_hat:.3f} > {R_HAT_BLOCK}"] if r_hat > R_HAT_BLOCK else []),
        *([f"ESS {ess:.0f} < {ESS_BLOCK:.0f}"] if not ess >= ESS_BLOCK else []),
        *([f"{divergences} of {draws} draws divergent (> {DIVERGENT_FRACTION_BLOCK:.0%})"]
          if divergences > DIVERGENT_FRACTION_BLOCK * draws else []),
    ]
    if gross:
        return Verdict(False, True, f"sampler did not converge: {', '.join(gross)}", metadata)
    if not diagnostics.get("converged"):
        target = _number(diagnostics.get("ess_target"))
        return Verdict(False, False, f"short of the targets (R-hat {r_hat:.3f} vs 1.01, ESS {ess:.0f} vs "
                       f"{target:.0f}, {divergences} divergences vs 0); quantiles less precise", metadata)
    return Verdict(True, False, f"converged: R-hat {r_hat:.3f}, ESS {ess:.0f}, no divergence", metadata)


def predictive_verdict(rms: Mapping[str, float]) -> Verdict:
    """Does the posterior predictive reproduce every block? ``rms``: block name -> RMS (1) of
    ``(observed - posterior predictive mean) / sigma``. Fails blocking above
    :data:`PREDICTIVE_BLOCK_RMS`, warns above :data:`PREDICTIVE_WARN_RMS`."""
    table = pd.DataFrame({"block": list(rms), "residual_rms_sigma": [float(v) for v in rms.values()]})
    metadata = {"blocks": table_metadata(table, 2), "warn_above_rms": PREDICTIVE_WARN_RMS,
                "block_above_rms": PREDICTIVE_BLOCK_RMS}
    if not rms:
        return Verdict(False, True, "no observation block to compare with the posterior predictive", metadata)
    bad = {b: v for b, v in rms.items() if not v <= PREDICTIVE_BLOCK_RMS}
    poor = {b: v for b, v in rms.items() if not v <= PREDICTIVE_WARN_RMS}
    listed = ", ".join(f"{b} {v:.2f}" for b, v in (bad or poor).items())
    if bad:
        return Verdict(False, True, f"posterior predictive misses the data: residual RMS {listed} "
                       f"(sigma) > {PREDICTIVE_BLOCK_RMS}", metadata)
    if poor:
        return Verdict(False, False, f"posterior predictive fits poorly: residual RMS {listed} (sigma) > "
                       f"{PREDICTIVE_WARN_RMS}", metadata)
    worst = max(rms.values())
    return Verdict(True, False, f"every block within {worst:.2f} sigma RMS of the posterior predictive",
                   metadata)


def attribution_verdict(attribution: Mapping[str, object]) -> Verdict:
    """Are the facility probabilities more than Monte-Carlo noise? ``attribution``: ``source_attribution``'s
    metadata (``attribution_ess`` in draws, ``candidates``). Warns below :data:`ATTRIBUTION_ESS_WARN`;
    never blocks: the emission posterior downstream does not depend on it and the row records the
    probabilities whatever their precision."""
    ess = _number(attribution.get("attribution_ess"))
    candidates = int(attribution.get("candidates") or 0)
    metadata = {"attribution_ess": ess, "candidates": candidates, "warn_below": ATTRIBUTION_ESS_WARN}
    if math.isnan(ess):
        return Verdict(True, False, "no posterior draw has a source: nothing attributed", metadata)
    if candidates == 0:
        return Verdict(True, False, "no inventory facility in the AOI: the source is unlisted", metadata)
    if ess < ATTRIBUTION_ESS_WARN:
        return Verdict(False, False, f"attribution ESS {ess:.0f} < {ATTRIBUTION_ESS_WARN:.0f}: facility "
                       f"probabilities uncertain by up to {0.5 / math.sqrt(max(ess, 1.0)):.2f}", metadata)
    return Verdict(True, False, f"attribution ESS {ess:.0f}: facility probabilities within "
                   f"{0.5 / math.sqrt(ess):.2f}", metadata)


def rejected_verdict(rejected: pd.DataFrame) -> Verdict:
    """Were product files rejected by the crawl (``rejected_files.csv``: path, reason)? Warns; never
    blocks: one bad file must not stop the catalog, and each event records what became of its own
    files in ``instrument_outcomes``."""
    metadata = {"rejected_files": table_metadata(rejected), ROW_COUNT: len(rejected)}
    if rejected.empty:
        return Verdict(True, False, "every product file in the archive could be read", metadata)
    return Verdict(False, False, f"{len(rejected)} product file(s) rejected; see the reasons", metadata)


def _latest(context: AssetCheckExecutionContext, asset: str) -> dict[str, object]:
    return latest_metadata(context, asset, context.partition_key)


@asset_check(
    asset="plume_forward",
    partitions_def=detection_events,
    blocking=True,
    description="Enough valid observations per instrument (EMIT 250 pixels, GHGSat 1600 pixels, TROPOMI "
    "10 pixels, OCO-2 24 soundings: about 1 km2 around the source for the imagers, a plume with "
    "background around it for TROPOMI and OCO-2). Blocking: with no instrument above its minimum the "
    "posterior would be the prior (or there is nothing to invert), so the event stops here. An "
    "instrument with an overpass but too few (an all-NaN or cloudy AOI) warns and the event goes on.",
)
def enough_observations(context: AssetCheckExecutionContext) -> AssetCheckResult:
    key = context.partition_key
    aoi = {name: dict(_latest(context, f"{name.lower()}_aoi").get("outcomes") or {}) for name in INSTRUMENTS}
    valid = dict(_latest(context, "plume_forward").get("valid_pixels") or {})
    return observations_verdict(parse_event_key(key).gas, aoi, valid).result()


@asset_check(
    asset="source_posterior",
    partitions_def=detection_events,
    blocking=True,
    description="The sampler converged (NUTS chains or SMC particle populations). Blocking when "
    "grossly unconverged (rank-normalised R-hat > 1.1: the chains disagree; bulk or tail ESS < 50: "
    "the 90 % interval's ends are not estimated; over 1 % divergent draws: the posterior is biased), "
    "since the rate, interval and attribution would be meaningless. Warns when only the strict "
    "targets (R-hat <= 1.01, ESS >= 400 or a quarter of the draws, no divergence) are missed: "
    "the quantiles are usable, less precise.",
)
def sampler_converged(context: AssetCheckExecutionContext) -> AssetCheckResult:
    return sampler_verdict(_latest(context, "source_posterior")).result()


@asset_check(
    asset="source_posterior",
    partitions_def=detection_events,
    blocking=True,
    description=f"The posterior predictive reproduces every observation block: RMS of (observed - "
    f"predictive mean) / sigma. Blocking above {PREDICTIVE_BLOCK_RMS} (beyond the 99.9th percentile of "
    f"the model's noise-inflation prior: no plume + background describes the block, the posterior "
    f"rests on a misfit); warns above {PREDICTIVE_WARN_RMS} (its 95th percentile).",
)
def posterior_predictive(context: AssetCheckExecutionContext) -> AssetCheckResult:
    rms = _latest(context, "source_posterior").get("predictive_rms") or {}
    return predictive_verdict({str(k): float(v) for k, v in dict(rms).items()}).result()


@asset_check(
    asset="source_attribution",
    partitions_def=detection_events,
    blocking=False,
    description="The facility probabilities are more than Monte-Carlo noise: effective sample size of the "
    "prior-correction weights >= 100 (probabilities within 0.05). Warns only: the emission posterior "
    "does not depend on the attribution, and the row keeps the probabilities.",
)
def attribution_ess(context: AssetCheckExecutionContext) -> AssetCheckResult:
    return attribution_verdict(_latest(context, "source_attribution")).result()


@asset_check(
    asset="overpass_catalog",
    blocking=False,
    description="Every product file in the archive could be read. Warns only: one bad file must not stop "
    "the catalog or any event; each event records its own files' fate in instrument_outcomes.",
)
def no_rejected_files(store: OutputStore) -> AssetCheckResult:
    rejected = pd.read_csv(store.rejected_path) if store.rejected_path.exists() else pd.DataFrame()
    return rejected_verdict(rejected).result()


EVENT_CHECKS = [enough_observations, sampler_converged, posterior_predictive, attribution_ess]
"""The per-event checks (partitioned by detection event)."""
ALL_CHECKS = [*EVENT_CHECKS, no_rejected_files]
"""Every asset check of the code location."""
