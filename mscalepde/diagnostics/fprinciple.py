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

Conventions (see docs/design.md §2)
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from mscalepde.diagnostics.transforms import (
    Box,
    _amplitude_factor,
    _array_position,
    _as_numpy,
    _check_box,
    _check_shape,
    _check_transform,
    _fft_conjugate_info,
    _signed_indices,
    parseval_weights,
    transform_field,
    wavenumber_norm,
    wavenumbers,
)


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


@dataclass(frozen=True)
class RadialBand:
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
) -> list[RadialBand]:
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
    w = parseval_weights(shape, transform)
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
            RadialBand(
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
) -> list[RadialBand]:
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


@dataclass(frozen=True, eq=False)
class SpectralSnapshot:
    """Spectral comparison of one pair of grid fields (result of :func:`analyse`).

    ``u_hat``, ``h_hat``: amplitude-normalised coefficients (:func:`transform_field`);
    ``peaks``: the solution frequencies; ``delta_f[i]``: Δ_F at ``peaks[i]`` (complex or
    magnitude-only according to ``magnitude``); ``bands``: :class:`RadialBand` records.
    """

    transform: str
    box: tuple[tuple[float, float], ...]
    u_hat: np.ndarray
    h_hat: np.ndarray
    peaks: tuple[Peak, ...]
    delta_f: np.ndarray
    bands: tuple[RadialBand, ...]
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
