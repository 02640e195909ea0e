"""Calibration of the joint inversion over simulated events (simulation-based calibration).

For each of ``--events`` simulated events (truth drawn from the prior, see
``attribution_assets.science.inversion.simulation``) the joint EMIT-like + TROPOMI-like inversion is run with
NUTS, and the script records whether the central 90 % and 50 % posterior intervals contain the true
emission rate, source position and wind speeds, and the rank of the truth among thinned posterior
draws (Talts et al. 2018: ranks are uniform for a calibrated posterior). The presence indicator is
off (every simulated event has a source), so the intervals are those of the emission rate itself.

Prints a table, writes the per-event results as JSON (``--out``) and a rank-histogram figure
(``--figure``).

``--laplace`` replaces NUTS with draws from the Laplace approximation at the MAP, and
``--fast-answer`` with the alert path's fast answer (``InversionSettings.fast_answer``: a cheaper
multi-start MAP, then Laplace draws), so their coverage is measured on the same events.

    .venv/bin/python benchmarks/validation.py [--events 100] [--chains 2] [--warmup 300] [--samples 500]
        [--laplace | --fast-answer]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from report import write_results
from scipy import stats

from attribution_assets.compilation import set_xla_flags
from attribution_assets.science import inversion
from attribution_assets.science.inversion.simulation import simulate_event

set_xla_flags()  # XLA CPU options, before the first computation
QUANTITIES = {
    "emission_rate_kg_h": lambda d: d["emission_rate_kg_h"],
    "source_x_m": lambda d: d["source_x_m"],
    "source_y_m": lambda d: d["source_y_m"],
    "wind_speed_0_m_s": lambda d: d["wind_speed_m_s"][..., 0],
    "wind_speed_1_m_s": lambda d: d["wind_speed_m_s"][..., 1],
}
TRUTH = {
    "emission_rate_kg_h": lambda t: t["emission_rate_if_present_kg_h"],
    "source_x_m": lambda t: t["source_x_m"],
    "source_y_m": lambda t: t["source_y_m"],
    "wind_speed_0_m_s": lambda t: t["wind_speed_m_s"][0],
    "wind_speed_1_m_s": lambda t: t["wind_speed_m_s"][1],
}
RANK_DRAWS = 99


def one_event(seed: int, settings: inversion.InversionSettings) -> dict[str, object]:
    event = simulate_event(np.random.default_rng([2024, seed]), settings)
    t0 = time.perf_counter()
    result = inversion.invert(event.blocks, event.winds, "CH4", settings)
    row: dict[str, object] = {"seed": seed, "seconds": time.perf_counter() - t0,
                              "r_hat_max": result.diagnostics.r_hat_max,
                              "ess_bulk_min": result.diagnostics.ess_bulk_min,
                              "divergences": int(result.diagnostics.divergences)}
    for name, draws_of in QUANTITIES.items():
        draws = np.ravel(draws_of(result.draws))
        truth = float(TRUTH[name](event.truth))
        p05, p25, p75, p95 = np.percentile(draws, [5, 25, 75, 95])
        thinned = draws[np.linspace(0, draws.size - 1, RANK_DRAWS).astype(int)]
        row[name] = {"truth": truth, "p05": float(p05), "p95": float(p95), "in90": bool(p05 <= truth <= p95),
                     "in50": bool(p25 <= truth <= p75), "rank": int(np.sum(thinned < truth))}
    return row


def coverage(rows: list[dict], name: str, key: str) -> tuple[float, float, float]:
    """Fraction of events whose interval holds the truth, with its 95 % Clopper-Pearson interval."""
    hits = sum(bool(r[name][key]) for r in rows)
    ci = stats.binomtest(hits, len(rows)).proportion_ci(0.95)
    return hits / len(rows), ci.low, ci.high


def rank_figure(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(QUANTITIES), figsize=(3.2 * len(QUANTITIES), 2.8))
    bins = 10
    for ax, name in zip(axes, QUANTITIES, strict=True):
        ranks = [r[name]["rank"] for r in rows]
        ax.hist(ranks, bins=bins, range=(0, RANK_DRAWS + 1), color="tab:blue", alpha=0.8)
        expected = len(rows) / bins
        band = stats.binom(len(rows), 1 / bins).ppf([0.005, 0.995])
        ax.axhspan(band[0], band[1], color="grey", alpha=0.25)
        ax.axhline(expected, color="k", lw=0.8)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("rank of truth")
    fig.suptitle(f"Simulation-based calibration, {len(rows)} events (grey: 99 % band for uniform ranks)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--out", default="validation.json")
    parser.add_argument("--figure", default="validation_ranks.png")
    method = parser.add_mutually_exclusive_group()
    method.add_argument("--laplace", action="store_true", help="Laplace draws at the MAP instead of NUTS")
    method.add_argument("--fast-answer", action="store_true", help="the alert path's fast answer")
    args = parser.parse_args()
    settings = inversion.InversionSettings(num_chains=args.chains, num_warmup=args.warmup,
                                           num_samples=args.samples, presence=False, escalate=False)
    if args.laplace:
        settings = replace(settings, sampler="laplace")
    elif args.fast_answer:
        settings = settings.fast_answer()
    rows = []
    start = time.perf_counter()
    for seed in range(args.events):
        rows.append(one_event(seed, settings))
        q = rows[-1]["emission_rate_kg_h"]
        print(f"event {seed + 1:3d}/{args.events}: Q truth {q['truth']:10.1f} kg/h, 90% [{q['p05']:10.1f}, "
              f"{q['p95']:10.1f}] {'in ' if q['in90'] else 'OUT'} ({rows[-1]['seconds']:.1f} s)", flush=True)
    total = time.perf_counter() - start
    print(f"\n{'quantity':<22} {'90% coverage':>14} {'(95% CI)':>16} {'50% coverage':>14}")
    summary = {}
    for name in QUANTITIES:
        c90, lo, hi = coverage(rows, name, "in90")
        c50, _, _ = coverage(rows, name, "in50")
        summary[name] = {"coverage_90": c90, "coverage_90_ci": [lo, hi], "coverage_50": c50}
        print(f"{name:<22} {c90:>14.2f} {f'[{lo:.2f}, {hi:.2f}]':>16} {c50:>14.2f}")
    r_hat = np.array([r["r_hat_max"] for r in rows])
    print(f"\n{len(rows)} events in {total:.0f} s ({total / len(rows):.1f} s per event); "
          f"R-hat max median {np.median(r_hat):.3f}, > 1.05 in {int(np.sum(r_hat > 1.05))}; "
          f"divergent transitions in {sum(r['divergences'] > 0 for r in rows)} events")
    write_results({"settings": inversion.settings_dict(settings), "summary": summary, "seconds": total,
                   "events": rows}, args.out)
    rank_figure(rows, args.figure)


if __name__ == "__main__":
    main()
