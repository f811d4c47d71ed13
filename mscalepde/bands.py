"""Frequency-adaptive networks: the solution's spectrum → bands → σ or scales (DESIGN §9).

``sigmas: auto`` (``mff``), ``sigma: auto`` (``fourier``), ``sigmas_x: auto`` /
``sigmas_t: auto`` (``stmff``), ``scales: auto`` (``mscale``) and ``arch: auto`` choose the
network's frequencies from the problem before training. The steps:

1. **Spectrum** (:func:`estimate_spectrum`). A classical solve of the problem on its box
   (:func:`mscalepde.reference.compute_reference` without its refinement study; for a
   problem without ``exact`` the cached truth reference, computed anyway for the errors) is
   sampled on a uniform grid. Its transfinite (Coons) lift — the boolean sum of the linear
   interpolations between opposite faces, R = Π_a (I − P_a) u — is subtracted, so the
   remainder vanishes on every face and its sine transform (DST-I) does not leak
   (``spectral`` module docstring: a function that is not zero on the faces has sine
   coefficients decaying only like 1/k). Periodic axes use the FFT; time uses the
   DCT-II (the even extension is continuous). Energy E(k) = Σ w |c_k|². Where no
   classical solve is possible the spectrum comes from the data: û ≈ f̂ / (ā |k|²)
   (ā the mean diffusivity), plus the initial condition's spectrum for heat.
2. **Selection** (:func:`select_wavevectors`). The wave vectors holding all but a
   fraction δ of the energy (largest first), each above a floor relative to the largest
   coefficient (amplitude ratio ``floor``, energy ratio floor²). δ is tied to the target
   error: dropping modes of relative energy δ costs a relative L2 error √δ, so the
   default δ = 1e-4 keeps every mode that matters for a 1 % error; ``model.auto.delta``
   changes it.
3. **Bands** (:func:`group_bands`). The selected |k| sorted; a gap of more than a factor
   ``gap`` (default 2) between neighbours starts a new band. Each band is summarised by
   its per-axis energy-weighted RMS wavenumber K_a = (Σ E k_a² / Σ E)^½. A low band at
   K_a = 2π/L_a (one cycle per box length) is always kept.
4. **Mapping** (:func:`band_sigmas`, :func:`band_scales`), in each architecture's
   conventions (§3,
   ``architectures/fourier.py``): a Fourier feature row b is the plane wave exp(2πi b·x)
   with B_ij ~ N(0, σ²), so σ counts cycles per unit length (``normalize: false``) or per
   half-length of the box (``normalize: true``: σ_norm = σ L/2). With ν_a = K_a/2π, the
   lowest band gets σ_a = max(ν_a, 1/L_a); a higher band the geometric mean with it for
   an elliptic problem, σ_a = (ν_a ν_low,a)^½, or ν_a for heat and fit (see
   :data:`SIGMA_RULES` for why; ``model.auto.sigma_factor: c`` gives c ν_a instead).
   Per-axis σ (a list per entry) when the axes differ by more than 1.5×. MscaleDNN scales
   a multiply the normalised input x̃ ∈ [−1, 1], where a mode k has wavenumber
   k̃ = k L/2; the scales are the powers of two 1, 2, …, 2^⌈log₂ k̃_max⌉ (Liu, Cai, Xu
   2020's pow2 family, cut at the highest band; k̃ = max over axes, MscaleDNN scales every
   axis alike).

``arch: auto`` picks ``mlp`` when the selected spectrum stays within
:data:`SMOOTH_CYCLES` cycles per box length on every axis, and otherwise ``mff``
(Poisson) or ``stmff`` (heat) with automatic σ; the reason is printed and stored.

Anchors: Huang, You, Zhou, *Frequency-adaptive multi-scale deep neural networks*, CMAME
(2025), which estimates the solution's frequencies (there: from a trained network's DFT)
and rebuilds the MscaleDNN scales from them; Wang, Wang, Perdikaris, CMAME 384 (2021)
113938 for the σ of multi-scale Fourier features.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mscalepde.architectures import ADAPTIVE, AUTO_KEYS, is_auto, validate_model_section
from mscalepde.architectures.options import AUTO
from mscalepde.errors import MscaleError

if TYPE_CHECKING:
    from mscalepde.problem import Problem


#: a solution whose selected modes stay within this many cycles per box length (every
#: axis; time excluded) is "smooth": ``arch: auto`` gives it a plain MLP
SMOOTH_CYCLES = 3.0

#: How σ of a band above the lowest follows its frequency ν (cycles per unit length).
#: A residual loss weighs a mode by (a|k|²)², so a random initial field of Fourier
#: features at the band's own frequency has a Laplacian of order (2πσ)² that the first
#: iterations spend removing; the tanh trunk builds the band from sums and harmonics of
#: lower features instead. The rule for an elliptic (Poisson) problem is the geometric
#: mean of the band and the lowest band, σ_a = (ν_a ν_low,a)^½ per axis: 5 for the 25-cycle
#: band of ``poisson1d_multiscale`` over a 1-cycle low band, 2.2 for the 5-cycle band of
#: ``poisson2d_multiscale`` — the σ that measured best by hand there (benchmarks/README.md
#: §11: 2.7e-7 with σ = 5 against 3.4e-6 with 3 and 1.4e-6 with 8). Heat whose diffusion
#: κ|k|² is of order 1/T (``heat1d_multiscale``) and a fit weigh the band like a
#: regression and get σ at the band itself (σ_x = 276 for 250 cycles in Wang et al.).
#: ``model.auto.sigma_factor: c`` replaces either rule by σ_a = c ν_a.
SIGMA_RULES = ("geometric", "band")

#: at most this many bands (the lowest-energy neighbours merge first)
MAX_BANDS = 4

#: uniform sampling grid per axis, by spatial dimension (points, excluding the faces)
GRID_CAP = {1: 8191, 2: 511, 3: 127}
TIME_CAP = 255


class SpectrumError(MscaleError):
    """No spectrum could be estimated (one line naming the key)."""


@dataclass(frozen=True)
class AutoSettings:
    """``model.auto``: δ, the floor, the band gap and the Poisson σ factor."""

    delta: float = 1e-4
    floor: float = 1e-3
    gap: float = 2.0
    sigma_factor: float | None = None  # None: by the equation (sigma_rule())
    max_bands: int = MAX_BANDS

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> AutoSettings:
        raw = dict(raw or {})
        return cls(**{k: v for k, v in raw.items() if v is not None})


# --------------------------------------------------------------------------- spectrum


@dataclass
class Spectrum:
    """Energy of the solution per wave vector (space) and per temporal frequency (heat).

    ``k[a]``: angular wavenumbers of spatial axis a (1D); ``energy``: shape
    (len(k[0]), …); ``kt``/``energy_t``: the temporal marginal (heat), else None.
    """

    origin: str  # reference | source | exact
    detail: str
    box: tuple[tuple[float, float], ...]
    k: list[np.ndarray]
    energy: np.ndarray
    time: tuple[float, float] | None = None
    kt: np.ndarray | None = None
    energy_t: np.ndarray | None = None
    seconds: float = 0.0
    peak: float = 0.0  # max |u| sampled (before the lift): 0 only for a zero solution

    @property
    def lengths(self) -> list[float]:
        return [hi - lo for lo, hi in self.box]

    def radial(self) -> tuple[np.ndarray, np.ndarray]:
        """(|k|, E) of every spatial wave vector, sorted by |k| (for the figure)."""
        grids = np.meshgrid(*self.k, indexing="ij")
        knorm = np.sqrt(sum(g * g for g in grids)).ravel()
        order = np.argsort(knorm, kind="stable")
        return knorm[order], self.energy.ravel()[order]


def uniform_axis(lo: float, hi: float, n: int, periodic: bool) -> np.ndarray:
    """n interior points plus both faces (n + 2 nodes); periodic: n nodes, right end out."""
    if periodic:
        return lo + np.arange(n) * ((hi - lo) / n)
    return lo + np.arange(n + 2) * ((hi - lo) / (n + 1))


def time_axis(t0: float, t1: float, n: int) -> np.ndarray:
    return t0 + (np.arange(n) + 0.5) * ((t1 - t0) / n)  # DCT-II cell centres


def _pow2m1(n: int, lo: int, hi: int) -> int:
    """The smallest 2^p − 1 ≥ n within [lo, hi] (DST-I is fastest at n + 1 = 2^p)."""
    m = 1 << max(1, math.ceil(math.log2(max(n, 2) + 1)))
    return int(min(max(m - 1, lo), hi))


def remove_lift(values: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """R = Π_a (I − P_a) u over ``axes``: P_a interpolates linearly along axis a between
    the first and last node. R vanishes on every face of those axes (the Coons lift
    u − R carries the boundary values)."""
    r = np.array(values, dtype=np.float64)
    for a in axes:
        n = r.shape[a]
        s = np.linspace(0.0, 1.0, n).reshape([n if i == a else 1 for i in range(r.ndim)])
        first = np.take(r, [0], axis=a)
        last = np.take(r, [n - 1], axis=a)
        r = r - (first * (1.0 - s) + last * s)
    return r


def _transform(values: np.ndarray, kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude coefficients and Parseval weights along each axis by its kind:
    ``dst`` (DST-I on the interior nodes), ``fft`` and ``dct`` (DCT-II)."""
    import scipy.fft as sfft

    c = np.asarray(values, dtype=np.float64)
    weights = np.ones(1)
    for a, kind in enumerate(kinds):
        if kind == "dst":
            c = np.take(c, np.arange(1, c.shape[a] - 1), axis=a)
            n = c.shape[a]
            c = sfft.dst(c, type=1, axis=a) / (n + 1)
            w = np.full(n, 0.5)
        elif kind == "fft":
            n = c.shape[a]
            c = sfft.fft(c, axis=a, norm="forward")
            w = np.ones(n)
        else:
            n = c.shape[a]
            c = sfft.dct(c, type=2, axis=a)
            scale = np.full(n, 1.0 / n)
            scale[0] = 1.0 / (2 * n)
            c = c * scale.reshape([n if i == a else 1 for i in range(c.ndim)])
            w = np.full(n, 0.5)
            w[0] = 1.0
        weights = np.multiply.outer(weights, w) if a else w
    return c, np.asarray(weights).reshape(c.shape)


def _wavenumbers(kind: str, n: int, length: float) -> np.ndarray:
    if kind == "dst":
        return math.pi * np.arange(1, n + 1) / length
    if kind == "fft":
        return np.abs(2.0 * math.pi * np.fft.fftfreq(n, d=1.0 / n) / length)
    return math.pi * np.arange(n) / length


def _periodic_axes(problem: Problem) -> list[bool]:
    faces = problem.boundary
    return [
        bool(faces) and faces.get(f"{a}-") is not None and faces[f"{a}-"].type == "periodic"
        for a in problem.domain.axes
    ]


#: grid for data without a classical solve (fit targets, the source fallback)
DATA_GRID = {1: 4095, 2: 255, 3: 63}


def _grid_sizes(problem: Problem) -> list[int]:
    return [DATA_GRID[problem.domain.space_dim]] * problem.domain.space_dim


def _spectrum_of(
    problem: Problem, values: np.ndarray, origin: str, detail: str, started: float
) -> Spectrum:
    """Energy of ``values`` sampled on :func:`_sample_axes` (space, then time)."""
    dom = problem.domain
    periodic = _periodic_axes(problem)
    lift_axes = [a for a in range(dom.space_dim) if not periodic[a]]
    peak = float(np.max(np.abs(values))) if np.size(values) else 0.0
    values = remove_lift(values, lift_axes)
    kinds = ["fft" if p else "dst" for p in periodic] + (["dct"] if dom.has_time else [])
    c, w = _transform(values, kinds)
    energy = w * np.abs(c) ** 2
    k = [_wavenumbers(kinds[a], c.shape[a], hi - lo) for a, (lo, hi) in enumerate(dom.box)]
    kt = energy_t = None
    if dom.has_time:
        t0, t1 = dom.time  # type: ignore[misc]
        kt = _wavenumbers("dct", c.shape[-1], t1 - t0)
        energy_t = energy.sum(axis=tuple(range(dom.space_dim)))
        energy = energy.sum(axis=-1)
    if not np.all(np.isfinite(energy)):
        raise SpectrumError(f"{problem.origin}: model: auto: the {origin} is not finite")
    return Spectrum(
        origin=origin,
        detail=detail,
        box=tuple(dom.box),
        k=k,
        energy=energy,
        time=dom.time,
        kt=kt,
        energy_t=energy_t,
        seconds=time.perf_counter() - started,
        peak=peak,
    )


def _sample_axes(problem: Problem, sizes: Sequence[int], nt: int) -> list[np.ndarray]:
    dom = problem.domain
    periodic = _periodic_axes(problem)
    axes = [uniform_axis(lo, hi, n, p) for (lo, hi), n, p in zip(dom.box, sizes, periodic)]
    if dom.has_time:
        axes.append(time_axis(*dom.time, nt))  # type: ignore[misc]
    return axes


def estimate_spectrum(problem: Problem) -> Spectrum:
    """The solution's spectrum before training (module docstring, step 1)."""
    started = time.perf_counter()
    dom = problem.domain
    if problem.pde == "fit":  # the target is given: its own spectrum
        sizes = _grid_sizes(problem)
        nt = min(TIME_CAP, 2 * max(sizes)) if dom.has_time else 0
        axes = _sample_axes(problem, sizes, nt)
        values = problem_data(problem).exact(axes)
        return _spectrum_of(problem, values, "exact", "the fit target", started)
    from mscalepde.reference.fd import ReferenceError

    try:
        ref, how = _coarse_reference(problem)
    except ReferenceError as exc:
        return _source_spectrum(problem, started, why=str(exc))
    except (RuntimeError, ValueError, ArithmeticError) as exc:  # e.g. autograd on a linear u
        return _source_spectrum(problem, started, why=f"{type(exc).__name__}: {exc}")
    axes = _reference_axes(problem, ref)
    values = ref.on_grid(axes)
    n_text = "×".join(str(v) for v in ref.n) + (f", {ref.nt} time steps" if dom.has_time else "")
    detail = f"{how} {ref.method} reference ({n_text}), sampled on " + "×".join(
        str(len(a)) for a in axes
    )
    return _spectrum_of(problem, values, "reference", detail, started)


def _reference_axes(problem: Problem, ref: Any) -> list[np.ndarray]:
    """Where to sample a reference: a uniform FD grid's own nodes (no interpolation in
    space), else a uniform grid of about twice its points per axis (capped so that the
    sample stays below about 4 million values); time on DCT-II cell centres."""
    dom = problem.domain
    periodic = _periodic_axes(problem)
    axes: list[np.ndarray] = []
    for a, ((lo, hi), n) in enumerate(zip(dom.box, ref.n)):
        kind = ref.kinds[a]
        if kind == "uniform":
            axes.append(np.asarray(ref.axes[a], dtype=float))
        elif kind == "periodic":
            axes.append(np.asarray(ref.axes[a], dtype=float)[:-1])  # last node = first
        else:
            axes.append(uniform_axis(lo, hi, _pow2m1(2 * int(n), 63, GRID_CAP[dom.space_dim]),
                                      periodic[a]))
    if dom.has_time:
        space = int(np.prod([len(a) for a in axes]))
        nt = _pow2m1(2 * max(len(ref.axes[-1]), 16), 31, TIME_CAP)
        while nt > 31 and space * nt > 4_000_000:
            nt = (nt + 1) // 2 - 1
        axes.append(time_axis(*dom.time, nt))  # type: ignore[misc]
    return axes


def _coarse_reference(problem: Problem) -> tuple[Any, str]:
    """The truth reference when the problem has no ``exact`` (cached: the errors need it
    anyway), else the same solve without its refinement study."""
    from mscalepde.reference import compute_reference, get_reference

    if problem.exact is None:
        return get_reference(problem), "the cached"
    return compute_reference(problem, estimate=False), "a"


def problem_data(problem: Problem) -> Any:
    """The reference solvers' view of the problem's data on tensor grids (``source: auto``
    by the training derivative path)."""
    from mscalepde.reference.api import _Data

    return _Data(problem)


def _source_spectrum(problem: Problem, started: float, why: str) -> Spectrum:
    """û ≈ f̂ / (ā|k|²) (plus the initial condition for heat) where no classical solve is
    possible."""
    dom = problem.domain
    sizes = _grid_sizes(problem)
    data = ["source"]
    if dom.has_time and problem.initial is not None:
        data.append("initial")
    space_axes = _sample_axes(problem, sizes, 0)[: dom.space_dim]
    a_bar = mean_diffusivity(problem, space_axes)
    total = None
    parts = []
    for what in data:
        axes = list(space_axes)
        if dom.has_time:
            t = dom.time[0] if what == "initial" else 0.5 * sum(dom.time)  # type: ignore[index]
            axes.append(np.array([t]))
        try:
            values = getattr(problem_data(problem), what)(axes)
        except (MscaleError, RuntimeError, ValueError, ArithmeticError) as exc:
            raise SpectrumError(
                f"{problem.origin}: model: auto: no spectrum can be estimated: the "
                f"classical solve failed ({why}) and {exc}"
            ) from None
        spec = _spectrum_of(problem, values, "source", "", started)
        energy = spec.energy
        if what == "source":
            grids = np.meshgrid(*spec.k, indexing="ij")
            k2 = sum(g * g for g in grids)
            energy = energy / np.maximum(a_bar * k2, 1e-300) ** 2
        total = energy if total is None else total + energy
        parts.append(what)
        base = spec
    assert total is not None
    if not np.any(total > 0):
        raise SpectrumError(
            f"{problem.origin}: model: auto: no spectrum can be estimated: the classical "
            f"solve failed ({why}) and the {' and '.join(parts)} are zero"
        )
    base.energy = total
    base.detail = f"the {' and '.join(parts)} (û ≈ f̂/(ā|k|²), ā = {a_bar:.3g}): {why}"
    if dom.has_time:  # no temporal information: one low band
        base.kt = np.array([0.0])
        base.energy_t = np.array([float(total.sum())])
    base.seconds = time.perf_counter() - started
    return base


def mean_diffusivity(problem: Problem, axes: Sequence[np.ndarray]) -> float:
    op = problem.operator
    if op is None:
        return 1.0
    const = op.isotropic_constant
    if const is not None:
        return float(const)
    grids = np.meshgrid(*axes, indexing="ij")
    env = dict(zip(problem.domain.axes, grids))
    if problem.domain.has_time:
        env["t"] = np.full_like(grids[0], 0.5 * sum(problem.domain.time))  # type: ignore[arg-type]
    vals = [np.abs(np.asarray(e.numpy(env), dtype=float)).mean() for e in op.diffusivity]
    return float(np.mean(vals)) or 1.0


# --------------------------------------------------------------------------- selection


def select_wavevectors(
    k: Sequence[np.ndarray], energy: np.ndarray, delta: float, floor: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """The wave vectors (rows, |k_a| per axis) holding all but a fraction δ of the energy,
    largest first, each with E ≥ floor² · max E; their energies; the total energy."""
    e = np.asarray(energy, dtype=np.float64).ravel()
    total = float(e.sum())
    if not total > 0 or not math.isfinite(total):
        return np.zeros((0, len(k))), np.zeros(0), total
    order = np.argsort(e, kind="stable")[::-1]
    cum = np.cumsum(e[order])
    count = int(np.searchsorted(cum, (1.0 - delta) * total)) + 1
    keep = order[: min(count, e.size)]
    keep = keep[e[keep] >= floor * floor * e[order[0]]]
    idx = np.unravel_index(keep, np.shape(energy))
    K = np.stack([np.abs(np.asarray(ka))[i] for ka, i in zip(k, idx)], axis=1)
    return K, e[keep], total


@dataclass
class Band:
    """A group of selected wave vectors: |k| range, per-axis RMS wavenumber (angular) and
    its share of the energy; ``added``: the low band kept although nothing was selected
    there."""

    k_lo: float
    k_hi: float
    k_axes: tuple[float, ...]
    fraction: float
    modes: int
    added: bool = False

    @property
    def k_norm(self) -> float:
        return float(math.sqrt(sum(v * v for v in self.k_axes)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "k_min": self.k_lo,
            "k_max": self.k_hi,
            "k_axes": list(self.k_axes),
            "cycles_axes": [v / (2 * math.pi) for v in self.k_axes],
            "energy_fraction": self.fraction,
            "modes": self.modes,
            "added_low_band": self.added,
        }


def group_bands(
    K: np.ndarray, E: np.ndarray, total: float, gap: float, max_bands: int
) -> list[Band]:
    """Split the selected wave vectors where neighbouring |k| differ by more than ``gap``;
    merge the lowest-energy neighbours down to ``max_bands``."""
    if len(E) == 0:
        return []
    norms = np.sqrt((K * K).sum(axis=1))
    order = np.argsort(norms, kind="stable")
    groups: list[list[int]] = [[int(order[0])]]
    for prev, cur in zip(order[:-1], order[1:]):
        if norms[cur] > gap * max(norms[prev], 1e-300):
            groups.append([])
        groups[-1].append(int(cur))
    while len(groups) > max_bands:
        energies = [E[g].sum() for g in groups]
        i = int(np.argmin([energies[j] + energies[j + 1] for j in range(len(groups) - 1)]))
        groups[i : i + 2] = [groups[i] + groups[i + 1]]
    bands = []
    for g in groups:
        e = E[g]
        ka = np.sqrt((e[:, None] * K[g] ** 2).sum(axis=0) / e.sum())
        bands.append(
            Band(
                k_lo=float(norms[g].min()),
                k_hi=float(norms[g].max()),
                k_axes=tuple(float(v) for v in ka),
                fraction=float(e.sum() / total),
                modes=len(g),
            )
        )
    return bands


def with_low_band(bands: list[Band], lengths: Sequence[float]) -> list[Band]:
    """Keep a band at one cycle per box length when the lowest band lies above twice
    that (so the smooth part of the solution always has features)."""
    low = tuple(2 * math.pi / L for L in lengths)
    low_norm = math.sqrt(sum(v * v for v in low))
    if bands and bands[0].k_norm <= 2.0 * low_norm:
        return bands
    return [Band(low_norm, low_norm, low, 0.0, 0, added=True), *bands]


# --------------------------------------------------------------------------- mapping


def sigma_rule(problem: Problem) -> str:
    """``geometric`` (elliptic: σ = (ν ν_low)^½) or ``band`` (heat, fit: σ = ν), see
    :data:`SIGMA_RULES`."""
    return "band" if problem.pde in ("heat", "fit") else "geometric"


def band_sigmas(
    bands: Sequence[Band],
    lengths: Sequence[float],
    rule: str,
    normalize: bool,
    factor: float | None = None,
    isotropic: bool = False,
) -> list[float | list[float]]:
    """One σ per band (cycles per unit, or per half-length with ``normalize``): the lowest
    band at its own frequency ν, the others by ``rule`` (:data:`SIGMA_RULES`) or at
    ``factor``·ν, never below one cycle per box length; a per-axis list when the axes
    differ by more than 1.5× (unless ``isotropic``: the RMS over the axes); repeated
    values once."""
    out: list[float | list[float]] = []
    low = [max(ka / (2 * math.pi), 1.0 / L) for ka, L in zip(bands[0].k_axes, lengths)]
    for i, band in enumerate(bands):
        per_axis = []
        for a, (ka, L) in enumerate(zip(band.k_axes, lengths)):
            nu = ka / (2 * math.pi)
            if i == 0:
                sig = nu
            elif factor is not None:
                sig = factor * nu
            elif rule == "geometric":
                sig = math.sqrt(max(nu, low[a]) * low[a])
            else:
                sig = nu
            sig = max(sig, 1.0 / L) * (L / 2 if normalize else 1.0)
            per_axis.append(float(f"{sig:.4g}"))
        if not isotropic and max(per_axis) > 1.5 * min(per_axis):
            out.append(per_axis)
        else:
            out.append(float(f"{math.sqrt(sum(v * v for v in per_axis) / len(per_axis)):.4g}"))
    unique: list[float | list[float]] = []
    for s in out:
        if s not in unique:
            unique.append(s)
    return unique


def band_scales(
    bands: Sequence[Band], lengths: Sequence[float], normalize: bool = True
) -> list[float]:
    """MscaleDNN scales: 1, 2, 4, … up to the power of two at or above the highest band's
    wavenumber in the network's input, k̃ = max_a K_a L_a/2 with ``normalize`` (the input
    mapped to [−1, 1]) or K_a without (at least 2 scales)."""
    top = max(
        max(ka * (L / 2 if normalize else 1.0) for ka, L in zip(b.k_axes, lengths))
        for b in bands
    )
    p = max(1, math.ceil(math.log2(max(top, 1.0))))
    return [float(2**i) for i in range(p + 1)]


# --------------------------------------------------------------------------- selection


@dataclass
class Selection:
    """What the automatic choice decided, and why: recorded in ``summary.json`` under
    ``auto`` and drawn in ``figures/spectrum.png``."""

    spectrum: Spectrum
    bands: list[Band]
    bands_t: list[Band]
    arch: str
    chosen: dict[str, Any]
    reason: str
    settings: AutoSettings
    seconds: float = 0.0
    arch_auto: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The one line ``solve`` prints."""
        what = ", ".join(f"{k} = {format_value(v)}" for k, v in self.chosen.items())
        bands = "; ".join(
            ("low band (kept) " if b.added else "")
            + "cycles " + "×".join(f"{v / (2 * math.pi):.3g}" for v in b.k_axes)
            + ("" if b.added else f" ({100 * b.fraction:.3g} % energy)")
            for b in self.bands
        )
        arch = f"arch: auto → {self.arch} ({self.reason}); " if self.arch_auto else ""
        sep = f"; {what}" if what else ""
        return (
            f"auto: {arch}{len(self.bands)} band(s) from {self.spectrum.origin} "
            f"[{bands}]{sep} ({self.seconds:.2f} s)"
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arch": self.arch,
            "arch_auto": self.arch_auto,
            "reason": self.reason,
            "chosen": dict(self.chosen),
            "spectrum": {"origin": self.spectrum.origin, "detail": self.spectrum.detail},
            "bands": [b.to_dict() for b in self.bands],
            "delta": self.settings.delta,
            "floor": self.settings.floor,
            "seconds": self.seconds,
            "spectrum_seconds": self.spectrum.seconds,
        }
        if self.bands_t:
            out["bands_t"] = [b.to_dict() for b in self.bands_t]
        out.update(self.extra)
        return out


def format_value(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def bands_of(
    k: Sequence[np.ndarray], energy: np.ndarray, lengths: Sequence[float], s: AutoSettings
) -> list[Band]:
    K, E, total = select_wavevectors(k, energy, s.delta, s.floor)
    return with_low_band(group_bands(K, E, total, s.gap, s.max_bands), lengths)


def choose(problem: Problem, spectrum: Spectrum | None = None) -> Selection:
    """Resolve every ``auto`` of ``problem.model`` (module docstring).

    ``Selection.seconds`` is the selection's own work: the reference solvers' modules are
    imported before the clock starts (a one-time cost of about 0.5 s that every run pays
    anyway for its classical baseline line)."""
    from mscalepde import reference

    started = time.perf_counter()
    model = problem.model
    settings = AutoSettings.from_mapping(model.get("auto"))
    spec = spectrum if spectrum is not None else estimate_spectrum(problem)
    if not np.any(spec.energy > 0) and not spec.peak > 0:
        raise SpectrumError(
            f"{problem.origin}: model: auto: no spectrum can be estimated: the solution "
            f"is zero ({spec.detail})"
        )
    lengths = spec.lengths
    # rounding noise of the solve (a linear u leaves only that after the lift) is no band
    noise = (1e-10 * spec.peak) ** 2
    bands = bands_of(spec.k, np.where(spec.energy > noise, spec.energy, 0.0), lengths, settings)
    bands_t: list[Band] = []
    if spec.kt is not None and spec.energy_t is not None and spec.time is not None:
        bands_t = bands_of([spec.kt], spec.energy_t, [spec.time[1] - spec.time[0]], settings)
    arch = str(model["arch"])
    arch_auto = arch == AUTO
    reason = ""
    if arch_auto:
        arch, reason = _choose_arch(problem, bands, lengths)
    chosen: dict[str, Any] = {}
    keys = AUTO_KEYS.get(arch, ())
    default_normalize = arch == "mscale"  # the architectures' own defaults
    normalize = bool(model.get("normalize", default_normalize)) if not arch_auto else (
        default_normalize
    )
    rule, factor = sigma_rule(problem), settings.sigma_factor
    iso = bool(model.get("interface"))  # |φ| inputs take the same σ: no per-axis lists
    for key in keys:
        if not arch_auto and model.get(key) != AUTO:
            continue
        if key == "scales":
            chosen[key] = band_scales(bands, lengths, normalize)
        elif key == "sigma":  # one embedding: the highest band's σ
            chosen[key] = band_sigmas(bands, lengths, rule, normalize, factor, iso)[-1]
        elif key == "sigmas_t":
            T = spec.time[1] - spec.time[0]  # type: ignore[index]
            chosen[key] = band_sigmas(bands_t or with_low_band([], [T]), [T], "band", normalize)
        else:  # sigmas, sigmas_x
            chosen[key] = band_sigmas(bands, lengths, rule, normalize, factor, iso)
    if problem.domain.has_time and arch in ("fourier", "mff") and not iso:
        chosen = _with_time_axis(chosen, bands_t, spec, normalize)  # t is an input column
    extra: dict[str, Any] = {}
    if arch_auto and arch in ("mff", "stmff"):
        extra["defaults"] = auto_arch_defaults(problem, arch)
    sel = Selection(
        spectrum=spec,
        bands=bands,
        bands_t=bands_t,
        arch=arch,
        chosen=chosen,
        reason=reason,
        settings=settings,
        arch_auto=arch_auto,
        extra=extra,
    )
    sel.seconds = spec.seconds + (time.perf_counter() - started)
    return sel


def auto_arch_defaults(problem: Problem, arch: str) -> dict[str, Any]:
    """The size ``arch: auto`` gives a Fourier network: 32 features per input column (a
    2D or a space–time problem needs twice the 1D count to cover its frequency plane:
    ``poisson2d_multiscale`` needed 64), and for ``stmff`` Wang, Wang & Perdikaris's
    heat width of 100; the other options are the architecture's defaults."""
    out: dict[str, Any] = {"features": 32 * len(problem.variables)}
    if arch == "stmff":
        out["width"] = 100
    return out


def _with_time_axis(
    chosen: dict[str, Any], bands_t: Sequence[Band], spec: Spectrum, normalize: bool
) -> dict[str, Any]:
    """fourier/mff on a heat problem embed (x, t) together: each σ gets a t entry, the
    lowest temporal band's σ_t."""
    T = spec.time[1] - spec.time[0]  # type: ignore[index]
    sig_t = band_sigmas(list(bands_t) or with_low_band([], [T]), [T], "band", normalize)[0]
    st = sig_t[0] if isinstance(sig_t, list) else sig_t
    d = len(spec.k)

    def extend(v: Any) -> list[float]:
        return [*(v if isinstance(v, list) else [v] * d), st]

    out = {}
    for key, value in chosen.items():
        out[key] = extend(value) if key == "sigma" else [extend(v) for v in value]
    return out


def _choose_arch(
    problem: Problem, bands: Sequence[Band], lengths: Sequence[float]
) -> tuple[str, str]:
    """mlp when every band's RMS wavenumber stays within :data:`SMOOTH_CYCLES` cycles per
    box length on every axis, else mff (stmff with time)."""
    cycles = max(
        (ka * L / (2 * math.pi) for b in bands if not b.added for ka, L in zip(b.k_axes, lengths)),
        default=0.0,
    )
    if cycles <= SMOOTH_CYCLES:
        return "mlp", (
            f"smooth: every band within {cycles:.2g} cycles per box length "
            f"(≤ {SMOOTH_CYCLES:g})"
        )
    net = "stmff" if problem.domain.has_time else "mff"
    return net, f"a band at {cycles:.3g} cycles per box length (> {SMOOTH_CYCLES:g})"


def resolve_model(model: Mapping[str, Any], selection: Selection) -> dict[str, Any]:
    """The model section with every ``auto`` replaced by the selection's values (for
    ``arch: auto``: the chosen architecture with its defaults and the chosen σ)."""
    if selection.arch_auto:
        raw: dict[str, Any] = {"arch": selection.arch, **selection.chosen}
        if model.get("interface"):
            raw["interface"] = model["interface"]
        if model.get("adapt") and selection.arch in ADAPTIVE:  # an mlp has no bands to grow
            raw["adapt"] = model["adapt"]
        raw.update(selection.extra.get("defaults", {}))
    else:
        raw = {**model, **selection.chosen}
    if model.get("auto") and raw.get("adapt"):
        raw["auto"] = model["auto"]  # the adapter's selection rules
    else:
        raw.pop("auto", None)
    return validate_model_section(raw, "model")


def resolve_auto(problem: Problem) -> tuple[Problem, Selection | None]:
    """``problem`` with every ``auto`` of its model section chosen (module docstring),
    and the :class:`Selection` (None when nothing was ``auto``)."""
    import copy

    from mscalepde.problem import problem_from_dict

    if not is_auto(problem.model):
        return problem, None
    selection = choose(problem)
    data = copy.deepcopy(problem.config)
    data["model"] = resolve_model(problem.model, selection)
    return problem_from_dict(data, origin=problem.origin), selection


def save_spectrum(path: Any, spectrum: Spectrum) -> None:
    """``spectrum.npz``: the wavenumbers per axis (``k_x``, …; ``k_t``), the energy
    arrays and the origin, written atomically."""
    from mscalepde.runfolder import atomic_write_with

    data: dict[str, np.ndarray] = {
        f"k_{a}": np.asarray(k) for a, k in zip("xyz", spectrum.k)
    }
    data["energy"] = np.asarray(spectrum.energy)
    if spectrum.kt is not None and spectrum.energy_t is not None:
        data["k_t"] = np.asarray(spectrum.kt)
        data["energy_t"] = np.asarray(spectrum.energy_t)
    data["origin"] = np.array(spectrum.origin)
    data["detail"] = np.array(spectrum.detail)
    atomic_write_with(path, lambda buf: np.savez(buf, **data))
