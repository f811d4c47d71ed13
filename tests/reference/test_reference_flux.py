"""The flux-form finite-difference reference solver (mscalepde/reference_flux.py):
observed orders of convergence for variable, anisotropic and piecewise-constant
diffusivities, Robin faces, Newton on semilinear reactions, heat by the method of lines,
and what ``compute_reference`` picks."""

from __future__ import annotations

import numpy as np
import pytest

from mscalepde.errors import ProblemError, ReferenceSolveError
from mscalepde.problem.validate import problem_from_dict
from mscalepde.reference.baseline import classical_baseline, describe_reference
from mscalepde.reference.data import _Data
from mscalepde.reference.solve import compute_reference

D_ALL = {"faces": "all", "type": "dirichlet", "value": "exact"}
B1 = [[0, 1]]
B2 = [[0, 1], [0, 1]]


def poisson(exact: str, box: list, boundary: list | None = None, **extra) -> object:
    return problem_from_dict(
        {
            "pde": "poisson",
            "domain": {"box": box},
            "exact": exact,
            "boundary": boundary or [D_ALL],
            **extra,
        }
    )


def heat(exact: str, box: list, boundary: list | None = None, **extra) -> object:
    return problem_from_dict(
        {
            "pde": "heat",
            "domain": {"box": box, "time": [0, 1]},
            "exact": exact,
            "boundary": boundary or [D_ALL],
            **extra,
        }
    )


def node_error(problem, ref) -> float:
    """Relative L2 error at the reference's own output nodes (face values included)."""
    mesh = np.meshgrid(*ref.axes, indexing="ij")
    exact = np.broadcast_to(problem.exact.numpy(dict(zip(ref.variables, mesh))), ref.u.shape)
    return float(np.linalg.norm(ref.u - exact) / np.linalg.norm(exact))


def orders(problem, ns: list[int], **settings) -> tuple[list[float], np.ndarray]:
    """Errors at n points per axis (h halved each time) and the observed orders."""
    errors = []
    for n in ns:
        ref = compute_reference(problem, n=n, estimate=False, **settings)
        assert ref.method == "fd-flux"
        errors.append(node_error(problem, ref))
    e = np.array(errors)
    return errors, np.log2(e[:-1] / e[1:])


# --------------------------------------------------------------------------- Poisson orders

POISSON_CASES = {
    # (a) smooth variable a
    "1d-variable": ("exp(x)*sin(3*x)", B1, None, {"diffusivity": "1 + 0.5*sin(3*x)"}),
    "2d-variable": (
        "sin(2*x + 1)*cos(1.5*y)",
        B2,
        None,
        {"diffusivity": "exp(x - y) + 0.5"},
    ),
    # (b) anisotropic, variable per axis
    "2d-anisotropic": (
        "sin(2*x + 1)*cos(1.5*y)",
        B2,
        None,
        {"diffusivity": ["1 + x*y", "2 + cos(x + y)"]},
    ),
    # (c) Robin rows
    "1d-robin": (
        "sin(2*x)*exp(x)",
        B1,
        [{"faces": "all", "type": "robin", "alpha": 2, "value": "exact"}],
        {"diffusivity": "1 + x*x"},
    ),
    "2d-robin": (
        "exp(x)*sin(2*y + 0.5)",
        B2,
        [D_ALL, {"faces": ["x+", "y-"], "type": "robin", "alpha": "1 + y", "value": "exact"}],
        {"diffusivity": "1 + 0.3*x*y"},
    ),
    "2d-periodic-neumann": (
        "sin(2*pi*x)*cos(y) + y",
        B2,
        [
            {"faces": ["x-", "x+"], "type": "periodic"},
            {"faces": ["y-", "y+"], "type": "neumann", "value": "exact"},
        ],
        {"diffusivity": "1 + 0.5*cos(2*pi*x)", "reaction": "u"},
    ),
    "2d-pure-neumann": (  # singular: the constant from the mean of exact
        "cos(pi*x)*cos(pi*y) + x*y",
        B2,
        [{"faces": "all", "type": "neumann", "value": "exact"}],
        {"diffusivity": "2 + x"},
    ),
}


@pytest.mark.parametrize("case", sorted(POISSON_CASES))
def test_flux_second_order(case):
    exact, box, boundary, extra = POISSON_CASES[case]
    p = poisson(exact, box, boundary, **extra)
    ns = [33, 65, 129] if len(box) == 1 else [17, 33, 65]
    errors, observed = orders(p, ns)
    assert np.all(observed >= 1.8), (errors, observed)


def test_piecewise_constant_interface_on_a_grid_plane():
    # a jumps 1 -> 10 at x = 1/2 (a cell face when n - 1 is even); u = sin(2 pi x)/a is
    # continuous with a continuous flux a u' = 2 pi cos(2 pi x), f = 4 pi^2 sin(2 pi x)
    a = "where(x < 0.5, 1, 10)"
    p = poisson(f"sin(2*pi*x)/{a}", B1, diffusivity=a)
    errors, observed = orders(p, [17, 33, 65, 129])
    assert np.all(observed >= 1.8), (errors, observed)  # harmonic mean: exact conductance
    # the same jump off the grid planes (x = 1/3): still convergent, about first order
    # (irregularly: the interface's position inside its cell changes with h)
    b = "where(x < 1/3, 1, 10)"
    q = poisson("sin(3*pi*x)/" + b, B1, diffusivity=b, source="9*pi**2*sin(3*pi*x)")
    errors, observed = orders(q, [17, 33, 65, 129])
    assert np.all(np.diff(errors) < 0) and errors[-1] < errors[0] / 4, (errors, observed)
    assert observed.mean() >= 0.7, (errors, observed)


def test_newton_semilinear_residual():
    p = poisson(
        "sin(pi*x)*sin(pi*y) + x",
        B2,
        [D_ALL, {"faces": "y+", "type": "robin", "alpha": 1, "value": "exact"}],
        diffusivity="1 + 0.5*x",
        reaction="sinh(u)",
    )
    ref = compute_reference(p, n=65)
    note = ref.settings["solver_note"]
    assert "Newton" in note and "flux form" in note
    its = int(note.split("Newton ")[1].split()[0])
    residual = float(note.split("residual ")[1].rstrip(")"))
    assert 2 <= its <= 8 and residual <= 1e-10 and "floor" not in note
    assert ref.exact_error < 2e-4 and 0.5 < ref.estimated_error / ref.exact_error < 2.0
    errors, observed = orders(p, [17, 33, 65])
    assert np.all(observed >= 1.8), (errors, observed)
    # a cubic reaction and a large source: the damped step is needed from u = 0
    cubic = poisson("3*sin(pi*x)", B1, reaction="u**3")
    ref = compute_reference(cubic, n=129, estimate=False)
    assert float(ref.settings["solver_note"].split("residual ")[1].rstrip(")")) <= 1e-10
    assert node_error(cubic, ref) < 1e-4


# --------------------------------------------------------------------------- heat


@pytest.mark.slow
def test_heat_variable_diffusivity_method_of_lines():
    # a(x, t), a Robin face and a cubic reaction: CN + Newton per step, dt = h
    p = heat(
        "exp(-t)*sin(2*x + 1) + t*x",
        B1,
        [
            {"faces": "x-", "type": "dirichlet", "value": "exact"},
            {"faces": "x+", "type": "robin", "alpha": 1, "value": "exact"},
        ],
        diffusivity="1 + 0.5*sin(x + t)",
        reaction="u**3",
    )
    errors, observed = orders(p, [17, 33, 65], nt=None)
    assert np.all(observed >= 1.8), (errors, observed)
    ref = compute_reference(p, n=33, time_method="bdf", tol=1e-9, estimate=False)
    assert ref.time_method == "bdf" and "BDF" in ref.settings["solver_note"]
    assert node_error(p, ref) < 2 * errors[1]  # BDF: the spatial error only


def final_error(problem, ref) -> float:
    """Relative L2 error at the last time level (output nodes)."""
    mesh = np.meshgrid(*ref.axes[:-1], indexing="ij")
    env = dict(zip(ref.variables[:-1], mesh))
    exact = problem.exact.numpy({**env, "t": ref.axes[-1][-1]})
    return float(np.linalg.norm(ref.u[..., -1] - exact) / np.linalg.norm(exact))


def test_heat_anisotropic_2d_space_and_time():
    # a per axis, a_y(x, t); dt = h. Measured at t1: CN with time-dependent Dirichlet
    # data has the known order reduction at the first levels (the constant-coefficient
    # FD solver shows the same), second order again later
    p = heat(
        "exp(-t)*sin(2*x + 1)*cos(y) + t",
        B2,
        diffusivity=["1 + x*y", "0.5 + 0.25*cos(x + t)"],
    )
    errors = [final_error(p, compute_reference(p, n=n, estimate=False)) for n in (9, 17, 33)]
    observed = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all(observed >= 1.8), (errors, observed)


@pytest.mark.slow
def test_heat_second_order_in_time():
    # u linear in space and a constant in space (a(t) per axis): the flux form is exact in
    # space, the error is CN's (+ Newton on the cubic reaction)
    p = heat(
        "exp(-t)*(x + 2*y) + sin(2*t)",
        B2,
        diffusivity=["1 + 0.5*t", "2 + cos(t)"],
        reaction="u**3",
    )
    refs = [compute_reference(p, n=9, nt=nt, estimate=False) for nt in (8, 16, 32)]
    errors = [final_error(p, r) for r in refs]
    observed = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all(observed >= 1.8), (errors, observed)
    assert "Newton" in refs[-1].settings["solver_note"]


# --------------------------------------------------------------------------- selection


def test_auto_picks_flux_for_general_operators_and_spectral_for_plain():
    plain = poisson("sin(pi*x)*sin(pi*y)", B2)
    assert compute_reference(plain).method == "spectral"
    assert compute_reference(plain, method="fd", n=17).method == "fd"
    robin_plain = poisson(
        "sin(pi*x) + 1", B1, [D_ALL, {"faces": "x+", "type": "robin", "alpha": 3, "value": 0}]
    )
    for prob, reason in [
        (poisson("sin(pi*x)", B1, diffusivity="1 + x"), "a variable diffusivity"),
        (poisson("sin(pi*x)*y", B2, diffusivity=[1, 2]), "an anisotropic diffusivity"),
        (poisson("sin(pi*x)", B1, reaction="4*u"), "a reaction term"),
        (robin_plain, "a Robin boundary condition"),
    ]:
        ref = compute_reference(prob, n=33)
        assert ref.method == "fd-flux" and ref.settings["auto_note"] == f"{reason} (flux form)"
        lines = describe_reference(ref)
        assert lines[0].startswith("method          fd-flux, order 2 (33")
        assert "finite differences, flux form (harmonic means)" in lines[1]
        assert np.isfinite(ref.estimated_error)
        match = f"spectral cannot solve a problem with {reason}"
        with pytest.raises(ReferenceSolveError, match=match):
            compute_reference(prob, method="spectral")
    # robin_plain has value 0 (no exact data): the solution is not sin(pi x) + 1; only
    # the explicit fd method must agree with auto
    a = compute_reference(robin_plain, n=33, estimate=False)
    b = compute_reference(robin_plain, method="fd", n=33, estimate=False)
    assert np.array_equal(a.u, b.u)


def test_refusals():
    p = poisson("sin(pi*x)", B1, diffusivity="1 + x")
    with pytest.raises(ReferenceSolveError, match="order 4 .*not available with the flux-form"):
        compute_reference(p, order=4)
    with pytest.raises(ReferenceSolveError, match="solver fast"):
        compute_reference(p, solver="fast", n=17)
    h = heat("exp(-t)*sin(pi*x)", B1, diffusivity="1 + x")
    with pytest.raises(ReferenceSolveError, match="time_method chebyshev"):
        compute_reference(h, time_method="chebyshev")
    with pytest.raises(ProblemError, match="must be > 0 on the domain"):  # caught at load
        poisson("sin(pi*x)", B1, diffusivity="x - 0.5", source=1)
    # a dip narrower than the load-time check's grid (a sampled check) reaches the solver,
    # which refuses it at its own nodes
    dip = "1 - 2*exp(-((X - 0.53125)/1e-5)**2)"  # a face of the n = 17 grid
    bad = poisson("sin(pi*x)", B1, diffusivity=dip.replace("X", "x"), source=1)
    with pytest.raises(ReferenceSolveError, match=r"diffusivity must be positive .*0\.53") as e:
        compute_reference(bad, n=17)
    assert "\n" not in str(e.value)
    aniso = poisson("sin(pi*x)*y", B2, diffusivity=[1, dip.replace("X", "y")], source=1)
    with pytest.raises(ReferenceSolveError, match=r"diffusivity\[1\] must be positive"):
        compute_reference(aniso, n=17)


# --------------------------------------------------------------------------- data


def test_source_auto_and_robin_data_follow_the_operator():
    # u = sin(x) e^y, a = 1 + x, r = u^3, on x+: du/dn + (2 + y) u
    p = poisson(
        "sin(x)*exp(y)",
        B2,
        [D_ALL, {"faces": "x+", "type": "robin", "alpha": "2 + y", "value": "exact"}],
        diffusivity="1 + x",
        reaction="u**3",
    )
    data = _Data(p)
    xs, ys = np.linspace(0, 1, 5), np.linspace(0, 1, 4)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    u = np.sin(X) * np.exp(Y)
    # -div((1 + x) grad u) = -(cos x e^y) - (1 + x)(-sin x e^y + sin x e^y) = -cos(x) e^y
    expected = -np.cos(X) * np.exp(Y) + u**3
    assert np.allclose(data.source([xs, ys]), expected, rtol=0, atol=1e-12)
    g = data.face("x+", [np.array([1.0]), ys])
    assert np.allclose(g[0], np.cos(1) * np.exp(ys) + (2 + ys) * np.sin(1) * np.exp(ys))
    # heat: u_t - div(a grad u) with a per axis
    h = heat("exp(-t)*sin(x)*y", B2, diffusivity=["1 + x", 2])
    T = np.array([0.0, 0.5])
    Xh, Yh, Th = np.meshgrid(xs, ys, T, indexing="ij")
    uh = np.exp(-Th) * np.sin(Xh) * Yh
    want = -uh - (np.exp(-Th) * np.cos(Xh) * Yh - (1 + Xh) * uh)
    assert np.allclose(_Data(h).source([xs, ys, T]), want, rtol=0, atol=1e-12)


def test_classical_baseline_on_a_general_operator():
    p = poisson("sin(2*pi*x)*exp(x)", B1, diffusivity="1 + 0.5*x", reaction="u")
    b = classical_baseline(p, 1e-3, max_seconds=5)
    assert b["method"] == "fd" and b["reached"] and b["rel_l2"] <= 1e-3
