"""Writing the diagnostics' figures of a run (the F-principle heat map, spectra, filter and
band errors) into its ``figures/`` folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mscalepde.diagnostics.fprinciple import SpectralSnapshot, cutoff_for_delta
from mscalepde.diagnostics.history import SpectralHistory
from mscalepde.diagnostics.settings import DiagnosticSettings
from mscalepde.errors import MscaleError

FIGURES = ("fprinciple", "spectra", "filter_errors", "band_errors")


def _figure_name(base: str, i: int, times: Sequence[float | None]) -> str:
    if i == len(times) - 1 or times[i] is None:
        return f"{base}.png"
    return f"{base}_t{times[i]:g}.png"


def _write_figures(
    folder: Path,
    histories: Sequence[SpectralHistory],
    snapshots: Sequence[SpectralSnapshot | None],
    times: Sequence[float | None],
    settings: DiagnosticSettings,
    *,
    grid_shape: Sequence[int] | None = None,
    names: Sequence[str] = FIGURES,
    spectra_title: str | None = None,
) -> tuple[list[Path], str | None]:
    """Write the figures of every slice; returns the paths and a note on failure."""
    from mscalepde.diagnostics.figures import (
        plot_band_errors,
        plot_filter_errors,
        plot_fprinciple_heatmap,
        plot_spectra,
    )

    paths: list[Path] = []
    try:
        for i, t in enumerate(times):
            at = "" if t is None else f" at t = {t:g}"
            grid = "" if grid_shape is None else f", grid {'×'.join(map(str, grid_shape))}"
            hist = histories[i] if i < len(histories) else None
            snap = snapshots[i] if i < len(snapshots) else None
            kind = "magnitude-only" if settings.magnitude else "complex"
            for name in names:
                target = folder / _figure_name(name, i, times)
                if name == "fprinciple" and hist is not None:
                    title = f"Frequency Principle: Δ_F per frequency ({kind}{grid}){at}"
                    paths.append(plot_fprinciple_heatmap(hist, target, title=title))
                elif name == "spectra" and snap is not None:
                    shape = "×".join(map(str, snap.shape))
                    title = spectra_title or "Final spectra"
                    title += f" ({snap.transform}, grid {shape}){at}"
                    paths.append(plot_spectra(snap, target, title=title))
                elif name == "filter_errors" and hist is not None:
                    k = cutoff_for_delta(settings.delta)
                    title = (
                        f"Filtering method (δ = {settings.delta:.3g}: split at |k| ≈ {k:.4g}){at}"
                    )
                    paths.append(plot_filter_errors(hist, target, title=title))
                elif name == "band_errors" and hist is not None:
                    title = (
                        "Relative error per band of |k|"
                        + (" (octaves)" if settings.bands is None else "")
                        + at
                    )
                    paths.append(plot_band_errors(hist, target, title=title))
    except MscaleError:
        raise
    except Exception as exc:  # noqa: BLE001 - a figure must not lose the results
        return paths, f"spectral figures not all written: {type(exc).__name__}: {exc}"
    return paths, None
