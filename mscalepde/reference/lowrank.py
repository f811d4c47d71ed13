"""Storing a time-dependent reference in little space: a low-rank factorisation in time.

A heat reference holds the solution at every time level: a matrix A (levels × values),
435 × 26 291 float64 numbers (92 MB) for the plate with holes. Diffusion smooths in time,
so A is numerically of low rank: A ≈ Q B with Q (levels × r) and B (r × values), r ≈ 15.
:func:`factor` finds the smallest such r whose reconstruction meets a given maximum error,
by a randomised range finder (Halko, Martinsson & Tropp, SIAM Review 53, 2011, Alg. 4.2
with one power iteration), trimmed by an SVD of the small factor B:

    Y = A Ω,  Ω ~ N(0, 1)^{values × k};  Q = qr(A Aᵀ Q₀);  B = Qᵀ A;
    B = U S Vᵀ  →  Q ← Q U_r S_r,  B ← V_rᵀ  for the least r with max|A − Q B| ≤ tol.

The error max|A − Q B| is measured on A itself, not estimated, so the stored reference
differs from the computed one by at most ``tol`` at every stored value (the caller asks for
1 % of the reference's own estimated error). Ω comes from a fixed seed: the same reference
gives the same file. When no factorisation saves half of the space, A is stored as it is.
"""

from __future__ import annotations

import numpy as np

MIN_LEVELS = 8  # below this, a factorisation cannot save much


def factor(a: np.ndarray, tol: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """``(Q, B)`` with max|a − Q B| ≤ ``tol`` and Q B smaller than half of ``a``; None when
    there is none (module docstring)."""
    levels, n = a.shape
    if levels < MIN_LEVELS or not np.all(np.isfinite(a)):
        return None
    rng = np.random.default_rng(seed)
    k = 8
    while k <= levels and k * (levels + n) < 0.5 * levels * n:
        q, _ = np.linalg.qr(a @ rng.standard_normal((n, k)))
        q, _ = np.linalg.qr(a @ (a.T @ q))  # one power iteration: a sharper basis
        b = q.T @ a
        if np.abs(a - q @ b).max() <= tol:
            return _trim(a, q, b, tol)
        k *= 2
    return None


def _trim(a: np.ndarray, q: np.ndarray, b: np.ndarray, tol: float) -> tuple[np.ndarray, ...]:
    """The least rank r of the SVD of ``b`` that still meets ``tol`` (bisection)."""
    u, s, vt = np.linalg.svd(b, full_matrices=False)
    qu = q @ u
    lo, hi = 1, len(s)  # hi meets tol (it reproduces q b)
    while lo < hi:
        r = (lo + hi) // 2
        if np.abs(a - (qu[:, :r] * s[:r]) @ vt[:r]).max() <= tol:
            hi = r
        else:
            lo = r + 1
    return qu[:, :hi] * s[:hi], vt[:hi].copy()


def pack(name: str, a: np.ndarray, tol: float) -> dict[str, np.ndarray]:
    """The npz entries of array ``a`` (time levels along axis 0): ``name`` as it is, or
    ``name_q``, ``name_b`` and ``name_shape`` for a factorisation within ``tol``."""
    flat = a.reshape(a.shape[0], -1)
    found = factor(flat, tol)
    if found is None:
        return {name: a}
    q, b = found
    return {f"{name}_q": q, f"{name}_b": b, f"{name}_shape": np.asarray(a.shape, np.int64)}


def unpack(name: str, z: object) -> np.ndarray:
    """The array that :func:`pack` stored under ``name`` (from an npz file ``z``)."""
    files = z.files  # type: ignore[attr-defined]
    if name in files:
        return np.array(z[name])  # type: ignore[index]
    q, b = z[f"{name}_q"], z[f"{name}_b"]  # type: ignore[index]
    return (q @ b).reshape(tuple(int(v) for v in z[f"{name}_shape"]))  # type: ignore[index]


def has(name: str, z: object) -> bool:
    files = z.files  # type: ignore[attr-defined]
    return name in files or f"{name}_q" in files


def storage_tolerance(u: np.ndarray, estimated_error: float) -> float:
    """The largest change storing may make to a value: 1 % of the reference's estimated
    (relative) error times max|u|, within [1e-12, 1e-6] relative; 1e-10 relative when the
    estimate is unknown."""
    scale = float(np.max(np.abs(u))) if u.size else 0.0
    rel = 0.01 * estimated_error if np.isfinite(estimated_error) else 1e-10
    return scale * min(max(rel, 1e-12), 1e-6)
