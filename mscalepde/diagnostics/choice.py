"""``diagnostics.transform: auto``: the transform (and window) that fits the truth
(docs/design.md §2, "Choosing the transform").

A transform expands the samples in a basis whose extension beyond the box is smooth only
for some fields: the fft's periodic extension needs u and ∇u equal on opposite faces, the
sine transform's odd extension needs u = 0 on the faces, the cosine transform's even one
∂u/∂n = 0. Any other field leaks: its coefficients decay like 1/|k| or 1/|k|² and the peaks
drown. ``auto`` therefore looks at the truth on the faces and picks, in this order:

1. a domain that is not a box: ``fft`` of the fields times the smooth window of Ω
   (:mod:`mscalepde.diagnostics.window`), which vanishes with all its derivatives on ∂Ω;
2. ``fft`` when the truth is periodic along every axis (no jump, no kink between opposite
   faces);
3. ``dst`` when it vanishes on every face (Dirichlet data 0);
4. ``dct`` when its normal derivative vanishes on every face (Neumann data 0);
5. otherwise ``fft`` of the fields times the smooth window of the box itself.

The tests use the tolerances of the leakage notes (:meth:`DiagnosticGrid.boundary_notes`):
|u| or a jump below 1e-6 · max|u|, a derivative or a kink below 1e-2 · max|u| / L, with
max|u| over a coarse grid of the box, faces sampled at ``FACE_POINTS`` cell centres per
axis (at every diagnostic time for heat) and derivatives by second-order one-sided
differences (step 1e-3 L). An explicit ``fft``, ``dst`` or ``dct`` is always kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mscalepde.problem.model import Problem
from mscalepde.reference.truth import truth_values

TruthFn = Callable[[np.ndarray], np.ndarray]


#: face samples per transverse axis when ``auto`` tests the truth (32² per face in 3D)
FACE_POINTS = {1: 1, 2: 64, 3: 32}


JUMP_TOL = 1e-6


SLOPE_TOL = 1e-2


def truth_function(problem: Problem, truth: TruthFn | None = None) -> TruthFn | None:
    """``truth`` if given, else ``exact`` as a function of points (N, D), else None.

    ``truth`` is the hook for a truth without ``exact``, e.g. the reference solver:
    ``truth=lambda pts: mscalepde.reference.cache.reference_values(problem, pts)``.
    """
    if truth is not None:
        return truth
    if problem.exact is None and problem.pde == "fit":
        return None
    return lambda points: truth_values(problem, points)  # exact, else the reference


@dataclass(frozen=True)
class TransformChoice:
    """What ``auto`` chose: the ``transform``, whether the fields are multiplied by a
    smooth ``window`` (of Ω, or of the box) and the ``reason`` in a few words."""

    transform: str
    window: bool
    reason: str


def _centres(lo: float, hi: float, m: int) -> np.ndarray:
    return lo + (np.arange(m) + 0.5) * (hi - lo) / m


def _face_checks(
    box: Sequence[tuple[float, float]],
    fn: TruthFn,
    times: Sequence[float | None],
) -> tuple[bool, bool, bool]:
    """(periodic, zero on the faces, zero normal derivative) for the truth ``fn``."""
    d = len(box)
    m = FACE_POINTS[d]
    coarse = [_centres(lo, hi, 16) for lo, hi in box]
    pts = np.stack([g.ravel() for g in np.meshgrid(*coarse, indexing="ij")], axis=1)
    scale = 0.0
    for t in times:
        p = pts if t is None else np.concatenate([pts, np.full((len(pts), 1), t)], axis=1)
        scale = max(scale, float(np.max(np.abs(np.asarray(fn(p), dtype=np.float64)))))
    periodic = zero = neumann = True
    if not scale > 0:
        return True, True, True
    for a, (lo, hi) in enumerate(box):
        length = hi - lo
        others = [_centres(*box[b], m) for b in range(d) if b != a]
        cols = [g.ravel() for g in np.meshgrid(*others, indexing="ij")] if others else []
        n = cols[0].size if cols else 1
        eps = 1e-3 * length

        def at(x: float, t: float | None, a: int = a, cols: list = cols, n: int = n) -> np.ndarray:
            c = list(cols)
            c.insert(a, np.full(n, x))
            if t is not None:
                c.append(np.full(n, t))
            return np.asarray(fn(np.stack(c, axis=1)), dtype=np.float64).reshape(-1)

        for t in times:
            u_lo, u_hi = at(lo, t), at(hi, t)
            # second-order one-sided derivatives along the axis (outward sign aside)
            s_lo = (-3 * u_lo + 4 * at(lo + eps, t) - at(lo + 2 * eps, t)) / (2 * eps)
            s_hi = (3 * u_hi - 4 * at(hi - eps, t) + at(hi - 2 * eps, t)) / (2 * eps)
            slope = SLOPE_TOL * scale / length
            jump = float(np.max(np.abs(u_lo - u_hi)))
            if jump > JUMP_TOL * scale or float(np.max(np.abs(s_lo - s_hi))) > slope:
                periodic = False
            if max(np.max(np.abs(u_lo)), np.max(np.abs(u_hi))) > JUMP_TOL * scale:
                zero = False
            if max(np.max(np.abs(s_lo)), np.max(np.abs(s_hi))) > slope:
                neumann = False
    return periodic, zero, neumann


def choose_transform(
    problem: Problem,
    truth: TruthFn | None = None,
    times: Sequence[float | None] = (None,),
) -> TransformChoice:
    """The transform of ``auto`` for ``problem`` (the module docstring's rules); ``truth``
    as in :func:`truth_function`, ``times`` the diagnostic slices (None: steady)."""
    if problem.domain.geometry is not None:
        return TransformChoice("fft", True, "the domain is not a box: fft of the windowed fields")
    fn = truth_function(problem, truth)
    if fn is None:  # no truth: the diagnostics are off anyway
        return TransformChoice("fft", False, "no truth to test")
    box = [(float(lo), float(hi)) for lo, hi in problem.domain.box]
    periodic, zero, neumann = _face_checks(box, fn, times)
    if periodic:
        return TransformChoice("fft", False, "the truth is periodic")
    if zero:
        return TransformChoice("dst", False, "the truth vanishes on the faces")
    if neumann:
        return TransformChoice("dct", False, "the truth's normal derivative vanishes on the faces")
    return TransformChoice(
        "fft",
        True,
        "the truth is neither periodic nor 0 on the faces, nor has a zero normal derivative "
        "there: fft of the fields times a smooth window of the box",
    )
