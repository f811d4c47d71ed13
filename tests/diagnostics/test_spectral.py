"""Tests of the Frequency-Principle diagnostics (mscalepde.diagnostics.fprinciple,
spectral_figures)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mscalepde.diagnostics.fprinciple import (
    Peak,
    analyse,
    band_errors,
    cutoff_for_delta,
    default_delta,
    delta_for_cutoff,
    find_peaks,
    gaussian_filter_errors,
    gaussian_lowpass,
    relative_error_per_frequency,
)
from mscalepde.diagnostics.history import SpectralHistory, format_table
from mscalepde.diagnostics.transforms import diagnostic_grid, transform_field, wavenumbers

PI = math.pi
BOX1 = [(0.0, 1.0)]
BOX2 = [(0.0, 1.0), (0.0, 1.0)]


def grid(box, n, transform):
    return np.meshgrid(*diagnostic_grid(box, n, transform), indexing="ij")


# --------------------------------------------------------------------------- grids, wavenumbers


def test_diagnostic_grid_points():
    (x,) = diagnostic_grid([(-1.0, 1.0)], 4, "fft")
    np.testing.assert_allclose(x, [-1.0, -0.5, 0.0, 0.5])
    (x,) = diagnostic_grid([(0.0, 1.0)], 3, "dst")
    np.testing.assert_allclose(x, [0.25, 0.5, 0.75])
    (x,) = diagnostic_grid([(0.0, 1.0)], 4, "dct")
    np.testing.assert_allclose(x, [0.125, 0.375, 0.625, 0.875])
    xs = diagnostic_grid([(0, 1), (0, 2)], (3, 5), "fft")
    assert [len(a) for a in xs] == [3, 5]
    with pytest.raises(ValueError):
        diagnostic_grid([(1, 0)], 8)
    with pytest.raises(ValueError):
        diagnostic_grid(BOX1, 8, "wavelet")


@pytest.mark.parametrize("transform,n", [("fft", 128), ("dst", 127), ("dct", 128)])
def test_fifty_pi_sits_at_fifty_pi(transform, n):
    (x,) = diagnostic_grid(BOX1, n, transform)
    # sin is a basis function of fft and dst; cos is the dct's (Neumann) basis function
    f = np.cos if transform == "dct" else np.sin
    u = f(50 * PI * x)
    peaks = find_peaks(transform_field(u, transform), BOX1, transform)
    assert len(peaks) == 1
    assert peaks[0].wavenumber[0] == pytest.approx(50 * PI, rel=1e-12)
    assert peaks[0].norm == pytest.approx(157.0796, abs=1e-4)
    assert peaks[0].amplitude == pytest.approx(1.0, rel=1e-12)
    assert peaks[0].index == ((25,) if transform == "fft" else (50,))


def test_sine_under_dct_straddles_fifty_pi():
    (x,) = diagnostic_grid(BOX1, 128, "dct")
    c = transform_field(np.sin(50 * PI * x), "dct")
    peaks = sorted(find_peaks(c, BOX1, "dct"), key=lambda p: -p.amplitude)
    assert {p.index for p in peaks[:2]} == {(49,), (51,)}


def test_wavenumbers_conventions():
    (k,) = wavenumbers([(0.0, 2.0)], (4,), "fft")
    np.testing.assert_allclose(k, [0.0, PI, -2 * PI, -PI])
    (k,) = wavenumbers([(0.0, 2.0)], (3,), "dst")
    np.testing.assert_allclose(k, [PI / 2, PI, 3 * PI / 2])
    (k,) = wavenumbers([(0.0, 2.0)], (3,), "dct")
    np.testing.assert_allclose(k, [0.0, PI / 2, PI])


@pytest.mark.parametrize("transform", ["fft", "dst", "dct"])
def test_transform_is_expansion_coefficients(transform):
    # amplitude normalisation: c are the coefficients of the discrete basis (module doc)
    x, y = grid(BOX2, (8, 6), transform)
    kx, ky = wavenumbers(BOX2, (8, 6), transform)
    rng = np.random.default_rng(0)
    c = rng.standard_normal((8, 6))
    if transform == "fft":
        basis = lambda a, b: np.exp(1j * (a * x + b * y))  # noqa: E731
    elif transform == "dst":
        basis = lambda a, b: np.sin(a * x) * np.sin(b * y)  # noqa: E731
    else:
        basis = lambda a, b: np.cos(a * x) * np.cos(b * y)  # noqa: E731
    u = sum(c[i, j] * basis(kx[i], ky[j]) for i in range(8) for j in range(6))
    np.testing.assert_allclose(transform_field(u, transform), c, atol=1e-12)


def test_torch_tensors_accepted():
    torch = pytest.importorskip("torch")
    (x,) = diagnostic_grid(BOX1, 32, "fft")
    u = np.sin(2 * PI * x)
    snap = analyse(torch.tensor(u, requires_grad=True) * 2, torch.tensor(u), BOX1)
    assert snap.delta_f == pytest.approx([1.0])


# --------------------------------------------------------------------------- Δ_F at peaks


@pytest.mark.parametrize("transform,n", [("fft", 256), ("dst", 255)])
def test_missing_mode_is_the_only_unresolved(transform, n):
    (x,) = diagnostic_grid(BOX1, n, transform)
    modes = {2: 1.0, 10: 0.5, 50: 0.1}  # sin(m π x) with amplitude a
    u = sum(a * np.sin(m * PI * x) for m, a in modes.items())
    h = u - 0.5 * np.sin(10 * PI * x)
    snap = analyse(h, u, BOX1, transform)
    assert [round(p.norm / PI) for p in snap.peaks] == [2, 10, 50]
    np.testing.assert_allclose([p.amplitude for p in snap.peaks], [1.0, 0.5, 0.1], rtol=1e-10)
    assert snap.delta_f[1] == pytest.approx(1.0, abs=1e-12)
    assert snap.delta_f[0] < 1e-12 and snap.delta_f[2] < 1e-12


def test_phase_error_counts_only_in_complex_delta_f():
    (x,) = diagnostic_grid(BOX1, 128, "fft")
    u = np.sin(2 * PI * x) + 0.2 * np.sin(20 * PI * x)
    h = np.sin(2 * PI * x) + 0.2 * np.sin(20 * PI * x + 0.3)
    cplx = analyse(h, u, BOX1, "fft")
    mag = analyse(h, u, BOX1, "fft", magnitude=True)
    assert cplx.delta_f[1] == pytest.approx(2 * math.sin(0.15), rel=1e-10)  # |e^{0.3i} - 1|
    assert cplx.delta_f[1] > 0.05 and cplx.delta_f[0] < 1e-12
    assert np.all(mag.delta_f < 1e-12)


def test_relative_error_per_frequency_zero_denominator():
    out = relative_error_per_frequency(np.array([1.0, 0.0, 2.0]), np.array([0.0, 0.0, 1.0]))
    assert math.isinf(out[0]) and math.isnan(out[1]) and out[2] == 1.0


# --------------------------------------------------------------------------- peaks in 2D/3D


def test_2d_peaks_fft():
    x, y = grid(BOX2, 32, "fft")
    u = np.sin(2 * PI * x) * np.sin(4 * PI * y) + 0.5 * np.sin(10 * PI * x)
    peaks = find_peaks(transform_field(u, "fft"), BOX2, "fft")
    # sin(2πx) sin(4πy) = [cos(2πx − 4πy) − cos(2πx + 4πy)] / 2: two plane waves of amplitude 1/2
    assert [p.index for p in peaks] == [(1, -2), (1, 2), (5, 0)]
    np.testing.assert_allclose([p.amplitude for p in peaks], [0.5, 0.5, 0.5], rtol=1e-12)
    assert peaks[0].wavenumber == pytest.approx((2 * PI, -4 * PI))
    assert peaks[2].norm == pytest.approx(10 * PI)


def test_2d_peaks_dst():
    x, y = grid(BOX2, 31, "dst")
    u = np.sin(2 * PI * x) * np.sin(4 * PI * y) + 0.5 * np.sin(10 * PI * x) * np.sin(PI * y)
    peaks = find_peaks(transform_field(u, "dst"), BOX2, "dst")
    assert [p.index for p in peaks] == [(2, 4), (10, 1)]
    np.testing.assert_allclose([p.amplitude for p in peaks], [1.0, 0.5], rtol=1e-12)
    assert peaks[1].wavenumber == pytest.approx((10 * PI, PI))


def test_3d_peaks():
    box = [(0.0, 1.0)] * 3
    x, y, z = grid(box, 12, "fft")
    u = 0.7 * np.cos(2 * PI * (x + 2 * y - 3 * z) + 0.4)
    (p,) = find_peaks(transform_field(u, "fft"), box, "fft")
    assert p.index == (1, 2, -3) and p.amplitude == pytest.approx(0.7)
    assert p.norm == pytest.approx(2 * PI * math.sqrt(14))
    x, y, z = grid(box, 9, "dst")
    u = np.sin(PI * x) * np.sin(2 * PI * y) * np.sin(3 * PI * z)
    (p,) = find_peaks(transform_field(u, "dst"), box, "dst")
    assert p.index == (1, 2, 3) and p.amplitude == pytest.approx(1.0)


def test_peak_wraps_and_floor():
    # a peak at the highest negative index is compared with its wrapped neighbour index 0
    c = np.zeros(8, dtype=complex)
    c[0], c[7], c[1] = 1.0, 0.5, 0.5  # real field: c(1) = c(-1)
    peaks = find_peaks(c, [(0.0, 2 * PI)], "fft")
    assert [p.index for p in peaks] == [(0,)]
    c[4] = 1e-4  # below the 1e-3 floor
    assert len(find_peaks(c, [(0.0, 2 * PI)], "fft")) == 1
    assert len(find_peaks(c, [(0.0, 2 * PI)], "fft", floor=1e-5)) == 2
    assert find_peaks(np.zeros(8), BOX1, "fft") == []


# --------------------------------------------------------------------------- band errors


def test_band_errors_localised():
    n = 128
    (x,) = diagnostic_grid(BOX1, n, "fft")
    # one mode in every octave band [2π·2^j, 2π·2^(j+1)), plus a mean
    u = 1.0 + sum(np.sin(2 * PI * m * x + m) for m in (1, 3, 6, 12, 24, 48))
    pert = 0.01 * (np.sin(2 * PI * 5 * x) + np.cos(2 * PI * 7 * x))  # inside [8π, 16π)
    bands = band_errors(u + pert, u, BOX1, "fft")
    k1 = 2 * PI
    assert [b.lo for b in bands] == pytest.approx(
        [0, k1, 2 * k1, 4 * k1, 8 * k1, 16 * k1, 32 * k1, 64 * k1]
    )
    assert sum(b.count for b in bands) == n
    errs = np.array([b.error for b in bands])
    assert errs[3] == pytest.approx(0.01 * math.sqrt(2), rel=1e-10)
    others = np.delete(errs, 3)
    assert np.all(np.isfinite(others[:-1])) and np.all(others[:-1] < 1e-12)
    assert math.isnan(errs[-1])  # [128π, 256π) holds only the Nyquist mode: u empty there
    energy = np.array([b.energy for b in bands])
    assert energy.sum() == pytest.approx(1.0)
    # Parseval: the bands partition the grid error
    rms = math.sqrt(sum(b.abs_error**2 for b in bands))
    assert rms == pytest.approx(float(np.sqrt(np.mean(pert**2))), rel=1e-10)


@pytest.mark.parametrize("transform", ["dst", "dct"])
def test_band_errors_parseval_dst_dct(transform):
    rng = np.random.default_rng(1)
    u = rng.standard_normal((16, 12))
    e = 1e-3 * rng.standard_normal((16, 12))
    bands = band_errors(u + e, u, BOX2, transform)
    total = math.sqrt(sum(b.abs_error**2 for b in bands))
    assert total == pytest.approx(float(np.sqrt(np.mean(e**2))), rel=1e-10)
    if transform == "dst":  # no constant mode: the band [0, π) is dropped
        assert bands[0].lo > 0


def test_band_errors_custom_edges():
    (x,) = diagnostic_grid(BOX1, 64, "dst")
    u = np.sin(PI * x) + np.sin(20 * PI * x)
    bands = band_errors(u + 0.1 * np.sin(20 * PI * x), u, BOX1, "dst", bands=[0, 10 * PI, 1e3])
    assert bands[0].error < 1e-12 and bands[1].error == pytest.approx(0.1)


# --------------------------------------------------------------------------- filtering method


def _dense_filter_errors(x, u, h, delta):
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    g = np.exp(-d2 / (2 * delta))
    g /= g.sum(1, keepdims=True)
    ul, hl = g @ u, g @ h
    uh, hh = u - ul, h - hl
    return (
        np.linalg.norm(hl - ul) / np.linalg.norm(ul),
        np.linalg.norm(hh - uh) / np.linalg.norm(uh),
    )


def test_gaussian_filter_matches_dense_and_chunking():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (200, 2))
    u = np.sin(2 * PI * x[:, 0]) * np.cos(PI * x[:, 1]) + 0.2 * np.sin(30 * PI * x[:, 0])
    h = u + 0.05 * rng.standard_normal(200)
    delta = 0.003
    ref = _dense_filter_errors(x, u, h, delta)
    for chunk in (2048, 200, 7, 1):
        got = gaussian_filter_errors(x, u, h, delta, chunk=chunk)
        assert got == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_filter_separates_scales():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (600, 1))
    u = np.sin(2 * PI * x[:, 0]) + 0.1 * np.sin(50 * PI * x[:, 0])
    delta = delta_for_cutoff(10 * PI)
    e_lo, e_hi = gaussian_filter_errors(x, u, u - 0.1 * np.sin(50 * PI * x[:, 0]), delta)
    assert e_lo < 0.05 and e_hi > 0.8  # missing the 50π mode is a high-frequency error
    e_lo, e_hi = gaussian_filter_errors(x, u, u - np.sin(2 * PI * x[:, 0]), delta)
    # missing sin(2πx) is a low-frequency error; e_high is not 0 because near the ends of the
    # interval the renormalised filter does not reproduce sin(2πx) (a boundary effect)
    assert e_lo > 0.9 and e_hi < 0.6


def test_delta_cutoff_is_half_amplitude_point():
    k = 5.0
    delta = delta_for_cutoff(k)
    assert delta == pytest.approx(2 * math.log(2) / k**2)
    assert cutoff_for_delta(delta) == pytest.approx(k)
    x = np.linspace(0.0, 20.0, 2001)
    low = gaussian_lowpass(x[:, None], np.cos(k * x), delta)
    mid = 1000  # far from the ends, the filter keeps exp(-δk²/2) = 1/2 of the mode
    assert low[mid] / np.cos(k * x[mid]) == pytest.approx(0.5, abs=1e-6)
    assert default_delta(BOX1, k) == delta
    assert cutoff_for_delta(default_delta([(-PI, PI)])) == pytest.approx(4.0)


# --------------------------------------------------------------------------- history


def _crafted_history():
    peaks = [
        Peak(index=(1,), wavenumber=(2 * PI,), norm=2 * PI, amplitude=1.0),
        Peak(index=(5,), wavenumber=(10 * PI,), norm=10 * PI, amplitude=0.5),
        Peak(index=(25,), wavenumber=(50 * PI,), norm=50 * PI, amplitude=0.1),
    ]
    hist = SpectralHistory(peaks=peaks, threshold=0.05, transform="fft", box=BOX1)
    rows = [
        (0, [0.9, 1.0, 1.0]),
        (100, [0.01, 0.5, 1.0]),
        (200, [0.02, 0.04, 1.0]),  # peak 1 drops below ...
        (300, [0.01, 0.20, 0.9]),  # ... rises back ...
        (400, [0.005, 0.03, 0.8]),  # ... and drops again for good
        (500, [0.004, 0.01, 0.7]),
    ]
    for step, df in rows:
        hist._delta_f.append(np.array(df))  # crafted directly: no fields needed
        hist._steps.append(step)
        hist._band_error.append(np.zeros(0))
        hist._e_low.append(0.1 / (step + 1))
        hist._e_high.append(float("nan") if step == 0 else 1.0 / step)
    return hist


def test_resolved_table_logic():
    table = _crafted_history().resolved_table()
    assert [r["first_resolved"] for r in table] == [100, 200, None]
    assert [r["resolved_since"] for r in table] == [100, 400, None]
    assert table[2]["final_delta_f"] == 0.7
    assert table[1]["index"] == (5,) and table[1]["k_norm"] == 10 * PI
    strict = _crafted_history().resolved_table(threshold=0.005)
    assert strict[0]["first_resolved"] == 500 and strict[0]["resolved_since"] == 500
    text = format_table(table)
    lines = text.splitlines()
    assert "first <0.05" in lines[0] and "resolved since" in lines[0]
    assert lines[3].split()[0] == "10pi" and lines[3].split()[-2:] == ["200", "400"]
    assert lines[4].split()[-2:] == ["never", "never"]
    assert len({len(line) for line in lines[:2]}) == 1


def test_history_records_snapshots_and_round_trips(tmp_path):
    (x,) = diagnostic_grid(BOX1, 128, "fft")
    u = np.sin(2 * PI * x) + 0.1 * np.sin(50 * PI * x)
    hist = SpectralHistory(threshold=0.05)
    hist.record(0, e_low=0.9)  # filter errors before any spectral snapshot
    for step, a, b in [(10, 0.5, 0.0), (20, 0.99, 0.5), (30, 1.0, 0.97)]:
        h = a * np.sin(2 * PI * x) + b * 0.1 * np.sin(50 * PI * x)
        hist.record(step, analyse(h, u, BOX1))
        hist.record(step, e_low=1 - a, e_high=1 - b)  # merged into the same row
    assert hist.steps.tolist() == [0, 10, 20, 30]
    assert hist.delta_f.shape == (4, 2) and np.isnan(hist.delta_f[0]).all()
    np.testing.assert_allclose(hist.delta_f[1:], [[0.5, 1.0], [0.01, 0.5], [0.0, 0.03]], atol=1e-12)
    assert hist.e_low.tolist()[0] == 0.9
    table = hist.resolved_table()
    assert [r["resolved_since"] for r in table] == [20, 30]
    # a snapshot with its own peaks is evaluated at the history's peaks
    other = analyse(u, u + np.sin(6 * PI * x), BOX1)
    hist.record(40, other)
    assert hist.delta_f[-1] == pytest.approx([0.0, 0.0], abs=1e-12)

    path = tmp_path / "diagnostics.npz"
    hist.to_npz(path)
    assert [p.name for p in tmp_path.iterdir()] == ["diagnostics.npz"]  # no temporary left
    back = SpectralHistory.from_npz(path)
    a, b = hist.to_arrays(), back.to_arrays()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert back.peaks == hist.peaks and back.box == hist.box
    assert back.resolved_table() == hist.resolved_table()
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_empty_history_round_trip(tmp_path):
    hist = SpectralHistory()
    hist.to_npz(tmp_path / "h.npz")
    back = SpectralHistory.from_npz(tmp_path / "h.npz")
    assert back.peaks is None and len(back) == 0 and back.resolved_table() == []


def test_history_steps_must_not_decrease():
    hist = SpectralHistory()
    hist.record(5, e_low=0.1)
    with pytest.raises(ValueError):
        hist.record(4, e_low=0.1)


# --------------------------------------------------------------------------- figures


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_written_and_closed(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    from mscalepde.diagnostics.figures import (
        plot_band_errors,
        plot_filter_errors,
        plot_fprinciple_heatmap,
        plot_spectra,
        write_all_figures,
    )

    hist = _crafted_history()
    hist.band_pairs = np.array([[0.0, 2 * PI], [2 * PI, 4 * PI]])
    hist.band_energy = np.array([0.0, 1.0])
    hist._band_error = [np.array([np.nan, 1.0 / (i + 1)]) for i in range(len(hist))]
    x, y = grid(BOX2, 16, "fft")
    u = np.sin(2 * PI * x) * np.sin(4 * PI * y)
    snap2 = analyse(0.9 * u, u, BOX2)
    (x1,) = diagnostic_grid(BOX1, 64, "dst")
    u1 = np.sin(PI * x1) + 0.1 * np.sin(20 * PI * x1)
    snap1 = analyse(np.sin(PI * x1), u1, BOX1, "dst")
    paths = [
        plot_fprinciple_heatmap(hist, tmp_path / "heat.png"),
        plot_spectra(snap1, tmp_path / "spec1.png"),
        plot_spectra(snap2, tmp_path / "spec2.png"),
        plot_filter_errors(hist, tmp_path / "filter.png", delta=0.01),
        plot_band_errors(hist, tmp_path / "bands.png"),
        plot_fprinciple_heatmap(SpectralHistory(), tmp_path / "empty.png"),
    ]
    paths += list(write_all_figures(hist, tmp_path / "figs", snapshot=snap1).values())
    assert len(paths) == 10
    assert all(_is_png(p) for p in paths)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert plt.get_fignums() == []


def test_history_adopts_snapshot_transform():
    (x,) = diagnostic_grid(BOX1, 63, "dst")
    u = np.sin(PI * x)
    hist = SpectralHistory()
    hist.record(0, e_low=1.0, e_high=1.0)
    hist.record(1, analyse(0.5 * u, u, BOX1, "dst"))
    assert hist.transform == "dst" and hist.peaks[0].index == (1,)
    assert hist.delta_f[:, 0].tolist()[1] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        (xf,) = diagnostic_grid(BOX1, 64, "fft")
        hist.record(2, analyse(np.sin(2 * PI * xf), np.sin(2 * PI * xf), BOX1, "fft"))
