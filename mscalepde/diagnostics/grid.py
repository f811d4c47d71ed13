"""The diagnostic grid: where u_θ and the truth are sampled for the spectra, the Gaussian
filter's points, the time slices of a heat problem and the smooth window w_Ω of a shape
(docs/design.md §2, §6; :mod:`mscalepde.diagnostics.window`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from mscalepde.diagnostics.choice import TruthFn, truth_function
from mscalepde.diagnostics.evaluation import predict
from mscalepde.diagnostics.settings import MAX_GRID_POINTS, DiagnosticSettings
from mscalepde.diagnostics.transforms import diagnostic_grid
from mscalepde.diagnostics.window import box_window, shape_window, smooth_step, window_width
from mscalepde.errors import MscaleError
from mscalepde.geometry.shapes import Shape
from mscalepde.problem.model import Problem

NO_EXACT_NOTE = (
    "spectral diagnostics are off: they need the exact solution ('exact'), which this "
    "problem does not give, until the reference solver is wired in (truth=...)"
)


def inside_function(problem: Problem) -> Callable[[np.ndarray], np.ndarray] | None:
    """The indicator of a domain that is not a box, as a function of spatial points (the
    shape's bound ``contains``: :class:`DiagnosticGrid` builds the shape's window from it)."""
    geometry = problem.domain.geometry
    return None if geometry is None else geometry.shape.contains


def slice_name(t: float | None) -> str:
    """``""`` for a steady problem, ``"t=0.5"`` for a time slice."""
    return "" if t is None else f"t={t:g}"


class DiagnosticGrid:
    """The diagnostic grid of a box (× time slices) and the subsample of the filter.

    ``points`` (S·N, D) are the network inputs of every slice stacked (spatial columns,
    then t); fields come back as arrays of shape (S, n, ..., n).  ``filter_index`` indexes
    the flattened spatial grid; the normalised Gaussian kernel on those points is built on
    first use (float64, at most ``filter_points``² entries: 32 MB for 2000 points).

    ``inside`` (a shape's ``contains``) makes ``mask`` the indicator χ_Ω on the grid
    (flattened). With ``settings.window`` > 0, ``window`` (flattened, float64) is the smooth
    window w_Ω of :mod:`~mscalepde.diagnostics.window` (of the box itself when ``inside`` is
    None: ``transform: auto`` on a box no transform fits), and both fields are multiplied
    by it (:meth:`truth`, :meth:`evaluate`); with ``window`` 0 a shape's fields are
    multiplied by χ_Ω. A callable ``inside`` that is not a shape's ``contains`` gets
    w = ψ(d/W) of the grid's Euclidean distance d to the nearest point outside.

    ``fixed``: the grid is a slice of a higher-dimensional domain (d > 3: the plane of the
    first two axes, :func:`diagnostic_slice`); these coordinates follow the grid's in every
    network input and in every ``inside`` test.
    """

    def __init__(
        self,
        box: Sequence[Sequence[float]],
        settings: DiagnosticSettings,
        *,
        filter_index: np.ndarray | None = None,
        seed: int = 0,
        inside: Callable[[np.ndarray], np.ndarray] | None = None,
        fixed: Sequence[float] = (),
    ) -> None:
        self.box = tuple((float(lo), float(hi)) for lo, hi in box)
        self.fixed = tuple(float(v) for v in fixed)
        if self.fixed and inside is not None:
            contains = inside
            inside = lambda p: contains(self.embed(p))  # noqa: E731 - not a shape's own
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
        # a domain that is not a box: its indicator χ_Ω and its smooth window w_Ω on the grid
        # (docs/design.md §2, §6); both fields are multiplied by the window (by χ_Ω when
        # the window is off) before the transform, so Δ_F compares like with like
        self.mask: np.ndarray | None = None
        if inside is not None:
            self.mask = np.asarray(inside(self.spatial), dtype=bool)
        self.window = self._window(inside, settings)
        blocks = []
        space = self.embed(self.spatial)
        for t in self.times:
            blocks.append(
                space if t is None else np.concatenate([space, np.full((self.n, 1), t)], axis=1)
            )
        self.points = np.concatenate(blocks, axis=0)
        m = min(int(settings.filter_points), self.n)
        if filter_index is not None:
            self.filter_index = np.asarray(filter_index, dtype=np.int64)
        elif m <= 0:
            self.filter_index = np.zeros(0, dtype=np.int64)
        else:  # the filter's points: grid points in Ω (where the window is > 0)
            pool = np.arange(self.n)
            if self.mask is not None:
                pool = np.flatnonzero(self.mask)
            if self.window is not None and np.any(self.window > 0):
                pool = np.flatnonzero(self.window > 0)
            if m >= len(pool):
                self.filter_index = pool.astype(np.int64)
            else:
                rng = np.random.default_rng(seed)
                self.filter_index = np.sort(rng.choice(pool, size=m, replace=False)).astype(
                    np.int64
                )
        self._kernel: np.ndarray | None = None

    def _window(
        self,
        inside: Callable[[np.ndarray], np.ndarray] | None,
        settings: DiagnosticSettings,
    ) -> np.ndarray | None:
        """w on the flattened grid, or None (see the class docstring)."""
        if not settings.window > 0:
            return None
        stored = settings.window_field
        if (
            inside is None
            and stored is not None
            and settings.window_key == (settings.grid, settings.transform)
            and stored.size == self.n
        ):  # read back with a run folder's diagnostics.npz: the shape is not known here
            return np.asarray(stored, dtype=np.float64).reshape(-1)
        width = window_width(self.box, settings.grid, settings.window)
        if inside is None:
            return box_window(self.box, self.spatial, width)
        shape = getattr(inside, "__self__", None)
        if isinstance(shape, Shape):
            return shape_window(shape, self.spatial, width)
        assert self.mask is not None
        padded = np.pad(self.mask.reshape(self.shape), 1)  # the box's outside is outside Ω
        spacing = [
            c[1] - c[0] if len(c) > 1 else hi - lo
            for c, (lo, hi) in zip(self.coords, self.box, strict=True)
        ]
        dist = ndimage.distance_transform_edt(padded, sampling=spacing)
        inner = tuple(slice(1, -1) for _ in self.shape)
        return smooth_step(dist[inner] / width).reshape(-1)

    def embed(self, spatial: np.ndarray) -> np.ndarray:
        """Grid points with the ``fixed`` coordinates appended (the domain's points)."""
        if not self.fixed:
            return spatial
        return np.hstack([spatial, np.tile(self.fixed, (len(spatial), 1))])

    @property
    def weight(self) -> np.ndarray | None:
        """What both fields are multiplied by (flattened): the window, else χ_Ω, else None."""
        if self.window is not None:
            return self.window
        return None if self.mask is None else self.mask.astype(np.float64)

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
        weight = self.weight
        if weight is None:
            values = np.asarray(fn(self.points), dtype=np.float64)
            return values.reshape((self.n_slices, *self.shape))
        full = np.tile(weight > 0, self.n_slices)  # only Ω's points: the truth may not
        values = np.zeros(len(self.points))  # exist outside (a FEM solution, a data file)
        values[full] = np.asarray(fn(self.points[full]), dtype=np.float64).reshape(-1)
        return (values * np.tile(weight, self.n_slices)).reshape((self.n_slices, *self.shape))

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
        weight = self.weight
        if weight is not None:
            h = h * np.tile(weight, self.n_slices)
        return h.reshape((self.n_slices, *self.shape))

    def boundary_notes(
        self, problem: Problem, truth: np.ndarray, truth_fn: TruthFn | None = None
    ) -> list[str]:
        """What the fields were multiplied by, and leakage warnings for a transform the user
        chose: the truth is not periodic (fft) or not zero on the faces (dst).

        ``truth``: the truth on the grid (its largest value sets the scale); ``truth_fn``
        as in :meth:`truth`. ``transform: auto`` chose a transform that fits (or the
        window), so it gets no leakage warning.
        """
        s = self.settings
        tr = s.transform
        fn = truth_function(problem, truth_fn)
        if self.window is not None:
            width = window_width(self.box, s.grid, s.window)
            where = "the box" if self.mask is None else "the domain"
            why = (
                "no transform fits the truth on the box faces (not periodic, not 0, no zero "
                "normal derivative): "
                if self.mask is None
                else "the domain is not a box: "
            )
            return [
                f"{why}both fields are multiplied by a smooth window of {where} (0 on its "
                f"boundary, 1 beyond W = {width:.3g}, {s.window:g} grid cells) before the "
                f"{tr}: Delta_F is the error inside, less a band of width ~W along the "
                "boundary (docs/design.md §2)"
            ]
        if self.mask is not None:
            return [
                "the domain is not a box and diagnostics.window is 0: both fields are "
                "multiplied by its indicator, so a solution that is not zero on the domain's "
                "boundary leaks into every frequency (docs/geometry.md)"
            ]
        if tr == "dct" or fn is None or s.auto:
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
                        "decay like 1/|k|); diagnostics.transform: auto picks the "
                        "transform that fits"
                    )
                else:
                    notes.append(
                        f"the truth does not vanish on the {axis} faces (|u| up to "
                        f"{jump:.2g}): the DST leaks; diagnostics.transform: auto picks the "
                        "transform that fits"
                    )
            elif tr == "fft" and kink > 1e-2 * scale / (hi - lo):
                notes.append(
                    f"the periodic extension of the truth has a kink along {axis} (u' differs "
                    f"by up to {kink:.2g} between the faces): the DFT leaks (coefficients "
                    "decay like 1/|k|^2) and can hide peaks; diagnostics.transform: auto "
                    "picks the transform that fits"
                )
        return notes
