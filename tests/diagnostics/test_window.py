"""Diagnostics on shapes (issue 27): the smooth window of Ω, the peaks of a windowed
spectrum, and the transform that ``transform: auto`` chooses on a box."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import mscalepde as m
from mscalepde.diagnostics.choice import choose_transform
from mscalepde.diagnostics.fprinciple import find_peaks
from mscalepde.diagnostics.grid import DiagnosticGrid
from mscalepde.diagnostics.monitor import SpectralMonitor, _Spectra
from mscalepde.diagnostics.settings import DiagnosticSettings
from mscalepde.diagnostics.store import load_spectral
from mscalepde.diagnostics.transforms import diagnostic_grid, transform_field
from mscalepde.diagnostics.window import (
    MAX_WINDOWED_PEAKS,
    shape_window,
    smooth_step,
    window_kernel,
    window_width,
    windowed_peaks,
)
from mscalepde.geometry.shapes import Box, Difference, Ellipsoid, Polygon

PI = math.pi
ROOT = Path(__file__).resolve().parents[2]
BOX = [(-1.0, 1.0), (-1.0, 1.0)]
ANNULUS = Difference((Ellipsoid((0.0, 0.0), (1.0, 1.0)), Ellipsoid((0.0, 0.0), (0.4, 0.4))))
N = 128


def _points(n: int = N, transform: str = "fft") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = np.meshgrid(*diagnostic_grid(BOX, n, transform), indexing="ij")
    return x, y, np.stack([x.ravel(), y.ravel()], axis=1)


# --------------------------------------------------------------------------- the window


def test_smooth_step_is_a_smooth_step():
    s = np.linspace(-0.5, 1.5, 2001)
    psi = smooth_step(s)
    assert np.all(psi[s <= 0] == 0) and np.all(psi[s >= 1] == 1)
    assert np.all(np.diff(psi) >= 0)
    np.testing.assert_allclose(psi + smooth_step(1 - s), 1.0, atol=1e-15)
    # every derivative vanishes at the ends: the second difference is tiny near s = 0, 1
    ds = s[1] - s[0]
    d2 = np.diff(psi, 2) / ds**2
    near_ends = (np.abs(s[1:-1]) < 0.05) | (np.abs(s[1:-1] - 1) < 0.05)
    assert np.max(np.abs(d2[near_ends])) < 1e-3 * np.max(np.abs(d2))


def test_annulus_window_is_one_inside_zero_outside_and_smooth():
    x, y, pts = _points()
    r = np.hypot(x, y).ravel()
    width = window_width(BOX, N, 6)
    w = shape_window(ANNULUS, pts, width)
    assert np.all(w[(r > 1) | (r < 0.4)] == 0)  # outside Ω and on ∂Ω
    assert np.all(w[(r > 0.4 + width) & (r < 1 - width)] == 1)  # deep inside
    assert np.all((w >= 0) & (w <= 1))
    # smooth: the window's spectrum decays fast, the indicator's like |k|^(-3/2)
    mask = ANNULUS.contains(pts).astype(float)
    m_ = np.fft.fftfreq(N, 1.0 / N)
    far = np.hypot(m_[:, None], m_[None, :]) >= N / 4
    spec_w = np.abs(np.fft.fft2(w.reshape(N, N)))
    spec_chi = np.abs(np.fft.fft2(mask.reshape(N, N)))
    assert spec_w[far].max() / spec_w[0, 0] < 1e-3
    assert spec_chi[far].max() / spec_chi[0, 0] > 3e-3


def test_box_and_polygon_windows():
    _, _, pts = _points(64)
    width = 0.1
    box = Box(((-0.5, 0.5), (-0.5, 0.5)))
    w = shape_window(box, pts, width)
    inside = np.all(np.abs(pts) <= 0.5, axis=1)
    deep = np.all(np.abs(pts) <= 0.5 - width, axis=1)
    assert np.all(w[~inside] == 0) and np.all(w[deep] == 1)
    lshape = Polygon(((-1, -1), (1, -1), (1, 0), (0, 0), (0, 1), (-1, 1)))
    w = shape_window(lshape, pts, width)
    assert np.all(w[~lshape.contains(pts)] == 0)
    assert w[np.argmin(np.hypot(pts[:, 0] + 0.5, pts[:, 1] + 0.5))] == 1
    # a difference of a box and a ball: 0 in the hole, 1 away from both boundaries
    holed = Difference((Box(((-1, 1), (-1, 1))), Ellipsoid((0.0, 0.0), (0.3, 0.3))))
    w = shape_window(holed, pts, width)
    r = np.hypot(pts[:, 0], pts[:, 1])
    assert np.all(w[r <= 0.3] == 0)
    assert np.all(w[(r > 0.3 + width) & np.all(np.abs(pts) < 1 - width, axis=1)] == 1)


# --------------------------------------------------------------------------- peaks


def _peaks(u: np.ndarray, weight: np.ndarray) -> tuple[set, int, int]:
    """(the windowed peaks' mode numbers, how many were left out, the masked peaks' count)"""
    v_hat = transform_field(u * weight, "fft")
    cand = find_peaks(v_hat, BOX, "fft", 1e-3)
    kept, left = windowed_peaks(v_hat, cand, window_kernel(weight, "fft"), "fft")
    return {p.index for p in kept}, left, len(cand)


def test_windowed_peaks_are_the_fields_own_frequencies():
    x, y, pts = _points()
    # modes on the fft grid of [-1, 1]²: k = π m; a constant, two ± pairs and a fine mode
    u = 0.4 + np.sin(3 * PI * x) * np.cos(2 * PI * y) + 0.3 * np.cos(8 * PI * x - 5 * PI * y)
    w = shape_window(ANNULUS, pts, window_width(BOX, N, 6)).reshape(N, N)
    own = {(0, 0), (3, 2), (3, -2), (8, -5)}
    kept, left, _ = _peaks(u, w)
    assert kept == own and left > 0
    # the indicator instead: the jump across ∂Ω leaks, dozens of local maxima
    chi = ANNULUS.contains(pts).reshape(N, N).astype(float)
    assert len(find_peaks(transform_field(u * chi, "fft"), BOX, "fft", 1e-3)) > 100


def test_annulus_problem_lists_its_own_peaks_and_few_others():
    p = m.load_problem(ROOT / "problems" / "poisson2d_annulus.yaml")
    mon = SpectralMonitor(p, dtype=torch.float32, device="cpu", strict=True)
    mon.setup()
    assert mon.settings.transform == "fft" and mon.settings.window > 0 and mon.settings.auto
    (peaks,) = mon.spectra.peaks
    # u = exp(-xy) sin(3πx) cos(2πy) + x/2: its own peaks are (3π, ±2π) and, for x/2,
    # the lowest x mode (π, 0); at most MAX_WINDOWED_PEAKS, at most 8 beyond these
    own = {(3, 2), (3, -2)}
    got = {q.index for q in peaks}
    assert own <= got and len(got) <= min(len(own) + 8, MAX_WINDOWED_PEAKS)
    assert mon.spectra.left_out[0] > 0
    assert any("smooth window of the domain" in n for n in mon.notes)


def test_window_survives_the_run_folder(tmp_path):
    """diagnostics.npz stores the window: ``diagnose`` recomputes the peaks without the
    problem's shape, with the same window."""
    p = m.load_problem(ROOT / "problems" / "poisson2d_annulus.yaml")
    p = m.problem_from_dict({**p.config, "diagnostics": {"grid": 64, "filter_points": 100}})
    mon = SpectralMonitor(p, dtype=torch.float32, device="cpu", strict=True)
    mon.record(m.make_model(p), 0)
    mon.save(tmp_path)
    saved = load_spectral(tmp_path / "diagnostics.npz")
    assert saved.settings.window == mon.settings.window
    grid = DiagnosticGrid(saved.box, saved.settings, filter_index=saved.filter_index)
    assert mon.grid is not None and grid.window is not None
    np.testing.assert_array_equal(grid.window, mon.grid.window)
    again = _Spectra(grid, saved.truth, saved.settings)
    assert mon.spectra is not None and again.peaks == mon.spectra.peaks


# --------------------------------------------------------------------------- auto


def _box_problem(exact: str, **diag) -> m.Problem:
    return m.problem_from_dict(
        {"pde": "fit", "domain": {"box": [[0, 1]]}, "exact": exact, "diagnostics": diag}
    )


@pytest.mark.parametrize(
    "exact,transform,window",
    [
        ("sin(pi*x) + 0.1*sin(20*pi*x)", "dst", False),  # u = 0 on the faces
        ("cos(pi*x) + 0.1*cos(7*pi*x)", "dct", False),  # u' = 0 on the faces
        ("sin(2*pi*x) + 0.5", "fft", False),  # periodic
        ("x + sin(3*pi*x)", "fft", True),  # none fits: the box's window
    ],
)
def test_auto_chooses_the_transform_that_fits(exact, transform, window):
    p = _box_problem(exact)
    choice = choose_transform(p)
    assert (choice.transform, choice.window) == (transform, window)
    mon = SpectralMonitor(p, dtype=torch.float32, device="cpu", strict=True)
    mon.setup()
    s = mon.settings
    assert s.auto and s.transform == transform and (s.window > 0) == window
    if not window:
        assert mon.notes == []  # no note suggesting another transform
    else:
        assert len(mon.notes) >= 1 and "smooth window of the box" in mon.notes[0]


def test_dirichlet_box_picks_dst_and_its_peak():
    p = m.problem_from_dict(
        {
            "pde": "poisson",
            "domain": {"box": [[0, 1], [0, 2]]},
            "exact": "sin(pi*x)*sin(pi*y) + 0.1*sin(5*pi*x)*sin(3*pi*y)",
            "source": "auto",
            "boundary": [{"faces": "all", "type": "dirichlet", "value": 0}],
            "diagnostics": {"grid": 64},
        }
    )
    mon = SpectralMonitor(p, dtype=torch.float32, device="cpu", strict=True)
    mon.setup()
    assert mon.settings.transform == "dst" and mon.settings.window == 0
    assert mon.notes == []
    assert mon.spectra is not None
    assert {q.index for q in mon.spectra.peaks[0]} == {(1, 2), (5, 6)}


def test_explicit_transform_is_kept():
    s = DiagnosticSettings.from_problem(_box_problem("sin(pi*x)", transform="fft"))
    assert s.transform == "fft" and not s.auto and s.window == 0
    s = DiagnosticSettings.from_problem(_box_problem("x", transform="dct", window=0))
    assert s.transform == "dct" and s.window == 0
    # a heat problem is tested at its diagnostic times
    heat = m.problem_from_dict(
        {
            "pde": "heat",
            "domain": {"box": [[0, 1]], "time": [0, 1]},
            "exact": "exp(-t)*sin(pi*x)",
            "source": "auto",
            "initial": "exact",
            "boundary": [{"faces": "all", "type": "dirichlet", "value": 0}],
            "diagnostics": {"times": [0.5, 1]},
        }
    )
    assert DiagnosticSettings.from_problem(heat).transform == "dst"


def test_settings_round_trip_and_old_files():
    s = DiagnosticSettings.from_problem(_box_problem("x + sin(3*pi*x)"))
    back = DiagnosticSettings.from_dict(s.to_dict())
    assert back == s and back.window > 0 and back.auto
    old = s.to_dict()
    del old["window"], old["auto"]  # a diagnostics.npz written before the window
    assert DiagnosticSettings.from_dict(old).window == 0
    assert not s.same_sampling(DiagnosticSettings.from_dict(old))


def test_grid_window_of_a_plain_indicator():
    """An ``inside`` that is not a shape's ``contains``: w = ψ(d/W) of the grid distance."""
    p = m.load_problem(ROOT / "problems" / "poisson2d_annulus.yaml")
    settings = DiagnosticSettings.from_problem(p, grid=64)
    grid = DiagnosticGrid(BOX, settings, inside=lambda pts: ANNULUS.contains(pts))
    assert grid.mask is not None and grid.window is not None
    r = np.hypot(grid.spatial[:, 0], grid.spatial[:, 1])
    width = window_width(BOX, 64, settings.window)
    assert np.all(grid.window[~grid.mask] == 0)
    assert np.all(grid.window[(r > 0.4 + width + 0.05) & (r < 1 - width - 0.05)] == 1)
    assert np.all(grid.mask[grid.filter_index])
    # window 0: the indicator, as before the window
    off = DiagnosticGrid(
        BOX, DiagnosticSettings.from_problem(p, grid=64, window=0), inside=ANNULUS.contains
    )
    assert off.window is None and off.weight is not None
    np.testing.assert_array_equal(off.weight, off.mask)
