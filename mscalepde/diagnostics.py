"""Spectral diagnostics during training: which frequencies of the solution have been
resolved, and when (the Frequency Principle, DESIGN.md §2).

This module ties the array-level tools of :mod:`mscalepde.spectral` to training and to
run folders:

* :class:`SpectralMonitor` — a :class:`~mscalepde.trainer.Callback` that evaluates the
  network on a fixed diagnostic grid every ``diagnostics.every`` steps (and at step 0 and
  at the last step) and records Δ_F at the solution frequencies, the radial band errors
  and the filtering-method errors (e_low, e_high) into one
  :class:`~mscalepde.spectral.SpectralHistory` per time slice;
* :meth:`SpectralMonitor.finish` — the resolved-frequency table, ``spectral.npz`` and the
  figures of a run folder;
* :func:`diagnose_run` — recompute the diagnostics of a saved run with other settings,
  without retraining;
* :func:`format_report` — the text the command line prints.

Definitions
-----------
Let u be the truth (``exact``) and h the network, both sampled on the diagnostic grid
(``diagnostics.grid`` points per axis; 512 in 1D, 128 in 2D, 32 in 3D by default; the grid
of :func:`~mscalepde.spectral.diagnostic_grid` for the chosen ``transform``) — for heat
problems the spatial grid at the final time, or at each time of ``diagnostics.times``.
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
  matrix product.  δ is ``diagnostics.delta`` or :func:`~mscalepde.spectral.default_delta`
  of the box; the low/high split sits at |k| ≈ sqrt(2 ln 2 / δ).

Non-periodic solutions leak under the fft (see :mod:`mscalepde.spectral`); the monitor adds
a note when the periodic extension of the truth jumps or has a kink at the box faces (fft:
u or u' differs between opposite faces; e.g. sin(πx) on [0, 1], whose fft spectrum then
shows a single peak at k = 0) or when the truth does not vanish on the faces (dst).

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

Files (run folder, DESIGN.md §5)
--------------------------------
``spectral.npz`` (written atomically; ``np.load(..., allow_pickle=False)``):

* the top-level keys of :meth:`SpectralHistory.to_arrays` for the *primary* slice (the
  latest time; the only slice of a steady problem), so
  ``SpectralHistory.from_npz("spectral.npz")`` reads it directly;
* ``s<i>__<key>``: the same arrays for every slice i; ``slice_names`` (``""`` or
  ``"t=0.5"``), ``slice_times`` (nan for steady problems), ``primary``;
* ``settings_json`` (the diagnostic settings used), ``grid_shape``, ``truth``
  (slices × grid, float64), ``fields`` (stored steps × slices × grid, float32: the network
  on the grid), ``field_steps``, ``fields_complete`` (false when the fields were thinned to
  stay under the memory budget, 64 MiB by default), ``filter_index`` (the subsample of the
  filter, indices into the flattened grid), ``overhead_seconds``, ``train_seconds``,
  ``notes_json``;
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

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mscalepde.errors import MscaleError, RunFolderError
from mscalepde.evaluation import predict, truth_values
from mscalepde.problem import Problem
from mscalepde.runfolder import atomic_write_with
from mscalepde.spectral import (
    TRANSFORMS,
    Peak,
    SpectralHistory,
    SpectralSnapshot,
    band_edges_default,
    band_errors_from_coefficients,
    cutoff_for_delta,
    default_delta,
    delta_f_at_peaks,
    diagnostic_grid,
    find_peaks,
    format_table,
    format_wavevector,
    transform_field,
)
from mscalepde.trainer import Callback, Trainer

__all__ = [
    "DEFAULT_GRID",
    "DiagnosticGrid",
    "DiagnosticSettings",
    "SavedDiagnostics",
    "SpectralMonitor",
    "diagnose_run",
    "format_report",
    "load_spectral",
    "truth_function",
]

DEFAULT_GRID = {1: 512, 2: 128, 3: 32}
DEFAULT_FILTER_POINTS = 2000
FIELDS_BUDGET_BYTES = 64 << 20
MAX_GRID_POINTS = 1 << 24  # per evaluation (all time slices together)
MAX_TABLE_ROWS = 40  # rows of the printed table per slice (lowest |k| first)
FORMAT_VERSION = 1
FIGURES = ("fprinciple", "spectra", "filter_errors", "band_errors")
NO_EXACT_NOTE = (
    "spectral diagnostics are off: they need the exact solution ('exact'), which this "
    "problem does not give, until the reference solver is wired in (truth=...)"
)


# --------------------------------------------------------------------------- settings


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))


@dataclass(frozen=True)
class DiagnosticSettings:
    """The resolved ``diagnostics`` section (defaults by dimension filled in).

    ``times`` is None for steady problems, else the sorted times of the slices;
    ``delta_default`` says that ``delta`` came from :func:`default_delta`.
    """

    every: int = 100
    grid: int = 512
    threshold: float = 0.05
    transform: str = "fft"
    magnitude: bool = False
    floor: float = 1e-3
    times: tuple[float, ...] | None = None
    delta: float = 0.0
    filter_points: int = DEFAULT_FILTER_POINTS
    bands: tuple[float, ...] | None = None
    delta_default: bool = True

    @classmethod
    def from_problem(cls, problem: Problem, **overrides: Any) -> DiagnosticSettings:
        """Settings of ``problem.diagnostics``; keyword ``overrides`` (None = keep) win."""
        d = dict(problem.diagnostics)
        for k, v in overrides.items():
            if v is not None:
                d[k] = v
        box = problem.domain.box
        times = None
        if problem.domain.has_time:
            assert problem.domain.time is not None
            t0, t1 = problem.domain.time
            raw = d.get("times") or [t1]
            for t in raw:
                if not t0 - 1e-12 <= float(t) <= t1 + 1e-12:
                    raise MscaleError(f"diagnostics.times: {t:g} is outside [{t0:g}, {t1:g}]")
            times = tuple(sorted({float(t) for t in raw}))
        elif d.get("times"):
            raise MscaleError("diagnostics.times: only problems with a time interval have times")
        delta = d.get("delta")
        bands = d.get("bands")
        return cls(
            every=int(d.get("every", 100)),
            grid=int(d.get("grid") or DEFAULT_GRID[len(box)]),
            threshold=float(d.get("threshold", 0.05)),
            transform=_check_transform(d.get("transform", "fft")),
            magnitude=bool(d.get("magnitude", False)),
            floor=float(d.get("floor", 1e-3)),
            times=times,
            delta=float(delta) if delta is not None else default_delta(box),
            filter_points=int(d.get("filter_points", DEFAULT_FILTER_POINTS)),
            bands=None if bands is None else tuple(float(b) for b in bands),
            delta_default=delta is None,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe mapping (lists instead of tuples)."""
        return {
            "every": self.every,
            "grid": self.grid,
            "threshold": self.threshold,
            "transform": self.transform,
            "magnitude": self.magnitude,
            "floor": self.floor,
            "times": None if self.times is None else list(self.times),
            "delta": self.delta,
            "delta_default": self.delta_default,
            "k_split": cutoff_for_delta(self.delta),
            "filter_points": self.filter_points,
            "bands": None if self.bands is None else list(self.bands),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DiagnosticSettings:
        return cls(
            every=int(d["every"]),
            grid=int(d["grid"]),
            threshold=float(d["threshold"]),
            transform=str(d["transform"]),
            magnitude=bool(d["magnitude"]),
            floor=float(d["floor"]),
            times=None if d.get("times") is None else tuple(float(t) for t in d["times"]),
            delta=float(d["delta"]),
            filter_points=int(d["filter_points"]),
            bands=None if d.get("bands") is None else tuple(float(b) for b in d["bands"]),
            delta_default=bool(d.get("delta_default", False)),
        )

    def same_sampling(self, other: DiagnosticSettings) -> bool:
        """Same grid, transform and times (so stored fields can be reused)."""
        if self.grid != other.grid or self.transform != other.transform:
            return False
        if (self.times is None) != (other.times is None):
            return False
        if self.times is None or other.times is None:
            return True
        return len(self.times) == len(other.times) and all(
            _close(a, b) for a, b in zip(self.times, other.times, strict=True)
        )


def _check_transform(t: Any) -> str:
    if t not in TRANSFORMS:
        raise MscaleError(
            f"diagnostics.transform: expected one of {', '.join(TRANSFORMS)}, got {t!r}"
        )
    return str(t)


TruthFn = Callable[[np.ndarray], np.ndarray]


def truth_function(problem: Problem, truth: TruthFn | None = None) -> TruthFn | None:
    """``truth`` if given, else ``exact`` as a function of points (N, D), else None.

    ``truth`` is the hook for a truth without ``exact``, e.g. the reference solver:
    ``truth=lambda pts: mscalepde.reference.reference_values(problem, pts)``.
    """
    if truth is not None:
        return truth
    if problem.exact is None and problem.pde == "fit":
        return None
    return lambda points: truth_values(problem, points)  # exact, else the reference


def inside_function(problem: Problem) -> Callable[[np.ndarray], np.ndarray] | None:
    """The indicator of a domain that is not a box, as a function of spatial points."""
    geometry = problem.domain.geometry
    return None if geometry is None else geometry.shape.contains


def slice_name(t: float | None) -> str:
    """``""`` for a steady problem, ``"t=0.5"`` for a time slice."""
    return "" if t is None else f"t={t:g}"


# --------------------------------------------------------------------------- grid


class DiagnosticGrid:
    """The diagnostic grid of a box (× time slices) and the subsample of the filter.

    ``points`` (S·N, D) are the network inputs of every slice stacked (spatial columns,
    then t); fields come back as arrays of shape (S, n, ..., n).  ``filter_index`` indexes
    the flattened spatial grid; the normalised Gaussian kernel on those points is built on
    first use (float64, at most ``filter_points``² entries: 32 MB for 2000 points).
    """

    def __init__(
        self,
        box: Sequence[Sequence[float]],
        settings: DiagnosticSettings,
        *,
        filter_index: np.ndarray | None = None,
        seed: int = 0,
        inside: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.box = tuple((float(lo), float(hi)) for lo, hi in box)
        self.settings = settings
        d = len(self.box)
        self.coords = diagnostic_grid(self.box, settings.grid, settings.transform)
        self.shape = tuple(len(c) for c in self.coords)
        self.n = int(np.prod(self.shape))
        self.times: tuple[float | None, ...] = (
            (None,) if settings.times is None else tuple(settings.times)
        )
        if self.n * len(self.times) > MAX_GRID_POINTS:
            raise MscaleError(
                f"diagnostics.grid: {settings.grid} points per axis in {d}D"
                f"{f' at {len(self.times)} times' if len(self.times) > 1 else ''} is "
                f"{self.n * len(self.times)} points (limit {MAX_GRID_POINTS})"
            )
        mesh = np.meshgrid(*self.coords, indexing="ij")
        self.spatial = np.stack([g.ravel() for g in mesh], axis=1)
        # a domain that is not a box: its indicator χ_Ω on the grid (DESIGN.md §6); both
        # fields are multiplied by it before the transform, so Δ_F compares like with like
        self.mask: np.ndarray | None = None
        if inside is not None:
            self.mask = np.asarray(inside(self.spatial), dtype=bool)
        blocks = []
        for t in self.times:
            blocks.append(
                self.spatial
                if t is None
                else np.concatenate([self.spatial, np.full((self.n, 1), t)], axis=1)
            )
        self.points = np.concatenate(blocks, axis=0)
        m = min(int(settings.filter_points), self.n)
        if filter_index is not None:
            self.filter_index = np.asarray(filter_index, dtype=np.int64)
        elif m <= 0:
            self.filter_index = np.zeros(0, dtype=np.int64)
        else:  # the filter's points: grid points in Ω
            pool = np.arange(self.n) if self.mask is None else np.flatnonzero(self.mask)
            if m >= len(pool):
                self.filter_index = pool.astype(np.int64)
            else:
                rng = np.random.default_rng(seed)
                self.filter_index = np.sort(rng.choice(pool, size=m, replace=False)).astype(
                    np.int64
                )
        self._kernel: np.ndarray | None = None

    @property
    def n_slices(self) -> int:
        return len(self.times)

    @property
    def kernel(self) -> np.ndarray:
        """K_ij = G^δ(x_i − x_j) / Σ_j G^δ(x_i − x_j) on the filter points (m × m)."""
        if self._kernel is None:
            x = self.spatial[self.filter_index]
            d2 = np.zeros((len(x), len(x)))
            for a in range(x.shape[1]):
                diff = x[:, a, None] - x[None, :, a]
                d2 += diff * diff
            g = np.exp(d2 * (-0.5 / self.settings.delta))
            g /= g.sum(axis=1, keepdims=True)
            self._kernel = g
        return self._kernel

    def filter_errors(self, u: np.ndarray, h: np.ndarray) -> tuple[float, float]:
        """(e_low, e_high) of one slice (fields of the grid's shape); nan without a filter."""
        if self.filter_index.size == 0:
            return float("nan"), float("nan")
        us = np.asarray(u, dtype=np.float64).reshape(-1)[self.filter_index]
        hs = np.asarray(h, dtype=np.float64).reshape(-1)[self.filter_index]
        low = self.kernel @ np.stack([us, hs], axis=1)
        u_low, h_low = low[:, 0], low[:, 1]
        u_high, h_high = us - u_low, hs - h_low

        def ratio(a: np.ndarray, b: np.ndarray) -> float:
            den = float(np.linalg.norm(b))
            return float(np.linalg.norm(a - b)) / den if den > 0 else float("nan")

        return ratio(h_low, u_low), ratio(h_high, u_high)

    def truth(self, problem: Problem, truth: TruthFn | None = None) -> np.ndarray:
        """The truth on the grid, shape (S, *shape), float64: ``truth(points)`` when
        given, else the problem's ``exact``."""
        fn = truth_function(problem, truth)
        if fn is None:
            raise MscaleError(NO_EXACT_NOTE)
        if self.mask is None:
            values = np.asarray(fn(self.points), dtype=np.float64)
            return values.reshape((self.n_slices, *self.shape))
        full = np.tile(self.mask, self.n_slices)  # only Ω's points: the truth may not
        values = np.zeros(len(self.points))  # exist outside (a FEM solution, a data file)
        values[full] = np.asarray(fn(self.points[full]), dtype=np.float64).reshape(-1)
        return values.reshape((self.n_slices, *self.shape))

    def evaluate(
        self, model: nn.Module, *, dtype: torch.dtype, device: torch.device | str
    ) -> np.ndarray:
        """The network on the grid (inference mode, batched), shape (S, *shape), float64."""
        was_training = model.training
        model.eval()
        try:
            h = predict(model, self.points, dtype=dtype, device=device)
        finally:
            model.train(was_training)
        if self.mask is not None:
            h = h * np.tile(self.mask, self.n_slices)
        return h.reshape((self.n_slices, *self.shape))

    def boundary_notes(
        self, problem: Problem, truth: np.ndarray, truth_fn: TruthFn | None = None
    ) -> list[str]:
        """Leakage warnings: the truth is not periodic (fft) or not zero on the faces (dst).

        ``truth``: the truth on the grid (its largest value sets the scale); ``truth_fn``
        as in :meth:`truth`.
        """
        tr = self.settings.transform
        fn = truth_function(problem, truth_fn)
        if self.mask is not None:
            return [
                "the domain is not a box: both fields are multiplied by its indicator on the "
                "bounding box's grid before the transform, so a solution that is not zero "
                "on the domain's boundary leaks into high frequencies (the same for the "
                "network and the truth; docs/geometry.md)"
            ]
        if tr == "dct" or fn is None:
            return []
        scale = float(np.max(np.abs(truth))) if np.size(truth) else 0.0
        if not scale > 0:
            return []
        notes = []
        for a, (lo, hi) in enumerate(self.box):
            others = [c for b, c in enumerate(self.coords) if b != a]
            cols = [g.ravel() for g in np.meshgrid(*others, indexing="ij")] if others else []
            m = cols[0].size if cols else 1
            eps = 1e-4 * (hi - lo)

            def at(
                x: float, t: float | None, a: int = a, cols: list = cols, m: int = m
            ) -> np.ndarray:
                c = list(cols)
                c.insert(a, np.full(m, x))
                if t is not None:
                    c.append(np.full(m, t))
                return np.asarray(fn(np.stack(c, axis=1)), dtype=np.float64)

            jump = kink = 0.0
            for t in self.times:
                u_lo, u_hi = at(lo, t), at(hi, t)
                if tr == "fft":
                    jump = max(jump, float(np.max(np.abs(u_lo - u_hi))))
                    # one-sided slopes at the two faces: a kink of the periodic extension
                    s_lo = (at(lo + eps, t) - u_lo) / eps
                    s_hi = (u_hi - at(hi - eps, t)) / eps
                    kink = max(kink, float(np.max(np.abs(s_lo - s_hi))))
                else:
                    jump = max(jump, float(np.max(np.abs(np.concatenate([u_lo, u_hi])))))
            axis = "xyz"[a]
            if jump > 1e-6 * scale:
                if tr == "fft":
                    notes.append(
                        f"the truth is not periodic along {axis} (|u(lo) - u(hi)| up to "
                        f"{jump:.2g}): the DFT leaks into every frequency (coefficients "
                        "decay like 1/|k|); consider diagnostics.transform: dst "
                        "(u = 0 on the faces) or dct"
                    )
                else:
                    notes.append(
                        f"the truth does not vanish on the {axis} faces (|u| up to "
                        f"{jump:.2g}): the DST leaks; subtract a lift or use fft/dct"
                    )
            elif tr == "fft" and kink > 1e-2 * scale / (hi - lo):
                notes.append(
                    f"the periodic extension of the truth has a kink along {axis} (u' differs "
                    f"by up to {kink:.2g} between the faces): the DFT leaks (coefficients "
                    "decay like 1/|k|^2) and can hide peaks; consider "
                    "diagnostics.transform: dst (u = 0 on the faces) or dct (u' = 0)"
                )
        return notes


# --------------------------------------------------------------------------- spectra


class _Spectra:
    """Peaks and truth spectra of each slice; builds snapshots and records histories."""

    def __init__(
        self, grid: DiagnosticGrid, truth: np.ndarray, settings: DiagnosticSettings
    ) -> None:
        self.grid = grid
        self.settings = settings
        self.truth = truth
        self.u_hat = [transform_field(u, settings.transform) for u in truth]
        self.peaks = [
            tuple(find_peaks(uh, grid.box, settings.transform, settings.floor)) for uh in self.u_hat
        ]
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


# --------------------------------------------------------------------------- monitor


class SpectralMonitor(Callback):
    """Records the spectral diagnostics of a training run (see the module docstring).

    ``SpectralMonitor(problem, dtype=..., device=...)``; settings come from
    ``problem.diagnostics`` and keyword ``overrides`` (``every=10``, ``grid=256``, ...).
    Diagnostic steps: 0, every multiple of ``every`` and the last step (``every = 0``:
    the last step only).  The truth is ``exact``, or ``truth(points)`` when given (the hook
    for the reference solver, see :func:`truth_function`); without either (or with
    ``diagnostics.enabled: false``) the monitor is off and :attr:`note` says why.
    ``run_dir``: also write ``spectral.npz`` at each checkpoint.  ``strict=False`` turns
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
        self.settings = DiagnosticSettings.from_problem(problem, **overrides)
        self.seconds = 0.0
        self.notes: list[str] = []
        self.note: str | None = None
        self.enabled = bool(problem.diagnostics.get("enabled", True))
        if not self.enabled:
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
        self.grid = DiagnosticGrid(
            self.problem.domain.box, self.settings, inside=inside_function(self.problem)
        )
        truth = self.grid.truth(self.problem, self.truth_fn)
        self.spectra = _Spectra(self.grid, truth, self.settings)
        self.histories = self.spectra.new_histories()
        self.notes.extend(self.grid.boundary_notes(self.problem, truth, self.truth_fn))
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
        """The contents of ``spectral.npz`` (see the module docstring)."""
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
        """Write ``spectral.npz`` into ``folder`` atomically."""
        path = Path(folder) / "spectral.npz"
        _write_npz(path, self.arrays())
        return path

    def finish(self, run_dir: str | Path | None = None, figures: bool = True) -> dict[str, Any]:
        """Results after training; with ``run_dir`` write ``spectral.npz`` and the figures.

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
            out["files"]["spectral"] = "spectral.npz"
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


# --------------------------------------------------------------------------- tables


def _num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _rows(
    histories: Sequence[SpectralHistory],
    times: Sequence[float | None],
    threshold: float | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for hist, t in zip(histories, times, strict=True):
        for r in hist.resolved_table(threshold):
            rows.append(
                {
                    "slice": slice_name(t),
                    "time": t,
                    "index": [int(v) for v in r["index"]],
                    "wavenumber": [float(v) for v in r["wavenumber"]],
                    "k_norm": float(r["k_norm"]),
                    "amplitude": float(r["amplitude"]),
                    "final_delta_f": _num(r["final_delta_f"]),
                    "first_resolved": r["first_resolved"],
                    "resolved_since": r["resolved_since"],
                    "resolved": r["resolved_since"] is not None,
                    "threshold": float(r["threshold"]),
                }
            )
    return rows


def _table_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows as :func:`format_table` expects them (nan for a missing Δ_F)."""
    return [
        {**r, "final_delta_f": float("nan") if r["final_delta_f"] is None else r["final_delta_f"]}
        for r in rows
    ]


def _tables(
    histories: Sequence[SpectralHistory],
    times: Sequence[float | None],
    threshold: float | None = None,
) -> str:
    return _format_rows(_rows(histories, times, threshold), threshold)


def _format_rows(rows: Sequence[Mapping[str, Any]], threshold: float | None = None) -> str:
    parts = []
    seen: list[Any] = []
    for r in rows:
        if r["slice"] not in seen:
            seen.append(r["slice"])
    if not rows:
        return "(no solution frequency found above the floor)"
    for name in seen:
        sub = [r for r in rows if r["slice"] == name]
        text = format_table(_table_rows(sub[:MAX_TABLE_ROWS]), threshold)
        if len(sub) > MAX_TABLE_ROWS:  # a masked (non-box) domain's leakage: many peaks
            text += (
                f"\n... and {len(sub) - MAX_TABLE_ROWS} more peaks at higher |k| "
                "(all in spectral.npz; raise diagnostics.floor to list fewer)"
            )
        parts.append(f"at {name.replace('=', ' = ')}:\n{text}" if name else text)
    return "\n\n".join(parts)


def _aligned(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [header, ["-" * w for w in widths], *body]
    )


def _format_final_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no solution frequency found above the floor)"
    parts = []
    names: list[str] = []
    for r in rows:
        if r["slice"] not in names:
            names.append(r["slice"])
    for name in names:
        sub = [r for r in rows if r["slice"] == name]
        thr = sub[0]["threshold"]
        header = ["k (wave vector)", "|k|", "amplitude", "Delta_F", f"<{thr:g} at the end"]
        body = [
            [
                format_wavevector(r["wavenumber"]),
                f"{r['k_norm']:.4g}",
                f"{r['amplitude']:.3g}",
                "nan" if r["delta_f"] is None else f"{r['delta_f']:.3g}",
                "yes" if r["resolved"] else "no",
            ]
            for r in sub
        ]
        text = _aligned(header, body)
        parts.append(f"at {name.replace('=', ' = ')}:\n{text}" if name else text)
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- files


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    atomic_write_with(path, lambda buf: np.savez(buf, **arrays))


def _pack(
    *,
    histories: Sequence[SpectralHistory],
    times: Sequence[float | None],
    settings: DiagnosticSettings,
    grid_shape: Sequence[int],
    truth: np.ndarray,
    fields: Sequence[tuple[int, np.ndarray]],
    fields_complete: bool,
    filter_index: np.ndarray,
    overhead_seconds: float,
    train_seconds: float | None,
    notes: Sequence[str],
    final: Mapping[str, np.ndarray] | None = None,
    original: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    primary = len(histories) - 1
    a: dict[str, np.ndarray] = dict(histories[primary].to_arrays())
    for i, h in enumerate(histories):
        for k, v in h.to_arrays().items():
            a[f"s{i}__{k}"] = v
    shape = tuple(int(s) for s in grid_shape)
    a.update(
        {
            "diag_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "slice_names": np.array([slice_name(t) for t in times]),
            "slice_times": np.array([np.nan if t is None else t for t in times], dtype=np.float64),
            "primary": np.array(primary, dtype=np.int64),
            "settings_json": np.array(json.dumps(settings.to_dict())),
            "grid_shape": np.array(shape, dtype=np.int64),
            "truth": np.asarray(truth, dtype=np.float64),
            "field_steps": np.array([s for s, _ in fields], dtype=np.int64),
            "fields": (
                np.stack([f for _, f in fields]).astype(np.float32)
                if fields
                else np.zeros((0, len(times), *shape), dtype=np.float32)
            ),
            "fields_complete": np.array(bool(fields_complete)),
            "filter_index": np.asarray(filter_index, dtype=np.int64),
            "overhead_seconds": np.array(float(overhead_seconds)),
            "train_seconds": np.array(np.nan if train_seconds is None else float(train_seconds)),
            "notes_json": np.array(json.dumps(list(notes))),
        }
    )
    if final:
        a.update({f"final__{k}": v for k, v in final.items()})
    if original:
        a.update(original)
    return a


def _history_from_arrays(a: Mapping[str, np.ndarray]) -> SpectralHistory:
    """Inverse of :meth:`SpectralHistory.to_arrays` (as :meth:`SpectralHistory.from_npz`)."""
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
    hist = SpectralHistory(
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
        hist.band_energy = np.asarray(a["band_energy"], dtype=np.float64)
    hist._steps = [int(s) for s in a["steps"]]
    hist._delta_f = [np.asarray(r, dtype=np.float64) for r in a["delta_f"]]
    hist._band_error = [np.asarray(r, dtype=np.float64) for r in a["band_error"]]
    hist._e_low = [float(v) for v in a["e_low"]]
    hist._e_high = [float(v) for v in a["e_high"]]
    return hist


@dataclass
class SavedDiagnostics:
    """The contents of a ``spectral.npz`` written by this module."""

    settings: DiagnosticSettings
    histories: list[SpectralHistory]
    times: tuple[float | None, ...]
    grid_shape: tuple[int, ...]
    box: tuple[tuple[float, float], ...]
    truth: np.ndarray
    field_steps: np.ndarray
    fields: np.ndarray
    fields_complete: bool
    filter_index: np.ndarray
    overhead_seconds: float
    train_seconds: float | None
    notes: list[str]
    original: dict[str, np.ndarray]

    @property
    def original_histories(self) -> list[SpectralHistory]:
        """The histories recorded during training (kept under ``train__*`` once
        :func:`diagnose_run` has rewritten the file; else the current ones)."""
        if not self.original:
            return self.histories
        out = []
        for i in range(len(self.times)):
            prefix = f"train__s{i}__"
            out.append(
                _history_from_arrays(
                    {k[len(prefix):]: v for k, v in self.original.items() if k.startswith(prefix)}
                )
            )
        return out

    def original_arrays(self) -> dict[str, np.ndarray]:
        """``train__*`` arrays preserving the training-time histories and settings."""
        if self.original:
            return dict(self.original)
        a = {
            f"train__s{i}__{k}": v
            for i, h in enumerate(self.histories)
            for k, v in h.to_arrays().items()
        }
        a["train__settings_json"] = np.array(json.dumps(self.settings.to_dict()))
        return a

    @property
    def final_step(self) -> int | None:
        steps = self.histories[0].steps if self.histories else np.zeros(0)
        return int(steps[-1]) if len(steps) else None


def load_spectral(path: str | Path) -> SavedDiagnostics:
    """Read ``spectral.npz`` (raises :class:`RunFolderError` when unreadable)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - corrupted file: one line
        raise RunFolderError(f"{path}: cannot read the spectral history: {exc}") from None
    if "diag_version" not in a or int(a["diag_version"]) != FORMAT_VERSION:
        raise RunFolderError(f"{path}: not a spectral diagnostics file of version {FORMAT_VERSION}")
    n = len(a["slice_names"])
    histories = []
    for i in range(n):
        prefix = f"s{i}__"
        histories.append(
            _history_from_arrays(
                {k[len(prefix) :]: v for k, v in a.items() if k.startswith(prefix)}
            )
        )
    times = tuple(None if math.isnan(t) else float(t) for t in a["slice_times"])
    train = float(a["train_seconds"])
    return SavedDiagnostics(
        settings=DiagnosticSettings.from_dict(json.loads(str(a["settings_json"]))),
        histories=histories,
        times=times,
        grid_shape=tuple(int(s) for s in a["grid_shape"]),
        box=tuple((float(lo), float(hi)) for lo, hi in a["box"]),
        truth=a["truth"],
        field_steps=a["field_steps"],
        fields=a["fields"],
        fields_complete=bool(a["fields_complete"]),
        filter_index=a["filter_index"],
        overhead_seconds=float(a["overhead_seconds"]),
        train_seconds=None if math.isnan(train) else train,
        notes=list(json.loads(str(a["notes_json"]))),
        original={k: v for k, v in a.items() if k.startswith("train__")},
    )


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
    from mscalepde import spectral_figures as sf

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
                    paths.append(sf.plot_fprinciple_heatmap(hist, target, title=title))
                elif name == "spectra" and snap is not None:
                    shape = "×".join(map(str, snap.shape))
                    title = spectra_title or "Final spectra"
                    title += f" ({snap.transform}, grid {shape}){at}"
                    paths.append(sf.plot_spectra(snap, target, title=title))
                elif name == "filter_errors" and hist is not None:
                    k = cutoff_for_delta(settings.delta)
                    title = (
                        f"Filtering method (δ = {settings.delta:.3g}: split at |k| ≈ {k:.4g}){at}"
                    )
                    paths.append(sf.plot_filter_errors(hist, target, title=title))
                elif name == "band_errors" and hist is not None:
                    title = (
                        "Relative error per band of |k|"
                        + (" (octaves)" if settings.bands is None else "")
                        + at
                    )
                    paths.append(sf.plot_band_errors(hist, target, title=title))
    except MscaleError:
        raise
    except Exception as exc:  # noqa: BLE001 - a figure must not lose the results
        return paths, f"spectral figures not all written: {type(exc).__name__}: {exc}"
    return paths, None


# --------------------------------------------------------------------------- diagnose


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

    Settings left None keep those stored in ``spectral.npz`` (or, without one, those of
    ``config.yaml``).

    * ``threshold`` only changes which steps count as resolved: the stored Δ_F history is
      reused as is.
    * ``magnitude``, ``floor`` (new peaks), ``bands`` and ``delta`` recompute the whole
      history from the network fields stored at every diagnostic step (``fields`` in
      ``spectral.npz``; if they were thinned to fit the memory budget, only the stored
      steps are recomputed and the result says so).
    * ``grid``, ``transform`` or ``times`` (a different sampling): only the final network
      is saved, so only the **final state** is recomputed, from ``model.pt`` and
      ``config.yaml`` (:func:`mscalepde.runfolder.load_run`): the final spectra, Δ_F at the
      peaks of the truth on the new grid and the filter errors (``final_rows``,
      ``final__*`` in ``spectral.npz``, ``figures/spectra.png``).  The Δ_F history over
      training steps keeps the stored sampling (the note says so); rerun training with
      ``--set diagnostics.grid=...`` to get a history on another grid.

    ``truth``: a function of points (N, D) for problems without ``exact`` (see
    :func:`truth_function`); only needed to analyse a new grid/transform/times.

    Writes ``spectral.npz`` and the figures into ``out`` (default: the run folder) and
    returns a JSON-safe dict: ``rows``/``table`` (resolved-frequency table over training),
    ``final_rows``/``final_table`` (when the final state was recomputed), ``settings``
    (used for the history), ``final_settings``, ``stored_settings``, ``recomputed``
    (``{"history": "none" | "threshold" | "fields" | "partial" | "unavailable" |
    "missing", "final": bool}``: reused as stored, re-thresholded, recomputed from all
    stored fields, from the thinned fields, not recomputable (no fields stored), no
    ``spectral.npz`` at all), ``notes``, ``files``, ``out``, ``overhead_seconds``,
    ``train_seconds``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    target = Path(out) if out is not None else run_dir
    npz = run_dir / "spectral.npz"
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
            from mscalepde.runfolder import load_run

            problem, model = load_run(run_dir)
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
        dgrid = DiagnosticGrid(problem.domain.box, new, inside=inside_function(problem))
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
        final_rows = []
        for snap, t in zip(final_snaps, ft, strict=True):
            for peak, df in zip(snap.peaks, snap.delta_f, strict=True):
                final_rows.append(
                    {
                        "slice": slice_name(t),
                        "time": t,
                        "step": int(step),
                        "index": [int(v) for v in peak.index],
                        "wavenumber": [float(v) for v in peak.wavenumber],
                        "k_norm": float(peak.norm),
                        "amplitude": float(peak.amplitude),
                        "delta_f": _num(df),
                        "resolved": bool(df < new.threshold),
                        "threshold": new.threshold,
                    }
                )
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
            what = []
            if new.grid != base.grid:
                what.append(f"grid {base.grid} -> {new.grid}")
            if new.transform != base.transform:
                what.append(f"transform {base.transform} -> {new.transform}")
            if not new.same_sampling(replace(base, grid=new.grid, transform=new.transform)):
                what.append("other times")
            notes.append(
                f"{', '.join(what)}: only the final model is saved, so only the final state "
                f"(step {step}) was recomputed; Delta_F over training steps could not be "
                f"recomputed and stays at grid {base.grid}, transform {base.transform}; "
                "retrain with --set diagnostics.grid=N (or transform/times) for a history"
            )
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
        _write_npz(target / "spectral.npz", _pack(**packed, final=final_arrays))
        result["files"]["spectral"] = "spectral.npz"
    if figures and histories:
        folder = target / "figures"
        paths, note = _write_figures(
            folder,
            histories,
            snapshots,
            hist_times,
            hist_settings,
            grid_shape=saved.grid_shape if saved is not None else None,
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
        result["files"]["figures"] = [str(p.relative_to(target)) for p in paths]
    return result


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
            "no network fields are stored in spectral.npz: magnitude/floor/bands/delta "
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


# --------------------------------------------------------------------------- report


def format_report(result: Mapping[str, Any]) -> str:
    """Text of a :meth:`SpectralMonitor.finish` or :func:`diagnose_run` result."""
    lines: list[str] = []
    if result.get("enabled") is False and not result.get("rows"):
        lines.append(f"spectral diagnostics: {result.get('note') or 'off'}")
        return "\n".join(lines)
    s = result.get("settings") or {}
    if s:
        kind = "|h|-|u| (magnitude)" if s.get("magnitude") else "complex"
        times = s.get("times")
        at = "" if not times else f", times {', '.join(f'{t:g}' for t in times)}"
        lines.append(
            f"spectral diagnostics: grid {s['grid']}/axis ({s['transform']}{at}), "
            f"Delta_F {kind}, threshold {s['threshold']:g}, peak floor {s['floor']:g}, "
            f"filter delta {s['delta']:.3g} (split at |k| ~ {s.get('k_split', float('nan')):.4g})"
        )
    rec = result.get("recomputed")
    if rec:
        how = {
            "none": "reused as stored",
            "threshold": "reused (Delta_F unchanged), resolved steps re-thresholded",
            "fields": "recomputed from the stored network fields",
            "partial": "recomputed on the steps whose fields are stored",
            "unavailable": "stored, not recomputed (no network fields stored)",
            "missing": "not available (no spectral.npz): final state only",
        }.get(rec.get("history"), str(rec.get("history")))
        lines.append(f"history over training: {how}")
    if result.get("table") and not (rec and rec.get("history") == "missing"):
        lines.append("resolved frequencies (Delta_F below the threshold):")
        lines.append(result["table"])
    if result.get("final_table"):
        fs = result.get("final_settings") or {}
        lines.append(
            f"final state recomputed from model.pt (grid {fs.get('grid')}/axis, "
            f"{fs.get('transform')}):"
        )
        lines.append(result["final_table"])
    ov, tr = result.get("overhead_seconds"), result.get("train_seconds")
    if ov is not None:
        pct = f" ({100 * ov / tr:.1f}% of the training time)" if tr else ""
        lines.append(f"diagnostics cost   {ov:.2f} s during training{pct}")
    for n in result.get("notes") or ():
        lines.append(f"note: {n}")
    if result.get("note") and result.get("enabled") is False:
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)
