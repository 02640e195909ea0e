"""Calibration of the joint inversion on events from a different physics, per source class.

``benchmarks/validation.py`` draws its events from the inversion's own prior and plume model; here
the events come from :mod:`attribution_assets.science.validation`: Gaussian puffs advected by a
meandering, gusting wind, retrieval artefacts (albedo biases, surface clutter, footprint biases), a
met prior with its own error, sources offset from the alert, instruments passing at their own
times, and one event in three without a source. Every event is inverted with
``inversion.invert`` (presence indicator on, as in production) and the script reports per class
(none, weak, medium, strong, co2_power_plant):

- ``n``;
- **rate coverage** (sourced classes): the share of events whose true rate lies in the 90 % interval
  the posterior row reports (``attribution_assets.pipeline.posterior.rate_interval``): the 5th to 95th
  percentile of the ``emission_rate_kg_h`` draws (0 in the no-source component) for a detection,
  the Feldman-Cousins confidence interval ``[lower limit, upper limit]`` for a non-detection
  (``PosteriorSummary.emission_rate_lower_limit_kg_h`` and ``_upper_limit_kg_h``,
  :mod:`attribution_assets.science.inversion.confidence`; each row also keeps the Bayesian upper
  limit, the 90th percentile of the rate if a source is present, and the measurements the interval
  is built from); the same over the detected and the
  not-detected events apart, and, for comparison, the share inside the central 90 % of the mixture
  draws whether detected or not (where ``P(source)`` is small, its 95th percentile is a low
  percentile of the rate if present, the 72nd at ``P = 0.18``, so it cannot cover a source that is
  there);
- **position coverage** (sourced classes): the share of events whose true source lies inside the
  90 % ellipse of the position draws of the source-present component (``source_present == 1``; all
  draws when fewer than 20 are present): Mahalanobis distance squared of the truth under the draws'
  mean and covariance ``<= chi2_2(0.90) = 4.605``, the 90 % highest-density region of a Gaussian
  fit to the draws;
- both with Clopper-Pearson 95 % intervals (``scipy.stats.binomtest``);
- median ``|ln(Q_hat / Q)|`` with ``Q_hat`` the posterior median of the rate if a source is present
  (``InversionResult.rate_if_present_percentile(50)``) and the distribution-free 95 % interval of
  that median (order statistics, ``scipy.stats.quantile_test``), and the median location error (m) of the
  posterior mean position of the same draws;
- the detection rate (``summary().detected``; for "none" the false-alarm rate);
- the wall time of ``invert`` per event (median, p95, max) and the sampler diagnostics (share
  converged, max R-hat, min bulk and tail ESS over the sampled events; none for Laplace draws);
- the events whose Laplace fit at the best optimum left Hessian directions unresolved
  (``InversionResult.laplace.unresolved_directions``; the fast answer's method then says its interval
  is unreliable).

``--pool A.json B.json ...`` inverts nothing: it reads the per-event rows of earlier runs (their
settings equal but for the seed) and prints and writes the table of all of them together, the way
the README reads the targets on the three sets.

``--fresh N`` also runs the first N events (of ``--kinds``) each in a new interpreter (no compilation
cache) and reports the wall time of its first ``invert`` (compilation included) and of the whole process.
``--fast-answer`` uses the alert path's fast answer (``InversionSettings.fast_answer()``);
``--no-artefacts`` inverts the same events without retrieval artefacts; ``--kinds`` inverts only the
events of the classes it names (the set, and every event's draw, stay those of the whole set). Prints
a markdown table and writes the per-event rows and the summary as JSON (``--out``).

    .venv/bin/python benchmarks/validation_misspecified.py [--events 60] [--seed 0] [--chains 4]
        [--warmup 500] [--samples 1000] [--fast-answer] [--no-escalate] [--no-artefacts] [--fresh N]
        [--set NAME=VALUE ...] [--kinds weak strong ...] [--out validation_misspecified.json]
    .venv/bin/python benchmarks/validation_misspecified.py --pool seed1.json seed2.json seed3.json \
        [--out validation_misspecified_pooled.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from report import write_results
from scipy import stats

from attribution_assets.compilation import no_compilation_cache, set_xla_flags
from attribution_assets.pipeline.posterior import rate_interval
from attribution_assets.science import inversion
from attribution_assets.science.validation import KINDS, Scene, scene_kinds, set_scene

set_xla_flags()  # XLA CPU options, before the first computation

CHI2_2DOF_90 = float(stats.chi2.ppf(0.90, 2))
"""Squared Mahalanobis radius of the 90 % region of a 2-D Gaussian (4.605)."""
MIN_PRESENT_DRAWS = 20
FRESH_FLAG = "--fresh-child"
RUN_OUT = "validation_misspecified.json"
POOLED_OUT = "validation_misspecified_pooled.json"
POSITION_COVERAGE = (
    "truth inside the 90 % ellipse of the (x, y) draws of the source-present component: squared "
    f"Mahalanobis distance under their mean and covariance <= chi2_2(0.9) = {CHI2_2DOF_90:.3f}"
)


def settings_from(args: argparse.Namespace) -> inversion.InversionSettings:
    """The inversion settings of the command line (production defaults otherwise)."""
    settings = inversion.InversionSettings(num_chains=args.chains, num_warmup=args.warmup,
                                           num_samples=args.samples, seed=args.seed,
                                           escalate=not args.no_escalate, **overrides(args.set))
    return settings.fast_answer() if args.fast_answer else settings


def overrides(pairs: list[str]) -> dict[str, object]:
    """``InversionSettings`` fields from ``NAME=VALUE`` pairs, each value parsed as its default's type."""
    defaults = inversion.InversionSettings()
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not hasattr(defaults, name):
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE with NAME an InversionSettings field")
        kind = type(getattr(defaults, name))
        out[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def _number(value: float) -> float | None:
    """``value`` as a float, or None when it is not finite (strict JSON)."""
    return float(value) if math.isfinite(value) else None


def event_row(scene: Scene, result: inversion.InversionResult, seconds: float) -> dict[str, object]:
    """What the summary needs from one inversion (rates in kg h-1, positions in m)."""
    draws, truth, summary = result.draws, scene.truth, result.summary()
    present = np.ravel(draws["source_present"]).astype(bool)
    if present.sum() < MIN_PRESENT_DRAWS:
        present = np.ones_like(present)
    xy = np.stack([np.ravel(draws["source_x_m"])[present], np.ravel(draws["source_y_m"])[present]], axis=-1)
    p05, p95 = summary.emission_rate_kg_h_p05, summary.emission_rate_kg_h_p95
    upper_limit = summary.emission_rate_upper_limit_kg_h
    bayes_upper = result.rate_if_present_percentile(90.0)
    low, high = rate_interval(asdict(summary))
    mean = xy.mean(axis=0)
    offset = np.array([truth.source_x_m, truth.source_y_m]) - mean
    d2 = float(offset @ np.linalg.solve(np.cov(xy.T) + 1e-9 * np.eye(2), offset))
    q_hat = result.rate_if_present_percentile(50.0)
    sourced = truth.rate_kg_h > 0.0
    diag = result.diagnostics
    return {
        "index": scene.index, "kind": truth.kind, "gas": scene.gas, "instruments": list(scene.instruments),
        "truth_kg_h": truth.rate_kg_h, "truth_xy_m": [truth.source_x_m, truth.source_y_m],
        "p05_kg_h": float(p05), "p95_kg_h": float(p95), "q_hat_kg_h": q_hat,
        "p_source": float(result.p_source), "detected": bool(summary.detected),
        "upper_limit_kg_h": upper_limit,
        "lower_limit_kg_h": summary.emission_rate_lower_limit_kg_h,
        "bayes_upper_limit_kg_h": bayes_upper,
        "rate_in_bayes90": bool(truth.rate_kg_h <= bayes_upper) if sourced and not summary.detected else None,
        "rate_measurements": [[_number(m.q_hat_kg_h), _number(m.sd_kg_h)] for m in result.rate_measurements],
        "flux_log_sd": result.settings.flux_error_log_sd,
        "interval_kg_h": [float(low), float(high)],
        "rate_in90": bool(low <= truth.rate_kg_h <= high) if sourced else None,
        "rate_in_central90": bool(p05 <= truth.rate_kg_h <= p95) if sourced else None,
        "position_d2": d2 if sourced else None,
        "position_in90": bool(d2 <= CHI2_2DOF_90) if sourced else None,
        "abs_log_ratio": abs(math.log(q_hat / truth.rate_kg_h)) if sourced and q_hat > 0 else None,
        "location_error_m": float(np.hypot(*offset)) if sourced else None,
        "seconds": seconds, "converged": bool(diag.converged), "r_hat_max": _number(diag.r_hat_max),
        "ess_bulk_min": _number(diag.ess_bulk_min), "ess_tail_min": _number(diag.ess_tail_min),
        "divergences": int(diag.divergences), "sampler": diag.sampler, "escalated": bool(diag.escalated),
        "smc_temperatures": int(diag.smc_temperatures),
        "smc_posterior_moves": int(diag.smc_posterior_moves),
        "laplace_unresolved_directions": result.laplace.unresolved_directions,
    }


def run_event(args: argparse.Namespace, index: int,
              settings: inversion.InversionSettings) -> dict[str, object]:
    """Generate and invert event ``index``; its row with the wall time of ``invert`` (s)."""
    scene = set_scene(args.events, args.seed, index, artefacts=not args.no_artefacts)
    t0 = time.perf_counter()
    result = inversion.invert(scene.blocks, scene.winds, scene.gas, settings)
    return event_row(scene, result, time.perf_counter() - t0)


def proportion(flags: list[bool]) -> dict[str, float | int | None]:
    """Share of true flags with its Clopper-Pearson 95 % interval."""
    if not flags:
        return {"k": 0, "n": 0, "rate": None, "ci": None}
    k, n = int(sum(flags)), len(flags)
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return {"k": k, "n": n, "rate": k / n, "ci": [float(ci.low), float(ci.high)]}


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def median_interval(values: list) -> list[float] | None:
    """Distribution-free 95 % confidence interval of the median of ``values`` (order statistics,
    ``scipy.stats.quantile_test``); None for fewer than 2 values."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    test = stats.quantile_test(np.asarray(values, float), q=float(np.median(values)), p=0.5)
    ci = test.confidence_interval(0.95)
    return [float(ci.low), float(ci.high)]


def _unresolved_fits(rows: list[dict]) -> int | None:
    """Events whose Laplace fit left a Hessian direction unresolved; None where a row predates the count."""
    counts = [r.get("laplace_unresolved_directions") for r in rows]
    return None if None in counts else sum(c > 0 for c in counts)


def _extreme(values: list, reducer) -> float | None:
    values = [v for v in values if v is not None]
    return float(reducer(values)) if values else None


def class_summary(rows: list[dict]) -> dict[str, object]:
    """The per-class figures of the module docstring for ``rows``."""
    seconds = np.array([r["seconds"] for r in rows])
    sourced = [r for r in rows if r["truth_kg_h"] > 0.0]
    return {
        "n": len(rows),
        "rate_coverage_90": proportion([r["rate_in90"] for r in sourced]),
        "detected_rate_coverage_90": proportion([r["rate_in90"] for r in sourced if r["detected"]]),
        "upper_limit_coverage_90": proportion([r["rate_in90"] for r in sourced if not r["detected"]]),
        "central_rate_coverage_90": proportion([r["rate_in_central90"] for r in sourced]),
        "position_coverage_90": proportion([r["position_in90"] for r in sourced]),
        "median_abs_log_ratio": _median([r["abs_log_ratio"] for r in sourced]),
        "median_abs_log_ratio_ci": median_interval([r["abs_log_ratio"] for r in sourced]),
        "median_location_error_m": _median([r["location_error_m"] for r in sourced]),
        "detected": proportion([r["detected"] for r in rows]),
        "seconds": {"median": float(np.median(seconds)), "p95": float(np.percentile(seconds, 95)),
                    "max": float(seconds.max())},
        "converged": proportion([r["converged"] for r in rows if r["r_hat_max"] is not None]),
        "r_hat_max": _extreme([r["r_hat_max"] for r in rows], max),
        "ess_bulk_min": _extreme([r["ess_bulk_min"] for r in rows], min),
        "ess_tail_min": _extreme([r["ess_tail_min"] for r in rows], min),
        "laplace_unresolved": _unresolved_fits(rows),
    }


def _share(p: dict) -> str:
    if not p["n"]:
        return "—"
    return f"{p['k']}/{p['n']} = {p['rate']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]"


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _median_text(median: float | None, ci: list[float] | None) -> str:
    return _num(median, ".2f") + ("" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]")


def markdown_table(summary: dict[str, dict]) -> str:
    """The summary as a markdown table, one row per class."""
    lines = [
        "| class | n | Q 90 % coverage [95 % CI] | detected: Q 90 % coverage | not detected: Q below the "
        "90 % upper limit | Q in the central 90 % of the mixture | position 90 % coverage [95 % CI] "
        "| median abs ln(Q̂/Q) [95 % CI] "
        "| median location error (m) | detected (none: false alarms) | s per event, median / p95 / max "
        "| converged | max R̂ | min ESS bulk / tail | Laplace fits not at a resolved minimum |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        t = s["seconds"]
        lines.append(
            f"| {name} | {s['n']} | {_share(s['rate_coverage_90'])} "
            f"| {_share(s['detected_rate_coverage_90'])} | {_share(s['upper_limit_coverage_90'])} "
            f"| {_share(s['central_rate_coverage_90'])} "
            f"| {_share(s['position_coverage_90'])} "
            f"| {_median_text(s['median_abs_log_ratio'], s.get('median_abs_log_ratio_ci'))} "
            f"| {_num(s['median_location_error_m'], '.0f')} "
            f"| {_share(s['detected'])} | {t['median']:.1f} / {t['p95']:.1f} / {t['max']:.1f} "
            f"| {_share(s['converged'])} | {_num(s['r_hat_max'], '.3f')} "
            f"| {_num(s['ess_bulk_min'], '.0f')} / {_num(s['ess_tail_min'], '.0f')} "
            f"| {_num(s['laplace_unresolved'], 'd')} |"
        )
    return "\n".join(lines)


def child_argv(args: argparse.Namespace, index: int) -> list[str]:
    """The command line that inverts event ``index`` alone in a new interpreter."""
    argv = [sys.executable, os.path.abspath(__file__), FRESH_FLAG, str(index), "--events", str(args.events),
            "--seed", str(args.seed), "--chains", str(args.chains), "--warmup", str(args.warmup),
            "--samples", str(args.samples)]
    argv += [f"--set={pair}" for pair in args.set]
    flags = {"--fast-answer": args.fast_answer, "--no-escalate": args.no_escalate,
             "--no-artefacts": args.no_artefacts}
    return argv + [flag for flag, on in flags.items() if on]


def fresh_events(args: argparse.Namespace, indices: list[int]) -> list[dict[str, object]]:
    """The first ``args.fresh`` of ``indices``, each the first event of a new interpreter (cache off)."""
    env = no_compilation_cache(os.environ)
    out = []
    for count, index in enumerate(indices[: args.fresh], start=1):
        t0 = time.perf_counter()
        done = subprocess.run(child_argv(args, index), capture_output=True, text=True, env=env, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        out.append({"index": index, "kind": row["kind"], "instruments": row["instruments"],
                    "first_invert_s": row["seconds"], "process_s": time.perf_counter() - t0})
        print(f"fresh process {count}/{args.fresh} (event {index + 1}): {row['kind']:<16} "
              f"{'+'.join(row['instruments']):<20} first invert {row['seconds']:.1f} s, "
              f"process {out[-1]['process_s']:.1f} s", flush=True)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60, help="events in the validation set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation set and the inversion")
    defaults = inversion.InversionSettings()
    parser.add_argument("--chains", type=int, default=defaults.num_chains)
    parser.add_argument("--warmup", type=int, default=defaults.num_warmup)
    parser.add_argument("--samples", type=int, default=defaults.num_samples)
    parser.add_argument("--fast-answer", action="store_true", help="InversionSettings(...).fast_answer()")
    parser.add_argument("--no-escalate", action="store_true", help="keep failed NUTS draws")
    parser.add_argument("--no-artefacts", action="store_true", help="the same events without artefacts")
    parser.add_argument("--fresh", type=int, default=0, metavar="N",
                        help="also time the first event of N new interpreters (compilation included)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an InversionSettings field other than its default (repeatable)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="invert only the events of these classes (the set itself is unchanged)")
    parser.add_argument("--pool", nargs="+", metavar="JSON", default=None,
                        help="invert nothing: the table of these earlier runs' events together")
    parser.add_argument("--out", default=None,
                        help=f"results JSON (default {RUN_OUT}; with --pool, {POOLED_OUT})")
    parser.add_argument(FRESH_FLAG, type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def summarise(rows: list[dict]) -> dict[str, dict]:
    """:func:`class_summary` of each class present in ``rows``, and of all sourced events together."""
    summary = {kind: class_summary([r for r in rows if r["kind"] == kind]) for kind in KINDS
               if any(r["kind"] == kind for r in rows)}
    sourced = [r for r in rows if r["kind"] != "none"]
    if sourced:
        summary["all sourced"] = class_summary(sourced)
    return summary


def pooled(paths: list[str]) -> dict[str, object]:
    """The rows of the runs written to ``paths`` (JSON of this script) and their summary together.

    Raises ValueError naming the file: one that is not this script's JSON (with ``settings`` and an
    ``events`` list), and one whose settings differ from the first run's in anything but the seed
    (naming the settings).
    """
    runs = {}
    for path in paths:
        try:
            runs[path] = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read it as JSON ({exc})") from exc
        if not isinstance(runs[path].get("settings"), dict) or not isinstance(runs[path].get("events"), list):
            raise ValueError(f"{path}: not this script's results (no 'settings' and 'events' list)")
    first_path, first = next(iter(runs.items()))
    reference = {k: v for k, v in first["settings"].items() if k != "seed"}
    rows = []
    for path, run in runs.items():
        own = {k: v for k, v in run["settings"].items() if k != "seed"}
        differ = sorted(k for k in reference.keys() | own.keys() if reference.get(k) != own.get(k))
        if differ:
            raise ValueError(f"{path}: settings {differ} differ from those of {first_path}")
        rows += [{**row, "run": path} for row in run["events"]]
    return {"settings": reference, "runs": {p: r["args"] for p, r in runs.items()},
            "summary": summarise(rows), "events": rows}


def main() -> None:
    args = parse_args()
    if args.pool:
        out = args.out or POOLED_OUT
        if any(Path(out).resolve() == Path(path).resolve() for path in args.pool):
            raise SystemExit(f"--out {out} is one of the pooled runs; choose another file")
        try:
            results = pooled(args.pool)
        except ValueError as exc:
            raise SystemExit(f"validation_misspecified.py --pool: {exc}") from exc
        print(f"{len(results['events'])} events of {len(args.pool)} runs\n")
        print(markdown_table(results["summary"]))
        write_results(results, out)
        return
    settings = settings_from(args)
    if args.fresh_child is not None:  # one event in this new interpreter: its row as the last line
        print(json.dumps(run_event(args, args.fresh_child, settings)))
        return
    rows = []
    start = time.perf_counter()
    chosen = [i for i, (kind, _) in enumerate(scene_kinds(args.events, args.seed)) if kind in args.kinds]
    for index in chosen:
        row = run_event(args, index, settings)
        rows.append(row)
        print(f"event {index + 1:3d}/{args.events}: {row['kind']:<16} {'+'.join(row['instruments']):<20} "
              f"Q {row['truth_kg_h']:10.0f} kg/h, 90% [{row['interval_kg_h'][0]:10.0f}, "
              f"{row['interval_kg_h'][1]:10.0f}], "
              f"P(source) {row['p_source']:.2f}{' detected' if row['detected'] else ''} "
              f"({row['seconds']:.1f} s)", flush=True)
    total = time.perf_counter() - start
    summary = summarise(rows)
    fresh = fresh_events(args, chosen) if args.fresh else []
    print(f"\n{len(rows)} events in {total:.0f} s; position coverage: {POSITION_COVERAGE}\n")
    print(markdown_table(summary))
    if fresh:
        first = np.array([f["first_invert_s"] for f in fresh])
        process = np.array([f["process_s"] for f in fresh])
        print(f"\nfresh interpreter, first event (compilation included), {len(fresh)} processes: "
              f"invert median {np.median(first):.1f} s, max {first.max():.1f} s; whole process median "
              f"{np.median(process):.1f} s, max {process.max():.1f} s")
    write_results({"settings": inversion.settings_dict(settings), "args": vars(args),
                   "position_coverage": POSITION_COVERAGE, "summary": summary, "seconds": total,
                   "fresh": fresh, "events": rows}, args.out or RUN_OUT)


if __name__ == "__main__":
    main()
