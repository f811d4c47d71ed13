"""The smooth window of a domain Ω: analysing a field in Ω only (docs/design.md §2, §6).

On a domain that is not a box the diagnostic grid is the bounding box's. Multiplying a
field u by the indicator χ_Ω makes it jump across ∂Ω wherever u ≠ 0 there, and a jump
along a curve spreads over every wavenumber (|k|^(−3/2) in 2D): the peaks of χ_Ω û are
mostly leakage. Both fields are instead multiplied by a *window* w_Ω that is 1 deep inside
Ω, 0 on ∂Ω and outside, and C^∞ in between, so w_Ω u has no jump and no kink: its
spectrum decays faster than any power of |k| beyond the window's own scale 1/W, and
what is left near a peak of u is the peak broadened by ŵ_Ω.

**Definition.** With the C^∞ step

    ψ(s) = 0 (s ≤ 0),   ψ(s) = f(s) / (f(s) + f(1 − s)) (0 < s < 1),   ψ(s) = 1 (s ≥ 1),
    f(s) = exp(−1/s),

and a transition width W (``diagnostics.window`` grid cells of the coarsest axis,
W = window · max_a L_a / n), every primitive P has an *inner* window I_P (1 at distance ≥ W
inside P, 0 on and outside ∂P) and an *outer* one O_P (1 on P, 0 at distance ≥ W outside P):

- box Π_a [lo_a, hi_a]: I = Π_a ψ((x_a − lo_a)/W) ψ((hi_a − x_a)/W),
  O = Π_a ψ(1 + (x_a − lo_a)/W) ψ(1 + (hi_a − x_a)/W);
- ellipsoid {ρ ≤ 1}, ρ = |(x − c)/r|: with s = (1 − ρ) min_a r_a (the exact signed
  distance for a ball, a lower bound of it for an ellipse since |∇ρ| ≤ 1/min r),
  I = ψ(s/W), O = ψ(1 + s/W);
- polygon: s = ± the distance to its edges (+ inside), I = ψ(s/W), O = ψ(1 + s/W)
  (C^∞ except on the bisectors of its convex corners, where s has a kink).

Set operations combine them so that the product rules keep every window C^∞:

- A ∩ B: I = I_A I_B, O = O_A O_B;
- A ∪ B: I = 1 − (1 − I_A)(1 − I_B), O = 1 − (1 − O_A)(1 − O_B);
- A ∖ (B_1 ∪ … ∪ B_m) (``difference``): I = I_A Π_i (1 − O_{B_i}),
  O = O_A Π_i (1 − I_{B_i}).

w_Ω = I_Ω is exactly 0 at every point outside Ω and on ∂Ω, exactly 1 at distance ≥ W from
∂Ω along faces, balls and polygon edges (≥ √d·W near the corners of a subtracted box,
≥ W·max r/min r near an ellipse), and between 0 and 1 in between. The per-frequency error
Δ_F(k) = |(w_Ω h)^(k) − (w_Ω u)^(k)| / |(w_Ω u)^(k)| (docs/design.md §2,
:func:`~mscalepde.diagnostics.fprinciple.relative_error_per_frequency`) is therefore the
error in the region where w_Ω ≈ 1, the interior of Ω less a band of width about W along
∂Ω; the band's error is damped, not left out. The window only depends on the geometry, so
it is the same for the network and the truth.

**Peaks.** A windowed mode c e^{ik₀·x} has the coefficients c ŵ(k − k₀): around each of
u's peaks, side maxima that follow ŵ. :func:`windowed_peaks` keeps the solution's own
peaks among the local maxima (those above ``LEAKAGE_RATIO`` times the leakage predicted
from the larger ones), at most ``MAX_WINDOWED_PEAKS``.

A *box* whose truth is not periodic, does not vanish on its faces and has no zero normal
derivative there (no transform fits it, :mod:`mscalepde.diagnostics.choice`) gets the same
treatment with Ω the box: ``transform: auto`` picks the fft of the windowed fields.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product
from typing import Any

import numpy as np

from mscalepde.diagnostics.fprinciple import Peak
from mscalepde.diagnostics.transforms import _array_position, _check_transform
from mscalepde.geometry.shapes import (
    Box,
    Difference,
    Ellipsoid,
    Intersection,
    Polygon,
    Shape,
    Union,
)

#: a peak of a windowed spectrum is the solution's own when it is at least this many times
#: the leakage that the window spreads from the larger peaks already accepted
LEAKAGE_RATIO = 2.0


#: at most this many peaks of a windowed spectrum are kept (the largest): a solution that is
#: not a sum of a few modes (a smooth bump, a boundary layer) has a broadened spectrum whose
#: side maxima the leakage model cannot all explain
MAX_WINDOWED_PEAKS = 12


def smooth_step(s: np.ndarray) -> np.ndarray:
    """ψ(s): 0 for s ≤ 0, 1 for s ≥ 1, f(s)/(f(s) + f(1 − s)) with f(s) = exp(−1/s)
    in between (C^∞, every derivative 0 at s = 0 and s = 1, ψ(s) + ψ(1 − s) = 1)."""
    s = np.asarray(s, dtype=np.float64)
    a = np.clip(s, 0.0, 1.0)
    with np.errstate(divide="ignore", over="ignore"):
        fa = np.where(a > 0, np.exp(-1.0 / np.where(a > 0, a, 1.0)), 0.0)
        fb = np.where(a < 1, np.exp(-1.0 / np.where(a < 1, 1.0 - a, 1.0)), 0.0)
    return fa / (fa + fb)


def window_width(box: Sequence[Sequence[float]], n: int, cells: float) -> float:
    """W = ``cells`` · max_a L_a / n, the window's transition width in length units."""
    return float(cells) * max(float(hi) - float(lo) for lo, hi in box) / int(n)


def _polygon_distance(poly: Polygon, x: np.ndarray) -> np.ndarray:
    """Euclidean distance of every point (N, 2) to the polygon's edges."""
    a = poly.v
    b = np.roll(a, -1, axis=0)
    out = np.full(len(x), np.inf)
    chunk = max(1, 4_000_000 // max(1, len(x)))
    for start in range(0, len(a), chunk):
        pa, pb = a[start : start + chunk], b[start : start + chunk]
        e = pb - pa  # (m, 2)
        ee = np.maximum((e * e).sum(axis=1), 1e-300)
        d = x[:, None, :] - pa[None, :, :]  # (N, m, 2)
        t = np.clip((d * e[None]).sum(axis=2) / ee[None], 0.0, 1.0)
        r = d - t[..., None] * e[None]
        out = np.minimum(out, np.sqrt((r * r).sum(axis=2)).min(axis=1))
    return out


def _primitive_distance(shape: Shape, x: np.ndarray) -> np.ndarray:
    """s: a signed distance to ∂P (+ inside) for an ellipsoid or a polygon (see the module
    docstring; a lower bound of the true distance for an ellipse)."""
    if isinstance(shape, Ellipsoid):
        rho = np.sqrt((((x - shape.c) / shape.r) ** 2).sum(axis=1))
        return (1.0 - rho) * float(np.min(shape.r))
    if isinstance(shape, Polygon):
        dist = _polygon_distance(shape, x)
        return np.where(shape.contains(x), dist, -dist)
    raise TypeError(f"no window for a {type(shape).__name__}")


def _windows(shape: Shape, x: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(I, O) of ``shape`` at the points ``x`` (N, d): the inner and outer windows."""
    if isinstance(shape, Box):
        inner = np.ones(len(x))
        outer = np.ones(len(x))
        for a in range(shape.dim):
            lo = (x[:, a] - shape.lo[a]) / width
            hi = (shape.hi[a] - x[:, a]) / width
            inner *= smooth_step(lo) * smooth_step(hi)
            outer *= smooth_step(1.0 + lo) * smooth_step(1.0 + hi)
        return inner, outer
    if isinstance(shape, (Ellipsoid, Polygon)):
        s = _primitive_distance(shape, x) / width
        return smooth_step(s), smooth_step(1.0 + s)
    parts = [_windows(p, x, width) for p in shape.children()]
    if isinstance(shape, Intersection):
        return (
            np.prod([i for i, _ in parts], axis=0),
            np.prod([o for _, o in parts], axis=0),
        )
    if isinstance(shape, Union):
        return (
            1.0 - np.prod([1.0 - i for i, _ in parts], axis=0),
            1.0 - np.prod([1.0 - o for _, o in parts], axis=0),
        )
    if isinstance(shape, Difference):
        (i0, o0), rest = parts[0], parts[1:]
        for i, o in rest:
            i0 = i0 * (1.0 - o)
            o0 = o0 * (1.0 - i)
        return i0, o0
    raise TypeError(f"no window for a {type(shape).__name__}")


def shape_window(shape: Shape, points: np.ndarray, width: float) -> np.ndarray:
    """w_Ω = I_Ω at ``points`` (N, d) for the transition width ``width`` (module docstring):
    exactly 0 outside Ω, 1 deep inside, C^∞ (polygon corners aside)."""
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"window width must be > 0, got {width}")
    x = np.asarray(points, dtype=np.float64)
    w, _ = _windows(shape, x, float(width))
    return np.clip(w, 0.0, 1.0)


def box_window(box: Sequence[Sequence[float]], points: np.ndarray, width: float) -> np.ndarray:
    """The window of the box itself (Ω = the box), for a box no transform fits."""
    shape = Box(tuple((float(lo), float(hi)) for lo, hi in box))
    return shape_window(shape, points, width)


def window_kernel(w: np.ndarray, transform: str) -> np.ndarray:
    """K(Δm) = |ŵ(Δm)| / |ŵ(0)|: how much of a mode's coefficient the window spreads to the
    mode numbers Δm away, indexed like an fft spectrum (Δm mod the array's shape).

    For ``fft`` ŵ is the window's DFT on the grid itself: w·e^{ik₀x} has the coefficients
    c(k) = ŵ(k − k₀) exactly. For ``dst``/``dct`` (mode numbers in steps of π/L) ŵ is the
    DFT of w padded with zeros to 2(n + 1) (dst) or 2n (dct) points per axis, whose
    frequencies step by π/L too: w·sin(k₀x) has the sine coefficients
    ≈ (ŵ(k − k₀) − ŵ(k + k₀))/2 (up to the normalisation common to every k).
    """
    transform = _check_transform(transform)
    w = np.asarray(w, dtype=np.float64)
    if transform == "fft":
        spec = np.abs(np.fft.fftn(w))
    else:
        extra = 1 if transform == "dst" else 0
        spec = np.abs(np.fft.fftn(w, s=[2 * (n + extra) for n in w.shape]))
    top = float(spec.flat[0])
    return spec / top if top > 0 else spec


def _images(index: Sequence[int], transform: str) -> list[tuple[int, ...]]:
    """The mode numbers whose leakage reaches around a peak of a real field: ±m for fft
    (the conjugate pair), every sign combination of m for dst/dct (the odd or even
    extension's images)."""
    m = tuple(int(v) for v in index)
    if transform == "fft":
        return [m, tuple(-v for v in m)]
    return sorted(
        {
            tuple(s * v for s, v in zip(signs, m, strict=True))
            for signs in product((1, -1), repeat=len(m))
        }
    )


def windowed_peaks(
    u_hat: Any,
    candidates: Sequence[Peak],
    kernel: np.ndarray,
    transform: str,
    *,
    ratio: float = LEAKAGE_RATIO,
    limit: int = MAX_WINDOWED_PEAKS,
) -> tuple[list[Peak], int]:
    """The solution's own peaks among the local maxima ``candidates`` of a windowed
    spectrum û = (w u)^, and the number of candidates left out as the window's leakage.

    A windowed mode c e^{ik₀x} spreads to c ŵ(k − k₀): a ring of side maxima around k₀
    whose heights follow ŵ, not u. The candidates are taken by decreasing |û|; with
    A_j = |û(k_j)| for the peaks k_j accepted so far, the leakage predicted at k is

        L(k) = Σ_j A_j Σ_{images m of k_j} K(k − m),    K = :func:`window_kernel`,

    and k is accepted (a peak of u's own) when |û(k)| > ``ratio`` · L(k): the largest is
    always accepted, a side lobe never (its |û| is the leakage itself), and a second mode
    is kept wherever it stands above the first one's leakage. Of the accepted peaks the
    ``limit`` largest are returned, in the order of :func:`find_peaks` (|k| ascending).
    """
    transform = _check_transform(transform)
    u_hat = np.asarray(u_hat)
    shape = u_hat.shape
    kshape = kernel.shape
    mag = np.abs(u_hat)
    order = sorted(
        candidates, key=lambda p: -float(mag[_array_position(p.index, shape, transform)])
    )
    accepted: list[tuple[Peak, float, list[tuple[int, ...]]]] = []
    for p in order:
        a = float(mag[_array_position(p.index, shape, transform)])
        leak = 0.0
        for _, aj, images in accepted:
            for m in images:
                pos = tuple((i - j) % n for i, j, n in zip(p.index, m, kshape, strict=True))
                leak += aj * float(kernel[pos])
        if a > ratio * leak:
            accepted.append((p, a, _images(p.index, transform)))
    kept = [p for p, _, _ in accepted[: int(limit)]]
    kept.sort(key=lambda p: (p.norm, -p.amplitude, p.index))
    return kept, len(candidates) - len(kept)
