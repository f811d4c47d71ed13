"""Figures of a run: the solution (prediction, truth, error) and the training history.

Matplotlib with the Agg back end (no screen needed); every figure is closed after saving
and written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mscalepde.io import atomic_write_bytes
from mscalepde.training.history import History


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Write ``fig`` as a PNG atomically and close it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _slice_to_2d(
    axes: Sequence[np.ndarray], names: Sequence[str], fields: list[np.ndarray]
) -> tuple[list[np.ndarray], list[str], list[np.ndarray], str]:
    """Reduce a ≥3-axis grid to 2 axes: the last time for heat, the middle of z in 3D."""
    note = ""
    axes, names = list(axes), list(names)
    while len(axes) > 2:
        if names[-1] == "t":
            note += f"t = {axes[-1][-1]:.3g}  "
            fields = [f[..., -1] for f in fields]
        else:
            k = len(axes[-1]) // 2
            note += f"{names[-1]} = {axes[-1][k]:.3g}  "
            fields = [f[..., k] for f in fields]
        axes.pop()
        names.pop()
    return axes, names, fields, note.strip()


def solution_figure(
    path: str | Path,
    axes: Sequence[np.ndarray],
    names: Sequence[str],
    prediction: np.ndarray,
    truth: np.ndarray | None,
    title: str = "",
    symbol: str = "u",
    labels: tuple[str, str] = ("network", "truth"),
) -> None:
    """Prediction, truth and error on a tensor grid (``prediction`` shaped like the grid);
    ``symbol`` names the field in the labels (u, or a recovered coefficient a), ``labels``
    the two panels.

    1 axis: curves; 2 axes (2D space, or 1D space × time): heat maps; 3 or more: the slice
    at the final time (heat) or the middle of the last spatial axis. NaN entries (grid
    points outside a domain that is not a box) are left blank.
    """
    fields = [prediction] + ([truth] if truth is not None else [])
    axes2, names2, fields2, note = _slice_to_2d(axes, names, fields)
    full_title = " — ".join(p for p in (title, note) if p)
    if len(axes2) == 1:
        fig, (a0, a1) = plt.subplots(
            2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
        )
        x = axes2[0]
        if truth is not None:
            a0.plot(x, fields2[1], "k-", lw=2.5, alpha=0.4, label=labels[1])
        a0.plot(x, fields2[0], "C3-", lw=1.0, label=labels[0])
        a0.set_ylabel(symbol)
        a0.legend()
        if truth is not None:
            a1.semilogy(x, np.abs(fields2[0] - fields2[1]) + 1e-300, "C0-", lw=0.8)
            a1.set_ylabel("|error|")
        a1.set_xlabel(names2[0])
        a0.set_title(full_title)
    else:
        panels = [(labels[0] + rf" ${symbol}_\theta$", fields2[0])]
        if truth is not None:
            panels += [
                (labels[1] + rf" ${symbol}^*$", fields2[1]),
                (rf"$|{symbol}_\theta - {symbol}^*|$", np.abs(fields2[0] - fields2[1])),
            ]
        fig, axs = plt.subplots(
            1, len(panels), figsize=(4.6 * len(panels), 4), squeeze=False, layout="constrained"
        )
        X, Y = np.meshgrid(axes2[0], axes2[1], indexing="ij")
        for ax, (label, f) in zip(axs[0], panels):
            im = ax.pcolormesh(  # NaN (outside a shape's domain) stays blank
                X,
                Y,
                np.ma.masked_invalid(f),
                shading="auto",
                cmap="magma" if "|" in label else "RdBu_r",
            )
            fig.colorbar(im, ax=ax, label=label)
            ratio = float(np.ptp(axes2[0]) / max(float(np.ptp(axes2[1])), 1e-300))
            if "t" not in names2 and 0.25 <= ratio <= 4:  # a spatial slice: true proportions
                ax.set_aspect("equal")
            ax.set_title(label)
            ax.set_xlabel(names2[0])
            ax.set_ylabel(names2[1])
        fig.suptitle(full_title)
    save_figure(fig, path)


def history_figure(path: str | Path, history: History, title: str = "") -> None:
    """Loss terms and (when available) relative L2 / max error against the step."""
    steps = np.array(history.column("step"))
    has_err = "rel_l2" in history.columns
    fig, axs = plt.subplots(
        1, 2 if has_err else 1, figsize=(11 if has_err else 6, 4), squeeze=False
    )
    ax = axs[0][0]
    losses = [c for c in history.columns if c.startswith("loss")]
    signed = any(np.nanmin(history.column(c)) < 0 for c in losses)  # a Ritz energy
    for c in losses:
        if signed:
            ax.plot(steps, history.column(c), label=c)
        else:
            ax.semilogy(steps, np.maximum(history.column(c), 1e-300), label=c)
    if signed:  # linear near zero, logarithmic beyond: the energy falls below 0
        ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (energy: can be negative)" if signed else "loss")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    if has_err:
        ax = axs[0][1]
        ax.semilogy(steps, history.column("rel_l2"), label="relative L2")
        ax.semilogy(steps, history.column("max_error"), label="max error")
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    phase = np.array(history.column("phase"))
    for i in np.nonzero(phase[1:] != phase[:-1])[0]:  # a dashed line where a phase starts
        for a in axs[0]:
            a.axvline(steps[i], color="gray", ls="--", lw=0.8)
    fig.suptitle(title)
    save_figure(fig, path)


def spectrum_figure(path: str | Path, selection: Any, name: str = "") -> None:
    """The spectrum ``auto`` chose from: energy per wave vector against |k| (cycles per
    unit length, |k|/2π), the selected bands shaded, the floor and the chosen σ or scales
    in the title; a second panel for the temporal spectrum of heat problems."""
    import math

    spec = selection.spectrum
    knorm, energy = spec.radial()
    has_t = spec.kt is not None and spec.energy_t is not None
    fig, axs = plt.subplots(1, 2 if has_t else 1, figsize=(11 if has_t else 6.5, 4.2),
                            squeeze=False)
    ax = axs[0][0]
    top = float(energy.max()) if energy.size else 1.0
    keep = knorm > 0
    rel = np.maximum(energy[keep] / top, 1e-16)  # below 1e-16: drawn at the bottom edge
    ax.loglog(knorm[keep] / (2 * math.pi), rel, ".", ms=2.5, color="0.3",
              label="energy per wave vector")
    floor = selection.settings.floor ** 2
    ax.axhline(floor, color="tab:red", lw=0.8, ls="--", label=f"floor ({floor:.0e})")
    for i, band in enumerate(selection.bands):
        lo, hi = band.k_lo / (2 * math.pi), band.k_hi / (2 * math.pi)
        color = "tab:green" if band.added else f"C{i % 10}"
        ax.axvspan(lo / 1.08, hi * 1.08, color=color, alpha=0.25,
                   label=("low band (kept)" if band.added else f"band {i + 1}: "
                          f"{100 * band.fraction:.3g} % energy"))
    ax.set_xlabel("|k| / 2π  (cycles per unit length)")
    ax.set_ylabel("energy / max")
    ax.set_ylim(1e-16, 2.0)
    ax.legend(fontsize=7, loc="lower left")
    chosen = ", ".join(f"{k} = {v}" for k, v in selection.chosen.items())
    ax.set_title(f"{name}: {selection.arch}" + (f"; {chosen}" if chosen else ""), fontsize=8)
    if has_t:
        ax2 = axs[0][1]
        et = np.asarray(spec.energy_t)
        mt = float(et.max()) or 1.0
        kt = np.asarray(spec.kt) / (2 * math.pi)
        ax2.semilogy(kt, np.maximum(et / mt, 1e-16), ".-", ms=3, color="0.3")
        for band in selection.bands_t:
            ax2.axvspan(band.k_lo / (2 * math.pi), band.k_hi / (2 * math.pi) + 1e-9,
                        color="tab:green" if band.added else "tab:blue", alpha=0.25)
        ax2.set_xlabel("k_t / 2π  (cycles per unit time)")
        ax2.set_ylabel("energy / max")
        ax2.set_title("temporal spectrum", fontsize=8)
    fig.suptitle(f"spectrum from {spec.origin}: {spec.detail}", fontsize=7)
    save_figure(fig, path)
