"""``mscalepde diagnose RUN_DIR``: the spectral diagnostics recomputed from a saved run,
with other settings if asked, without retraining.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mscalepde.diagnostics.fprinciple import SpectralSnapshot
from mscalepde.diagnostics.grid import (
    NO_EXACT_NOTE,
    DiagnosticGrid,
    TruthFn,
    inside_function,
    slice_name,
    truth_function,
)
from mscalepde.diagnostics.history import SpectralHistory
from mscalepde.diagnostics.monitor import _Spectra
from mscalepde.diagnostics.plots import _write_figures
from mscalepde.diagnostics.report import _format_final_rows, _format_rows, _num, _rows
from mscalepde.diagnostics.settings import (
    DiagnosticSettings,
    _check_transform,
    _close,
    diagnostic_slice,
)
from mscalepde.diagnostics.store import SavedDiagnostics, _pack, _write_npz, load_spectral
from mscalepde.errors import MscaleError, RunFolderError
from mscalepde.problem.model import Problem


def _final_step_from_summary(run_dir: Path) -> int | None:
    try:
        s = json.loads((run_dir / "summary.json").read_text())
        return int(s["steps"])
    except Exception:  # noqa: BLE001 - optional information
        return None


def diagnose_run(
    run_dir: str | Path,
    *,
    grid: int | None = None,
    threshold: float | None = None,
    transform: str | None = None,
    magnitude: bool | None = None,
    floor: float | None = None,
    times: Sequence[float] | float | None = None,
    delta: float | None = None,
    bands: Sequence[float] | None = None,
    out: str | Path | None = None,
    figures: bool = True,
    truth: TruthFn | None = None,
) -> dict[str, Any]:
    """Recompute the spectral diagnostics of a saved run, without retraining.

    Settings left None keep those stored in ``diagnostics.npz`` (or, without one, those of
    ``config.yaml``).

    * ``threshold`` only changes which steps count as resolved: the stored Δ_F history is
      reused as is.
    * ``magnitude``, ``floor`` (new peaks), ``bands`` and ``delta`` recompute the whole
      history from the network fields stored at every diagnostic step (``fields`` in
      ``diagnostics.npz``; if they were thinned to fit the memory budget, only the stored
      steps are recomputed and the result says so).
    * ``grid``, ``transform`` or ``times`` (a different sampling): only the final network
      is saved, so only the **final state** is recomputed, from ``model.pt`` and
      ``config.yaml`` (:func:`mscalepde.run.folder.load_model`): the final spectra, Δ_F at the
      peaks of the truth on the new grid and the filter errors (``final_rows``,
      ``final__*`` in ``diagnostics.npz``, ``figures/spectra.png``).  The Δ_F history over
      training steps keeps the stored sampling (the note says so); rerun training with
      ``--set diagnostics.grid=...`` to get a history on another grid.

    ``truth``: a function of points (N, D) for problems without ``exact`` (see
    :func:`truth_function`); only needed to analyse a new grid/transform/times.

    Writes ``diagnostics.npz`` and the figures into ``out`` (default: the run folder) and
    returns a JSON-safe dict: ``rows``/``table`` (resolved-frequency table over training),
    ``final_rows``/``final_table`` (when the final state was recomputed), ``settings``
    (used for the history), ``final_settings``, ``stored_settings``, ``recomputed``
    (``{"history": "none" | "threshold" | "fields" | "partial" | "unavailable" |
    "missing", "final": bool}``: reused as stored, re-thresholded, recomputed from all
    stored fields, from the thinned fields, not recomputable (no fields stored), no
    ``diagnostics.npz`` at all), ``notes``, ``files``, ``out``, ``overhead_seconds``,
    ``train_seconds``.

    Long because the docstring is the reference of every option and result key (45 lines)
    and the body is one linear pass (load, settings, history, final state, files) whose
    stages share the stored and the new settings; its leaf steps are the helpers below.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    target = Path(out) if out is not None else run_dir
    npz = run_dir / "diagnostics.npz"
    saved = load_spectral(npz) if npz.exists() else None
    notes: list[str] = []

    if isinstance(times, (int, float)):
        times = [float(times)]
    _validate_overrides(grid, threshold, floor, delta, bands)
    overrides = {
        "grid": grid,
        "threshold": threshold,
        "transform": None if transform is None else _check_transform(transform),
        "magnitude": magnitude,
        "floor": floor,
        "delta": delta,
        "bands": None if bands is None else list(bands),
    }
    problem: Problem | None = None
    model: nn.Module | None = None

    def load() -> tuple[Problem, nn.Module]:
        nonlocal problem, model
        if problem is None or model is None:
            from mscalepde.run.folder import load_model

            problem, model = load_model(run_dir)
        return problem, model

    if saved is not None:
        base = saved.settings
    else:
        problem, model = load()
        if truth_function(problem, truth) is None:
            raise MscaleError(f"{run_dir}: {NO_EXACT_NOTE}")
        base = DiagnosticSettings.from_problem(problem)
        notes.append(f"{npz.name} not found: only the final state could be analysed")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "bands" in changes:
        changes["bands"] = tuple(float(b) for b in changes["bands"])
    if "delta" in changes:
        changes["delta_default"] = False
    new = replace(base, **changes)
    if times is not None:
        new = replace(new, times=tuple(sorted({float(t) for t in times})))
        if base.times is None:
            raise MscaleError("diagnose: --times needs a problem with a time interval")
    new_sampling = saved is None or not new.same_sampling(base)
    # the history keeps the stored sampling
    hist_settings = (
        new
        if saved is None
        else replace(new, grid=base.grid, transform=base.transform, times=base.times)
    )

    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "out": str(target),
        "stored_settings": base.to_dict() if saved is not None else None,
        "settings": hist_settings.to_dict(),
        "rows": [],
        "table": "",
        "recomputed": {"history": "unavailable", "final": False},
        "notes": notes,
        "files": {},
        "overhead_seconds": None if saved is None else saved.overhead_seconds,
        "train_seconds": None if saved is None else saved.train_seconds,
    }

    histories: list[SpectralHistory] = []
    snapshots: list[SpectralSnapshot | None] = []
    hist_times: tuple[float | None, ...] = ()
    packed: dict[str, np.ndarray] | None = None
    if saved is not None:
        hist_times = saved.times
        original = saved.original_arrays()  # before the histories are changed
        histories, snapshots, how = _redo_history(saved, hist_settings, notes)
        result["recomputed"]["history"] = how
        result["rows"] = _rows(histories, hist_times)
        result["table"] = _format_rows(result["rows"])
        fields = [(int(s), f) for s, f in zip(saved.field_steps, saved.fields, strict=True)]
        packed = dict(
            histories=histories,
            times=hist_times,
            settings=hist_settings,
            grid_shape=saved.grid_shape,
            truth=saved.truth,
            fields=fields,
            fields_complete=saved.fields_complete,
            filter_index=saved.filter_index,
            overhead_seconds=saved.overhead_seconds,
            train_seconds=saved.train_seconds,
            notes=saved.notes,
            original=original,
        )

    final_arrays: dict[str, np.ndarray] | None = None
    final_snaps: list[SpectralSnapshot] = []
    if new_sampling:
        problem, model = load()
        if truth_function(problem, truth) is None:
            raise MscaleError(f"{run_dir}: {NO_EXACT_NOTE}")
        if new.times is not None:
            assert problem.domain.time is not None
            t0, t1 = problem.domain.time
            bad = [t for t in new.times if not t0 - 1e-12 <= t <= t1 + 1e-12]
            if bad:
                raise MscaleError(f"diagnose: times: {bad[0]:g} is outside [{t0:g}, {t1:g}]")
        box, fixed = diagnostic_slice(problem.domain)  # d > 3: the plane of the monitor
        dgrid = DiagnosticGrid(box, new, inside=inside_function(problem), fixed=fixed)
        truth_grid = dgrid.truth(problem, truth)
        p = next(model.parameters())
        h = dgrid.evaluate(model, dtype=p.dtype, device=p.device)
        spectra = _Spectra(dgrid, truth_grid, new)
        step = saved.final_step if saved is not None else None
        if step is None:
            step = _final_step_from_summary(run_dir) or 0
        fh = spectra.new_histories()
        final_snaps = spectra.record(fh, step, h)
        ft = dgrid.times
        final_rows = _final_rows(final_snaps, ft, int(step), new.threshold)
        result["final_rows"] = final_rows
        result["final_table"] = _format_final_rows(final_rows)
        result["final_settings"] = new.to_dict()
        result["final_filter_errors"] = [
            {"slice": slice_name(t), "e_low": _num(hh.e_low[-1]), "e_high": _num(hh.e_high[-1])}
            for hh, t in zip(fh, ft, strict=True)
        ]
        result["recomputed"]["final"] = True
        notes.extend(dgrid.boundary_notes(problem, truth_grid, truth))
        if saved is not None:
            notes.append(_final_only_note(base, new, step))
        final_arrays = {
            "settings_json": np.array(json.dumps(new.to_dict())),
            "truth": truth_grid,
            "field": h.astype(np.float32),
            "step": np.array(int(step), dtype=np.int64),
            "e_low": np.array([hh.e_low[-1] for hh in fh]),
            "e_high": np.array([hh.e_high[-1] for hh in fh]),
        }
        if saved is None:
            result["recomputed"]["history"] = "missing"
            histories, snapshots, hist_times = fh, list(final_snaps), ft
            result["rows"] = _rows(histories, hist_times)
            result["table"] = _format_rows(result["rows"])
            result["settings"] = new.to_dict()
            packed = dict(
                histories=fh,
                times=ft,
                settings=new,
                grid_shape=dgrid.shape,
                truth=truth_grid,
                fields=[(int(step), h.astype(np.float32))],
                fields_complete=True,
                filter_index=dgrid.filter_index,
                overhead_seconds=0.0,
                train_seconds=None,
                notes=[],
            )
            final_arrays = None

    if packed is not None:
        _write_npz(target / "diagnostics.npz", _pack(**packed, final=final_arrays))
        result["files"]["spectral"] = "diagnostics.npz"
    if figures and histories:
        paths = _figures(
            target, histories, snapshots, hist_times, hist_settings,
            saved.grid_shape if saved is not None else None, final_snaps, new, notes,
        )
        result["files"]["figures"] = [str(p.relative_to(target)) for p in paths]
    return result


def _final_rows(
    snaps: Sequence[SpectralSnapshot], times: Sequence[float | None], step: int, threshold: float
) -> list[dict[str, Any]]:
    """One row per peak and slice of the recomputed final state: Δ_F and whether it is
    below the threshold (resolved)."""
    rows = []
    for snap, t in zip(snaps, times, strict=True):
        for peak, df in zip(snap.peaks, snap.delta_f, strict=True):
            rows.append(
                {
                    "slice": slice_name(t),
                    "time": t,
                    "step": step,
                    "index": [int(v) for v in peak.index],
                    "wavenumber": [float(v) for v in peak.wavenumber],
                    "k_norm": float(peak.norm),
                    "amplitude": float(peak.amplitude),
                    "delta_f": _num(df),
                    "resolved": bool(df < threshold),
                    "threshold": threshold,
                }
            )
    return rows


def _final_only_note(base: DiagnosticSettings, new: DiagnosticSettings, step: int) -> str:
    """Why only the final state was recomputed: the sampling changed, and only the final
    model is saved."""
    what = []
    if new.grid != base.grid:
        what.append(f"grid {base.grid} -> {new.grid}")
    if new.transform != base.transform:
        what.append(f"transform {base.transform} -> {new.transform}")
    if not new.same_sampling(replace(base, grid=new.grid, transform=new.transform)):
        what.append("other times")
    return (
        f"{', '.join(what)}: only the final model is saved, so only the final state "
        f"(step {step}) was recomputed; Delta_F over training steps could not be "
        f"recomputed and stays at grid {base.grid}, transform {base.transform}; "
        "retrain with --set diagnostics.grid=N (or transform/times) for a history"
    )


def _figures(
    target: Path,
    histories: list[SpectralHistory],
    snapshots: list[SpectralSnapshot | None],
    hist_times: tuple[float | None, ...],
    hist_settings: DiagnosticSettings,
    grid_shape: Any,
    final_snaps: list[SpectralSnapshot],
    new: DiagnosticSettings,
    notes: list[str],
) -> list[Path]:
    """The figures of a diagnose run: the history's (F-principle map, filter and band
    errors) and the final spectra (recomputed when the sampling changed)."""
    folder = target / "figures"
    paths, note = _write_figures(
        folder,
        histories,
        snapshots,
        hist_times,
        hist_settings,
        grid_shape=grid_shape,
        names=("fprinciple", "filter_errors", "band_errors"),
    )
    if final_snaps:
        p2, note2 = _write_figures(
            folder,
            [],
            final_snaps,
            tuple(s for s in (new.times or (None,))),
            new,
            names=("spectra",),
            spectra_title="Final spectra (recomputed)",
        )
    else:
        p2, note2 = _write_figures(
            folder, [], snapshots, hist_times, hist_settings, names=("spectra",)
        )
    paths += p2
    for n in (note, note2):
        if n:
            notes.append(n)
    return paths


def _validate_overrides(
    grid: int | None,
    threshold: float | None,
    floor: float | None,
    delta: float | None,
    bands: Sequence[float] | None,
) -> None:
    """One-line errors for out-of-range :func:`diagnose_run` arguments."""
    if grid is not None and not (isinstance(grid, int) and 8 <= grid <= 1 << 16):
        raise MscaleError(f"diagnose: grid: expected an integer in [8, 65536], got {grid!r}")
    for name, v in (("threshold", threshold), ("delta", delta)):
        if v is not None and not (math.isfinite(float(v)) and float(v) > 0):
            raise MscaleError(f"diagnose: {name}: expected a positive number, got {v!r}")
    if floor is not None and not 0 < float(floor) <= 1:
        raise MscaleError(f"diagnose: floor: expected a number in (0, 1], got {floor!r}")
    if bands is not None:
        e = [float(b) for b in bands]
        if len(e) < 2 or e[0] < 0 or any(b <= a for a, b in zip(e[:-1], e[1:], strict=True)):
            raise MscaleError(f"diagnose: bands: expected 2 or more increasing edges >= 0, got {e}")


def _redo_history(
    saved: SavedDiagnostics, settings: DiagnosticSettings, notes: list[str]
) -> tuple[list[SpectralHistory], list[SpectralSnapshot | None], str]:
    """The history under ``settings`` (same sampling as stored); see :func:`diagnose_run`."""
    base = saved.settings
    spectral_change = (
        settings.magnitude != base.magnitude
        or not _close(settings.floor, base.floor)
        or settings.bands != base.bands
    )
    filter_change = not _close(settings.delta, base.delta)
    grid = DiagnosticGrid(saved.box, settings, filter_index=saved.filter_index)
    spectra = _Spectra(grid, saved.truth, settings)
    have_fields = len(saved.field_steps) > 0
    if not (spectral_change or filter_change):
        histories = saved.histories
        for h in histories:
            h.threshold = settings.threshold
        snaps: list[SpectralSnapshot | None] = [None] * len(histories)
        final = saved.final_step
        if have_fields and final is not None and int(saved.field_steps[-1]) == final:
            # the final spectra, with the stored peaks
            snaps = [spectra.snapshot(i, saved.fields[-1][i]) for i in range(len(histories))]
        changed = not _close(settings.threshold, base.threshold)
        return histories, snaps, "threshold" if changed else "none"
    if not have_fields:
        notes.append(
            "no network fields are stored in diagnostics.npz: magnitude/floor/bands/delta "
            "changes cannot be applied to the history (threshold only)"
        )
        histories = saved.histories
        for h in histories:
            h.threshold = settings.threshold
        return histories, [None] * len(histories), "unavailable"
    histories = spectra.new_histories()
    old = saved.histories
    snaps = []
    for step, h in zip(saved.field_steps, saved.fields, strict=True):
        h = np.asarray(h, dtype=np.float64)
        errs = None
        if not filter_change:
            pos = np.nonzero(old[0].steps == int(step))[0]
            if pos.size:
                j = int(pos[0])
                errs = [(float(o.e_low[j]), float(o.e_high[j])) for o in old]
        snaps = spectra.record(histories, int(step), h, errs)
    n_all, n_kept = len(old[0]), len(saved.field_steps)
    if n_kept < n_all:
        notes.append(
            f"the history was recomputed on the {n_kept} of {n_all} diagnostic steps whose "
            "network fields are stored (fields thinned to the memory budget)"
        )
        return histories, list(snaps), "partial"
    return histories, list(snaps), "fields"
