"""Truth from a data file (mscalepde/problem/datafile.py, ``truth: {file: ...}``): COMSOL-style text
with ``%`` headers, CSV with a header row, npz; the errors of a run are measured at the
file's points; bad files are one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mscalepde.cli import main
from mscalepde.errors import SchemaError
from mscalepde.problem.datafile import read_truth
from mscalepde.problem.validate import load_problem
from mscalepde.run.model import make_model

PROBLEM = """name: filetruth
pde: poisson
domain:
  shape:
    difference:
      - {{ball: {{center: [0, 0], radius: 1}}, name: outer}}
      - {{ball: {{center: [0, 0], radius: 0.5}}, name: inner}}
exact: x*y + x
boundary:
  - {{faces: all, type: dirichlet, value: exact}}
truth: {{file: {file}}}
model: {{arch: mlp, width: 16, depth: 2}}
train: {{steps: 30, points: {{interior: 256, boundary: 64}}}}
diagnostics: {{enabled: false}}
"""


def points(n: int = 500) -> np.ndarray:
    rng = np.random.default_rng(0)
    r = np.sqrt(rng.uniform(0.25, 1.0, n))
    th = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([r * np.cos(th), r * np.sin(th)])


def comsol(path: Path, x: np.ndarray, u: np.ndarray, header: str = "x  y  u (1)") -> Path:
    lines = [
        "% Model:              annulus.mph",
        "% Version:            COMSOL 6.2.0.290",
        "% Date:               Dec 1 2026, 08:00",
        "% Dimension:          2",
        f"% Nodes:              {len(x)}",
        "% Expressions:        1",
        "% Description:        Dependent variable u",
        "% Length unit:        m",
        f"% {header}",
    ]
    lines += ["   ".join(f"{v:.17g}" for v in row) for row in np.column_stack([x, u])]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_comsol_round_trip_is_exact(tmp_path):
    x = points()
    u = x[:, 0] * x[:, 1] + x[:, 0]
    data = read_truth(comsol(tmp_path / "ref.txt", x, u), ("x", "y"))
    assert np.array_equal(data.points, x) and np.array_equal(data.values, u)
    # the header may order the columns differently
    data = read_truth(comsol(tmp_path / "swap.txt", x[:, ::-1], u, "y  x  u (1)"), ("x", "y"))
    assert np.array_equal(data.points, x)


def test_csv_header_and_npz(tmp_path):
    x = points(50)
    u = np.sin(x[:, 0])
    csv = tmp_path / "ref.csv"
    csv.write_text(
        "u,x,y\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in np.column_stack([u, x]))
    )
    data = read_truth(csv, ("x", "y"))
    assert np.array_equal(data.points, x) and np.array_equal(data.values, u)
    npz = tmp_path / "ref.npz"
    np.savez(npz, x=x[:, 0], y=x[:, 1], u=u)
    data = read_truth(npz, ("x", "y"))
    assert np.array_equal(data.points, x) and np.array_equal(data.values, u)


@pytest.mark.slow
def test_errors_are_measured_at_the_file_points(tmp_path):
    """A file whose values differ from exact by a known amount: the run's error is that
    amount (the file is the truth), not the error against exact."""
    x = points(400)
    u = x[:, 0] * x[:, 1] + x[:, 0]
    comsol(tmp_path / "ref.txt", x, u)
    path = tmp_path / "p.yaml"
    path.write_text(PROBLEM.format(file="ref.txt"))
    problem = load_problem(path)
    assert problem.truth is not None and len(problem.truth.values) == 400
    code = main(["solve", str(path), "--quiet", "--out", str(tmp_path / "run")])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["truth"] == "file" and summary["points"] == 400
    # the same network's error against exact at the same points
    import torch

    from mscalepde.diagnostics.evaluation import predict, relative_l2

    model = make_model(problem)
    model.load_state_dict(torch.load(tmp_path / "run" / "model.pt", weights_only=True))
    pred = predict(model, x, dtype=torch.float32, device="cpu")
    assert summary["rel_l2"] == pytest.approx(relative_l2(pred, u), rel=1e-6)
    # the resolved configuration names the file and its hash; a changed file is refused
    resolved = (tmp_path / "run" / "config.yaml").read_text()
    assert problem.truth.sha256 in resolved
    comsol(tmp_path / "ref.txt", x, u + 1)
    code = main(["check", str(tmp_path / "run" / "config.yaml")])
    assert code == 2


BAD = {
    "columns": ("% x y z u\n0 0 0 1\n", "line 2 has 4 columns; this problem needs 3 (x, y, u)"),
    "names": ("x,t,u\n0,0,1\n", "columns x, t, u do not match this problem's x, y, u"),
    "text": ("% header\n0.5 0.5 1\n0.5 oops 1\n", "line 3: not a row of numbers"),
    "nan": ("0.5 0.5 nan\n", "non-finite value in data row 1"),
    "outside": ("5 0.5 1\n", "is outside the domain"),
    "empty": ("% nothing\n", "no data rows"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_data_files_one_line_exit_2(name, tmp_path, capsys):
    text, expected = BAD[name]
    (tmp_path / "ref.dat").write_text(text)
    path = tmp_path / "p.yaml"
    path.write_text(PROBLEM.format(file="ref.dat"))
    code = main(["solve", str(path), "--quiet", "--runs-dir", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert str(path) in lines[0] and "truth.file" in lines[0] and expected in lines[0], lines[0]


def test_missing_file_and_npz_arrays(tmp_path):
    with pytest.raises(SchemaError, match="no such file"):
        read_truth(tmp_path / "none.txt", ("x",))
    np.savez(tmp_path / "r.npz", x=np.zeros(3), v=np.zeros(3))
    with pytest.raises(SchemaError, match="missing u"):
        read_truth(tmp_path / "r.npz", ("x",))


def test_comsol_time_dependent_export(tmp_path):
    """COMSOL writes one u column per time ('u (1) @ t=0.5'): one row per point and time."""
    x = np.array([[0.1, 0.2], [0.3, 0.4]])
    text = "% Model: heat.mph\n% x   y   u (1) @ t=0   u (1) @ t=0.5   u (1) @ t=1\n"
    text += "0.1 0.2 1 2 3\n0.3 0.4 4 5 6\n"
    (tmp_path / "h.txt").write_text(text)
    data = read_truth(tmp_path / "h.txt", ("x", "y", "t"))
    assert data.points.shape == (6, 3)
    assert np.array_equal(data.points[:3, :2], np.repeat(x[:1], 3, axis=0))
    assert np.array_equal(data.points[:3, 2], [0, 0.5, 1])
    assert np.array_equal(data.values, [1, 2, 3, 4, 5, 6])
    (tmp_path / "bad.txt").write_text(text.replace("0.3 0.4 4 5 6", "0.3 0.4 4 5"))
    with pytest.raises(SchemaError, match="the header names 2 coordinates and 3 times"):
        read_truth(tmp_path / "bad.txt", ("x", "y", "t"))


def test_a_grid_truth_is_interpolated_multilinearly_and_fast(tmp_path):
    """A COMSOL grid export with one column per time is a tensor grid in (x, y, t): its
    truth is multilinear there (exact for a function linear in each variable), the nearest
    face's values beyond the grid, and read without a Delaunay triangulation (which takes
    minutes on PINNacle's 96 192-point Heat 2d-LT file)."""
    xs, ys, ts = np.linspace(0.1, 0.9, 5), np.linspace(0.2, 0.8, 4), np.linspace(0, 10, 51)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    f = lambda x, y, t: (1 + 2 * x) * (3 - y) * (0.5 + 0.1 * t)  # noqa: E731
    header = "% x   y   " + "   ".join(f"u (1) @ t={t:g}" for t in ts) + "\n"
    rows = [[x, y, *(f(x, y, t) for t in ts)] for x, y in zip(X.ravel(), Y.ravel())]
    text = header + "\n".join(" ".join(f"{v:.17g}" for v in r) for r in rows) + "\n"
    (tmp_path / "g.txt").write_text(text)
    data = read_truth(tmp_path / "g.txt", ("x", "y", "t"))
    rng = np.random.default_rng(1)
    p = rng.uniform([0.1, 0.2, 0], [0.9, 0.8, 10], (2000, 3))
    np.testing.assert_allclose(data(p), f(*p.T), rtol=1e-12)
    np.testing.assert_array_equal(data(data.points), data.values)
    outside = np.array([[0.0, 0.5, 3.0], [1.0, 0.9, 3.0]])  # beyond the grid in x (and y)
    np.testing.assert_allclose(data(outside), f(np.array([0.1, 0.9]), np.array([0.5, 0.8]), 3.0))


def test_points_in_a_hole_are_refused(tmp_path, capsys):
    (tmp_path / "ref.dat").write_text("0.1 0.1 1\n")  # inside the inner disk
    path = tmp_path / "p.yaml"
    path.write_text(PROBLEM.format(file="ref.dat"))
    assert main(["check", str(path)]) == 2
    assert "is outside the domain" in capsys.readouterr().out


@pytest.mark.parametrize(
    "header, rows, message",
    [
        ("% y x u (1) @ t=0 u (1) @ t=1", "0.2 0.1 1 2", None),  # reordered coordinates
        ("% x y T (K) @ t=0 T (K) @ t=1E0", "0.1 0.2 1 2", None),  # units, exponent
        ("% x y u @ t=0 u @ t=1\n% exported by hand", "0.1 0.2 1 2", None),  # not the header
        ("% x y u @ t=0 v @ t=0 u @ t=1 v @ t=1", "0.1 0.2 1 2 3 4", "several expressions"),
        ("% x y u @ t=0 u @ t=end", "0.1 0.2 1 2", "is not a number"),
        ("% x y u @ t=0 u @ t=0", "0.1 0.2 1 2", "repeats a time"),
        ("% x z u @ t=0 u @ t=1", "0.1 0.2 1 2", "do not match this problem's coordinates"),
    ],
)
def test_comsol_time_header_variants(tmp_path, header, rows, message):
    path = tmp_path / "h.txt"
    path.write_text(f"{header}\n{rows}\n")  # (a comment between header and rows: ignored)
    if message is None:
        data = read_truth(path, ("x", "y", "t"))
        assert np.array_equal(data.points, [[0.1, 0.2, 0.0], [0.1, 0.2, 1.0]])
        assert np.array_equal(data.values, [1, 2])
    else:
        with pytest.raises(SchemaError, match=message):
            read_truth(path, ("x", "y", "t"))
