"""Spectral diagnostics of the Frequency Principle (F-Principle / spectral bias).

This module works on *arrays only* (numpy; torch tensors are accepted and converted with
``.detach().cpu().numpy()``): it compares a prediction ``h`` with a truth ``u`` and knows
nothing about training, so it can be applied to any pair of fields.

References
----------
* Z.-Q. J. Xu, Y. Zhang, T. Luo, Y. Xiao, Z. Ma, *Frequency Principle: Fourier analysis
  sheds light on deep neural networks*, Commun. Comput. Phys. 28 (2020) 1746-1767
  (arXiv:1901.06523, 2019).  Defines the per-frequency relative error Δ_F and the
  filtering method (reference code ``xuzhiqin1990/F-Principle``: ``f_principle.py``,
  ``filter_gd.py``).
* Z.-Q. J. Xu, Y. Zhang, T. Luo, *Overview frequency principle/spectral bias in deep
  learning* (2022, arXiv:2201.07395).

Conventions (see ``DESIGN.md`` §2)
----------------------------------
Let u be the truth and h the network, both sampled on the grid returned by
:func:`diagnostic_grid` for a box ``[[lo_1, hi_1], ..., [lo_d, hi_d]]`` (lengths
L_a = hi_a - lo_a) and a transform:

``fft``  (periodic boxes) grid x_j = lo + j L/n, j = 0..n-1 (right end point excluded);
         expansion u_j = Σ_m c_m exp(i k_m (x_j - lo)), k_m = 2π m / L, signed
         m = -⌊n/2⌋..⌈n/2⌉-1 (``numpy.fft.fftfreq`` order),
         c_m = (1/n) Σ_j u_j exp(-2π i j m / n)   (``scipy.fft.fftn(norm="forward")``).
``dst``  (Dirichlet boxes, DST-I) interior grid x_j = lo + j L/(n+1), j = 1..n;
         expansion u_j = Σ_{m=1..n} c_m sin(k_m (x_j - lo)), k_m = π m / L,
         c_m = DST-I(u)_m / (n+1).
``dct``  (Neumann boxes, DCT-II) cell-centre grid x_j = lo + (j+1/2) L/n, j = 0..n-1;
         expansion u_j = Σ_{m=0..n-1} c_m cos(k_m (x_j - lo)), k_m = π m / L,
         c_0 = DCT-II(u)_0 / (2n), c_m = DCT-II(u)_m / n for m >= 1.

In d dimensions the bases are tensor products and the wave vector is
k = (k_{m_1}, ..., k_{m_d}) with norm |k|.  The coefficients c are the *exact* expansion
coefficients of the grid data in that discrete basis ("amplitude normalisation"): a pure
mode A·sin(k x) on a dst grid has |c| = A, A·cos(k x) on a dct grid has |c| = A, and
A·cos(k·x + φ) on an fft grid has |c(±k)| = A/2 (the reported peak amplitude doubles it,
see :class:`Peak`).  With every transform sin(50πx) on [0, 1] sits at |k| = 50π ≈ 157.08
(for dct a sine is not a basis function: its energy sits at the odd neighbours 49π and 51π).

Leakage.  The DFT treats the sampled function as periodic.  A function whose periodic
extension is discontinuous (u(lo) ≠ u(hi)) or has a kink has coefficients decaying only like
1/|k| (or 1/|k|²): the spurious energy "leaks" into every frequency, hides the small
high-frequency peaks of a multiscale solution, and makes Δ_F meaningless there.  The DST-I
expands in sines, i.e. the *odd* periodic extension, which is continuous for u = 0 on the
boundary (Dirichlet data); the DCT-II expands in cosines, the *even* extension, whose
derivative is continuous when ∂u/∂n = 0 (Neumann data).  Pick the transform matching the
boundary conditions (or subtract a smooth lift) to keep the spectrum clean.  Conversely a
function which does not vanish on the boundary leaks under dst (a constant has sine
coefficients 4/(π m) for every odd m).

Band errors use Parseval's identity on the grid: Σ_j |u_j|² = Σ_k w_k |c_k|² with the
weights w of the discrete basis (fft: n; dst: (n+1)/2 per axis; dct: n for m = 0 and n/2
otherwise, per axis), so ‖P_band v‖ is the grid l2 norm of the band-passed field.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

__all__ = [
    "TRANSFORMS",
    "Band",
    "Peak",
    "SpectralHistory",
    "SpectralSnapshot",
    "analyse",
    "band_edges_default",
    "band_errors",
    "band_errors_from_coefficients",
    "cutoff_for_delta",
    "default_delta",
    "delta_f_at_peaks",
    "delta_for_cutoff",
    "diagnostic_grid",
    "find_peaks",
    "format_wavevector",
    "format_table",
    "gaussian_filter_errors",
    "gaussian_lowpass",
    "relative_error_per_frequency",
    "transform_field",
    "wavenumber_norm",
    "wavenumbers",
]

TRANSFORMS = ("fft", "dst", "dct")
_NPZ_VERSION = 1

Box = Sequence[Sequence[float]]


# --------------------------------------------------------------------------- helpers


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


def _parseval_weights(shape: Sequence[int], transform: str) -> np.ndarray:
    """Weights w with Σ_j |u_j|² = Σ_k w_k |c_k|² for the amplitude-normalised coefficients."""
    w = np.ones(tuple(shape))
    for a, n in enumerate(shape):
        if transform == "fft":
            wa = np.full(n, float(n))
        elif transform == "dst":
            wa = np.full(n, (n + 1) / 2.0)
        else:
            wa = np.full(n, n / 2.0)
            wa[0] = float(n)
        sh = [1] * len(shape)
        sh[a] = n
        w = w * wa.reshape(sh)
    return w


# --------------------------------------------------------------------------- grids and transforms


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
    if transform == "fft":
        return sfft.fftn(u.astype(np.result_type(u, np.float64)), norm="forward")
    u = u.astype(np.result_type(u, np.float64))
    if transform == "dst":
        c = sfft.dstn(u, type=1)
        return c / float(np.prod([n + 1 for n in u.shape]))
    c = sfft.dctn(u, type=2)
    for a, n in enumerate(u.shape):
        scale = np.full(n, 1.0 / n)
        scale[0] = 1.0 / (2 * n)
        sh = [1] * u.ndim
        sh[a] = n
        c = c * scale.reshape(sh)
    return c


def wavenumbers(box: Box, shape: Sequence[int], transform: str = "fft") -> list[np.ndarray]:
    """Angular wavenumber of each coefficient position, one 1D array per axis.

    fft: k = 2π m / L for signed m in ``fftfreq`` order; dst (DST-I): k = π m / L,
    m = 1..n; dct (DCT-II): k = π m / L, m = 0..n-1.
    """
    transform = _check_transform(transform)
    b = _check_box(box)
    shape = _check_shape(b, shape)
    factor = 2.0 * math.pi if transform == "fft" else math.pi
    return [
        factor * _signed_indices(n, transform) / (hi - lo)
        for (lo, hi), n in zip(b, shape, strict=True)
    ]


def wavenumber_norm(box: Box, shape: Sequence[int], transform: str = "fft") -> np.ndarray:
    """|k| = sqrt(Σ_a k_a²) on the full coefficient array (shape ``shape``)."""
    ks = wavenumbers(box, shape, transform)
    grids = np.meshgrid(*ks, indexing="ij")
    return np.sqrt(sum(g * g for g in grids))


# --------------------------------------------------------------------------- per-frequency error


def relative_error_per_frequency(h_hat: Any, u_hat: Any, magnitude: bool = False) -> np.ndarray:
    """Δ_F(k) of Xu et al. (2019/2020), elementwise.

    * complex (default): Δ_F(k) = |ĥ(k) − û(k)| / |û(k)| (phase errors count);
    * ``magnitude=True`` (the papers' figures): Δ_F(k) = ||ĥ(k)| − |û(k)|| / |û(k)|.

    Where |û(k)| = 0 the ratio is +inf (nonzero numerator) or nan (0/0), following IEEE
    division; at peaks of û (see :func:`find_peaks`) the denominator is never 0.
    """
    h_hat = _as_numpy(h_hat)
    u_hat = _as_numpy(u_hat)
    if h_hat.shape != u_hat.shape:
        raise ValueError(f"spectra have different shapes {h_hat.shape} and {u_hat.shape}")
    den = np.abs(u_hat)
    num = np.abs(np.abs(h_hat) - den) if magnitude else np.abs(h_hat - u_hat)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


# --------------------------------------------------------------------------- peaks


@dataclass(frozen=True)
class Peak:
    """A solution frequency: a local maximum of |û| (a wave vector in 2D/3D).

    ``index``: mode number per axis (signed for fft, 1..n for dst, 0..n-1 for dct);
    ``wavenumber``: the angular wave vector k (see :func:`wavenumbers`); ``norm``: |k|;
    ``amplitude``: |c(k)| times 2 for an fft ± pair (1 for a self-conjugate fft coefficient
    and for dst/dct), i.e. the amplitude A of the real wave A·cos(k·x + φ) (fft) or of the
    basis function A·Π sin / A·Π cos (dst / dct) the peak represents.  A unit sine gives
    amplitude 1 with fft and dst.
    """

    index: tuple[int, ...]
    wavenumber: tuple[float, ...]
    norm: float
    amplitude: float


def find_peaks(u_hat: Any, box: Box, transform: str = "fft", floor: float = 1e-3) -> list[Peak]:
    """Solution frequencies: local maxima of |û| above ``floor · max|û|``.

    A coefficient is a peak when |û(k)| >= |û(k')| for each of its 3^d − 1 neighbours k'
    (index ± 1 in any combination of axes; periodic wrap of the indices for fft, no wrap
    for dst/dct) and |û(k)| > floor · max|û|.  For fft the ± pair of a real field
    (|û(k)| = |û(−k)|) is reported once, keeping the member whose first nonzero component
    is positive (lexicographically larger signed index).  Sorted by |k| ascending, then
    amplitude descending, then index.
    """
    transform = _check_transform(transform)
    u_hat = _as_numpy(u_hat)
    b = _check_box(box)
    shape = _check_shape(b, u_hat.shape)
    mag = np.abs(u_hat).astype(np.float64)
    top = float(mag.max()) if mag.size else 0.0
    if not top > 0.0:
        return []
    footprint = np.ones((3,) * mag.ndim, dtype=bool)
    footprint[(1,) * mag.ndim] = False
    mode = "wrap" if transform == "fft" else "constant"
    neigh = ndimage.maximum_filter(mag, footprint=footprint, mode=mode, cval=-1.0)
    is_peak = (mag >= neigh) & (mag > floor * top)
    if transform == "fft":
        canonical, _ = _fft_conjugate_info(shape)
        conj_pos = tuple(np.ix_(*[(-np.arange(n)) % n for n in shape]))
        conj_is_peak = is_peak[conj_pos]
        is_peak &= canonical | ~conj_is_peak
    factor = _amplitude_factor(shape, transform)
    ks = wavenumbers(b, shape, transform)
    idx = [_signed_indices(n, transform) for n in shape]
    peaks = []
    for pos in zip(*np.nonzero(is_peak), strict=True):
        kv = tuple(float(ks[a][p]) for a, p in enumerate(pos))
        peaks.append(
            Peak(
                index=tuple(int(idx[a][p]) for a, p in enumerate(pos)),
                wavenumber=kv,
                norm=float(math.sqrt(sum(v * v for v in kv))),
                amplitude=float(mag[pos] * factor[pos]),
            )
        )
    peaks.sort(key=lambda p: (p.norm, -p.amplitude, p.index))
    return peaks


def delta_f_at_peaks(
    h_hat: Any,
    u_hat: Any,
    peaks: Sequence[Peak],
    transform: str = "fft",
    magnitude: bool = False,
) -> np.ndarray:
    """Δ_F (see :func:`relative_error_per_frequency`) at each peak, shape (len(peaks),)."""
    transform = _check_transform(transform)
    h_hat = _as_numpy(h_hat)
    u_hat = _as_numpy(u_hat)
    out = np.empty(len(peaks))
    for i, p in enumerate(peaks):
        pos = _array_position(p.index, u_hat.shape, transform)
        out[i] = relative_error_per_frequency(h_hat[pos], u_hat[pos], magnitude)
    return out


# --------------------------------------------------------------------------- bands


@dataclass(frozen=True)
class Band:
    """A radial band lo <= |k| < hi of the spectrum.

    ``error`` = ‖P_band(h − u)‖ / ‖P_band u‖ (nan when the band of u is empty, see
    :func:`band_errors`); ``energy`` = ‖P_band u‖² / ‖u‖², the share of u's energy in the
    band; ``abs_error`` = ‖P_band(h − u)‖ / sqrt(N), the RMS over the grid of the band-passed
    error (so Σ abs_error² is the mean squared grid error when the bands cover the spectrum);
    ``count``: the number of coefficients in the band.
    """

    lo: float
    hi: float
    error: float
    energy: float
    abs_error: float = float("nan")
    count: int = 0


def band_edges_default(box: Box, shape: Sequence[int], transform: str = "fft") -> np.ndarray:
    """Octave band edges [0, k1, 2 k1, 4 k1, ..., 2^J k1] with 2^J k1 > max|k|.

    k1 is the grid's wavenumber spacing min_a (2π/L_a for fft, π/L_a for dst/dct) — the
    smallest nonzero |k| of an fft or dct grid.  Bands without any grid wavenumber (the
    band [0, k1) of a dst grid, which has no constant mode; low bands in 2D/3D dst) are
    dropped, so the edges returned are not always contiguous from 0: they come as an
    array of shape (B, 2) of [lo, hi) pairs.
    """
    transform = _check_transform(transform)
    b = _check_box(box)
    shape = _check_shape(b, shape)
    factor = 2.0 * math.pi if transform == "fft" else math.pi
    k1 = min(factor / (hi - lo) for lo, hi in b)
    knorm = wavenumber_norm(b, shape, transform)
    kmax = float(knorm.max())
    edges = [0.0, k1]
    while edges[-1] <= kmax * (1 + 1e-12):
        edges.append(edges[-1] * 2.0)
    pairs = np.array([edges[:-1], edges[1:]]).T
    counts = _band_counts(knorm, pairs)
    return pairs[counts > 0]


def _band_tolerance(pairs: np.ndarray) -> float:
    pos = pairs[pairs > 0]
    return 1e-9 * float(pos.min()) if pos.size else 0.0


def _band_masks(knorm: np.ndarray, pairs: np.ndarray) -> Iterable[np.ndarray]:
    """Masks lo <= |k| < hi; |k| within 1e-9·(smallest positive edge) of an edge counts as on it."""
    tol = _band_tolerance(pairs)
    for lo, hi in pairs:
        yield (knorm >= lo - tol) & (knorm < hi - tol)


def _band_counts(knorm: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.array([int(m.sum()) for m in _band_masks(knorm, pairs)], dtype=np.int64)


def _as_pairs(bands: Any) -> np.ndarray:
    """Band specification -> (B, 2) array: edges [e0, e1, ...] or [[lo, hi], ...]."""
    arr = np.asarray(bands, dtype=np.float64)
    if arr.ndim == 1:
        if arr.size < 2 or np.any(np.diff(arr) <= 0) or arr[0] < 0:
            raise ValueError(f"band edges must be >= 0 and increasing, got {bands!r}")
        return np.array([arr[:-1], arr[1:]]).T
    if arr.ndim != 2 or arr.shape[1] != 2 or np.any(arr[:, 1] <= arr[:, 0]) or np.any(arr < 0):
        raise ValueError(f"bands must be increasing edges or [lo, hi] pairs, got {bands!r}")
    return arr


def band_errors_from_coefficients(
    h_hat: Any,
    u_hat: Any,
    box: Box,
    transform: str = "fft",
    bands: Any = None,
    empty_tol: float = 1e-12,
) -> list[Band]:
    """Band errors from amplitude-normalised coefficients (see :func:`band_errors`)."""
    transform = _check_transform(transform)
    h_hat = _as_numpy(h_hat)
    u_hat = _as_numpy(u_hat)
    if h_hat.shape != u_hat.shape:
        raise ValueError(f"spectra have different shapes {h_hat.shape} and {u_hat.shape}")
    b = _check_box(box)
    shape = _check_shape(b, u_hat.shape)
    pairs = band_edges_default(b, shape, transform) if bands is None else _as_pairs(bands)
    knorm = wavenumber_norm(b, shape, transform)
    w = _parseval_weights(shape, transform)
    eu = w * np.abs(u_hat) ** 2
    ee = w * np.abs(h_hat - u_hat) ** 2
    total = float(eu.sum())
    npts = float(np.prod(shape))
    out = []
    for (lo, hi), m in zip(pairs, _band_masks(knorm, pairs), strict=True):
        num = float(ee[m].sum())
        den = float(eu[m].sum())
        empty = not den > (empty_tol**2) * total
        out.append(
            Band(
                lo=float(lo),
                hi=float(hi),
                error=float("nan") if empty else math.sqrt(num / den),
                energy=den / total if total > 0 else float("nan"),
                abs_error=math.sqrt(num / npts),
                count=int(m.sum()),
            )
        )
    return out


def band_errors(
    h: Any,
    u: Any,
    box: Box,
    transform: str = "fft",
    bands: Any = None,
    empty_tol: float = 1e-12,
) -> list[Band]:
    """Relative error per radial band of |k|: ‖P_band(h − u)‖ / ‖P_band u‖.

    P_band keeps the coefficients with lo <= |k| < hi; the norms are grid l2 norms computed
    on the coefficients by Parseval (Σ_j |v_j|² = Σ_k w_k |v̂_k|², weights in the module
    docstring).  ``bands``: None for octaves (:func:`band_edges_default`), increasing edges
    [e0, e1, ...] or a list of [lo, hi] pairs.  A band where u has no content —
    ‖P_band u‖ <= empty_tol · ‖u‖, i.e. round-off only — has ``error = nan`` (the relative
    error is undefined there; its absolute size is still in ``abs_error``).
    ``h`` and ``u`` are fields on :func:`diagnostic_grid` of the same transform.
    """
    h = _as_numpy(h)
    u = _as_numpy(u)
    if h.shape != u.shape:
        raise ValueError(f"fields have different shapes {h.shape} and {u.shape}")
    return band_errors_from_coefficients(
        transform_field(h, transform),
        transform_field(u, transform),
        box,
        transform,
        bands,
        empty_tol,
    )


# --------------------------------------------------------------------------- filtering method


def delta_for_cutoff(k_split: float) -> float:
    """δ whose Gaussian filter splits the wavenumber ``k_split`` equally into low and high.

    The kernel G^δ(x) = exp(−|x|²/(2δ)) (δ is a *variance*) is, once normalised to unit
    mass, a convolution whose transfer function is its Fourier transform
    T(k) = exp(−δ|k|²/2) (angular k, any dimension).  The low part keeps T(k) of the
    amplitude of a mode and the high part 1 − T(k); they are equal, T = 1/2, at
    |k| = sqrt(2 ln 2 / δ), hence δ = 2 ln 2 / k_split².  (The half-*power* point
    T² = 1/2 is at |k| = sqrt(ln 2 / δ).)  Far from the box faces and for a point spacing
    well below sqrt(δ) the discrete normalised convolution matches T closely; near the faces
    the renormalisation by Σ_j G makes it only approximate.
    """
    k_split = float(k_split)
    if not k_split > 0:
        raise ValueError(f"k_split must be > 0, got {k_split}")
    return 2.0 * math.log(2.0) / k_split**2


def cutoff_for_delta(delta: float) -> float:
    """The low/high crossover wavenumber sqrt(2 ln 2 / δ) (inverse of :func:`delta_for_cutoff`)."""
    delta = float(delta)
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    return math.sqrt(2.0 * math.log(2.0) / delta)


def default_delta(box: Box, k_split: float | None = None) -> float:
    """δ for :func:`gaussian_filter_errors`: :func:`delta_for_cutoff` of ``k_split``.

    Without ``k_split`` a heuristic is used: k_split = 4 · 2π / L_max (four periods over
    the longest side), which separates the low modes of [0, 1] (2π) from the rest at 8π,
    and sin x, sin 3x from sin 5x on [−π, π].  Pass the wavenumber between the solution's
    scales (e.g. between two peaks from :func:`find_peaks`) when it is known.
    """
    b = _check_box(box)
    if k_split is None:
        k_split = 4.0 * 2.0 * math.pi / max(hi - lo for lo, hi in b)
    return delta_for_cutoff(k_split)


def gaussian_lowpass(points: Any, values: Any, delta: float, chunk: int = 2048) -> np.ndarray:
    """Normalised Gaussian convolution of scattered data (the low part of the filtering method).

    v^low(x_i) = Σ_j v(x_j) G^δ(x_i − x_j) / Σ_j G^δ(x_i − x_j),
    G^δ(x − x') = exp(−|x − x'|² / (2δ)).  ``points`` (N, d), ``values`` (N,) or (N, m);
    computed in float64 by blocks of ``chunk`` rows, so memory stays O(chunk · N).
    """
    x = np.asarray(_as_numpy(points), dtype=np.float64)
    v = np.asarray(_as_numpy(values), dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or v.shape[0] != x.shape[0]:
        raise ValueError(f"points (N, d) and values (N, ...) disagree: {x.shape}, {v.shape}")
    delta = float(delta)
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    chunk = max(1, int(chunk))
    squeeze = v.ndim == 1
    v2 = v[:, None] if squeeze else v.reshape(v.shape[0], -1)
    out = np.empty_like(v2)
    n, d = x.shape
    for start in range(0, n, chunk):
        xi = x[start : start + chunk]
        d2 = np.zeros((xi.shape[0], n))
        for a in range(d):
            diff = xi[:, a, None] - x[None, :, a]
            d2 += diff * diff
        g = np.exp(d2 * (-0.5 / delta))
        out[start : start + chunk] = (g @ v2) / g.sum(axis=1, keepdims=True)
    return out[:, 0] if squeeze else out.reshape(v.shape)


def gaussian_filter_errors(
    points: Any, u: Any, h: Any, delta: float, chunk: int = 2048
) -> tuple[float, float]:
    """(e_low, e_high) of the filtering method (Xu et al. 2020, ``filter_gd.py``).

    With the low part v^low of :func:`gaussian_lowpass` and v^high = v − v^low, for the
    truth u and the prediction h at the same scattered points:
    e_low = ‖u^low − h^low‖ / ‖u^low‖, e_high = ‖u^high − h^high‖ / ‖u^high‖ (discrete
    l2 norms over the points).  δ is the kernel's variance; see :func:`delta_for_cutoff`
    for the wavenumber it separates.  A ratio with a zero denominator is nan (e.g.
    e_high when δ is so small that the filter is the identity).
    """
    u = np.asarray(_as_numpy(u), dtype=np.float64).reshape(-1)
    h = np.asarray(_as_numpy(h), dtype=np.float64).reshape(-1)
    if u.shape != h.shape:
        raise ValueError(f"u and h have different sizes {u.size} and {h.size}")
    low = gaussian_lowpass(points, np.stack([u, h], axis=1), delta, chunk)
    u_low, h_low = low[:, 0], low[:, 1]
    u_high, h_high = u - u_low, h - h_low

    def ratio(a: np.ndarray, b: np.ndarray) -> float:
        den = float(np.linalg.norm(b))
        return float(np.linalg.norm(a - b)) / den if den > 0 else float("nan")

    return ratio(h_low, u_low), ratio(h_high, u_high)


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, eq=False)
class SpectralSnapshot:
    """Spectral comparison of one pair of grid fields (result of :func:`analyse`).

    ``u_hat``, ``h_hat``: amplitude-normalised coefficients (:func:`transform_field`);
    ``peaks``: the solution frequencies; ``delta_f[i]``: Δ_F at ``peaks[i]`` (complex or
    magnitude-only according to ``magnitude``); ``bands``: :class:`Band` errors.
    """

    transform: str
    box: tuple[tuple[float, float], ...]
    u_hat: np.ndarray
    h_hat: np.ndarray
    peaks: tuple[Peak, ...]
    delta_f: np.ndarray
    bands: tuple[Band, ...]
    magnitude: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.u_hat.shape)

    @property
    def wavenumbers(self) -> list[np.ndarray]:
        return wavenumbers(self.box, self.shape, self.transform)

    @property
    def knorm(self) -> np.ndarray:
        """|k| of every coefficient."""
        return wavenumber_norm(self.box, self.shape, self.transform)

    @property
    def band_pairs(self) -> np.ndarray:
        """(B, 2) array of the bands' [lo, hi)."""
        return np.array([[b.lo, b.hi] for b in self.bands], dtype=np.float64).reshape(-1, 2)


def analyse(
    h: Any,
    u: Any,
    box: Box,
    transform: str = "fft",
    magnitude: bool = False,
    floor: float = 1e-3,
    peaks: Sequence[Peak] | None = None,
    bands: Any = None,
) -> SpectralSnapshot:
    """Spectra, peaks of û (or the given ``peaks``), Δ_F at the peaks and band errors.

    ``h`` (prediction) and ``u`` (truth) are fields sampled on :func:`diagnostic_grid`
    ``(box, u.shape, transform)``.  For heat problems call it per time slice.
    """
    transform = _check_transform(transform)
    h = _as_numpy(h)
    u = _as_numpy(u)
    if h.shape != u.shape:
        raise ValueError(f"fields have different shapes {h.shape} and {u.shape}")
    b = _check_box(box)
    _check_shape(b, u.shape)
    u_hat = transform_field(u, transform)
    h_hat = transform_field(h, transform)
    pk = tuple(find_peaks(u_hat, b, transform, floor) if peaks is None else peaks)
    return SpectralSnapshot(
        transform=transform,
        box=tuple(b),
        u_hat=u_hat,
        h_hat=h_hat,
        peaks=pk,
        delta_f=delta_f_at_peaks(h_hat, u_hat, pk, transform, magnitude),
        bands=tuple(band_errors_from_coefficients(h_hat, u_hat, b, transform, bands)),
        magnitude=bool(magnitude),
    )


# --------------------------------------------------------------------------- history


def _fmt_num(x: float, pi: str = "pi") -> str:
    """A wavenumber as 'Nπ' when it is an integer multiple of π, else 4 significant digits."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    q = x / math.pi
    r = round(q)
    if r != 0 and abs(q - r) <= 1e-9 * max(1.0, abs(q)):
        return f"{'-' if r < 0 else ''}{abs(r) if abs(r) != 1 else ''}{pi}"
    return f"{x:.4g}"


def format_wavevector(k: Sequence[float], pi: str = "pi") -> str:
    """'50pi' in 1D, '(2pi, -4pi)' in 2D/3D (multiples of π shown as such)."""
    parts = [_fmt_num(float(v), pi) for v in k]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


class SpectralHistory:
    """Δ_F at the peaks, band errors and (e_low, e_high) over training.

    One row per diagnostic step.  The peaks (and bands) are fixed by the constructor or by
    the first recorded snapshot; later snapshots are evaluated at those same peaks/bands
    (recomputed from the snapshot's spectra when its own differ).  A value not recorded at a
    step is nan.  Arrays: ``steps`` (S,), ``delta_f`` (S, P), ``band_error`` (S, B),
    ``e_low``/``e_high`` (S,).
    """

    def __init__(
        self,
        peaks: Sequence[Peak] | None = None,
        threshold: float = 0.05,
        transform: str = "fft",
        box: Box | None = None,
        magnitude: bool = False,
        bands: Any = None,
    ) -> None:
        self.threshold = float(threshold)
        self.transform = _check_transform(transform)
        self.box: tuple[tuple[float, float], ...] | None = (
            None if box is None else tuple(_check_box(box))
        )
        self.magnitude = bool(magnitude)
        self.peaks: tuple[Peak, ...] | None = None if peaks is None else tuple(peaks)
        self.band_pairs: np.ndarray | None = None if bands is None else _as_pairs(bands)
        self.band_energy: np.ndarray | None = None
        self._steps: list[int] = []
        self._delta_f: list[np.ndarray] = []
        self._band_error: list[np.ndarray] = []
        self._e_low: list[float] = []
        self._e_high: list[float] = []

    # ------------------------------------------------------------------ recording
    def __len__(self) -> int:
        return len(self._steps)

    def record(
        self,
        step: int,
        snapshot: SpectralSnapshot | None = None,
        e_low: float | None = None,
        e_high: float | None = None,
    ) -> None:
        """Add the diagnostics of training step ``step``.

        Steps must increase; recording the last step again fills in the values it lacks
        (e.g. a snapshot and the filter errors recorded by separate calls).
        """
        step = int(step)
        if self._steps and step < self._steps[-1]:
            raise ValueError(f"steps must not decrease: {step} after {self._steps[-1]}")
        merge = bool(self._steps) and step == self._steps[-1]
        dfr = bnd = None
        if snapshot is not None:
            dfr, bnd = self._from_snapshot(snapshot)
        if not merge:
            self._steps.append(step)
            self._delta_f.append(np.full(self.n_peaks, np.nan))
            self._band_error.append(np.full(self.n_bands, np.nan))
            self._e_low.append(float("nan"))
            self._e_high.append(float("nan"))
        if dfr is not None:
            self._delta_f[-1] = dfr
        if bnd is not None:
            self._band_error[-1] = bnd
        if e_low is not None:
            self._e_low[-1] = float(e_low)
        if e_high is not None:
            self._e_high[-1] = float(e_high)

    def _from_snapshot(self, snap: SpectralSnapshot) -> tuple[np.ndarray, np.ndarray]:
        if snap.transform != self.transform:
            if self.peaks is not None or self.band_pairs is not None:
                raise ValueError(
                    f"snapshot uses transform {snap.transform!r}, history {self.transform!r}"
                )
            self.transform = snap.transform
        if self.box is None:
            self.box = tuple(snap.box)
        first_peaks = self.peaks is None
        if first_peaks:
            self.peaks = tuple(snap.peaks)
            self._delta_f = [np.full(self.n_peaks, np.nan) for _ in self._delta_f]
        if tuple(snap.peaks) == self.peaks and snap.magnitude == self.magnitude:
            dfr = np.asarray(snap.delta_f, dtype=np.float64).copy()
        else:
            dfr = delta_f_at_peaks(
                snap.h_hat, snap.u_hat, self.peaks, self.transform, self.magnitude
            )
        if self.band_pairs is None:
            self.band_pairs = snap.band_pairs
            self._band_error = [np.full(self.n_bands, np.nan) for _ in self._band_error]
        if snap.band_pairs.shape == self.band_pairs.shape and np.array_equal(
            snap.band_pairs, self.band_pairs
        ):
            bands = list(snap.bands)
        else:
            bands = band_errors_from_coefficients(
                snap.h_hat, snap.u_hat, snap.box, snap.transform, self.band_pairs
            )
        if self.band_energy is None:
            self.band_energy = np.array([b.energy for b in bands], dtype=np.float64)
        return dfr, np.array([b.error for b in bands], dtype=np.float64)

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The recorded rows as plain arrays (a checkpoint; peaks and bands are fixed by
        the constructor and are not part of it)."""
        return {
            "steps": self.steps.copy(),
            "delta_f": self.delta_f,
            "band_error": self.band_error,
            "e_low": self.e_low.copy(),
            "e_high": self.e_high.copy(),
            "band_energy": None if self.band_energy is None else self.band_energy.copy(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the recorded rows by those of :meth:`state`."""
        self._steps = [int(v) for v in np.asarray(state["steps"])]
        self._delta_f = [np.asarray(r, dtype=np.float64) for r in np.asarray(state["delta_f"])]
        self._band_error = [
            np.asarray(r, dtype=np.float64) for r in np.asarray(state["band_error"])
        ]
        self._e_low = [float(v) for v in np.asarray(state["e_low"])]
        self._e_high = [float(v) for v in np.asarray(state["e_high"])]
        if state.get("band_energy") is not None:
            self.band_energy = np.asarray(state["band_energy"], dtype=np.float64)

    def truncate(self, step: int) -> None:
        """Forget the rows after ``step`` (a rolled-back run goes on from there)."""
        keep = sum(1 for s in self._steps if s <= step)
        for rows in (self._steps, self._delta_f, self._band_error, self._e_low, self._e_high):
            del rows[keep:]

    # ------------------------------------------------------------------ arrays
    @property
    def n_peaks(self) -> int:
        return 0 if self.peaks is None else len(self.peaks)

    @property
    def n_bands(self) -> int:
        return 0 if self.band_pairs is None else len(self.band_pairs)

    @property
    def steps(self) -> np.ndarray:
        return np.asarray(self._steps, dtype=np.int64)

    @property
    def delta_f(self) -> np.ndarray:
        """Δ_F, shape (steps, peaks)."""
        return np.array(self._delta_f, dtype=np.float64).reshape(len(self._steps), self.n_peaks)

    @property
    def band_error(self) -> np.ndarray:
        """Band errors, shape (steps, bands)."""
        return np.array(self._band_error, dtype=np.float64).reshape(len(self._steps), self.n_bands)

    @property
    def e_low(self) -> np.ndarray:
        return np.asarray(self._e_low, dtype=np.float64)

    @property
    def e_high(self) -> np.ndarray:
        return np.asarray(self._e_high, dtype=np.float64)

    # ------------------------------------------------------------------ resolution
    def resolved_table(self, threshold: float | None = None) -> list[dict[str, Any]]:
        """One dict per peak: when did Δ_F drop below ``threshold`` (default: the history's)?

        Keys: ``index`` (mode numbers), ``wavenumber`` (wave vector, tuples), ``k_norm``
        (|k|), ``amplitude``, ``final_delta_f`` (last recorded Δ_F, nan if none),
        ``first_resolved`` (first step with Δ_F < threshold, or None), ``resolved_since``
        (the step from which Δ_F stayed below the threshold through the last recorded step,
        or None = never), ``threshold``.  Steps where Δ_F was not recorded (nan) are skipped.
        """
        thr = self.threshold if threshold is None else float(threshold)
        steps = self.steps
        table = []
        df = self.delta_f
        for j, p in enumerate(self.peaks or ()):
            col = df[:, j]
            ok = ~np.isnan(col)
            st, vals = steps[ok], col[ok]
            below = vals < thr
            first = int(st[np.argmax(below)]) if below.any() else None
            since = None
            if below.size and below[-1]:
                above = np.nonzero(~below)[0]
                since = int(st[above[-1] + 1]) if above.size else int(st[0])
            table.append(
                {
                    "index": tuple(p.index),
                    "wavenumber": tuple(p.wavenumber),
                    "k_norm": p.norm,
                    "amplitude": p.amplitude,
                    "final_delta_f": float(vals[-1]) if vals.size else float("nan"),
                    "first_resolved": first,
                    "resolved_since": since,
                    "threshold": thr,
                }
            )
        return table

    # ------------------------------------------------------------------ persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numeric/string arrays (no objects) describing the history exactly."""
        peaks = self.peaks or ()
        d = len(self.box) if self.box is not None else (len(peaks[0].index) if peaks else 0)
        has = np.array(
            [
                self.peaks is not None,
                self.band_pairs is not None,
                self.band_energy is not None,
                self.box is not None,
            ]
        )
        return {
            "version": np.array(_NPZ_VERSION, dtype=np.int64),
            "defined": has,
            "threshold": np.array(self.threshold, dtype=np.float64),
            "transform": np.array(self.transform),
            "magnitude": np.array(self.magnitude),
            "box": np.array(
                self.box if self.box is not None else np.zeros((0, 2)), dtype=np.float64
            ).reshape(-1, 2),
            "steps": self.steps,
            "delta_f": self.delta_f,
            "band_error": self.band_error,
            "e_low": self.e_low,
            "e_high": self.e_high,
            "band_pairs": (
                np.zeros((0, 2))
                if self.band_pairs is None
                else np.asarray(self.band_pairs, dtype=np.float64)
            ),
            "band_energy": (
                np.zeros(0)
                if self.band_energy is None
                else np.asarray(self.band_energy, dtype=np.float64)
            ),
            "peak_index": np.array([p.index for p in peaks], dtype=np.int64).reshape(len(peaks), d),
            "peak_wavenumber": np.array([p.wavenumber for p in peaks], dtype=np.float64).reshape(
                len(peaks), d
            ),
            "peak_norm": np.array([p.norm for p in peaks], dtype=np.float64),
            "peak_amplitude": np.array([p.amplitude for p in peaks], dtype=np.float64),
        }

    def to_npz(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_arrays` with ``np.savez`` atomically (temporary file, os.replace)."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".spectral-", suffix=".npz.tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **self.to_arrays())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def from_npz(cls, path: str | os.PathLike[str]) -> SpectralHistory:
        """Load a history written by :meth:`to_npz` (``allow_pickle=False``)."""
        with np.load(os.fspath(path), allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        if int(a["version"]) != _NPZ_VERSION:
            raise ValueError(f"{path}: unsupported spectral history version {int(a['version'])}")
        has_peaks, has_bands, has_energy, has_box = (bool(v) for v in a["defined"])
        peaks = None
        if has_peaks:
            peaks = [
                Peak(
                    index=tuple(int(v) for v in idx),
                    wavenumber=tuple(float(v) for v in kv),
                    norm=float(nm),
                    amplitude=float(am),
                )
                for idx, kv, nm, am in zip(
                    a["peak_index"],
                    a["peak_wavenumber"],
                    a["peak_norm"],
                    a["peak_amplitude"],
                    strict=True,
                )
            ]
        hist = cls(
            peaks=peaks,
            threshold=float(a["threshold"]),
            transform=str(a["transform"]),
            box=[tuple(r) for r in a["box"]] if has_box else None,
            magnitude=bool(a["magnitude"]),
            bands=a["band_pairs"] if has_bands and len(a["band_pairs"]) else None,
        )
        if has_bands and hist.band_pairs is None:
            hist.band_pairs = np.zeros((0, 2))
        if has_energy:
            hist.band_energy = a["band_energy"].astype(np.float64)
        hist._steps = [int(s) for s in a["steps"]]
        hist._delta_f = [row.astype(np.float64) for row in a["delta_f"]]
        hist._band_error = [row.astype(np.float64) for row in a["band_error"]]
        hist._e_low = [float(v) for v in a["e_low"]]
        hist._e_high = [float(v) for v in a["e_high"]]
        return hist


# --------------------------------------------------------------------------- text table


def format_table(rows: Sequence[dict[str, Any]], threshold: float | None = None) -> str:
    """Aligned plain-text table of :meth:`SpectralHistory.resolved_table` rows.

    Columns: k (wave vector; multiples of π written as 'Npi'), |k|, amplitude, Delta_F
    (final), first step below the threshold, step resolved since ("never" for None).
    """
    if threshold is None:
        threshold = rows[0].get("threshold", 0.05) if rows else 0.05
    header = [
        "k (wave vector)",
        "|k|",
        "amplitude",
        "Delta_F",
        f"first <{threshold:g}",
        "resolved since",
    ]

    def step(v: Any) -> str:
        return "never" if v is None else str(int(v))

    body = [
        [
            format_wavevector(r["wavenumber"]),
            f"{r['k_norm']:.4g}",
            f"{r['amplitude']:.3g}",
            f"{r['final_delta_f']:.3g}",
            step(r["first_resolved"]),
            step(r["resolved_since"]),
        ]
        for r in rows
    ]
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [header, ["-" * w for w in widths], *body]
    ]
    return "\n".join(lines)
