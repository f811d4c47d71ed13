"""One-dimensional spectral building blocks of the reference solver.

- Chebyshev–Gauss–Lobatto collocation on [a, b]: n nodes x_j = a + (b − a)(1 − cos(πj/(n−1)))/2
  (ascending, both endpoints), the differentiation matrices D1 and D2 = D1² (Trefethen,
  *Spectral Methods in MATLAB*, 2000, ``cheb``), barycentric interpolation (Berrut &
  Trefethen 2004) and the Chebyshev coefficients (a DCT-I) used to judge resolution.
- Fourier collocation on a periodic axis: n − 1 distinct equispaced nodes a + jL/(n − 1)
  (the output grid repeats the first value at x = b, so that every axis of a reference
  grid includes both endpoints), D2 by the FFT, and trigonometric interpolation with the
  matching cardinal functions (for an even number of nodes the Nyquist mode is taken as
  a cosine, which keeps D2 symmetric).

Boundary conditions are eliminated (the "boundary bordering" approach): the two boundary
values of a Chebyshev axis are expressed from the two conditions (Dirichlet: u = g;
Neumann: n·u' = g with the outward normal, from D1) in terms of the interior values, and
the equation is collocated at the interior nodes only. This keeps a Kronecker-sum
structure in 2D/3D, which :mod:`mscalepde.reference` solves by fast diagonalisation.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from mscalepde.geometry import grid_points
from mscalepde.reference.fd import Axis1D
from mscalepde.reference.nodes import cheb_d1, cheb_nodes


def fourier_nodes(m: int, a: float, b: float) -> np.ndarray:
    """m distinct equispaced nodes of the periodic interval [a, b)."""
    return a + (b - a) * np.arange(m) / m


def fourier_d2(m: int, length: float) -> np.ndarray:
    """Second-derivative matrix of trigonometric interpolation on m periodic nodes."""
    k = np.arange(m // 2 + 1) * (2.0 * np.pi / length)
    eye = np.eye(m)
    d2 = scipy.fft.irfft(-(k**2)[:, None] * scipy.fft.rfft(eye, axis=0), n=m, axis=0)
    return 0.5 * (d2 + d2.T)


def chebyshev_axis(name: str, n: int, a: float, b: float, lo: str, hi: str) -> Axis1D:
    """A Chebyshev axis with conditions ``lo``/``hi`` in {'dirichlet', 'neumann'}."""
    if n < 4:
        raise ValueError("a Chebyshev axis needs at least 4 points")
    x = cheb_nodes(n, a, b)
    D1 = cheb_d1(n, a, b)
    D2 = D1 @ D1
    bnd = np.array([0, n - 1])
    inner = np.arange(1, n - 1)
    B = np.zeros((2, n))
    B[0] = -D1[0] if lo == "neumann" else np.eye(n)[0]
    B[1] = D1[-1] if hi == "neumann" else np.eye(n)[-1]
    Bbb_inv = np.linalg.inv(B[:, bnd])
    Bbi = B[:, inner]
    A = -D2[np.ix_(inner, inner)] + D2[np.ix_(inner, bnd)] @ Bbb_inv @ Bbi
    C = D2[np.ix_(inner, bnd)] @ Bbb_inv
    P = np.zeros((n, n - 2))
    P[inner, np.arange(n - 2)] = 1.0
    P[bnd] = -Bbb_inv @ Bbi
    R = np.zeros((n, 2))
    R[bnd] = Bbb_inv
    return Axis1D(
        name=name, kind="chebyshev", nodes=x, unknown=inner, A=A, C=C, P=P, R=R, bc=(lo, hi),
        quad=clenshaw_curtis(n, a, b), singular=(lo == "neumann" and hi == "neumann"),
    )


def fourier_axis(name: str, n: int, a: float, b: float) -> Axis1D:
    """A periodic axis: n output nodes (both endpoints), n − 1 unknowns."""
    m = n - 1
    if m < 3:
        raise ValueError("a Fourier axis needs at least 4 points")
    x = np.append(fourier_nodes(m, a, b), b)
    P = np.zeros((n, m))
    P[np.arange(m), np.arange(m)] = 1.0
    P[m, 0] = 1.0
    quad = np.full(n, (b - a) / m)
    quad[-1] = 0.0
    return Axis1D(
        name=name,
        kind="fourier",
        nodes=x,
        unknown=np.arange(m),
        A=-fourier_d2(m, b - a),
        C=np.zeros((m, 2)),
        P=P,
        R=np.zeros((n, 2)),
        bc=("periodic", "periodic"),
        quad=quad,
        singular=True,
        symmetric=True,
    )


def clenshaw_curtis(n: int, a: float, b: float) -> np.ndarray:
    """Clenshaw–Curtis quadrature weights on the n Lobatto nodes of [a, b]."""
    N = n - 1
    theta = np.pi * np.arange(n) / N
    w = np.zeros(n)
    v = np.ones(N - 1)
    if N % 2 == 0:
        w[0] = w[N] = 1.0 / (N**2 - 1)
        for k in range(1, N // 2):
            v -= 2.0 * np.cos(2 * k * theta[1:-1]) / (4 * k * k - 1)
        v -= np.cos(N * theta[1:-1]) / (N**2 - 1)
    else:
        w[0] = w[N] = 1.0 / N**2
        for k in range(1, (N - 1) // 2 + 1):
            v -= 2.0 * np.cos(2 * k * theta[1:-1]) / (4 * k * k - 1)
    w[1:-1] = 2.0 * v / N
    return w * (b - a) / 2.0


# --------------------------------------------------------------------------- interpolation


def barycentric_matrix(nodes: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """(len(xq), n) matrix of Chebyshev–Lobatto barycentric interpolation."""
    n = len(nodes)
    w = (-1.0) ** np.arange(n)
    w[0] *= 0.5
    w[-1] *= 0.5
    d = xq[:, None] - nodes[None, :]
    exact = d == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = w / d
        M = t / t.sum(axis=1, keepdims=True)
    rows = exact.any(axis=1)
    if rows.any():
        M[rows] = exact[rows].astype(float)
    return M


def trig_matrix(nodes: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """(len(xq), n) trigonometric interpolation from the periodic output nodes.

    ``nodes`` are the output nodes (the last repeats the first period point); the last
    column is zero."""
    m = len(nodes) - 1
    a, b = nodes[0], nodes[-1]
    theta = 2.0 * np.pi * (xq[:, None] - nodes[None, :m]) / (b - a)
    theta = np.angle(np.exp(1j * theta))  # wrap to (-pi, pi]
    half = np.sin(theta / 2.0)
    small = np.abs(half) < 1e-14
    safe = np.where(small, 1.0, half)
    if m % 2 == 0:
        M = np.sin(m * theta / 2.0) * np.cos(theta / 2.0) / (m * safe)
    else:
        M = np.sin(m * theta / 2.0) / (m * safe)
    M = np.where(small, 1.0, M)
    return np.concatenate([M, np.zeros((len(xq), 1))], axis=1)


# --------------------------------------------------------------------------- resolution


def tail_ratio(values: np.ndarray, axis: int, kind: str, tail: int = 4) -> float:
    """Size of the last ``tail`` Chebyshev (or Fourier) coefficients along ``axis``,
    relative to the largest coefficient: a small value means the axis is resolved."""
    v = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
    v = v.reshape(v.shape[0], -1)
    if kind == "fourier":
        c = np.abs(scipy.fft.rfft(v[:-1], axis=0))
    else:
        c = np.abs(scipy.fft.dct(v, type=1, axis=0))
    scale = float(c.max())
    if scale == 0.0 or not np.isfinite(scale):
        return 0.0 if scale == 0.0 else np.inf
    tail = min(tail, max(1, c.shape[0] // 4))
    return float(c[-tail:].max() / scale)


def pad_periodic(
    x: np.ndarray, y: np.ndarray, axis: int, periodic: bool, pad: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Extend a periodic axis (x[-1] repeats x[0]) by ``pad`` wrapped nodes on each side,
    so that a not-a-knot cubic spline is periodic to O(h^4) on [x0, x_end] (scipy's
    ``bc_type='periodic'`` solves one system per column)."""
    if not periodic:
        return x, y
    m = len(x) - 1
    pad = min(pad, m)
    L = x[-1] - x[0]
    xe = np.concatenate([x[m - pad : m] - L, x, x[1 : pad + 1] + L])
    ym = np.moveaxis(y, axis, 0)
    ye = np.concatenate([ym[m - pad : m], ym, ym[1 : pad + 1]])
    return xe, np.moveaxis(ye, 0, axis)


def contract_points(U: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
    """Σ_ijk M1[p,i] M2[p,j] M3[p,k] U[i,j,k] for every point p (chunked)."""
    n_pts = mats[0].shape[0]
    rest = int(np.prod(U.shape[1:])) if U.ndim > 1 else 1
    chunk = max(1, int(2e7 // max(rest, 1)))
    out = np.empty(n_pts)
    for s in range(0, n_pts, chunk):
        T = mats[0][s : s + chunk] @ U.reshape(U.shape[0], -1)
        T = T.reshape((-1,) + U.shape[1:])
        for M in mats[1:]:
            T = np.einsum("pj...,pj->p...", T, M[s : s + chunk])
        out[s : s + chunk] = T
    return out


def as_tensor_grid(pts: np.ndarray) -> list[np.ndarray] | None:
    """The 1D axes when ``pts`` is exactly ``grid_points(axes)`` (ij order), else None."""
    if len(pts) < 8:
        return None
    axes = [np.unique(pts[:, i]) for i in range(pts.shape[1])]
    if int(np.prod([len(a) for a in axes])) != len(pts):
        return None
    return axes if np.array_equal(grid_points(axes), pts) else None
