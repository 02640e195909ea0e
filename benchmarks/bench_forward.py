"""Forward model and gradient cost for a three-instrument event, and compilation per process.

Builds observation blocks through the real block builders from carrier datasets of the documented
sizes: EMIT 100 x 100 (60 m matched-filter grid), GHGSat 240 x 240 (25 m), TROPOMI 20 x 20 pixels
with a 12-layer averaging kernel (4 x 4 quadrature points per pixel), one overpass each. Then times,
after compilation:

- the forward model (:func:`inversion.predict_groups`): modelled enhancement of every observation;
- the forward model with its reverse-mode gradient, ``d(c . F(z)) / dz`` for a random cotangent
  ``c`` (the gradient of the forward model alone);
- the potential energy (negative log posterior: plume, likelihood and priors,
  :func:`inversion.potential`) and its value and gradient with respect to every parameter
  (:func:`inversion.potential_and_gradient`, what MAP and NUTS evaluate);
- the asset-level Jacobian (:func:`operators.jacobian`, unit-rate simulation per block).

Each gradient is timed alternately with the function it differentiates, and the ratios reported are
medians of the per-pair ratios, so that a change in clock speed or load during the run does not
bias them.

A second event with different block sizes (EMIT 96 x 104, GHGSat 236 x 244, TROPOMI 19 x 21) is then
run through the same functions; the number of compiled executables before and after shows whether
it compiled again.

    .venv/bin/python benchmarks/bench_forward.py [--repeats 200] [--out forward.json]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from report import write_results

from attribution_assets.compilation import set_xla_flags
from attribution_assets.science import inversion
from attribution_assets.science.forward import operators
from attribution_assets.science.forward.emit import emit_block
from attribution_assets.science.forward.ghgsat import ghgsat_block
from attribution_assets.science.forward.tropomi import tropomi_block
from attribution_assets.science.geometry import LocalFrame
from attribution_assets.science.met.wind import OverpassWind
from attribution_assets.science.units import METRES_PER_DEG_LAT

set_xla_flags()  # XLA CPU options, before the first computation

FRAME = LocalFrame(-103.61, 31.9095)


def _lat_lon_axes(n_y: int, n_x: int, pitch_m: float) -> tuple[np.ndarray, np.ndarray]:
    lat = FRAME.lat0_deg + (np.arange(n_y) - n_y / 2) * pitch_m / METRES_PER_DEG_LAT
    lon = FRAME.lon0_deg + (np.arange(n_x) - n_x / 2) * pitch_m / (
        METRES_PER_DEG_LAT * np.cos(np.radians(FRAME.lat0_deg))
    )
    return lat, lon


def emit_carrier(n_y: int, n_x: int, rng: np.random.Generator) -> xr.Dataset:
    lat, lon = _lat_lon_axes(n_y, n_x, 60.0)
    return xr.Dataset(
        {
            "ch4_enhancement_ppm_m": (("y", "x"), rng.normal(0.0, 400.0, (n_y, n_x))),
            "ch4_enhancement_sd_ppm_m": (("y", "x"), np.full((n_y, n_x), 400.0)),
            "valid": (("y", "x"), np.ones((n_y, n_x), bool)),
        },
        coords={"lat": ("y", lat), "lon": ("x", lon)},
    )


def ghgsat_carrier(n_y: int, n_x: int, rng: np.random.Generator) -> xr.Dataset:
    lat, lon = _lat_lon_axes(n_y, n_x, 25.0)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    return xr.Dataset(
        {
            "xch4": (("y", "x"), 1900.0 + rng.normal(0.0, 15.0, (n_y, n_x))),
            "xch4_precision": (("y", "x"), np.full((n_y, n_x), 15.0)),
            "quality_flag": (("y", "x"), np.zeros((n_y, n_x), np.int8)),
            "latitude": (("y", "x"), lat2),
            "longitude": (("y", "x"), lon2),
        }
    )


def tropomi_carrier(n_y: int, n_x: int, rng: np.random.Generator, layers: int = 12) -> xr.Dataset:
    lat, lon = _lat_lon_axes(n_y, n_x, 5500.0)
    dlat, dlon = lat[1] - lat[0], lon[1] - lon[0]
    lat2, lon2 = (a.ravel() for a in np.meshgrid(lat, lon, indexing="ij"))
    n = lat2.size
    corner_lat = lat2[:, None] + 0.5 * dlat * np.array([-1, -1, 1, 1])[None, :]
    corner_lon = lon2[:, None] + 0.5 * dlon * np.array([-1, 1, 1, -1])[None, :]
    return xr.Dataset(
        {
            "xch4": ("pixel", 1880.0 + rng.normal(0.0, 10.0, n)),
            "xch4_precision": ("pixel", np.full(n, 10.0)),
            "latitude": ("pixel", lat2),
            "longitude": ("pixel", lon2),
            "latitude_bounds": (("pixel", "corner"), corner_lat),
            "longitude_bounds": (("pixel", "corner"), corner_lon),
            "column_averaging_kernel": (
                ("pixel", "layer"),
                np.linspace(0.7, 1.1, layers)[None, :].repeat(n, 0),
            ),
            "dry_air_subcolumns": (("pixel", "layer"), np.full((n, layers), 2.8e4 / layers)),
            "surface_pressure": ("pixel", np.full(n, 91_000.0)),
            "pressure_interval": ("pixel", np.full(n, 91_000.0 / layers)),
        }
    )


def event_blocks(emit: tuple[int, int], ghgsat: tuple[int, int], tropomi: tuple[int, int], seed: int):
    rng = np.random.default_rng(seed)
    return [
        emit_block(emit_carrier(*emit, rng), FRAME, overpass=0),
        ghgsat_block(ghgsat_carrier(*ghgsat, rng), FRAME, overpass=1, surface_pressure_pa=91_000.0),
        tropomi_block(tropomi_carrier(*tropomi, rng), FRAME, overpass=2, pblh_m=1500.0),
    ]


WINDS = [
    OverpassWind(
        time=datetime(2025, 8, 14, 17),
        u_m_s=u,
        v_m_s=v,
        speed_sd_m_s=1.5,
        direction_sd_rad=0.3,
        stability_index=1.5,
        pblh_m=1500.0,
        surface_pressure_pa=91_000.0,
        source="ERA5",
    )
    for u, v in ((2.2, 3.7), (2.4, 3.4), (1.5, 4.5))
]


def _percentiles(times_s) -> dict[str, float]:
    """Median and 10th percentile (ms) of wall times in seconds."""
    return {"p50_ms": 1e3 * float(np.median(times_s)), "p10_ms": 1e3 * float(np.percentile(times_s, 10))}


def _time(fn, repeats: int) -> dict[str, float]:
    """Median and 10th percentile wall time (ms) of ``fn`` over ``repeats`` calls, results awaited."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return _percentiles(times)


def _paired(reference, fn, repeats: int) -> tuple[dict[str, float], dict[str, float], float]:
    """Timings of ``reference`` and ``fn`` called alternately, and the median of their per-pair
    ratios ``fn / reference``: drifts in clock speed or load hit both sides of every pair alike."""
    times = np.empty((repeats, 2))
    for i in range(repeats):
        for j, f in enumerate((reference, fn)):
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            times[i, j] = time.perf_counter() - t0
    return _percentiles(times[:, 0]), _percentiles(times[:, 1]), float(np.median(times[:, 1] / times[:, 0]))


def _executables() -> int:
    """Compiled executables held by the forward, gradient and Jacobian functions."""
    return sum(
        f._cache_size()
        for f in (
            inversion.predict_groups,
            _forward_and_vjp,
            inversion.potential_and_gradient,
            operators._predict_block_jit,
        )
    )


@partial(jax.jit, static_argnames="config")
def _forward_and_vjp(z, cotangent, data, config):
    """The forward model and its reverse-mode gradient ``d(c . F(z)) / dz`` for a cotangent ``c``: the
    gradient of the forward model, without the likelihood around it."""
    predicted, pullback = jax.vjp(lambda x: inversion.predict_groups(x, data, config), z)
    return predicted, pullback(cotangent)[0]


def run_event(blocks, repeats: int) -> dict[str, object]:
    settings = inversion.InversionSettings()
    data, config = inversion.prepare(blocks, WINDS, "CH4", settings)
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(0.0, 0.3, config.dim), jnp.float32)
    out: dict[str, object] = {
        "observations": {b.instrument: b.size for b in blocks},
        "quadrature_points": int(sum(b.size * b.weights.shape[1] for b in blocks)),
        "padded_rows": [int(g.qr.shape[0]) for g in data.groups],
    }
    before = _executables()
    t0 = time.perf_counter()
    jax.block_until_ready(inversion.predict_groups(z, data, config))
    out["forward_first_call_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(inversion.potential_and_gradient(z, data, config))
    out["gradient_first_call_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for block, wind in zip(blocks, WINDS, strict=True):
        operators.jacobian(block, np.zeros(2), wind)
    out["jacobian_first_call_s"] = time.perf_counter() - t0
    out["new_executables"] = _executables() - before
    forward = partial(inversion.predict_groups, z, data, config)
    cotangent = tuple(jnp.asarray(rng.standard_normal(g.qr.shape), jnp.float32) for g in data.groups)
    jax.block_until_ready(_forward_and_vjp(z, cotangent, data, config))
    out["forward"], out["forward_and_vjp"], out["vjp_over_forward"] = _paired(
        forward, partial(_forward_and_vjp, z, cotangent, data, config), repeats
    )
    out["potential"], out["forward_and_gradient"], out["gradient_over_potential"] = _paired(
        partial(inversion.potential, z, data, config, "model"),
        partial(inversion.potential_and_gradient, z, data, config),
        repeats,
    )
    _, _, out["gradient_over_forward"] = _paired(
        forward, partial(inversion.potential_and_gradient, z, data, config), repeats
    )
    out["jacobian_3_blocks"] = _time(
        lambda: [operators.jacobian(b, np.zeros(2), w) for b, w in zip(blocks, WINDS, strict=True)],
        max(10, repeats // 10),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", help="write results as JSON here (default: stdout)")
    args = parser.parse_args()
    first = run_event(event_blocks((100, 100), (240, 240), (20, 20), seed=0), args.repeats)
    second = run_event(event_blocks((96, 104), (236, 244), (19, 21), seed=1), args.repeats)
    results = {"event_1": first, "event_2": second}
    def row(label: str, fmt: str, *path: str) -> tuple[str, str, str]:
        values = []
        for event in (first, second):
            value = event
            for key in path:
                value = value[key]
            values.append(format(value, fmt))
        return (label, *values)

    rows = [
        (
            "observations (EMIT, GHGSat, TROPOMI)",
            *(", ".join(map(str, e["observations"].values())) for e in (first, second)),
        ),
        row("quadrature points", "d", "quadrature_points"),
        row("first forward call (s, incl. compile)", ".3f", "forward_first_call_s"),
        row("first gradient call (s, incl. compile)", ".3f", "gradient_first_call_s"),
        row("new compiled executables", "d", "new_executables"),
        row("forward p50 (ms)", ".2f", "forward", "p50_ms"),
        row("forward + VJP (d c.F / dz) p50 (ms)", ".2f", "forward_and_vjp", "p50_ms"),
        row("forward + VJP / forward (paired)", ".2f", "vjp_over_forward"),
        row("potential (plume + likelihood) p50 (ms)", ".2f", "potential", "p50_ms"),
        row("potential value + gradient p50 (ms)", ".2f", "forward_and_gradient", "p50_ms"),
        row("potential value + gradient / potential (paired)", ".2f", "gradient_over_potential"),
        row("potential value + gradient / forward (paired)", ".2f", "gradient_over_forward"),
        row("unit-rate Jacobian, 3 blocks p50 (ms)", ".1f", "jacobian_3_blocks", "p50_ms"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'event 1':>12}  {'event 2':>12}")
    for name, a, b in rows:
        print(f"{name:{width}}  {a!s:>12}  {b!s:>12}")
    write_results(results, args.out)


if __name__ == "__main__":
    main()
