"""Reference files: the low-rank storage of time levels (error bound measured), the round
trip through npz, the hard link into a run folder, and ``mscalepde cache``."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mscalepde import problem_from_dict
from mscalepde.cli import main
from mscalepde.reference import lowrank
from mscalepde.reference.cache import cache_entries, get_reference, link_reference
from mscalepde.reference.result import Reference


def _heat_levels(levels: int = 200, n: int = 3000) -> np.ndarray:
    """Σ_k e^{−k²t} sin(k x)/k: a diffusing field, numerically of low rank in time."""
    t = np.linspace(0, 1, levels)[:, None]
    x = np.linspace(0, np.pi, n)[None, :]
    return sum(np.exp(-(k**2) * t) * np.sin(k * x) / k for k in range(1, 40))


def test_factor_meets_its_tolerance_with_a_small_rank():
    a = _heat_levels()
    for tol in (1e-6, 1e-9, 1e-12):
        q, b = lowrank.factor(a, tol)
        assert np.abs(a - q @ b).max() <= tol
        assert q.shape[1] < 40 and q.size + b.size < 0.5 * a.size


def test_a_full_rank_matrix_is_stored_as_it_is():
    a = np.random.default_rng(0).standard_normal((50, 400))
    assert lowrank.factor(a, 1e-8) is None
    assert set(lowrank.pack("u", a, 1e-8)) == {"u"}


def test_pack_and_unpack_round_trip_through_npz(tmp_path):
    a = _heat_levels(64, 500).reshape(64, 20, 25)
    tol = lowrank.storage_tolerance(a, 1e-6)
    assert tol == pytest.approx(1e-8 * np.abs(a).max())
    np.savez_compressed(tmp_path / "a.npz", **lowrank.pack("u", a, tol))
    with np.load(tmp_path / "a.npz") as z:
        assert lowrank.has("u", z) and "u" not in z.files
        back = lowrank.unpack("u", z)
    assert back.shape == a.shape and np.abs(back - a).max() <= tol


HEAT = {
    "name": "h",
    "pde": "heat",
    "domain": {"box": [[0, 1]], "time": [0, 1]},
    "diffusivity": 0.1,
    "source": 0,
    "initial": "sin(pi*x) + 0.3*sin(3*pi*x)",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": 0}],
    "reference": {"method": "fd", "n": 257, "nt": 400},
}


def test_a_heat_reference_is_stored_small_and_reads_back_within_its_bound(tmp_path):
    problem = problem_from_dict(HEAT)
    ref = get_reference(problem, cache=False)
    path = ref.save(tmp_path / "ref.npz")
    raw = ref.u.nbytes
    assert os.path.getsize(path) < 0.2 * raw
    back = Reference.load(path)
    bound = lowrank.storage_tolerance(ref.u, ref.estimated_error)
    assert np.abs(back.u - ref.u).max() <= bound <= 0.01 * ref.estimated_error * np.abs(
        ref.u
    ).max()
    pts = np.random.default_rng(1).random((200, 2))
    np.testing.assert_allclose(back(pts), ref(pts), atol=2 * bound)


def test_a_run_folders_reference_is_a_hard_link_to_the_cache(tmp_path):
    problem = problem_from_dict(HEAT)
    dest = link_reference(problem, tmp_path / "reference.npz")
    (cached, _), = [e for e in cache_entries() if e[0].stat().st_ino == dest.stat().st_ino]
    assert os.path.samefile(cached, dest) and dest.stat().st_nlink >= 2


def test_cache_command_shows_and_clears(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MSCALEPDE_CACHE", str(tmp_path / "c"))
    get_reference(problem_from_dict(HEAT))
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "c" / "reference") in out and "holds     1 reference(s)" in out
    assert main(["cache", "--clear"]) == 0
    assert "removed 1 file(s)" in capsys.readouterr().out
    assert cache_entries() == []
