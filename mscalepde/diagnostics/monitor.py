"""Spectral diagnostics during training: which frequencies of the solution have been
resolved, and when (the Frequency Principle, docs/design.md §2).

This module ties the array-level tools of :mod:`mscalepde.diagnostics.fprinciple` to
training and to run folders:

* :class:`SpectralMonitor` — a :class:`~mscalepde.training.trainer.Callback` that evaluates the
  network on a fixed diagnostic grid every ``diagnostics.every`` steps (and at step 0 and
  at the last step) and records Δ_F at the solution frequencies, the radial band errors
  and the filtering-method errors (e_low, e_high) into one
  :class:`~mscalepde.diagnostics.history.SpectralHistory` per time slice;
* :meth:`SpectralMonitor.finish` — the resolved-frequency table, ``diagnostics.npz`` and the
  figures of a run folder;
* ``mscalepde diagnose`` (:mod:`mscalepde.run.diagnose`) recomputes them from a saved run
  with other settings, without retraining; :mod:`mscalepde.diagnostics.report` formats
  the text the command line prints.

Definitions
-----------
Let u be the truth (``exact``) and h the network, both sampled on the diagnostic grid
(``diagnostics.grid`` points per axis; 512 in 1D, 128 in 2D, 32 in 3D by default; the grid
of :func:`~mscalepde.diagnostics.transforms.diagnostic_grid` for the chosen ``transform``)
— for heat problems the spatial grid at the final time, or at each time of ``diagnostics.times``.
With û, ĥ their amplitude-normalised coefficients (fft, dst or dct):

* per-frequency relative error (Xu et al. 2019/2020):
  Δ_F(k) = |ĥ(k) − û(k)| / |û(k)|, or with ``magnitude: true`` (the papers' figures)
  Δ_F(k) = ||ĥ(k)| − |û(k)|| / |û(k)|;
* solution frequencies: the peaks of |û| — local maxima over the neighbouring
  frequencies in every axis, above ``floor · max|û|`` (wave vectors in 2D/3D), found once
  from the truth;
* a peak k is **resolved** at a diagnostic step when Δ_F(k) < ``threshold``; the table
  reports the first such step (``first_resolved``) and the step from which Δ_F stayed
  below the threshold through the last diagnostic step (``resolved_since``; None =
  "never");
* band errors ‖P_band(h − u)‖ / ‖P_band u‖ over radial bands of |k| (octaves by default,
  ``diagnostics.bands`` edges otherwise);
* filtering method (Xu et al. 2020, ``filter_gd.py``): with
  G^δ(x − x') = exp(−|x − x'|² / (2δ)), v^low(x_i) = Σ_j v(x_j) G^δ(x_i − x_j) /
  Σ_j G^δ(x_i − x_j) and v^high = v − v^low, e_low = ‖u^low − h^low‖ / ‖u^low‖ and
  e_high = ‖u^high − h^high‖ / ‖u^high‖.  The sums run over a fixed random subsample of at
  most ``diagnostics.filter_points`` grid points (default 2000; the whole grid when it is
  smaller), so the O(m²) normalised kernel is built once and each evaluation is one
  matrix product.  δ is ``diagnostics.delta`` or
  :func:`~mscalepde.diagnostics.fprinciple.default_delta`
  of the box; the low/high split sits at |k| ≈ sqrt(2 ln 2 / δ).

Non-periodic solutions leak under the fft (see :mod:`mscalepde.diagnostics.fprinciple`).
``transform: auto`` (the default) picks the transform the truth on the box faces fits
(:mod:`mscalepde.diagnostics.choice`); on a domain that is not a box, or a box no transform
fits, both fields are multiplied by a smooth window w (:mod:`mscalepde.diagnostics.window`)
and the peaks are the solution's own among the local maxima of the windowed spectrum
(:func:`~mscalepde.diagnostics.window.windowed_peaks`). A transform the user names is
kept, and the monitor adds a note when the periodic extension of the truth jumps or has a
kink at the box faces (fft: u or u' differs between opposite faces; e.g. sin(πx) on
[0, 1], whose fft spectrum then shows a single peak at k = 0) or when the truth does not
vanish on the faces (dst).

Cost
----
Every diagnostic is one batched forward pass on the grid (``torch.inference_mode``), one
transform per time slice and one (m × m)·(m × 2) product for the filter.  Measured on one
CPU thread with the default settings: ~2 ms per diagnostic in 1D (512 points), ~130 ms in
2D (128², mostly the forward pass) and 3D (32³); at ``every: 100`` that was 0.8% of the
training time of ``problems/poisson1d_sin.yaml``, 2.4% of ``poisson2d_multiscale.yaml`` and
4.6% of ``poisson3d.yaml``.  The monitor measures its own wall time
(:attr:`SpectralMonitor.seconds`, all hooks included); the trainer does not count callbacks
in ``train_seconds``, so ``overhead_fraction = seconds / train_seconds``.

Files (run folder, docs/design.md §5)
--------------------------------
``diagnostics.npz`` (written atomically; ``np.load(..., allow_pickle=False)``):

* the top-level keys of :meth:`SpectralHistory.to_arrays` for the *primary* slice (the
  latest time; the only slice of a steady problem), so
  ``SpectralHistory.from_npz("diagnostics.npz")`` reads it directly;
* ``s<i>__<key>``: the same arrays for every slice i; ``slice_names`` (``""`` or
  ``"t=0.5"``), ``slice_times`` (nan for steady problems), ``primary``;
* ``settings_json`` (the diagnostic settings used), ``grid_shape``, ``truth``
  (slices × grid, float64), ``fields`` (stored steps × slices × grid, float32: the network
  on the grid; both times the window w, or χ_Ω, on a windowed grid), ``window`` (the
  window on the grid, when there is one), ``field_steps``, ``fields_complete`` (false when
  the fields were thinned to stay under the memory budget, 64 MiB by default),
  ``filter_index`` (the subsample of the filter, indices into the flattened grid),
  ``overhead_seconds``, ``train_seconds``, ``notes_json``;
* ``train__*``: written by :func:`diagnose_run` the first time it rewrites the file: the
  histories and settings recorded during training (``train__s<i>__<key>``,
  ``train__settings_json``), kept unchanged afterwards
  (:attr:`SavedDiagnostics.original_histories`), so no recompute loses them;
* ``final__*``: written by :func:`diagnose_run` when it recomputed the final state on
  another grid, transform or set of times (``final__settings_json``, ``final__truth``,
  ``final__field``, ``final__step``, ``final__e_low``, ``final__e_high``).

``figures/fprinciple.png`` (Δ_F heat map), ``figures/spectra.png`` (final |û|, |ĥ|,
|ĥ − û|), ``figures/filter_errors.png`` (e_low, e_high), ``figures/band_errors.png``: for
the primary slice; the other slices of a heat problem add ``_t<time>`` to the name
(``figures/fprinciple_t0.5.png``).

References
----------
* Z.-Q. J. Xu, Y. Zhang, Y. Xiao, *Training behavior of deep neural network in frequency
  domain* (ICONIP 2019, arXiv:1807.01251);
* Z.-Q. J. Xu, Y. Zhang, T. Luo, Y. Xiao, Z. Ma, *Frequency Principle: Fourier analysis
  sheds light on deep neural networks*, Commun. Comput. Phys. 28 (2020) 1746-1767
  (arXiv:1901.06523, 2019); reference code ``xuzhiqin1990/F-Principle``;
* Z.-Q. J. Xu, Y. Zhang, T. Luo, *Overview frequency principle/spectral bias in deep
  learning* (2022, arXiv:2201.07395).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mscalepde.diagnostics.fprinciple import (
    SpectralSnapshot,
    band_edges_default,
    band_errors_from_coefficients,
    delta_f_at_peaks,
    find_peaks,
)
from mscalepde.diagnostics.grid import (
    NO_EXACT_NOTE,
    DiagnosticGrid,
    TruthFn,
    inside_function,
    slice_name,
    truth_function,
)
from mscalepde.diagnostics.history import SpectralHistory
from mscalepde.diagnostics.plots import _write_figures
from mscalepde.diagnostics.report import _rows, _tables
from mscalepde.diagnostics.settings import FIELDS_BUDGET_BYTES, DiagnosticSettings, diagnostic_slice
from mscalepde.diagnostics.store import _pack, _write_npz
from mscalepde.diagnostics.transforms import transform_field
from mscalepde.diagnostics.window import MAX_WINDOWED_PEAKS, window_kernel, windowed_peaks
from mscalepde.errors import MscaleError
from mscalepde.geometry.box import Domain
from mscalepde.problem.model import Problem
from mscalepde.training.callbacks import Callback
from mscalepde.training.trainer import Trainer


class _Spectra:
    """Peaks and truth spectra of each slice; builds snapshots and records histories.

    On a windowed grid (:attr:`DiagnosticGrid.window`) the peaks are the solution's own
    among the local maxima above the floor (:func:`windowed_peaks`); ``left_out`` counts,
    per slice, the maxima left out as the window's leakage.
    """

    def __init__(
        self, grid: DiagnosticGrid, truth: np.ndarray, settings: DiagnosticSettings
    ) -> None:
        self.grid = grid
        self.settings = settings
        self.truth = truth
        tr = settings.transform
        self.u_hat = [transform_field(u, tr) for u in truth]
        candidates = [find_peaks(uh, grid.box, tr, settings.floor) for uh in self.u_hat]
        self.left_out = [0] * len(candidates)
        if grid.window is None:
            self.peaks = [tuple(c) for c in candidates]
        else:
            kernel = window_kernel(grid.window.reshape(grid.shape), tr)
            self.peaks = []
            for i, (uh, c) in enumerate(zip(self.u_hat, candidates, strict=True)):
                kept, self.left_out[i] = windowed_peaks(uh, c, kernel, tr)
                self.peaks.append(tuple(kept))
        self.band_pairs = (
            band_edges_default(grid.box, grid.shape, settings.transform)
            if settings.bands is None
            else np.array([settings.bands[:-1], settings.bands[1:]]).T
        )

    def new_histories(self) -> list[SpectralHistory]:
        s = self.settings
        return [
            SpectralHistory(
                peaks=p,
                threshold=s.threshold,
                transform=s.transform,
                box=self.grid.box,
                magnitude=s.magnitude,
                bands=self.band_pairs,
            )
            for p in self.peaks
        ]

    def snapshot(self, i: int, h: np.ndarray) -> SpectralSnapshot:
        s = self.settings
        h_hat = transform_field(h, s.transform)
        return SpectralSnapshot(
            transform=s.transform,
            box=self.grid.box,
            u_hat=self.u_hat[i],
            h_hat=h_hat,
            peaks=self.peaks[i],
            delta_f=delta_f_at_peaks(h_hat, self.u_hat[i], self.peaks[i], s.transform, s.magnitude),
            bands=tuple(
                band_errors_from_coefficients(
                    h_hat, self.u_hat[i], self.grid.box, s.transform, self.band_pairs
                )
            ),
            magnitude=s.magnitude,
        )

    def record(
        self,
        histories: list[SpectralHistory],
        step: int,
        h: np.ndarray,
        filter_errors: Sequence[tuple[float, float]] | None = None,
    ) -> list[SpectralSnapshot]:
        """Record the fields ``h`` (S, *shape) of ``step``; returns the snapshots."""
        snaps = []
        for i, hist in enumerate(histories):
            snap = self.snapshot(i, h[i])
            e = (
                filter_errors[i]
                if filter_errors is not None
                else self.grid.filter_errors(self.truth[i], h[i])
            )
            hist.record(step, snap, e_low=e[0], e_high=e[1])
            snaps.append(snap)
        return snaps


def slice_note(domain: Domain) -> str:
    """What a d > 3 problem's spectra are of (the plane of :func:`diagnostic_slice`)."""
    box, fixed = diagnostic_slice(domain)
    at = ", ".join(f"{a} = {v:g}" for a, v in zip(domain.axes[2:], fixed, strict=True))
    return (
        f"in {domain.space_dim}D the spectra are those of the plane ({domain.axes[0]}, "
        f"{domain.axes[1]}) through {at} (a grid of n^{domain.space_dim} points is out of "
        "reach); the error columns are over the whole domain"
    )


class SpectralMonitor(Callback):
    """Records the spectral diagnostics of a training run (see the module docstring).

    ``SpectralMonitor(problem, dtype=..., device=...)``; settings come from
    ``problem.diagnostics`` and keyword ``overrides`` (``every=10``, ``grid=256``, ...).
    Diagnostic steps: 0, every multiple of ``every`` and the last step (``every = 0``:
    the last step only).  The truth is ``exact``, or ``truth(points)`` when given (the hook
    for the reference solver, see :func:`truth_function`); without either (or with
    ``diagnostics.enabled: false``) the monitor is off and :attr:`note` says why.
    ``run_dir``: also write ``diagnostics.npz`` at each checkpoint.  ``strict=False`` turns
    an error inside the monitor into a note (the diagnostics stop, training goes on);
    tests use ``strict=True``.

    After training call :meth:`finish`.  Attributes: ``histories`` (one
    :class:`SpectralHistory` per slice), ``snapshots`` (the latest per slice),
    ``seconds`` (the monitor's own wall time), ``notes``.
    """

    def __init__(
        self,
        problem: Problem,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        run_dir: str | Path | None = None,
        strict: bool = False,
        fields_budget: int = FIELDS_BUDGET_BYTES,
        truth: TruthFn | None = None,
        **overrides: Any,
    ) -> None:
        self.problem = problem
        self.truth_fn = truth_function(problem, truth)
        self.dtype = dtype
        self.device = device
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.strict = strict
        self.fields_budget = int(fields_budget)
        self.seconds = 0.0
        self.notes: list[str] = []
        self.note: str | None = None
        self.enabled = bool(problem.diagnostics.get("enabled", True))
        try:  # transform: auto looks at the truth on the faces
            self.settings = DiagnosticSettings.from_problem(problem, truth=truth, **overrides)
        except MscaleError:
            raise
        except Exception as exc:  # noqa: BLE001 - diagnostics must not stop training
            if strict:
                raise
            self.settings = DiagnosticSettings.from_problem(
                problem, **{**overrides, "transform": "fft"}
            )
            self.enabled = False
            self.note = f"spectral diagnostics are off: {type(exc).__name__}: {exc}"
        if not self.enabled and self.note is None:
            self.note = "spectral diagnostics are off (diagnostics.enabled: false)"
        elif self.truth_fn is None:
            self.enabled = False
            self.note = NO_EXACT_NOTE
        self.grid: DiagnosticGrid | None = None
        self.spectra: _Spectra | None = None
        self.histories: list[SpectralHistory] = []
        self.snapshots: list[SpectralSnapshot] = []
        self.train_seconds: float | None = None
        self._trainer: Trainer | None = None
        self._fields: list[tuple[int, np.ndarray]] = []
        self._stride = 1
        self._count = 0
        self._fields_thinned = False
        self._last_step: int | None = None
        self._last_h: np.ndarray | None = None
        self._resumed = False

    # ------------------------------------------------------------------ helpers
    @property
    def times(self) -> tuple[float | None, ...]:
        return (None,) if self.settings.times is None else tuple(self.settings.times)

    @property
    def primary(self) -> int:
        """Index of the primary slice (the latest time)."""
        return len(self.times) - 1

    def _guard(self, what: str, fn: Any, *args: Any) -> None:
        if not self.enabled:
            return
        t0 = time.perf_counter()
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - diagnostics must not stop training
            if self.strict:
                raise
            self.enabled = False
            self.note = f"spectral diagnostics stopped ({what}): {type(exc).__name__}: {exc}"
            self.notes.append(self.note)
        finally:
            self.seconds += time.perf_counter() - t0

    def setup(self) -> None:
        """Build the grid, the truth on it and its peaks (done by :meth:`on_start`)."""
        box, fixed = diagnostic_slice(self.problem.domain)
        self.grid = DiagnosticGrid(
            box, self.settings, inside=inside_function(self.problem), fixed=fixed
        )
        if fixed:
            self.notes.append(slice_note(self.problem.domain))
        if self.grid.window is not None:  # stored with diagnostics.npz (diagnose reuses it)
            self.settings = replace(
                self.settings,
                window_field=self.grid.window.reshape(self.grid.shape),
                window_key=(self.settings.grid, self.settings.transform),
            )
        truth = self.grid.truth(self.problem, self.truth_fn)
        self.spectra = _Spectra(self.grid, truth, self.settings)
        self.histories = self.spectra.new_histories()
        self.notes.extend(self.grid.boundary_notes(self.problem, truth, self.truth_fn))
        left = max(self.spectra.left_out, default=0)
        if left:
            self.notes.append(
                f"{left} local maxima of the windowed truth's spectrum above the floor were "
                "left out as the window's side lobes: the table lists the solution's own "
                f"peaks (at most {MAX_WINDOWED_PEAKS}; docs/design.md §2)"
            )
        if self.truth_fn is None and self.problem.truth is not None:
            self.notes.append(
                "the truth on the diagnostic grid is the data file's values interpolated "
                "linearly (the errors are at the file's own points)"
            )
        for name, p in zip(self.names, self.spectra.peaks, strict=True):
            if not p:
                where = f" at {name}" if name else ""
                self.notes.append(f"the truth has no peak above the floor{where} (u = 0?)")

    @property
    def names(self) -> list[str]:
        """Slice names: ``[""]`` for a steady problem, ``["t=0.5", "t=1"]`` for heat."""
        return [slice_name(t) for t in self.times]

    @property
    def named_histories(self) -> dict[str, SpectralHistory]:
        """The histories by slice name (``{"": h}`` or ``{"t=0.5": h1, "t=1": h2}``)."""
        return dict(zip(self.names, self.histories, strict=False))

    def record(self, model: nn.Module, step: int) -> None:
        """Evaluate ``model`` on the grid and record step ``step`` (usable without a Trainer)."""
        if self.grid is None:
            self.setup()
        assert self.grid is not None and self.spectra is not None
        h = self.grid.evaluate(model, dtype=self.dtype, device=self.device)
        self.snapshots = self.spectra.record(self.histories, step, h)
        self._last_step = int(step)
        self._last_h = h
        self._store(int(step), h, force=False)
        self._count += 1

    def _store(self, step: int, h: np.ndarray, force: bool) -> None:
        if self._fields and self._fields[-1][0] == step:
            return
        if not force and self._count % self._stride != 0:
            self._fields_thinned = True
            return
        self._fields.append((step, h.astype(np.float32)))
        nbytes = sum(f.nbytes for _, f in self._fields)
        while nbytes > self.fields_budget and len(self._fields) > 2:
            # keep every other stored step; store every other step from now on
            self._fields = self._fields[::2]
            self._stride *= 2
            self._fields_thinned = True
            nbytes = sum(f.nbytes for _, f in self._fields)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on recording (plain arrays, numbers, strings):
        the histories' rows, the stored fields, the last field, the overhead, the notes."""
        return {
            "enabled": self.enabled,
            "note": self.note,
            "histories": [h.state() for h in self.histories],
            "fields": [[step, f] for step, f in self._fields],
            "stride": self._stride,
            "count": self._count,
            "thinned": self._fields_thinned,
            "last_step": self._last_step,
            "last_h": self._last_h,
            "seconds": self.seconds,
            "notes": list(self.notes),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` (sets the grid up, rebuilds the snapshots)."""
        self.seconds = float(state["seconds"])
        if not state["enabled"] or not self.enabled:
            self.enabled = False
            self.note = state["note"] or self.note
        else:
            self.setup()
        self.notes = list(state["notes"])  # setup's notes are already among them
        if not self.enabled:
            return
        for hist, saved in zip(self.histories, state["histories"], strict=True):
            hist.load_state(saved)
        self._fields = [(int(step), np.asarray(f)) for step, f in state["fields"]]
        self._stride = int(state["stride"])
        self._count = int(state["count"])
        self._fields_thinned = bool(state["thinned"])
        self._last_step = None if state["last_step"] is None else int(state["last_step"])
        self._last_h = None if state["last_h"] is None else np.asarray(state["last_h"])
        if self._last_h is not None and self.spectra is not None:
            self.snapshots = [self.spectra.snapshot(i, self._last_h[i])
                              for i in range(len(self.histories))]
        self._resumed = True

    # ------------------------------------------------------------------ hooks
    def on_start(self, trainer: Trainer) -> None:
        self._trainer = trainer
        if self.grid is None:
            self._guard("setup", self.setup)
        if self.settings.every > 0 and not self._resumed:
            self._guard("step 0", self.record, trainer.model, trainer.step)

    def on_restore(self, trainer: Trainer) -> None:
        """A rollback: forget what was recorded after the step the trainer went back to."""
        for hist in self.histories:
            hist.truncate(trainer.step)
        self._fields = [(step, f) for step, f in self._fields if step <= trainer.step]
        if self._last_step is not None and self._last_step > trainer.step:
            self._last_step, self._last_h = None, None  # on_end records the final state

    def on_step(self, trainer: Trainer, step: int) -> None:
        every = self.settings.every
        # a Gauss–Newton iteration costs as much as hundreds of Adam steps: record each
        if every > 0 and (step % every == 0 or trainer.phase == "gauss-newton"):
            self._guard(f"step {step}", self.record, trainer.model, step)

    def on_checkpoint(self, trainer: Trainer, step: int) -> None:
        if self.run_dir is not None and self.histories:
            self._guard("checkpoint", self.save, self.run_dir)

    def on_end(self, trainer: Trainer) -> None:
        if self._last_step != trainer.step:
            self._guard("last step", self.record, trainer.model, trainer.step)
        elif self._last_h is not None:  # the final field is always kept
            self._guard("last step", self._store, trainer.step, self._last_h, True)
        self.train_seconds = trainer.train_seconds

    # ------------------------------------------------------------------ results
    def rows(self, threshold: float | None = None) -> list[dict[str, Any]]:
        """The resolved-frequency table (JSON-safe), all slices."""
        return _rows(self.histories, self.times, threshold)

    def table(self, threshold: float | None = None) -> str:
        return _tables(self.histories, self.times, threshold)

    def overhead(self) -> dict[str, Any]:
        train = self.train_seconds
        if train is None and self._trainer is not None:
            train = self._trainer.train_seconds
        frac = self.seconds / train if train else None
        return {"overhead_seconds": self.seconds, "train_seconds": train, "overhead_fraction": frac}

    def arrays(self) -> dict[str, np.ndarray]:
        """The contents of ``diagnostics.npz`` (see the module docstring)."""
        assert self.grid is not None and self.spectra is not None
        ov = self.overhead()
        return _pack(
            histories=self.histories,
            times=self.times,
            settings=self.settings,
            grid_shape=self.grid.shape,
            truth=self.spectra.truth,
            fields=self._fields,
            fields_complete=not self._fields_thinned,
            filter_index=self.grid.filter_index,
            overhead_seconds=self.seconds,
            train_seconds=ov["train_seconds"],
            notes=self.notes,
        )

    def save(self, folder: str | Path) -> Path:
        """Write ``diagnostics.npz`` into ``folder`` atomically."""
        path = Path(folder) / "diagnostics.npz"
        _write_npz(path, self.arrays())
        return path

    def finish(self, run_dir: str | Path | None = None, figures: bool = True) -> dict[str, Any]:
        """Results after training; with ``run_dir`` write ``diagnostics.npz`` and the figures.

        Returns a JSON-safe dict: ``enabled``, ``note`` (why off, or None), ``rows`` (the
        resolved-frequency table: one dict per peak and time slice with ``slice``,
        ``time``, ``index``, ``wavenumber``, ``k_norm``, ``amplitude``, ``final_delta_f``,
        ``first_resolved``, ``resolved_since``, ``resolved``, ``threshold``), ``table``
        (the printed text), ``settings``, ``diagnostic_steps``, ``overhead_seconds``,
        ``train_seconds``, ``overhead_fraction``, ``notes``, ``files`` (paths relative to
        the run folder).  Time spent here (files, figures) is not part of the overhead.
        """
        out: dict[str, Any] = {
            "enabled": bool(self.histories),
            "note": self.note,
            "rows": [],
            "table": "",
            "settings": self.settings.to_dict(),
            "diagnostic_steps": 0,
            "notes": list(self.notes),
            "files": {},
        }
        out.update(self.overhead())
        if not self.histories or not len(self.histories[0]):
            out["enabled"] = False
            if out["note"] is None:
                out["note"] = "no diagnostic step was recorded"
            return out
        out["rows"] = self.rows()
        out["table"] = self.table()
        out["diagnostic_steps"] = len(self.histories[0])
        if self._fields_thinned:
            out["notes"].append(
                f"fields kept for {len(self._fields)} of {len(self.histories[0])} diagnostic "
                f"steps ({self.fields_budget >> 20} MiB budget)"
            )
        if run_dir is not None:
            run_dir = Path(run_dir)
            self.save(run_dir)
            out["files"]["spectral"] = "diagnostics.npz"
            if figures:
                paths, note = _write_figures(
                    run_dir / "figures",
                    self.histories,
                    self.snapshots,
                    self.times,
                    self.settings,
                    grid_shape=self.grid.shape if self.grid else None,
                )
                out["files"]["figures"] = [str(p.relative_to(run_dir)) for p in paths]
                if note:
                    out["notes"].append(note)
        return out
