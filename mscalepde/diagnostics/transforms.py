"""Grids, transforms and wavenumbers of the spectral diagnostics (docs/design.md §2).

A field sampled on a uniform grid of a box Π_a [lo_a, hi_a] (L_a = hi_a − lo_a) is
transformed with one of :data:`TRANSFORMS`:

- ``fft``: the periodic grid x_j = lo + j L/N, j = 0…N−1, and the discrete Fourier
  transform; the wavenumber of index m is k = 2π m / L (m signed);
- ``dst``: the interior grid x_j = lo + j L/(N+1), j = 1…N, and the type-I sine transform,
  k = π m / L, m = 1…N (suits u = 0 on the boundary);
- ``dct``: the grid x_j = lo + j L/(N−1), j = 0…N−1 with both ends, and the type-I cosine
  transform, k = π m / L, m = 0…N−1 (suits ∂u/∂n = 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.fft as sfft

TRANSFORMS = ("fft", "dst", "dct")


Box = Sequence[Sequence[float]]


def _as_numpy(a: Any) -> np.ndarray:
    """Return ``a`` as a numpy array (torch tensors via ``.detach().cpu().numpy()``)."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _check_transform(transform: str) -> str:
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    return transform


def _check_box(box: Box) -> list[tuple[float, float]]:
    out = []
    for i, pair in enumerate(box):
        lo, hi = (float(v) for v in pair)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"box axis {i}: expected [lo, hi] with lo < hi, got {list(pair)}")
        out.append((lo, hi))
    if not 1 <= len(out) <= 3:
        raise ValueError(f"box must have 1 to 3 axes, got {len(out)}")
    return out


def _check_shape(box: list[tuple[float, float]], shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(box):
        raise ValueError(f"field has {len(shape)} axes but the box has {len(box)}")
    if any(s < 1 for s in shape):
        raise ValueError(f"every axis needs at least one point, got shape {shape}")
    return shape


def _signed_indices(n: int, transform: str) -> np.ndarray:
    """Mode numbers m of the coefficient array positions along one axis."""
    if transform == "fft":
        return np.fft.fftfreq(n, d=1.0 / n).round().astype(np.int64)
    if transform == "dst":
        return np.arange(1, n + 1, dtype=np.int64)
    return np.arange(n, dtype=np.int64)


def _array_position(index: Sequence[int], shape: Sequence[int], transform: str) -> tuple:
    """Array position of the coefficient with mode numbers ``index``."""
    pos = []
    for m, n in zip(index, shape, strict=True):
        p = m % n if transform == "fft" else (m - 1 if transform == "dst" else m)
        if not 0 <= p < n:
            raise ValueError(f"mode {tuple(index)} is outside a {transform} spectrum of {shape}")
        pos.append(int(p))
    return tuple(pos)


def _fft_conjugate_info(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """For an fft spectrum: (canonical mask, self-conjugate mask).

    The coefficient of signed index m and that of -m (mod n) form a ± pair (equal magnitude
    for a real field).  The canonical member is the lexicographically larger signed index
    vector, i.e. the one whose first component differing from its partner is larger; this is
    the member whose first nonzero component is positive whenever that is decidable.
    Self-conjugate coefficients (every component 0 or the Nyquist index n/2) are their own pair.
    """
    d = len(shape)
    signed = [_signed_indices(n, "fft") for n in shape]
    grids = np.meshgrid(*signed, indexing="ij")
    negs = np.meshgrid(
        *[m[(-np.arange(n)) % n] for m, n in zip(signed, shape, strict=True)], indexing="ij"
    )
    canonical = np.zeros(tuple(shape), dtype=bool)
    undecided = np.ones(tuple(shape), dtype=bool)
    for a in range(d):
        canonical |= undecided & (grids[a] > negs[a])
        undecided &= grids[a] == negs[a]
    canonical |= undecided
    return canonical, undecided


def _amplitude_factor(shape: Sequence[int], transform: str) -> np.ndarray:
    """Factor turning |c_k| into a peak amplitude: 2 for an fft ± pair, else 1."""
    if transform != "fft":
        return np.ones(tuple(shape))
    _, selfconj = _fft_conjugate_info(shape)
    return np.where(selfconj, 1.0, 2.0)


def parseval_weights(
    shape: Sequence[int], kinds: str | Sequence[str | None], mean: bool = False
) -> np.ndarray:
    """Weights w with Σ_j |u_j|² = Σ_k w_k |c_k|² for the amplitude-normalised coefficients
    of :func:`transform_axes` (``kinds``: one per axis, or one for all).

    With ``mean``, the sum on the left is divided by the number of grid points per axis
    (N + 1 for a DST-I axis, whose grid leaves out both ends; N otherwise): w = 1/2 for
    dst, 1 for fft, 1/2 (1 at k = 0) for dct, so that Σ_k w_k |c_k|² is the mean square of u.
    An axis of kind None is not transformed (weight 1)."""
    kinds = [kinds] * len(shape) if isinstance(kinds, str) else list(kinds)
    w = np.ones(tuple(shape))
    for a, (n, kind) in enumerate(zip(shape, kinds, strict=True)):
        if kind is None:
            continue
        if kind == "fft":
            wa = np.full(n, 1.0 if mean else float(n))
        elif kind == "dst":
            wa = np.full(n, 0.5 if mean else (n + 1) / 2.0)
        else:
            wa = np.full(n, 0.5 if mean else n / 2.0)
            wa[0] = 1.0 if mean else float(n)
        sh = [1] * len(shape)
        sh[a] = n
        w = w * wa.reshape(sh)
    return w


def diagnostic_grid(box: Box, n: int | Sequence[int], transform: str = "fft") -> list[np.ndarray]:
    """1D coordinate arrays, one per axis, of the diagnostic grid fitting ``transform``.

    With L = hi - lo:

    * ``fft``: periodic grid x_j = lo + j L / n, j = 0..n-1 (the right end point, a copy of
      the left one for a periodic function, is excluded);
    * ``dst`` (DST-I, Dirichlet boxes): interior points x_j = lo + j L / (n+1), j = 1..n
      (the boundary points, where a Dirichlet field vanishes, are implicit zeros);
    * ``dct`` (DCT-II, Neumann boxes): cell centres x_j = lo + (j + 1/2) L / n, j = 0..n-1.

    The FFT of a non-periodic function leaks (its periodic extension jumps at the box
    faces, so its coefficients decay like 1/|k| everywhere); the odd (dst) or even (dct)
    extensions are continuous for Dirichlet-zero or Neumann-zero data, see the module
    docstring.  Use ``np.meshgrid(*grid, indexing="ij")`` to evaluate a field.
    """
    transform = _check_transform(transform)
    b = _check_box(box)
    ns = [int(n)] * len(b) if np.ndim(n) == 0 else [int(v) for v in n]  # type: ignore[arg-type]
    if len(ns) != len(b) or any(v < 1 for v in ns):
        raise ValueError(f"n must be a positive int or one per axis, got {n!r}")
    out = []
    for (lo, hi), m in zip(b, ns, strict=True):
        L = hi - lo
        if transform == "fft":
            out.append(lo + np.arange(m) * (L / m))
        elif transform == "dst":
            out.append(lo + np.arange(1, m + 1) * (L / (m + 1)))
        else:
            out.append(lo + (np.arange(m) + 0.5) * (L / m))
    return out


def transform_field(u: Any, transform: str = "fft") -> np.ndarray:
    """Amplitude-normalised spectral coefficients of a grid field over all its axes.

    * ``fft``: c = fftn(u, norm="forward"), c_m = (1/N) Σ_j u_j e^{-2πi j·m/n} (complex);
      u_j = Σ_m c_m e^{i k_m·(x_j - lo)}.  A real A·cos(k·x + φ) gives |c(±k)| = A/2.
    * ``dst``: c = dstn(u, type=1) / Π_a (n_a + 1) (real); u_j = Σ_m c_m Π_a sin(k_{m_a}(x - lo));
      A·Π sin(k_a x_a) gives |c| = A.
    * ``dct``: c = dctn(u, type=2) / Π_a (n_a or 2 n_a for m_a = 0) (real);
      u_j = Σ_m c_m Π_a cos(k_{m_a}(x - lo)); A·Π cos(k_a x_a) gives |c| = A.

    The coefficient array has the field's shape; :func:`wavenumbers` gives the angular
    wavenumber of each position.
    """
    transform = _check_transform(transform)
    u = _as_numpy(u)
    if u.ndim == 0:
        raise ValueError("transform_field needs at least one axis")
    return transform_axes(u, [transform] * u.ndim)


def transform_axes(u: Any, kinds: Sequence[str | None]) -> np.ndarray:
    """Amplitude-normalised coefficients of ``u`` with one transform per axis (the
    normalisations of :func:`transform_field`): ``fft`` (``norm="forward"``), ``dst``
    (DST-I / (N + 1)), ``dct`` (DCT-II / N, / 2N at k = 0), or None (the axis is left
    as it is, e.g. the time axis of a spatial spectrum). The one implementation of the
    transforms: the diagnostics, ``auto``'s spectrum and ``model.adapt`` all call it."""
    c = np.asarray(u)
    c = c.astype(np.result_type(c, np.float64))
    for a, kind in enumerate(kinds):
        n = c.shape[a]
        if kind is None:
            continue
        if kind == "fft":
            c = sfft.fft(c, axis=a, norm="forward")
        elif kind == "dst":
            c = sfft.dst(c, type=1, axis=a) / (n + 1)
        elif kind == "dct":
            scale = np.full(n, 1.0 / n)
            scale[0] = 1.0 / (2 * n)
            sh = [1] * c.ndim
            sh[a] = n
            c = sfft.dct(c, type=2, axis=a) * scale.reshape(sh)
        else:
            raise ValueError(f"unknown transform {kind!r} (expected one of {TRANSFORMS})")
    return c


def axis_wavenumbers(n: int, length: float, kind: str) -> np.ndarray:
    """Angular wavenumbers of the n coefficients of one axis of length L: 2π m / L for fft
    (signed m in ``fftfreq`` order), π m / L for dst (m = 1…n) and dct (m = 0…n−1)."""
    factor = 2.0 * math.pi if kind == "fft" else math.pi
    return factor * _signed_indices(n, kind) / length


def wavenumbers(box: Box, shape: Sequence[int], transform: str = "fft") -> list[np.ndarray]:
    """Angular wavenumber of each coefficient position, one 1D array per axis.

    fft: k = 2π m / L for signed m in ``fftfreq`` order; dst (DST-I): k = π m / L,
    m = 1..n; dct (DCT-II): k = π m / L, m = 0..n-1.
    """
    transform = _check_transform(transform)
    b = _check_box(box)
    shape = _check_shape(b, shape)
    return [axis_wavenumbers(n, hi - lo, transform) for (lo, hi), n in zip(b, shape, strict=True)]


def wavenumber_norm(box: Box, shape: Sequence[int], transform: str = "fft") -> np.ndarray:
    """|k| = sqrt(Σ_a k_a²) on the full coefficient array (shape ``shape``)."""
    ks = wavenumbers(box, shape, transform)
    grids = np.meshgrid(*ks, indexing="ij")
    return np.sqrt(sum(g * g for g in grids))
