"""Reference solvers: observed orders of convergence, spectral accuracy, heat in time,
problems without an exact solution, the reference.npz format and the cache."""

from __future__ import annotations

import numpy as np
import pytest

import mscalepde.reference.cache as R
from mscalepde.errors import ReferenceSolveError
from mscalepde.problem.validate import load_problem, problem_from_dict
from mscalepde.reference import lowrank
from mscalepde.reference.baseline import classical_baseline
from mscalepde.reference.cache import cache_path, get_reference
from mscalepde.reference.result import Reference
from mscalepde.reference.solve import compute_reference, reference_settings
from tests.helpers import PROBLEMS

D_ALL = {"faces": "all", "type": "dirichlet", "value": "exact"}


def poisson(exact: str, boundary: list, box: list, **extra) -> object:
    return problem_from_dict(
        {"pde": "poisson", "domain": {"box": box}, "exact": exact, "boundary": boundary, **extra}
    )


def heat(exact: str, boundary: list, box: list, time=(0, 1), kappa=0.5) -> object:
    return problem_from_dict(
        {
            "pde": "heat",
            "diffusivity": kappa,
            "domain": {"box": box, "time": list(time)},
            "exact": exact,
            "boundary": boundary,
        }
    )


def node_error(problem, ref: Reference) -> float:
    """Relative L2 error at the reference's own grid nodes (no interpolation error)."""
    mesh = np.meshgrid(*ref.axes, indexing="ij")
    exact = problem.exact.numpy(dict(zip(ref.variables, mesh)))
    return float(np.linalg.norm(ref.u - exact) / np.linalg.norm(exact))


def observed_order(ns: list[int], errors: list[float]) -> float:
    """Slope of log(error) against log(h), h = 1/(n - 1)."""
    h = 1.0 / (np.array(ns) - 1.0)
    return float(np.polyfit(np.log(h), np.log(errors), 1)[0])


# Manufactured solutions, one per boundary type and dimension
CASES = {
    "1d-dirichlet": ("exp(x)*sin(3*x)", [D_ALL], [[0, 1]]),
    "1d-neumann": (
        "cos(2*x) + x",
        [D_ALL, {"faces": "x+", "type": "neumann", "value": "exact"}],
        [[0, 1]],
    ),
    "1d-pure-neumann": (
        "cos(3*x) + x*x",
        [{"faces": "all", "type": "neumann", "value": "exact"}],
        [[0, 1]],
    ),
    "1d-periodic": (
        "exp(sin(2*pi*x)) + 0.5",
        [{"faces": "all", "type": "periodic"}],
        [[0, 1]],
    ),
    "2d-mixed": (
        "sin(2*pi*x)*exp(y) + cos(y)",
        [
            D_ALL,
            {"faces": ["x-", "x+"], "type": "periodic"},
            {"faces": "y+", "type": "neumann", "value": "exact"},
        ],
        [[0, 1], [0, 1]],
    ),
    "2d-neumann": (
        "cos(pi*x)*cos(pi*y/2) + x*y",
        [{"faces": "all", "type": "neumann", "value": "exact"}],
        [[0, 1], [0, 2]],
    ),
    "3d-mixed": (
        "sin(pi*x)*sin(pi*y)*cos(pi*z/2) + x*z",
        [D_ALL, {"faces": "z+", "type": "neumann", "value": "exact"}],
        [[0, 1], [0, 1], [0, 1]],
    ),
}
FD_SIZES = {1: [17, 33, 65], 2: [9, 17, 33], 3: [7, 13, 25]}


@pytest.mark.parametrize("case", list(CASES))
def test_fd_second_order(case):
    exact, boundary, box = CASES[case]
    p = poisson(exact, boundary, box)
    ns = FD_SIZES[len(box)]
    errors = [node_error(p, compute_reference(p, method="fd", n=n, estimate=False)) for n in ns]
    order = observed_order(ns, errors)
    assert 1.8 <= order <= 2.3, (errors, order)


@pytest.mark.parametrize("case", ["1d-neumann", "2d-mixed"])
def test_fd_fourth_order_by_richardson(case):
    exact, boundary, box = CASES[case]
    p = poisson(exact, boundary, box)
    ns = [9, 17, 33]
    errors = [
        node_error(p, compute_reference(p, method="fd", n=n, order=4, estimate=False)) for n in ns
    ]
    order = observed_order(ns, errors)
    assert 3.6 <= order <= 4.6, (errors, order)


@pytest.mark.parametrize("case", list(CASES))
def test_spectral_faster_than_any_power(case):
    exact, boundary, box = CASES[case]
    p = poisson(exact, boundary, box)
    ns = [6, 10, 14] if len(box) < 3 else [6, 9, 12]
    errors = [
        node_error(p, compute_reference(p, method="spectral", n=n, estimate=False)) for n in ns
    ]
    # geometric decrease: each step of n gains at least a fixed factor, and the local
    # algebraic order keeps growing (no power law fits)
    assert errors[1] < 0.05 * errors[0] or errors[1] < 1e-12, errors
    if errors[2] > 1e-12:  # above the rounding floor: the log-log slope steepens
        slope1 = np.log(errors[0] / errors[1]) / np.log(ns[1] / ns[0])
        slope2 = np.log(errors[1] / errors[2]) / np.log(ns[2] / ns[1])
        assert slope2 > slope1 > 6, errors
    n24 = 24 if len(box) < 3 else 16
    e24 = node_error(p, compute_reference(p, method="spectral", n=n24, estimate=False))
    assert e24 < 1e-10, e24


def test_fd_solvers_agree_in_3d():
    exact, boundary, box = CASES["3d-mixed"]
    p = poisson(exact, boundary, box)
    refs = [
        compute_reference(p, method="fd", n=13, solver=s, estimate=False)
        for s in ("direct", "cg", "fast")
    ]
    for r in refs[1:]:
        assert np.max(np.abs(r.u - refs[0].u)) < 1e-8


def test_singular_problem_constant_from_exact_mean():
    exact, boundary, box = CASES["2d-neumann"]
    p = poisson(exact, boundary, box)
    r = compute_reference(p, method="fd", n=33, estimate=False)
    assert node_error(p, r) < 5e-3
    r2 = compute_reference(p, method="fd", n=33, solver="cg", estimate=False)
    assert np.max(np.abs(r.u - r2.u)) < 1e-7


# --------------------------------------------------------------------------- heat

HEAT = (
    "cos(t)*sin(2*x) + t*x*x",
    [D_ALL, {"faces": "x+", "type": "neumann", "value": "exact"}],
    [[0, 1]],
)


def test_heat_crank_nicolson_second_order_in_time():
    # spectral space (exact to rounding) isolates the time error
    p = heat(*HEAT)
    nts = [8, 16, 32]
    errors = [
        node_error(
            p,
            compute_reference(p, method="spectral", n=16, nt=nt, time_method="cn", estimate=False),
        )
        for nt in nts
    ]
    slope = -np.polyfit(np.log(nts), np.log(errors), 1)[0]
    assert 1.8 <= slope <= 2.3, (errors, slope)


def test_heat_fd_second_order_in_space_and_time():
    p = heat(
        "exp(-t)*cos(2*pi*x)*cos(pi*y) + y*t",
        [
            {"faces": "all", "type": "neumann", "value": "exact"},
            {"faces": ["x-", "x+"], "type": "periodic"},
        ],
        [[0, 1], [0, 1]],
        time=(0, 0.2),
    )
    ns = [9, 17, 33]
    errors = [node_error(p, compute_reference(p, method="fd", n=n, estimate=False)) for n in ns]
    order = observed_order(ns, errors)
    assert 1.8 <= order <= 2.3, (errors, order)


@pytest.mark.parametrize("time_method", ["chebyshev", "bdf"])
def test_heat_spectral_time_dependent_data(time_method):
    p = heat(*HEAT)
    r = compute_reference(p, method="spectral", n=16, nt=16, time_method=time_method)
    assert node_error(p, r) < (1e-10 if time_method == "chebyshev" else 1e-7)
    assert r.u.shape == (len(r.axes[0]), len(r.axes[1]))
    assert r.variables == ("x", "t")


def test_auto_rule():
    p = poisson("sin(pi*x)", [D_ALL], [[0, 1]])
    r = compute_reference(p)
    assert r.method == "spectral" and r.estimated_error < 1e-10 and r.exact_error < 1e-12
    rough = poisson("abs(x - 0.3)**3", [D_ALL], [[0, 1]])
    r = compute_reference(rough, n=65)
    assert r.method == "fd" and r.settings["auto_note"] == "non-smooth data"
    assert r.estimated_error < 1e-3


# --------------------------------------------------------------------------- no exact


def test_source_without_exact_poisson():
    # -u'' = 1 on [0, 1], u(0) = 0, u'(1) = 0 (outward): u = x - x^2/2
    p = problem_from_dict(
        {
            "pde": "poisson",
            "domain": {"box": [[0, 1]]},
            "source": 1,
            "boundary": [
                {"faces": "x-", "type": "dirichlet", "value": 0},
                {"faces": "x+", "type": "neumann", "value": 0},
            ],
        }
    )
    for method in ("fd", "spectral"):
        r = compute_reference(p, method=method, n=33)
        x = np.linspace(0, 1, 101)
        err = np.max(np.abs(r(x[:, None]) - (x - x * x / 2)))
        assert err < (1e-12 if method == "spectral" else 1e-10)  # FD is exact on quadratics
        assert r.exact_error is None and r.estimated_error < 1e-10


def test_source_without_exact_heat():
    # u_t = u_xx with u0 = sin(pi x): u = exp(-pi^2 t) sin(pi x)
    p = problem_from_dict(
        {
            "pde": "heat",
            "domain": {"box": [[0, 1]], "time": [0, 0.1]},
            "source": 0,
            "initial": "sin(pi*x)",
            "boundary": [{"faces": "all", "type": "dirichlet", "value": 0}],
        }
    )
    r = compute_reference(p)
    pts = np.random.default_rng(0).random((50, 2)) * [1.0, 0.1]
    truth = np.exp(-(np.pi**2) * pts[:, 1]) * np.sin(np.pi * pts[:, 0])
    assert np.max(np.abs(r(pts) - truth)) < 1e-10
    assert r.method == "spectral" and r.estimated_error < 1e-9


# --------------------------------------------------------------------------- format and cache


def test_npz_format_and_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("MSCALEPDE_CACHE", str(tmp_path))
    monkeypatch.setattr(R, "_MEMO", {})
    p = load_problem(PROBLEMS / "heat2d.yaml")
    r = get_reference(p, method="fd", n=9)
    path = cache_path(p, reference_settings(p, method="fd", n=9))
    assert path.is_file() and path.parent == tmp_path / "reference"
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.keys())
        assert {"x", "y", "t", "method", "n", "estimated_error", "seconds"} <= keys
        assert "z" not in keys and lowrank.has("u_time_first", z)  # time levels first
        stored = lowrank.unpack("u_time_first", z)
        assert stored.shape == (len(z["t"]), len(z["x"]), len(z["y"]))
        assert str(z["method"]) == "fd"
    # a fresh process (empty memo) loads the file instead of recomputing
    monkeypatch.setattr(R, "_MEMO", {})
    monkeypatch.setattr(R, "compute_reference", lambda *a, **k: pytest.fail("recomputed"))
    r2 = get_reference(p, method="fd", n=9)
    bound = lowrank.storage_tolerance(r.u, r.estimated_error)  # what storing may change
    assert np.abs(r2.u - r.u).max() <= bound and r2.kinds == r.kinds
    assert r2.estimated_error == r.estimated_error and r2.fingerprint == p.fingerprint()
    pts = np.random.default_rng(1).random((20, 3)) * [1, 1, 0.5]
    assert np.allclose(r2(pts), r(pts), rtol=0, atol=2 * bound)
    # other settings, other file
    assert cache_path(p, reference_settings(p, method="fd", n=17)) != path
    # save / load anywhere
    out = r.save(tmp_path / "run" / "reference.npz")
    assert Reference.load(out).n == [9, 9]


def test_interpolators_match_exact():
    exact, boundary, box = CASES["2d-mixed"]
    p = poisson(exact, boundary, box)
    pts = np.random.default_rng(2).random((200, 2))
    truth = p.exact.numpy({"x": pts[:, 0], "y": pts[:, 1]})
    spec = compute_reference(p, method="spectral", n=24, estimate=False)
    assert np.max(np.abs(spec(pts) - truth)) < 1e-11  # barycentric x trigonometric
    fd = compute_reference(p, method="fd", n=65, estimate=False)
    assert np.max(np.abs(fd(pts) - truth)) < 2e-3  # cubic spline of the FD grid
    grid = [np.linspace(0, 1, 7), np.linspace(0, 1, 5)]
    from mscalepde.geometry import grid_points

    assert np.allclose(spec.on_grid(grid).ravel(), spec(grid_points(grid)), atol=1e-13)


def test_classical_baseline():
    p = poisson("sin(2*pi*x) + 0.1*sin(20*pi*x)", [D_ALL], [[0, 1]])
    b = classical_baseline(p, 1e-3, seconds=0.05, max_seconds=5)
    assert b["reached"] and b["rel_l2"] <= 1e-3 and b["seconds"] > 0
    assert b["n"] == min(run["n"] for run in b["runs"] if run["rel_l2"] <= 1e-3)
    assert b["equal_time"] is not None and b["equal_time"]["rel_l2"] <= b["rel_l2"]


def test_settings_from_the_problem_section():
    p = poisson("sin(pi*x)", [D_ALL], [[0, 1]])
    p.config["reference"] = {"method": "fd", "n": 9}  # what the loader stores
    s = reference_settings(p, order=4)
    assert (s["method"], s["n"], s["order"], s["solver"]) == ("fd", 9, 4, "auto")
    r = compute_reference(p)
    assert r.method == "fd" and r.n == [9] and r.order == 2


def test_errors():
    fit = load_problem(PROBLEMS / "fit1d_fprinciple.yaml")
    with pytest.raises(ReferenceSolveError, match="fit"):
        compute_reference(fit)
    p = poisson("sin(pi*x)", [D_ALL], [[0, 1]])
    with pytest.raises(ReferenceSolveError, match="reference.method"):
        reference_settings(p, method="magic")
    with pytest.raises(ReferenceSolveError, match="reference.order"):
        reference_settings(p, order=3)
