"""Gaussian + linear background fits along one OCO-2 track (the fits of the peak scan, ``peaks``).

Method (the oco2peak detector, Data for Good / IPSL, github.com/dataforgoodfr/batch7_satellite_ges,
after Chevallier et al. 2020, ACP 20, 8501-8510, "Observing carbon dioxide emissions over China's
cities and industrial areas with the Orbiting Carbon Observatory-2"; see also Reuter et al. 2019,
ACP 19, 9371-9383): along each orbit segment, XCO2 as a function of the distance along the track
``d`` (km, great-circle distance from the segment's first sounding) is fitted in a window of
``window_km`` around a candidate centre ``c`` by

    XCO2(d) = a · exp(-(d - c)² / (2 σ²)) + b0 + b1 · (d - c)

For a fixed ``(c, σ)`` the model is linear in ``(a, b0, b1)``, so the weighted least-squares fit
(weights ``1 / xco2_uncertainty²``) is a closed-form 3 × 3 solve. All centres on a ``step_km`` grid
and all widths of ``sigma_km`` are solved at once (batched normal equations). At every centre the
width with the smallest χ² is kept; the significance is ``a / SE(a)`` with ``SE(a)`` from the
reported uncertainties, inflated by ``sqrt(χ²/dof)`` when the residual scatter exceeds them.
Windows need ``min_soundings`` soundings, ``min_side_soundings`` spanning at least ``min_side_km`` on
each side beyond 2 σ (to pin the background: at the start of a clear stretch a window with only a
few km on one side lets a real peak further in bend the background into a spurious peak) and no gap
larger than ``min(max_gap_km, 2 σ)`` within ``c ± 2 σ``. Centres are ``step_km`` = 1 km apart
(OCO-2 frames are 2.25 km apart along the track); :func:`refine_peak` then fits the centre freely. Positive
peaks above ``min_significance`` are reported once each by non-maximum suppression
(strongest first; others within ``max(suppression_km, 3 σ)`` are dropped, :func:`select_peaks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PeakScanConfig:
    """Settings of the OCO-2 peak scan (``peaks.scan_oco2_peaks``) and its track fits (distances in km
    along the track, XCO2 in ppm)."""

    window_km: float = 100.0
    step_km: float = 1.0
    sigma_km: tuple[float, ...] = (1.5, 2.0, 2.7, 3.6, 4.8, 6.4, 8.5, 11.0, 14.0)
    min_soundings: int = 20
    min_side_soundings: int = 5
    min_side_km: float = 10.0
    max_gap_km: float = 5.0
    min_significance: float = 5.0
    suppression_km: float = 10.0
    segment_gap_km: float = 50.0
    quality_flag_good: int = 0
    max_chunk_elements: int = 3_000_000


DEFAULT_PEAK_SCAN = PeakScanConfig()
"""The default peak-scan settings."""


@dataclass(frozen=True)
class TrackFit:
    """Best fit per candidate centre of one track segment (arrays of shape ``(n_centres,)``)."""

    centre_km: np.ndarray
    amplitude_ppm: np.ndarray
    amplitude_sd_ppm: np.ndarray
    sigma_km: np.ndarray
    significance: np.ndarray
    background_ppm: np.ndarray
    slope_ppm_km: np.ndarray
    chi2_reduced: np.ndarray
    n_soundings: np.ndarray
    valid: np.ndarray



def fit_track(
    distance_km: np.ndarray,
    xco2_ppm: np.ndarray,
    uncertainty_ppm: np.ndarray,
    config: PeakScanConfig = DEFAULT_PEAK_SCAN,
) -> TrackFit:
    """Fit Gaussian + linear background at every centre of a ``step_km`` grid along one track.

    Args:
        distance_km: along-track distance of each sounding, km (any order; sorted internally).
        xco2_ppm: XCO2, ppm. uncertainty_ppm: 1-sigma XCO2 uncertainty, ppm (> 0).
        config: window, widths and validity rules.

    Returns:
        :class:`TrackFit` with, per centre, the smallest-χ² width and its amplitude (ppm), standard
        error (ppm), significance ``a / SE(a)``, background at the centre (ppm), slope (ppm km-1),
        reduced χ², soundings in the window and whether any width gave a valid window.

    Cost: the window sums that do not depend on the width (``Σw``, ``Σw t``, ``Σw t²``, ``Σw y``,
    ``Σw t y``, ``Σw y²`` with ``t = d - c``) come from prefix sums of ``w d^k y^l``; the side counts
    from ``searchsorted``; the largest gap inside ``c ± 2σ`` from a sparse-table range maximum of the
    sounding spacings. Only the Gaussian-weighted sums gather soundings, within ``min(window/2, 6σ)``
    of the centre (the Gaussian beyond 6σ is < 2e-8 of its peak).
    """
    order = np.argsort(distance_km, kind="stable")
    d = np.asarray(distance_km, dtype=np.float64)[order]
    y_raw = np.asarray(xco2_ppm, dtype=np.float64)[order]
    offset = float(np.median(y_raw)) if y_raw.size else 0.0
    y = y_raw - offset
    w = 1.0 / np.asarray(uncertainty_ppm, dtype=np.float64)[order] ** 2
    sig = np.asarray(config.sigma_km, dtype=np.float64)
    half = config.window_km / 2.0
    centres = np.arange(d[0], d[-1] + config.step_km / 2, config.step_km) if d.size else np.zeros(0)
    nc = centres.size
    out = {name: np.full(nc, np.nan) for name in ("a", "se", "sigma", "z", "b0", "b1", "chi2r")}
    n_win = np.zeros(nc, dtype=np.int64)
    valid_any = np.zeros(nc, dtype=bool)
    if nc:
        lo = np.searchsorted(d, centres - half, side="left")
        hi = np.searchsorted(d, centres + half, side="right")
        n_win = hi - lo
        track = _Track(d, y, w)
        density = d.size / max(float(np.ptp(d)), 1e-9)  # soundings per km
        per_centre = max(1, int(np.ceil(2.0 * np.minimum(half, 6.0 * sig).sum() * density)))
        chunk = max(1, config.max_chunk_elements // per_centre)
        for start in range(0, nc, chunk):
            sl = slice(start, min(nc, start + chunk))
            _fit_chunk(track, centres[sl], lo[sl], hi[sl], sig, config, out, valid_any, sl)
    return TrackFit(
        centre_km=centres,
        amplitude_ppm=out["a"],
        amplitude_sd_ppm=out["se"],
        sigma_km=out["sigma"],
        significance=out["z"],
        background_ppm=out["b0"] + offset,
        slope_ppm_km=out["b1"],
        chi2_reduced=out["chi2r"],
        n_soundings=n_win,
        valid=valid_any,
    )


class _Track:
    """Sorted soundings of one track with the prefix sums and range-maximum table the fits need."""

    def __init__(self, d: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        self.d, self.y, self.w = d, y, w
        terms = np.stack([w, w * d, w * d * d, w * y, w * d * y, w * y * y])
        self.prefix = np.concatenate([np.zeros((6, 1)), np.cumsum(terms, axis=1)], axis=1)
        gaps = np.diff(d)
        self.table = [gaps]
        while 2 ** len(self.table) <= gaps.size:
            prev, step = self.table[-1], 2 ** (len(self.table) - 1)
            self.table.append(np.maximum(prev[:-step], prev[step:]))

    def window_sums(self, lo: np.ndarray, hi: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
        """``Σw, Σw t, Σw t², Σw y, Σw t y, Σw y²`` over soundings ``lo:hi`` with ``t = d - c``."""
        s = self.prefix[:, hi] - self.prefix[:, lo]
        s0, s1, s2, sy, sdy, syy = s
        return s0, s1 - c * s0, s2 - 2.0 * c * s1 + c * c * s0, sy, sdy - c * sy, syy

    def max_gap(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Largest spacing ``d[i+1] - d[i]`` for ``first <= i < last`` (0 where the range is empty)."""
        length = last - first
        ok = length > 0
        level = np.where(ok, np.floor(np.log2(np.maximum(length, 1))).astype(np.int64), 0)
        out = np.zeros(first.shape)
        for k in np.unique(level[ok]):
            sel = ok & (level == k)
            row = self.table[k]
            out[sel] = np.maximum(row[first[sel]], row[last[sel] - 2**k])
        return out


def _fit_chunk(
    track: _Track,
    centres: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    sig: np.ndarray,
    config: PeakScanConfig,
    out: dict[str, np.ndarray],
    valid_any: np.ndarray,
    sl: slice,
) -> None:
    """Normal equations for one chunk of centres × all widths; writes the best width per centre."""
    d = track.d
    n_win = hi - lo
    s0, st, stt, sy, sty, syy = track.window_sums(lo, hi, centres)
    nc, ns = centres.size, sig.size
    sg, sgg, sgt, sgy = (np.zeros((nc, ns)) for _ in range(4))
    for j, s in enumerate(sig):
        reach = min(config.window_km / 2.0, 6.0 * s)
        g_lo = np.maximum(np.searchsorted(d, centres - reach, side="left"), lo)
        g_hi = np.minimum(np.searchsorted(d, centres + reach, side="right"), hi)
        m = max(int((g_hi - g_lo).max()), 1)
        idx = g_lo[:, None] + np.arange(m)[None, :]
        inside = idx < g_hi[:, None]
        idx = np.minimum(idx, d.size - 1)
        t = d[idx] - centres[:, None]
        g = np.exp(-0.5 * (t / s) ** 2)
        wg = np.where(inside, track.w[idx], 0.0) * g
        sg[:, j], sgg[:, j] = wg.sum(1), (wg * g).sum(1)
        sgt[:, j], sgy[:, j] = (wg * t).sum(1), (wg * track.y[idx]).sum(1)
    a_mat = np.empty((nc, ns, 3, 3))
    a_mat[..., 0, 0], a_mat[..., 0, 1], a_mat[..., 0, 2] = sgg, sg, sgt
    a_mat[..., 1, 1], a_mat[..., 1, 2] = s0[:, None], st[:, None]
    a_mat[..., 2, 2] = stt[:, None]
    a_mat[..., 1, 0], a_mat[..., 2, 0], a_mat[..., 2, 1] = sg, sgt, st[:, None]
    rhs = np.stack(
        [sgy, np.broadcast_to(sy[:, None], sgy.shape), np.broadcast_to(sty[:, None], sgy.shape)], axis=-1
    )

    # Validity: soundings beyond 2σ on each side of the centre (inside the window) pin the background,
    # covering at least min_side_km of track, and no gap larger than min(max_gap_km, 2σ) in c ± 2σ.
    c = centres[:, None]
    core_lo = np.maximum(np.searchsorted(d, c - 2.0 * sig, side="left"), lo[:, None])
    core_hi = np.minimum(np.searchsorted(d, c + 2.0 * sig, side="right"), hi[:, None])
    n_left = core_lo - lo[:, None]
    n_right = hi[:, None] - core_hi
    valid = (n_win[:, None] >= config.min_soundings) & (n_left >= config.min_side_soundings)
    valid &= n_right >= config.min_side_soundings
    win_first, win_last = d[np.minimum(lo, d.size - 1)][:, None], d[np.maximum(hi - 1, 0)][:, None]
    valid &= c - 2.0 * sig - win_first >= config.min_side_km
    valid &= win_last - c - 2.0 * sig >= config.min_side_km
    has_core = core_hi > core_lo
    first_d = d[np.minimum(core_lo, d.size - 1)]
    last_d = d[np.maximum(core_hi - 1, 0)]
    internal = track.max_gap(core_lo.ravel(), (core_hi - 1).ravel()).reshape(core_lo.shape)
    edge = np.maximum(first_d - (c - 2.0 * sig), (c + 2.0 * sig) - last_d)
    gap = np.where(has_core, np.maximum(internal, edge), 4.0 * sig)
    valid &= gap <= np.minimum(config.max_gap_km, 2.0 * sig)[None, :]

    det = np.linalg.det(a_mat)
    scale = np.abs(a_mat[..., 0, 0] * a_mat[..., 1, 1] * a_mat[..., 2, 2]) + 1e-300
    valid &= np.abs(det) > 1e-10 * scale
    a_mat[~valid] = np.eye(3)
    inv = np.linalg.inv(a_mat)
    beta = np.einsum("...ij,...j->...i", inv, rhs)
    dof = np.maximum(n_win[:, None] - 3, 1)
    chi2 = np.maximum(syy[:, None] - np.einsum("...i,...i->...", beta, rhs), 0.0)
    chi2r = chi2 / dof
    se = np.sqrt(np.maximum(inv[..., 0, 0], 0.0) * np.maximum(chi2r, 1.0))
    chi2_masked = np.where(valid, chi2, np.inf)
    best = np.argmin(chi2_masked, axis=1)
    rows = np.arange(nc)
    ok = valid[rows, best]
    a_best = beta[rows, best, 0]
    se_best = se[rows, best]
    out["a"][sl] = np.where(ok, a_best, np.nan)
    out["se"][sl] = np.where(ok, se_best, np.nan)
    out["sigma"][sl] = np.where(ok, sig[best], np.nan)
    out["z"][sl] = np.where(ok, a_best / np.where(se_best > 0, se_best, np.inf), np.nan)
    out["b0"][sl] = np.where(ok, beta[rows, best, 1], np.nan)
    out["b1"][sl] = np.where(ok, beta[rows, best, 2], np.nan)
    out["chi2r"][sl] = np.where(ok, chi2r[rows, best], np.nan)
    valid_any[sl] = ok


def select_peaks(fit: TrackFit, config: PeakScanConfig = DEFAULT_PEAK_SCAN) -> np.ndarray:
    """Indices into ``fit`` of the reported peaks: positive, ``significance >= min_significance``,
    one per peak by non-maximum suppression (radius ``max(suppression_km, 3 σ)``), strongest first."""
    z = np.where(fit.valid & (fit.amplitude_ppm > 0), fit.significance, -np.inf)
    candidates = np.flatnonzero(z >= config.min_significance)
    candidates = candidates[np.argsort(-z[candidates], kind="stable")]
    kept: list[int] = []
    for i in candidates:
        radius = np.maximum(config.suppression_km, 3.0 * np.maximum(fit.sigma_km[i], fit.sigma_km[kept]))
        if not kept or np.all(np.abs(fit.centre_km[kept] - fit.centre_km[i]) > radius):
            kept.append(int(i))
    return np.array(kept, dtype=np.int64)


@dataclass(frozen=True)
class RefinedPeak:
    """Five-parameter Gauss-Newton fit of one peak (km, ppm); ``*_sd`` are 1-sigma."""

    centre_km: float
    sigma_km: float
    amplitude_ppm: float
    amplitude_sd_ppm: float
    centre_sd_km: float
    sigma_sd_km: float
    background_ppm: float
    slope_ppm_km: float
    chi2_reduced: float
    converged: bool


def refine_peak(
    distance_km: np.ndarray,
    xco2_ppm: np.ndarray,
    uncertainty_ppm: np.ndarray,
    centre_km: float,
    sigma_km: float,
    window_km: float = 100.0,
    sigma_bounds_km: tuple[float, float] = (0.5, 30.0),
) -> RefinedPeak:
    """Refine a grid detection by fitting ``(a, c, σ, b0, b1)`` jointly (Levenberg-Marquardt).

    Starts from the grid ``(centre_km, sigma_km)`` and the closed-form ``(a, b0, b1)``; uses the
    soundings within ``window_km / 2`` of the start centre. The amplitude error comes from the full
    5 × 5 covariance ``(JᵀWJ)⁻¹ · max(χ²_red, 1)``, so it includes the trade-off between amplitude and
    width. If the fit fails, leaves ``[c ± σ]`` or hits a width bound, the grid values are returned
    with ``converged=False`` (their amplitude error then ignores that trade-off).
    """
    from scipy.optimize import least_squares

    d = np.asarray(distance_km, dtype=np.float64)
    keep = np.abs(d - centre_km) <= window_km / 2.0
    d, y, u = d[keep], np.asarray(xco2_ppm, dtype=np.float64)[keep], np.asarray(uncertainty_ppm)[keep]
    offset = float(np.median(y))
    y = y - offset

    def design(c: float, s: float) -> np.ndarray:
        t = d - c
        return np.stack([np.exp(-0.5 * (t / s) ** 2), np.ones_like(t), t], axis=1)

    lin = np.linalg.lstsq(design(centre_km, sigma_km) / u[:, None], y / u, rcond=None)[0]

    def residual(p: np.ndarray) -> np.ndarray:
        a, c, s, b0, b1 = p
        return (a * np.exp(-0.5 * ((d - c) / s) ** 2) + b0 + b1 * (d - c) - y) / u

    def jacobian(p: np.ndarray) -> np.ndarray:
        a, c, s, _, _ = p
        t = d - c
        g = np.exp(-0.5 * (t / s) ** 2)
        cols = [g, a * g * t / s**2 - p[4], a * g * t**2 / s**3, np.ones_like(t), t]
        return np.stack(cols, axis=1) / u[:, None]

    p0 = np.array([lin[0], centre_km, sigma_km, lin[1], lin[2]])
    dof = max(d.size - 5, 1)
    lo_s, hi_s = sigma_bounds_km
    try:
        sol = least_squares(residual, p0, jac=jacobian, method="lm", x_scale="jac", max_nfev=200)
        a, c, s, b0, b1 = sol.x
        s = abs(s)
        ok = bool(sol.success) and abs(c - centre_km) <= sigma_km and lo_s < s < hi_s and a > 0
        if ok:
            chi2r = float(np.sum(sol.fun**2) / dof)
            jac = jacobian(np.array([a, c, s, b0, b1]))
            cov = np.linalg.inv(jac.T @ jac) * max(chi2r, 1.0)
            sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
            ok = bool(np.all(np.isfinite(sd)))
    except (np.linalg.LinAlgError, ValueError):
        ok = False
    if ok:
        return RefinedPeak(
            float(c),
            float(s),
            float(a),
            float(sd[0]),
            float(sd[1]),
            float(sd[2]),
            float(b0) + offset,
            float(b1),
            chi2r,
            True,
        )
    res = residual(p0)
    chi2r = float(np.sum(res**2) / max(d.size - 3, 1))
    x = design(centre_km, sigma_km) / u[:, None]
    cov = np.linalg.pinv(x.T @ x) * max(chi2r, 1.0)
    return RefinedPeak(
        float(centre_km),
        float(sigma_km),
        float(lin[0]),
        float(np.sqrt(cov[0, 0])),
        float("nan"),
        float("nan"),
        float(lin[1]) + offset,
        float(lin[2]),
        chi2r,
        False,
    )
