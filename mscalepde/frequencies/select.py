"""Frequency-adaptive networks: the solution's spectrum → bands → σ or scales (docs/design.md §9).

``sigmas: auto`` (``mff``), ``sigma: auto`` (``fourier``), ``sigmas_x: auto`` /
``sigmas_t: auto`` (``stmff``), ``scales: auto`` (``mscale``) and ``arch: auto`` choose the
network's frequencies from the problem before training. The steps:

1. **Spectrum** (:func:`estimate_spectrum`). A classical solve of the problem on its box
   (:func:`mscalepde.reference.solve.compute_reference` without its refinement study; for a
   problem without ``exact`` the cached truth reference, computed anyway for the errors) is
   sampled on a uniform grid. Its transfinite (Coons) lift — the boolean sum of the linear
   interpolations between opposite faces, R = Π_a (I − P_a) u — is subtracted, so the
   remainder vanishes on every face and its sine transform (DST-I) does not leak
   (:mod:`mscalepde.diagnostics.transforms`: a function that is not zero on the faces
   has sine coefficients decaying only like 1/k). Periodic axes use the FFT; time uses the
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
from mscalepde.architectures.options import AUTO, DEFAULT_MLP
from mscalepde.errors import SpectrumError
from mscalepde.frequencies.options import SMOOTH_CYCLES, AutoSettings
from mscalepde.frequencies.shape_spectrum import shape_spectrum
from mscalepde.frequencies.spectrum import Spectrum, estimate_spectrum

if TYPE_CHECKING:
    from mscalepde.problem.model import Problem


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
class FrequencyBand:
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
) -> list[FrequencyBand]:
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
            FrequencyBand(
                k_lo=float(norms[g].min()),
                k_hi=float(norms[g].max()),
                k_axes=tuple(float(v) for v in ka),
                fraction=float(e.sum() / total),
                modes=len(g),
            )
        )
    return bands


def with_low_band(bands: list[FrequencyBand], lengths: Sequence[float]) -> list[FrequencyBand]:
    """Keep a band at one cycle per box length when the lowest band lies above twice
    that (so the smooth part of the solution always has features)."""
    low = tuple(2 * math.pi / L for L in lengths)
    low_norm = math.sqrt(sum(v * v for v in low))
    if bands and bands[0].k_norm <= 2.0 * low_norm:
        return bands
    return [FrequencyBand(low_norm, low_norm, low, 0.0, 0, added=True), *bands]


def sigma_rule(problem: Problem) -> str:
    """``geometric`` (elliptic: σ = (ν ν_low)^½) or ``band`` (heat, fit: σ = ν), see
    :data:`SIGMA_RULES`."""
    return "band" if problem.pde in ("heat", "fit") else "geometric"


def band_sigmas(
    bands: Sequence[FrequencyBand],
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
    bands: Sequence[FrequencyBand], lengths: Sequence[float], normalize: bool = True
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


@dataclass
class Selection:
    """What the automatic choice decided, and why: recorded in ``summary.json`` under
    ``auto`` and drawn in ``figures/spectrum.png``."""

    spectrum: Spectrum
    bands: list[FrequencyBand]
    bands_t: list[FrequencyBand]
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
) -> list[FrequencyBand]:
    K, E, total = select_wavevectors(k, energy, s.delta, s.floor)
    return with_low_band(group_bands(K, E, total, s.gap, s.max_bands), lengths)


def choose(problem: Problem, spectrum: Spectrum | None = None) -> Selection:
    """Resolve every ``auto`` of ``problem.model`` (module docstring).

    ``Selection.seconds`` is the selection's own work: the reference solvers' modules are
    imported before the clock starts (a one-time cost of about 0.5 s that every run pays
    anyway for its classical baseline line)."""
    import mscalepde.reference.solve  # noqa: F401 - see the docstring

    started = time.perf_counter()
    model = problem.model
    settings = AutoSettings.from_mapping(model.get("auto"))
    if spectrum is not None:
        spec = spectrum
    elif problem.domain.geometry is not None:  # a shape: the windowed truth's own peaks
        spec = shape_spectrum(problem, started)
    else:
        spec = estimate_spectrum(problem)
    if not np.any(spec.energy > 0) and not spec.peak > 0:
        raise SpectrumError(
            f"{problem.origin}: model: auto: no spectrum can be estimated: the solution "
            f"is zero ({spec.detail})"
        )
    lengths = spec.lengths
    # rounding noise of the solve (a linear u leaves only that after the lift) is no band
    noise = (1e-10 * spec.peak) ** 2
    bands = bands_of(spec.k, np.where(spec.energy > noise, spec.energy, 0.0), lengths, settings)
    bands_t: list[FrequencyBand] = []
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
    if arch_auto:
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
    """The size ``arch: auto`` gives its network. A smooth solution's MLP is
    :data:`~mscalepde.architectures.options.DEFAULT_MLP`. A Fourier network gets 32
    features per input column (a 2D or a space–time problem needs twice the 1D count to
    cover its frequency plane: ``poisson2d_multiscale`` needed 64); the other options are
    the architecture's defaults (width 64: Wang, Wang & Perdikaris's heat width of 100 made
    a dense Gauss–Newton iteration of ``heat2d_anisotropic`` cost 4 s on 2 cores)."""
    if arch == "mlp":
        return {k: v for k, v in DEFAULT_MLP.items() if k != "arch"}
    return {"features": 32 * len(problem.variables)}


def _with_time_axis(
    chosen: dict[str, Any], bands_t: Sequence[FrequencyBand], spec: Spectrum, normalize: bool
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
    problem: Problem, bands: Sequence[FrequencyBand], lengths: Sequence[float]
) -> tuple[str, str]:
    """mlp when every band's RMS wavenumber stays within :data:`SMOOTH_CYCLES` cycles per
    box length on every axis and the domain is a box, else mff (stmff with time)."""
    cycles = max(
        (ka * L / (2 * math.pi) for b in bands if not b.added for ka, L in zip(b.k_axes, lengths)),
        default=0.0,
    )
    net = "stmff" if problem.domain.has_time else "mff"
    if problem.domain.geometry is not None and cycles <= SMOOTH_CYCLES:
        # The windowed spectrum shows a shape's modes, not the steep layers along its
        # boundary (broadband, no peaks): PINNacle's Poisson 2d-C, smooth by its spectrum,
        # ends at 0.74 with the MLP and 7.4e-2 with mff σ = 1 (benchmarks/README.md §23)
        return net, (
            f"a shape: every band within {cycles:.2g} cycles per box length, but layers "
            "along ∂Ω are not peaks; a Fourier network at the low band"
        )
    if cycles <= SMOOTH_CYCLES:
        return "mlp", (
            f"smooth: every band within {cycles:.2g} cycles per box length "
            f"(≤ {SMOOTH_CYCLES:g})"
        )
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

    from mscalepde.problem.validate import problem_from_dict

    if not is_auto(problem.model):
        return problem, None
    selection = choose(problem)
    data = copy.deepcopy(problem.config)
    data["model"] = resolve_model(problem.model, selection)
    return problem_from_dict(data, origin=problem.origin), selection
