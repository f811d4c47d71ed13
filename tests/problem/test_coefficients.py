"""Coefficients from data (issue 25): interpolation, its order, gradients, refusals, and a
problem whose diffusivity, source or reaction is read from a file or given as blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mscalepde import problem_from_dict
from mscalepde.errors import ProblemError
from mscalepde.expressions.data import DataField


def smooth(p):
    return np.sin(p[:, 0]) * np.cos(0.7 * p[:, 1]) + 2.0


def _grid(n, lo=(0.0, 0.0), hi=(1.0, 2.0)):
    axes = [np.linspace(a, b, n) for a, b in zip(lo, hi)]
    X, Y = np.meshgrid(*axes, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], 1)


def _env(p):
    return {"x": p[:, 0], "y": p[:, 1]}


@pytest.mark.parametrize("interpolate", ["linear", "nearest"])
@pytest.mark.parametrize("layout", ["grid", "scattered"])
def test_exact_at_the_data_points(interpolate, layout):
    rng = np.random.default_rng(0)
    pts = _grid(9) if layout == "grid" else rng.random((200, 2)) * [1, 2]
    field = DataField(("x", "y"), points=pts, values=smooth(pts), interpolate=interpolate)
    assert (field.axes is not None) == (layout == "grid")
    assert np.abs(field.numpy(_env(pts)) - smooth(pts)).max() < 1e-13
    xt = torch.tensor(pts)
    assert torch.allclose(field.torch(_env(xt)), torch.tensor(smooth(pts)), atol=1e-13)


@pytest.mark.parametrize("interpolate, order", [("linear", 2.0), ("nearest", 1.0)])
@pytest.mark.parametrize("layout", ["grid", "scattered"])
def test_the_order_between_the_points(interpolate, order, layout):
    """Max error at fixed off-data points against the spacing h: slope 2 (linear), 1
    (nearest), measured over two refinements."""
    rng = np.random.default_rng(1)
    q = rng.random((2000, 2)) * [0.9, 1.8] + [0.05, 0.1]
    errors, hs = [], []
    for n in (9, 17, 33):
        if layout == "grid":
            pts = _grid(n)
        else:  # a jittered grid: scattered points with spacing ~ h
            pts = _grid(n) + rng.uniform(-0.2, 0.2, (n * n, 2)) * [1 / (n - 1), 2 / (n - 1)]
            pts[:, 0] = np.clip(pts[:, 0], 0, 1)
            pts[:, 1] = np.clip(pts[:, 1], 0, 2)
        f = DataField(("x", "y"), points=pts, values=smooth(pts), interpolate=interpolate)
        errors.append(np.abs(f.numpy(_env(q)) - smooth(q)).max())
        hs.append(1 / (n - 1))
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert slope == pytest.approx(order, abs=0.35), (errors, slope)


def test_the_linear_interpolant_is_differentiated_by_autograd():
    pts = _grid(11)
    f = DataField(("x", "y"), points=pts, values=smooth(pts))
    q = torch.tensor([[0.33, 0.71], [0.61, 1.27]], dtype=torch.float64, requires_grad=True)
    v = f.torch(_env(q))
    (g,) = torch.autograd.grad(v.sum(), q)
    h = 1e-7
    for i in range(2):
        for d in range(2):
            e = np.zeros(2)
            e[d] = h
            p = q.detach().numpy()[i]
            fd = (f.numpy(_env((p + e)[None]))[0] - f.numpy(_env((p - e)[None]))[0]) / (2 * h)
            assert float(g[i, d]) == pytest.approx(fd, rel=1e-6)


def test_blocks_are_piecewise_constant_on_their_cells():
    f = DataField(("x", "y"), values=np.array([[1.0, 2.0], [3.0, 4.0]]),
                  edges=[np.array([0.0, 0.5, 1.0]), np.array([0.0, 1.0, 2.0])])
    p = np.array([[0.1, 0.1], [0.1, 1.5], [0.7, 0.2], [0.99, 1.99], [1.0, 2.0], [0.5, 1.0]])
    assert f.numpy(_env(p)).tolist() == [1.0, 2.0, 3.0, 4.0, 4.0, 4.0]


# ------------------------------------------------------------------ in a problem file
def _write(path, pts, values, header="x, y, a"):
    np.savetxt(path, np.column_stack([pts, values]), delimiter=", ", header=header)


def _problem(diffusivity, tmp_path, **extra):
    cfg = {
        "name": "data", "pde": "poisson", "domain": {"box": [[0, 1], [0, 2]]},
        "diffusivity": diffusivity, "source": 1,
        "boundary": [{"faces": "all", "type": "dirichlet", "value": 0}],
        "train": {"points": {"interior": 64, "boundary": 16}},
        **extra,
    }
    return problem_from_dict(cfg, origin=str(tmp_path / "p.yaml"))


def test_a_diffusivity_from_a_file_is_the_operators_coefficient(tmp_path):
    pts = _grid(41)
    _write(tmp_path / "a.csv", pts, smooth(pts))
    p = _problem({"file": "a.csv", "interpolate": "linear"}, tmp_path)
    ref = _problem("sin(x)*cos(0.7*y) + 2", tmp_path)
    x = torch.rand(300, 2, dtype=torch.float64) * torch.tensor([1.0, 2.0])
    c_data, c_expr = p.operator.coefficients(x), ref.operator.coefficients(x)
    h = 2 / 40
    assert float((c_data[:, 0, 0] - c_expr[:, 0, 0]).abs().max()) < h**2  # value: O(h²)
    assert float((c_data[:, 0, 1:] - c_expr[:, 0, 1:]).abs().max()) < 2 * h  # gradient: O(h)
    # config.yaml names the file absolutely, with its hash, and reloads to the same problem
    again = problem_from_dict(p.config)
    assert p.config["diffusivity"]["sha256"] and again.fingerprint() == p.fingerprint()
    assert torch.equal(again.operator.coefficients(x), c_data)


def test_source_and_reaction_from_data_and_blocks(tmp_path):
    pts = _grid(5)
    _write(tmp_path / "f.csv", pts, 3.0 + 0 * pts[:, 0], header="x, y, f")
    _write(tmp_path / "r.csv", pts, 2.0 + pts[:, 0], header="x, y, r")
    blocks = {"blocks": {"x": [0, 0.5, 1], "y": [0, 1, 2], "values": [[1, 10], [10, 1]]}}
    p = _problem(blocks, tmp_path, source={"file": "f.csv"}, reaction={"file": "r.csv"})
    from mscalepde.equations import source_values

    x = torch.tensor([[0.25, 0.5], [0.75, 0.5], [0.4, 1.5]], dtype=torch.float64)
    assert source_values(p, x).tolist() == pytest.approx([3.0, 3.0, 3.0])
    u = torch.ones(3, dtype=torch.float64)
    assert p.operator.reaction_values(x, u).tolist() == pytest.approx([2.25, 2.75, 2.4])
    assert p.operator.coefficients(x)[:, 0, 0].tolist() == [1.0, 10.0, 10.0]
    assert p.operator.linear and p.config["diffusivity"]["blocks"]["values"] == [[1, 10], [10, 1]]


@pytest.mark.parametrize(
    "make, key, words",
    [
        (lambda d: _write(d / "a.csv", _grid(5), -1 + 0 * _grid(5)[:, 0]), "diffusivity.file",
         ("> 0", "row 1")),
        (lambda d: np.savetxt(d / "a.csv", np.ones((4, 4))), "diffusivity.file", ("columns",)),
        (lambda d: _write(d / "a.csv", _grid(5) * 0.5, 1 + 0 * _grid(5)[:, 0]),
         "diffusivity.file", ("cover",)),
        (lambda d: _write(d / "a.csv", np.vstack([_grid(3), _grid(3)[:1]]), np.ones(10)),
         "diffusivity.file", ("repeats",)),
    ],
)
def test_bad_data_files_are_refused_in_one_line(tmp_path, make, key, words):
    make(tmp_path)
    with pytest.raises(ProblemError) as info:
        _problem({"file": "a.csv"}, tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and key in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize(
    "blocks, key",
    [
        ({"x": [0, 1], "y": [0, 2], "values": [[1, 2]]}, "values"),
        ({"x": [0, 0.5, 1], "y": [0, 2], "values": [[1], [-1]]}, "values"),
        ({"x": [0, 0.5, 0.4, 1], "y": [0, 2], "values": [[1], [1], [1]]}, "blocks.x"),
        ({"x": [0, 1], "values": [[1]]}, "blocks.y"),
        ({"x": [0.1, 1], "y": [0, 2], "values": [[1]]}, "blocks"),
    ],
)
def test_bad_blocks_are_refused(tmp_path, blocks, key):
    with pytest.raises(ProblemError) as info:
        _problem({"blocks": blocks}, tmp_path)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_interpolation_is_refused(tmp_path):
    pts = _grid(5)
    _write(tmp_path / "a.csv", pts, 1 + 0 * pts[:, 0])
    with pytest.raises(ProblemError, match="diffusivity.interpolate"):
        _problem({"file": "a.csv", "interpolate": "cubic"}, tmp_path)
