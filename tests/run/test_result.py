"""The Run object: what solve returns and load_run reads back, with the same methods and
the shapes the README's table gives."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

import mscalepde
from mscalepde import Run, load_run, problem_from_dict, solve
from mscalepde.errors import MscaleError, RunFolderError
from tests.helpers import POISSON1D


def _heat() -> dict:
    return {
        "name": "h1",
        "pde": "heat",
        "domain": {"box": [[0, 1]], "time": [0, 0.5]},
        "diffusivity": 0.1,
        "exact": "exp(-0.1*pi**2*t)*sin(pi*x)",
        "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
        "initial": "exact",
        "model": {"arch": "mlp", "width": 12, "depth": 2},
        "train": {"steps": 20, "points": {"interior": 64, "boundary": 8, "initial": 8},
                  "log_every": 10},
        "diagnostics": {"enabled": False},
    }


def test_solve_and_load_run_give_the_same_run(tmp_path):
    r = solve(problem_from_dict(copy.deepcopy(POISSON1D)), out=tmp_path / "run")
    back = load_run(tmp_path / "run")
    assert isinstance(r, Run) and isinstance(back, Run)
    x = np.linspace(0, 1, 7)[:, None]
    assert r.predict(x).shape == (7, 1) and back.truth(x).shape == (7, 1)
    np.testing.assert_array_equal(back.predict(x), r.predict(x))
    np.testing.assert_allclose(back.truth(x)[:, 0], np.sin(np.pi * x[:, 0]), atol=1e-15)
    assert back.summary["rel_l2"] == pytest.approx(r.rel_l2) and back.rel_l2 == r.rel_l2
    assert back.history.column("loss") == r.history.column("loss")
    assert back.history.columns == r.history.columns
    assert back.run_dir == tmp_path / "run" and back.problem.name == "p1"
    with torch.no_grad():
        out = back.model(torch.as_tensor(x, dtype=torch.float32))
    assert out.shape == (7, 1)


def test_residual_is_the_pde_residual():
    """For u_θ's own residual: a heat network checked against L u = u_t − κ u_xx − f by
    autograd at the same points."""
    r = solve(problem_from_dict(_heat()), write=False)
    pts = np.array([[0.3, 0.1], [0.6, 0.4], [0.9, 0.25]])
    res = r.residual(pts)
    assert res.shape == (3, 1)
    x = torch.tensor(pts, dtype=torch.float32, requires_grad=True)
    u = r.model(x)
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g[:, 0].sum(), x)
    xx, t = pts[:, 0], pts[:, 1]
    k2 = 0.1 * np.pi**2
    f = -k2 * np.exp(-k2 * t) * np.sin(np.pi * xx) + k2 * np.exp(-k2 * t) * np.sin(np.pi * xx)
    want = g[:, 1].detach().numpy() - 0.1 * gg[:, 0].numpy() - f
    np.testing.assert_allclose(res[:, 0], want, rtol=1e-4, atol=1e-5)


def test_bad_points_are_refused_in_one_line():
    r = solve(problem_from_dict(_heat()), write=False)
    with pytest.raises(MscaleError, match=r"expected an array \(N, 2\) with columns x, t"):
        r.predict(np.zeros((3, 3)))


def test_load_run_of_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(RunFolderError, match="no such run folder"):
        load_run(tmp_path / "nothing")


def test_every_public_name_is_importable_without_a_submodule_import():
    """``mscalepde.X`` for every name of ``__all__``, in a fresh interpreter, and
    ``help(mscalepde)`` lists them."""
    code = (
        "import mscalepde, pydoc\n"
        "missing = [n for n in mscalepde.__all__ if getattr(mscalepde, n, None) is None]\n"
        "text = pydoc.render_doc(mscalepde, renderer=pydoc.plaintext)\n"
        "import re\n"
        "unlisted = [n for n in mscalepde.__all__ if not re.search(rf'\\b{n}\\b', text)]\n"
        "print(missing, unlisted)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[] []"
    assert set(mscalepde.__all__) >= {"Run", "load_run", "solve", "export"}
