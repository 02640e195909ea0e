"""Laplace approximations: the difference Hessian, Newton polish (continued by L-BFGS where it stops
short of a minimum), Gaussian fits at the optima.

The Laplace approximation at the best MAP (Hessian of the potential in the unconstrained space)
preconditions NUTS; with those at the other local optima and the closed-form no-source fit
(:func:`absent_laplace_fit`) it forms the SMC reference. The P(source) of the Laplace summary
compares the Laplace evidences of the source and no-source models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from attribution_assets.science.inversion.optimise import (
    curvature_scale,
    float32_rounding,
    minimise,
    potential_gradient,
    potential_value,
)
from attribution_assets.science.inversion.problem import InversionProblem, ModelConfig
from attribution_assets.science.inversion.settings import PotentialKind


@dataclass(frozen=True)
class LaplaceFit:
    """A Gaussian in the whitened coordinates ``z`` at an optimum of a potential: ``mean`` (P,),
    ``cov`` (P, P) and the Laplace log-evidence of the density it approximates (constants dropped)."""

    mean: np.ndarray
    cov: np.ndarray
    log_evidence: float
    potential: float
    """The potential at ``mean``."""
    unresolved_directions: int = 0
    """Hessian eigen-directions at ``mean`` with an eigenvalue below :data:`UNRESOLVED_CURVATURE`
    (:func:`gaussian_at`): 0 at a minimum the Hessian resolves."""


def cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a (regularised, ``+ 1e-12 I``) covariance."""
    return np.linalg.cholesky(cov + 1e-12 * np.eye(cov.shape[0]))


HESSIAN_STEP_SD = 0.1
"""Central-difference step of :func:`hessian`, in posterior standard deviations of each coordinate."""


def _difference_hessian(
    z: np.ndarray, steps: np.ndarray, data: InversionProblem, config: ModelConfig, kind: PotentialKind
) -> np.ndarray:
    """Symmetrised central differences of the exact gradient, ``H e_i = (g(z + h_i e_i) - g(z - h_i
    e_i)) / 2 h_i``: ``2P`` calls of the compiled value-and-gradient program."""
    rows = []
    for i, h in enumerate(steps):
        e = np.zeros_like(z)
        e[i] = h
        plus = potential_gradient(z + e, data, config, kind)
        minus = potential_gradient(z - e, data, config, kind)
        rows.append((plus - minus) / (2.0 * h))
    hess = np.array(rows)
    return 0.5 * (hess + hess.T)


def _curvature(z: np.ndarray, data: InversionProblem, config: ModelConfig, kind: PotentialKind) -> np.ndarray:
    """Diagonal (P,) of the Hessian at ``z`` from forward differences of the gradient with steps of
    0.01 (whitened units, prior sd = 1): ``P + 1`` calls of the compiled value-and-gradient program."""
    step = 1e-2
    base = potential_gradient(z, data, config, kind)
    return np.array([(potential_gradient(z + step * e, data, config, kind)[i] - base[i]) / step
                     for i, e in enumerate(np.eye(z.size))])


def hessian(
    z: np.ndarray, data: InversionProblem, config: ModelConfig, kind: PotentialKind,
    curvature: np.ndarray | None = None,
) -> np.ndarray:
    """Hessian (P, P) of the potential at ``z`` from central differences of its exact gradient.

    Each coordinate steps by ``HESSIAN_STEP_SD`` of its sd, ``0.1 / sqrt(H_ii)``, with ``H_ii`` from
    ``curvature`` (P,) where given (the diagonal of a Hessian nearby), else from :func:`_curvature` at
    ``z`` (steps of 0.01, whitened units): small enough for the stiff
    coordinates (sd ~ 1e-3) and large enough that float32 rounding of the gradient stays small for
    the weak ones (sd ~ 1). Against the second-order autodiff Hessian at the MAP: posterior variances
    within 0.03 % for the coordinates the data constrain and ~3 % for the prior-dominated ones, the
    log-determinant within 0.05. That program takes ~10 s to compile on a 2-core CPU; these ``3P + 1``
    evaluations take ~0.1 s and compile nothing new (``2P`` with ``curvature``).
    """
    z = np.asarray(z, float)
    if curvature is None:
        curvature = _curvature(z, data, config, kind)
    steps = HESSIAN_STEP_SD / np.sqrt(np.clip(curvature, 1e-2, None))
    return _difference_hessian(z, steps, data, config, kind)


NEWTON_STEPS = 5
NEWTON_DECREMENT = 0.01
"""Newton decrement ``g^T |H|^-1 g`` below which an optimum is taken as found (a distance of about
0.1 posterior sd from the minimum, in the Hessian's metric)."""


def _newton(
    z: np.ndarray, potential: float, data: InversionProblem, config: ModelConfig, kind: PotentialKind
) -> tuple[np.ndarray, float, np.ndarray, bool]:
    """Polish an optimum with Newton steps on the difference Hessian: (z, potential, Hessian at z,
    whether the Newton decrement fell below ``NEWTON_DECREMENT``).

    L-BFGS can stop short of the minimum where float32 no longer resolves its progress (at a saddle
    on stiff, strongly coupled posteriors); at most ``NEWTON_STEPS`` saddle-free Newton steps
    (eigenvalues replaced by their absolute values, Dauphin et al. 2014, NeurIPS 27) follow, each
    halved until the potential does not rise beyond float32 rounding, until the Newton decrement
    ``g^T |H|^-1 g`` is below ``NEWTON_DECREMENT``. After a step, the difference steps of the next
    Hessian come from the last one's diagonal (the step moved ``z`` by about a posterior sd at most).
    """
    hess = None
    for count in range(NEWTON_STEPS + 1):
        hess = hessian(z, data, config, kind, None if hess is None else np.diag(hess))
        grad = potential_gradient(z, data, config, kind)
        evals, evecs = np.linalg.eigh(hess)
        step = -(evecs / np.maximum(np.abs(evals), 1e-3)) @ (evecs.T @ grad)
        if -grad @ step < NEWTON_DECREMENT:
            return z, potential, hess, True
        if count == NEWTON_STEPS:
            break
        for _ in range(4):
            value = potential_value(z + step, data, config, kind)
            if value <= potential + float32_rounding(potential):
                z, potential = z + step, value
                break
            step = 0.5 * step
        else:
            break
    return z, potential, hess, False


POLISH_ROUNDS = 10
"""Times :func:`polished_optimum` continues from where the Newton polish stopped, at most (it stops
earlier where continuing no longer lowers the potential). The seed-2 model twin's event 216 (the fast
answer's search) needed 6: its potential fell from 2,467 to 1,683 after 3 rounds, 945 after 4, 852
after 5 and 834 after 6."""
SADDLE_STEPS = (1.0, -1.0, 0.3, -0.3, 0.1, -0.1)
"""Trial steps (whitened units) along a negative-curvature direction out of a saddle."""


def saddle_exit(
    z: np.ndarray, potential: float, hess: np.ndarray, data: InversionProblem, config: ModelConfig,
    kind: PotentialKind,
) -> np.ndarray | None:
    """A point below ``potential`` along an eigenvector of ``hess`` with a negative eigenvalue, the
    most negative first (the first of :data:`SADDLE_STEPS` that descends), or None where ``hess`` has
    none or no step along any of them descends.

    Every negative direction is tried, not only the most negative: the float32 difference Hessian
    can put its most negative eigenvalue in a direction of no real curvature. On the seed-2 model
    twin's event 216 (``benchmarks/validation_reference.py --twin-of 300 --seed 2``, the fast
    answer's search) the eigenvalues were -1,605 and -10: the potential rose by 0.5-2 along the
    first (its float32 noise) and fell by 19 one whitened unit along the second, a wind speed;
    descent from there ended 1,570 log-density units lower.
    """
    evals, evecs = np.linalg.eigh(hess)
    for k in np.flatnonzero(evals < 0.0):
        for t in SADDLE_STEPS:
            trial = z + t * evecs[:, k]
            if potential_value(trial, data, config, kind) < potential - float32_rounding(potential):
                return trial
    return None


def polished_optimum(
    z: np.ndarray, potential: float, data: InversionProblem, config: ModelConfig, kind: PotentialKind
) -> tuple[np.ndarray, float, np.ndarray]:
    """The local minimum of the potential that descent from ``z`` reaches: (z, potential, Hessian).

    The Newton polish (:func:`_newton`) first. Where it stops with the decrement still large (its line
    search failed: the point is no optimum) L-BFGS continues from there, and where it ends at a saddle
    (a negative Hessian eigenvalue) or that L-BFGS does not descend, L-BFGS starts from a point down
    the negative-curvature direction (:func:`saddle_exit`); the Newton polish follows each, at most
    :data:`POLISH_ROUNDS` times while the potential falls. On the misspecified validation set
    (``--events 300 --seed 2``, the fast answer's search) a multi-start MAP stopped at such points in
    4 of 98 medium and strong events, one of them 1,100 log-density units above the optimum that
    continuing found; their Laplace fits had sds of 16-30 prior sds.
    """
    z, potential, hess, converged = _newton(np.asarray(z, float), potential, data, config, kind)
    for _ in range(POLISH_ROUNDS):
        found = _descend(z, potential, hess, converged, data, config, kind)
        if found is None:
            break
        z, potential, hess, converged = _newton(*found, data, config, kind)
    return z, potential, hess


def _descend(
    z: np.ndarray, potential: float, hess: np.ndarray, converged: bool, data: InversionProblem,
    config: ModelConfig, kind: PotentialKind,
) -> tuple[np.ndarray, float] | None:
    """L-BFGS from ``z`` where the Newton polish stopped short of an optimum, else (or where that
    does not descend) from a point out of a saddle; the optimum it reaches and its potential, or None
    where neither lowers the potential beyond float32 rounding."""

    def lower_from(start: np.ndarray | None) -> tuple[np.ndarray, float] | None:
        if start is None:
            return None
        found = minimise(start, data, config, kind, CONTINUATION_STEPS, curvature_scale(data, config))
        return found if found[1] < potential - float32_rounding(potential) else None

    found = None if converged else lower_from(z)
    return found or lower_from(saddle_exit(z, potential, hess, data, config, kind))


CONTINUATION_STEPS = 300
"""L-BFGS iterations at most of each continuation of :func:`polished_optimum`."""


UNRESOLVED_CURVATURE = 1e-3
"""Hessian eigenvalue (whitened units) below which a Laplace fit counts a direction unresolved, and
the curvature it gives that direction (an sd of 32 prior sds: the fit does not constrain it)."""


def laplace_fit(
    z_hat: np.ndarray, potential: float, data: InversionProblem, config: ModelConfig, kind: PotentialKind
) -> LaplaceFit:
    """Gaussian approximation at the local minimum that descent from ``z_hat`` (potential ``potential``
    there) reaches (:func:`polished_optimum`), and its Laplace log-evidence (constants dropped):
    :func:`gaussian_at` there."""
    return gaussian_at(*polished_optimum(z_hat, potential, data, config, kind))


def gaussian_at(z: np.ndarray, potential: float, hess: np.ndarray) -> LaplaceFit:
    """The Laplace fit at ``z`` from the potential there and its Hessian (P, P): covariance the
    inverse Hessian with every eigenvalue below :data:`UNRESOLVED_CURVATURE` raised to it (counted in
    ``unresolved_directions``), log-evidence ``-potential - log det / 2`` of that Hessian (constants
    dropped).

    The whitened prior adds the identity to the Hessian, so an eigenvalue that small says the point is
    no minimum the float32 difference Hessian resolves, not that the posterior is that wide: a ridge
    along which the likelihood hardly changes (the rate against the wind speeds), where the descent
    stops wherever float32 no longer resolves its progress and the difference Hessian, coupling
    those directions with the stiff backgrounds, comes out indefinite. The seed-2 model twin's event
    216 (``benchmarks/validation_reference.py --twin-of 300 --seed 2``) has such a ridge: optima
    from 4 to 130 t/h lie within 7 log-density units of one another. Such a fit describes no
    posterior, and the result's method says so
    (:func:`~attribution_assets.science.inversion.api.describe_method`).
    """
    evals, evecs = np.linalg.eigh(hess)
    unresolved = evals < UNRESOLVED_CURVATURE
    evals = np.maximum(evals, UNRESOLVED_CURVATURE)
    cov = (evecs / evals) @ evecs.T
    return LaplaceFit(mean=np.asarray(z, float), cov=cov, potential=potential,
                      log_evidence=-potential - 0.5 * float(np.sum(np.log(evals))),
                      unresolved_directions=int(np.sum(unresolved)))


def _absent_block(
    stats: np.ndarray, n: float, a: float, c: float, fix_inflation: bool, weight: float
) -> tuple[float, float, float, np.ndarray]:
    """One block of :func:`absent_laplace_fit`: optimum ``(u, v)``, potential there and 2 x 2 Hessian
    (the block's sufficient statistics ``stats = (S0, S1, S2)`` and observation count ``n``, prior
    sds ``a`` and ``c``, the block's likelihood weight ``weight``)."""
    s0, s1, s2, n = (weight * float(v) for v in (*stats, n))
    u, v = a * s1 / (1.0 + a * a * s0), 0.0  # exact when the inflation is fixed (v = 0)
    while not fix_inflation:
        e, q = math.exp(-2.0 * c * v), s2 - 2.0 * a * u * s1 + (a * u) ** 2 * s0
        slope = a * a * s0 * u - a * s1
        grad = np.array([u + e * slope, v + n * c - c * q * e])
        h = np.array(
            [
                [1.0 + e * a * a * s0, -2.0 * c * e * slope],
                [-2.0 * c * e * slope, 1.0 + 2.0 * c * c * q * e],
            ]
        )
        step = np.linalg.solve(h, grad)
        u, v = u - step[0], v - step[1]
        if np.max(np.abs(step)) < 1e-10:
            break
    e, q = math.exp(-2.0 * c * v), s2 - 2.0 * a * u * s1 + (a * u) ** 2 * s0
    potential = 0.5 * (u * u + v * v) + n * c * v + 0.5 * q * e
    off = -2.0 * c * e * (a * a * s0 * u - a * s1)
    hess = np.array([[1.0 + e * a * a * s0, off], [off, 1.0 + 2.0 * c * c * q * e]])
    return u, v, potential, hess


def absent_laplace_fit(data: InversionProblem, config: ModelConfig) -> LaplaceFit:
    """Laplace approximation of the no-source model, in closed form.

    Without a plume the potential separates: the plume parameters keep their standard-normal prior
    (mode 0, unit Hessian) and each block ``b`` contributes, in its whitened background ``u`` and
    noise-inflation ``v`` coordinates (``off = a u``, ``lambda = exp(c v)``),

        U_b = u^2 / 2 + v^2 / 2 + n c v + Q(off) exp(-2 c v) / 2,  Q = S2 - 2 off S1 + off^2 S0,

    with ``S0, S1, S2`` the block's sufficient statistics (``1' Q 1``, ``1' Q r`` and ``r' Q r`` of its
    residuals ``r`` from the prior background under its error precision, from ``data.block_s0``,
    ``block_offset`` and ``block_chi2``) and ``n`` its observations, each times the block's likelihood
    weight.
    Each 2-parameter block problem is solved by Newton's method with the exact
    gradient and Hessian, so no JAX program is compiled for it.
    """
    lay = config.layout()
    mean, hess = np.zeros(config.dim), np.eye(config.dim)
    potential = 0.0
    bg_sd, c = np.asarray(data.bg_sd, float), float(data.infl_log_sd)
    s0, offset = np.asarray(data.block_s0, float), np.asarray(data.block_offset, float)
    stats = np.stack([s0, s0 * offset, np.asarray(data.block_chi2, float) + s0 * offset**2])
    block_n, block_weight = np.asarray(data.block_n, float), np.asarray(data.block_weight, float)
    for b in range(config.n_blocks):
        u, v, block_potential, block_hess = _absent_block(
            stats[:, b], block_n[b], bg_sd[b], c, config.fix_inflation, float(block_weight[b])
        )
        potential += block_potential
        ib = lay["background"].start + b
        mean[ib], hess[ib, ib] = u, block_hess[0, 0]
        if not config.fix_inflation:
            iv = lay["inflation"].start + b
            mean[iv], hess[iv, iv] = v, block_hess[1, 1]
            hess[ib, iv] = hess[iv, ib] = block_hess[0, 1]
    return gaussian_at(mean, potential, hess)
