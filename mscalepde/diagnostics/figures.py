"""Figures of the Frequency-Principle diagnostics (:mod:`mscalepde.diagnostics.fprinciple`).

* :func:`plot_fprinciple_heatmap` — Δ_F at the solution frequencies over training, the
  map of Xu et al., *Frequency Principle: Fourier analysis sheds light on deep neural
  networks* (2019/2020), and of the overview by Xu, Zhang, Luo (2022): log colour scale
  clipped to [0.01, 1], blue = resolved (low error), red = unresolved (RdBu reversed).
* :func:`plot_spectra` — final |û|, |ĥ|, |ĥ − û| against |k|.
* :func:`plot_filter_errors` — e_low and e_high of the filtering method against steps.
* :func:`plot_band_errors` — the radial band errors against steps.

Every function writes a PNG atomically (temporary file in the same folder, then
``os.replace``, through :mod:`mscalepde.io`) and closes its figure; the Agg backend is
selected at import.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from mscalepde.diagnostics.fprinciple import (
    Peak,
    SpectralSnapshot,
    cutoff_for_delta,
    format_wavevector,
)
from mscalepde.diagnostics.history import SpectralHistory
from mscalepde.diagnostics.transforms import _amplitude_factor, _fft_conjugate_info
from mscalepde.io import atomic_write_bytes

DF_MIN, DF_MAX = 0.01, 1.0


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` as PNG to ``path`` atomically (:mod:`mscalepde.io`), always closing it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _no_data(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around (possibly unevenly spaced) centres for pcolormesh."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


def _peak_label(p: Peak, ndim: int) -> str:
    if ndim == 1:
        return f"k = {format_wavevector(p.wavenumber, pi='π')}"
    return f"k = {format_wavevector(p.wavenumber, pi='π')}, |k| = {p.norm:.4g}"


def plot_fprinciple_heatmap(
    history: SpectralHistory,
    path: str | os.PathLike[str],
    threshold: float | None = None,
    title: str | None = None,
) -> Path:
    """Heat map of Δ_F: rows = solution frequencies (|k| ascending), columns = steps.

    Colour: Δ_F on a log scale clipped to [0.01, 1] (values beyond are drawn with the end
    colours), ``RdBu_r`` so that blue = low error (resolved) and red = high error; the
    resolution threshold is marked on the colour bar; unrecorded cells are grey.
    """
    peaks = history.peaks or ()
    fig, ax = plt.subplots(figsize=(8.0, 1.6 + 0.28 * max(len(peaks), 4)))
    draw_fprinciple_heatmap(fig, ax, history, threshold, title)
    return _save(fig, path)


def draw_fprinciple_heatmap(
    fig: Any,
    ax: Any,
    history: SpectralHistory,
    threshold: float | None = None,
    title: str | None = None,
    colorbar: bool = True,
) -> Any:
    """Draw the Δ_F heat map of :func:`plot_fprinciple_heatmap` into ``ax``."""
    thr = history.threshold if threshold is None else float(threshold)
    df = history.delta_f
    steps = history.steps
    peaks = history.peaks or ()
    kind = "magnitude-only" if history.magnitude else "complex"
    ax.set_title(title or f"Frequency Principle: relative error per frequency ({kind} Δ_F)")
    if df.size == 0:
        _no_data(ax, "no solution frequency recorded")
        return None
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.8")
    data = np.ma.masked_invalid(np.clip(df.T, DF_MIN, DF_MAX))
    mesh = ax.pcolormesh(
        _edges(steps),
        np.arange(len(peaks) + 1) - 0.5,
        data,
        cmap=cmap,
        norm=LogNorm(vmin=DF_MIN, vmax=DF_MAX),
        shading="flat",
    )
    ndim = len(peaks[0].index)
    stride = max(1, math.ceil(len(peaks) / 40))
    ticks = np.arange(0, len(peaks), stride)
    ax.set_yticks(ticks)
    ax.set_yticklabels([_peak_label(peaks[i], ndim) for i in ticks], fontsize=8)
    ax.set_ylim(-0.5, len(peaks) - 0.5)
    ax.set_xlabel("training step")
    ax.set_ylabel("solution frequency (peak of |û|)")
    if not colorbar:
        return mesh
    cbar = fig.colorbar(mesh, ax=ax, extend="both")
    cbar.set_label(
        "Δ_F = |ĥ(k) − û(k)| / |û(k)|"
        if not history.magnitude
        else "Δ_F = ||ĥ(k)| − |û(k)|| / |û(k)|"
    )
    if DF_MIN <= thr <= DF_MAX:
        cbar.ax.axhline(thr, color="k", lw=2)
        ticks = sorted({DF_MIN, 0.1, DF_MAX, thr})
        cbar.set_ticks(
            ticks, labels=[f"{t:g} (threshold)" if t == thr else f"{t:g}" for t in ticks]
        )
        cbar.ax.minorticks_off()
    return mesh


def _one_sided(snapshot: SpectralSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the coefficients to plot (one per fft ± pair) and their amplitude factor."""
    shape = snapshot.shape
    if snapshot.transform == "fft":
        mask, _ = _fft_conjugate_info(shape)
    else:
        mask = np.ones(shape, dtype=bool)
    return mask, _amplitude_factor(shape, snapshot.transform)


def plot_spectra(
    snapshot: SpectralSnapshot, path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Final spectra |û| (truth), |ĥ| (network) and |ĥ − û| (error) against |k| (log y).

    Amplitudes are normalised as the peak amplitudes of :mod:`mscalepde.diagnostics.fprinciple`
    (fft: one
    coefficient per ± pair, doubled); 1D draws lines, 2D/3D a scatter against |k|.  The
    solution frequencies are marked.  Zero coefficients are not drawn.
    """
    mask, factor = _one_sided(snapshot)
    knorm = snapshot.knorm[mask]
    order = np.argsort(knorm, kind="stable")
    k = knorm[order]
    series = [
        ("|û| truth", np.abs(snapshot.u_hat), "C0"),  # drawn first and largest
        ("|ĥ| network", np.abs(snapshot.h_hat), "C1"),
        ("|ĥ − û| error", np.abs(snapshot.h_hat - snapshot.u_hat), "C3"),
    ]
    fig, ax = plt.subplots(figsize=(8.0, 4.5))
    ax.set_title(title or f"Final spectra ({snapshot.transform} coefficients)")
    one_d = len(snapshot.shape) == 1
    for (label, val, colour), size in zip(series, (14, 5, 3), strict=True):
        v = (val * factor)[mask][order]
        v = np.where(v > 0, v, np.nan)
        if one_d:
            ax.plot(k, v, "-", color=colour, lw=1.0, label=label)
        else:
            ax.scatter(k, v, s=size, color=colour, label=label, alpha=0.7, rasterized=True)
    for p in snapshot.peaks:
        ax.axvline(p.norm, color="0.6", lw=0.6, ls=":", zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel("|k| (angular wavenumber)" if not one_d else "k (angular wavenumber)")
    ax.set_ylabel("amplitude")
    ax.legend(loc="best", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    return _save(fig, path)


def plot_filter_errors(
    history: SpectralHistory,
    path: str | os.PathLike[str],
    delta: float | None = None,
    title: str | None = None,
) -> Path:
    """e_low and e_high of the Gaussian filtering method against training steps (log y)."""
    steps = history.steps
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    extra = ""
    if delta is not None:
        extra = f"\n(δ = {delta:.3g}: low/high split at |k| ≈ {cutoff_for_delta(delta):.4g})"
    ax.set_title(title or f"Filtering method: low/high-frequency relative errors{extra}")
    lo, hi = history.e_low, history.e_high
    ok_lo, ok_hi = np.isfinite(lo) & (lo > 0), np.isfinite(hi) & (hi > 0)
    if not (ok_lo.any() or ok_hi.any()):
        _no_data(ax, "no filter errors recorded")
        return _save(fig, path)
    ax.plot(steps[ok_lo], lo[ok_lo], "o-", ms=2.5, color="C0", label="e_low (smooth part)")
    ax.plot(steps[ok_hi], hi[ok_hi], "s-", ms=2.5, color="C3", label="e_high (oscillatory part)")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("relative error")
    ax.legend(loc="best", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_band_errors(
    history: SpectralHistory, path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """‖P_band(h − u)‖ / ‖P_band u‖ per radial band of |k| against training steps (log y).

    Bands where u has no content (error nan) are omitted; the legend gives each band's
    range and its share of the truth's energy.
    """
    steps = history.steps
    err = history.band_error
    pairs = history.band_pairs if history.band_pairs is not None else np.zeros((0, 2))
    energy = history.band_energy
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.set_title(title or "Relative error per band of |k| (octaves)")
    drawn = 0
    cmap = plt.get_cmap("viridis")
    for j, (blo, bhi) in enumerate(pairs):
        col = err[:, j]
        ok = np.isfinite(col) & (col > 0)
        if not ok.any():
            continue
        share = "" if energy is None or j >= len(energy) else f", energy {energy[j]:.1e}"
        ax.plot(
            steps[ok],
            col[ok],
            "-",
            color=cmap(j / max(1, len(pairs) - 1)),
            lw=1.2,
            label=f"|k| ∈ [{blo:.3g}, {bhi:.3g}){share}",
        )
        drawn += 1
    if not drawn:
        _no_data(ax, "no band errors recorded")
        return _save(fig, path)
    skipped = len(pairs) - drawn
    if skipped:
        ax.text(
            0.99,
            0.99,
            f"{skipped} band(s) where u has no content not shown (relative error undefined)",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            color="0.4",
        )
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("‖P_band(h − u)‖ / ‖P_band u‖")
    ax.legend(loc="best", fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def write_all_figures(
    history: SpectralHistory,
    folder: str | os.PathLike[str],
    snapshot: SpectralSnapshot | None = None,
    delta: float | None = None,
    names: Sequence[str] = ("fprinciple", "spectra", "filter_errors", "band_errors"),
) -> dict[str, Path]:
    """Write the figures into ``folder`` as ``<name>.png``; returns name -> path.

    ``spectra`` needs the final ``snapshot`` and is skipped without one.
    """
    folder = Path(folder)
    out: dict[str, Path] = {}
    for name in names:
        target = folder / f"{name}.png"
        if name == "fprinciple":
            out[name] = plot_fprinciple_heatmap(history, target)
        elif name == "spectra":
            if snapshot is not None:
                out[name] = plot_spectra(snapshot, target)
        elif name == "filter_errors":
            out[name] = plot_filter_errors(history, target, delta=delta)
        elif name == "band_errors":
            out[name] = plot_band_errors(history, target)
        else:
            raise ValueError(f"unknown figure {name!r}")
    return out
