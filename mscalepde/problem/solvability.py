"""Solvability of pure Neumann and periodic Poisson problems, and the constant that fixes
their solution (issue 27; README "The problem file", docs/design.md §1).

**When it applies.** A ``poisson`` problem −∇·(A∇u) + r = f whose every face (every part,
on a shape) is Neumann (∂u/∂n = g) or periodic, and whose reaction is absent or does not
use u, has the constants in its null space: u and u + c solve it alike. That is the
operator's only null space here (∇·(A∇v) = 0 with zero flux gives ∫ A∇v·∇v = 0, so v is a
constant, A being positive). Then

- the problem has a solution only if the data balance (below), and
- it is determined only up to a constant, which the package fixes by the mean over Ω
  (:data:`GAUGE_MEAN_ZERO`: ∫_Ω u dx = 0; :data:`GAUGE_MEAN_EXACT`: ∫_Ω u dx = ∫_Ω u* dx
  when the file gives ``exact``, so that the network, the classical reference and the
  exact solution share one constant and the errors compare like with like).

A Dirichlet or Robin face (α > 0), a reaction that uses u (k²u, sinh u, u³: monotone, so
the constant is determined) or a time derivative (heat: the initial condition fixes it)
removes the null space: nothing is checked and no gauge applies.

**The compatibility condition.** Integrate −∇·(A∇u) = f − r over Ω and apply the
divergence theorem: −∮_∂Ω n·(A∇u) ds = ∫_Ω (f − r) dx. On a face with ∂u/∂n = g the
conormal flux is n·(A∇u) = a_n g, with a_n = a (isotropic) or Σ_i a_i n_i² (diagonal A on
an axis-aligned face: the a_i of its normal axis); on a periodic pair the fluxes through the
two faces cancel when a takes the same values on both. Hence

    ∫_Ω (f − r) dx + Σ_Neumann ∮ a_n g ds = 0,

which reads ∫f + ∮g = 0 for −Δu = f. The Ritz energy needs the same condition: adding a
constant c changes it by −c(∫(f − r) + ∮ a_n g), unbounded below unless that vanishes.

**Evaluation** (:func:`flux_balance`, numpy only: ``check`` imports no torch). Boxes:
composite Gauss–Legendre (8-node panels; :data:`VOLUME_NODES` per axis in Ω,
:data:`FACE_NODES` per axis on a face). Shapes: a Kronecker (generalised golden ratio)
lattice in the bounding box, masked by the shape (:data:`SHAPE_POINTS`, four shifts), and
each primitive's midpoint surface quadrature filtered to ∂Ω. A ``value: exact`` Neumann
datum g = ∂u*/∂n is differentiated by one-sided fourth-order differences along the inward
normal (steps 2e-4 and 1e-4 of the length scale). With ``source: auto`` the volume
integral is the boundary flux of u* by the divergence theorem, ∫(f − r) = −∮ a_n ∂u*/∂n:
a problem whose Neumann data all come from ``exact`` (and has no periodic face) balances by
construction and is not evaluated.

**Tolerance.** The data are refused when

    |∫(f − r) + ∮ a_n g| > max(1e-6 · (∫|f − r| + ∮|a_n g|), 8 E),

E being the estimated error of the two integrals: the difference between the rule above
and one with half the nodes (boxes, surfaces), the spread of the four shifted lattices
(shape interiors) and the difference of the two difference steps. An imbalance δ of the
data, relative to their size, moves the solution by a relative amount of about δ (the
solvers project it out), so 1e-6 is below what the references and the networks resolve
while far above the quadrature error of smooth data on boxes (~1e-12); 8 E keeps
unresolved or non-smooth data (``abs``, ``where``, oscillations the rule cannot follow)
from being refused by their own quadrature error. Data that are not finite at a node, or a
periodic pair whose diffusivity differs between the two faces (the condition then involves
u itself), are not checked. The check takes 2–30 ms (README "The problem file").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from mscalepde.calculus.operators import PDEOperator
from mscalepde.errors import SchemaError
from mscalepde.expressions.expression import Expression
from mscalepde.geometry import Domain
from mscalepde.problem.model import BoundaryCondition

#: u is fixed by ∫_Ω u dx = 0 (a pure Neumann / periodic problem without ``exact``).
GAUGE_MEAN_ZERO = "mean-zero"
#: u is fixed by ∫_Ω u dx = ∫_Ω u* dx (the same problem with ``exact``).
GAUGE_MEAN_EXACT = "mean-of-exact"

RELATIVE_TOLERANCE = 1e-6  # of ∫|f − r| + ∮|a_n g| (module docstring)
SAFETY = 8.0  # times the estimated quadrature / differentiation error
VOLUME_NODES = {1: 1024, 2: 256, 3: 48}  # Gauss–Legendre nodes per axis in a box
FACE_NODES = {2: 1024, 3: 96}  # ... per axis on a box face (a point in 1D)
SHAPE_POINTS = {1: 1 << 12, 2: 1 << 18, 3: 1 << 18}  # lattice points in a shape's box
SURFACE_NODES = 1 << 14  # surface quadrature nodes per primitive of a shape
FD_STEP = 2e-4  # of the length scale: the one-sided differences use this and half of it
GAUGE_POINTS = 1024  # at most this many quadrature points carry the network's gauge

_FD = np.array([-25.0, 48.0, -36.0, 16.0, -3.0]) / 12.0  # one-sided f'(0), O(h⁴)
_GL8 = np.polynomial.legendre.leggauss(8)


def gauge(
    pde: str,
    operator: PDEOperator | None,
    boundary: Mapping[str, BoundaryCondition],
    exact: Expression | None,
) -> str | None:
    """How the constant of a solution defined up to one is fixed (module docstring):
    :data:`GAUGE_MEAN_EXACT` or :data:`GAUGE_MEAN_ZERO` for a ``poisson`` problem with
    only Neumann and periodic faces and no reaction in u; None when the problem fixes its
    constant itself."""
    if pde != "poisson" or operator is None or not operator.shift_invariant or not boundary:
        return None
    if any(bc.type not in ("neumann", "periodic") for bc in boundary.values()):
        return None
    return GAUGE_MEAN_EXACT if exact is not None else GAUGE_MEAN_ZERO


# --------------------------------------------------------------------------- quadrature


def gauss_legendre(m: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """About m Gauss–Legendre nodes and weights on [lo, hi]: one rule when m ≤ 16, else
    ⌊m/8⌋ equal panels of 8 nodes (exact for polynomials of degree 15 per panel)."""
    if m <= 16:
        x, w = np.polynomial.legendre.leggauss(max(1, m))
        return lo + (x + 1.0) * (hi - lo) / 2.0, w * (hi - lo) / 2.0
    panels = m // 8
    edges = np.linspace(lo, hi, panels + 1)
    half = np.diff(edges)[:, None] / 2.0
    nodes = edges[:-1, None] + (_GL8[0][None, :] + 1.0) * half
    return nodes.ravel(), (_GL8[1][None, :] * half).ravel()


def box_rule(bounds: list[tuple[float, float]], m: int) -> tuple[np.ndarray, np.ndarray]:
    """The tensor product of :func:`gauss_legendre` rules with about m nodes per axis:
    points (N, d) and weights (N,) summing to the box's volume (one point, weight 1, for
    d = 0)."""
    if not bounds:
        return np.zeros((1, 0)), np.ones(1)
    rules = [gauss_legendre(m, lo, hi) for lo, hi in bounds]
    pts = np.stack(np.meshgrid(*[r[0] for r in rules], indexing="ij"), -1)
    wts = np.ones(())
    for r in rules:
        wts = np.multiply.outer(wts, r[1])
    return pts.reshape(-1, len(bounds)), wts.ravel()


def _kronecker(n: int, d: int, shift: float) -> np.ndarray:
    """n points of the Kronecker lattice frac(shift + k α) in [0, 1]^d, α_j = φ_d^(−j) with
    φ_d the root of x^(d+1) = x + 1 (Roberts' generalised golden ratio): low discrepancy,
    no scipy."""
    phi = 2.0
    for _ in range(60):
        phi = (1.0 + phi) ** (1.0 / (d + 1))
    alpha = phi ** -np.arange(1.0, d + 1.0)
    return (shift + np.arange(1, n + 1)[:, None] * alpha[None, :]) % 1.0


def _shape_rule(domain: Domain, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice points of the shape's bounding box that lie in Ω, each weighted by
    |box| / n (a quasi Monte Carlo rule for ∫_Ω)."""
    assert domain.geometry is not None
    lo, hi = (np.array(b, dtype=float) for b in zip(*domain.box))
    pts = lo + _kronecker(n, len(lo), shift) * (hi - lo)
    pts = pts[domain.geometry.shape.contains(pts)]
    return pts, np.full(len(pts), float(np.prod(hi - lo)) / n)


def gauge_rule(domain: Domain, n: int = GAUGE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature points of Ω and weights summing to one (a mean) with about n points:
    the network's gauge row Σ w_i u_θ(x_i) (:mod:`mscalepde.equations`). Gauss–Legendre
    on a box (⌊n^(1/d)⌋ nodes per axis), the Kronecker lattice on a shape."""
    d = domain.space_dim
    if domain.geometry is None:
        pts, w = box_rule(list(domain.box), max(1, int(math.floor(n ** (1.0 / d) + 1e-9))))
    else:
        assert domain.geometry is not None
        lo, hi = (np.array(b, dtype=float) for b in zip(*domain.box))
        share = max(domain.geometry.volume / float(np.prod(hi - lo)), 1e-3)
        pts, w = _shape_rule(domain, max(n, int(n / share)), 0.5)
        if not len(pts):  # a shape too thin for the lattice: its bounding box's centre
            return (lo + hi)[None, :] / 2.0, np.ones(1)
    return pts, w / w.sum()


# --------------------------------------------------------------------------- the balance


@dataclass(frozen=True)
class Balance:
    """The two sides of the compatibility condition and what they are compared with."""

    volume: float  # ∫_Ω (f − r) dx
    boundary: float  # Σ_Neumann ∮ a_n g ds
    scale: float  # ∫|f − r| + ∮|a_n g|
    error: float  # estimated error of volume + boundary

    @property
    def imbalance(self) -> float:
        return self.volume + self.boundary

    @property
    def tolerance(self) -> float:
        return max(RELATIVE_TOLERANCE * self.scale, SAFETY * self.error)

    @property
    def compatible(self) -> bool:
        return abs(self.imbalance) <= self.tolerance


@dataclass
class _Piece:
    """Quadrature of one face or one primitive's share of ∂Ω: a fine rule and a coarse
    one (half the nodes) for the error estimate."""

    name: str
    rules: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]  # (x, outward n, w) × 2
    length: float  # the difference step's length scale


class _Undecided(Exception):
    """The condition cannot be evaluated (non-finite data, a non-periodic a on a periodic
    pair): no check."""


def _dot(w: np.ndarray, v: np.ndarray) -> float:
    """Σ w_i v_i without BLAS (whose threads cost milliseconds to wake on a busy machine,
    more than the sum itself)."""
    return float(np.sum(w * v))


def _values(expr: Expression, x: np.ndarray, variables: tuple[str, ...]) -> np.ndarray:
    env = {v: x[:, i] for i, v in enumerate(variables)}
    if "u" in expr.variables:
        env["u"] = np.zeros(len(x))
    with np.errstate(all="ignore"):
        out = np.broadcast_to(np.asarray(expr.numpy(env), dtype=float), (len(x),))
    if not np.all(np.isfinite(out)):
        raise _Undecided
    return out


def _normal_derivative(
    expr: Expression, x: np.ndarray, normal: np.ndarray, h: float, variables: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """∂u*/∂n at boundary points by one-sided O(h⁴) differences along −n (into Ω) with
    steps h and h/2: the h/2 value and |difference| (its error estimate)."""
    u0 = _values(expr, x, variables)
    slopes = []
    for step in (h, h / 2.0):
        acc = _FD[0] * u0
        for k in range(1, 5):
            acc = acc + _FD[k] * _values(expr, x - k * step * normal, variables)
        slopes.append(-acc / step)  # d/d(−n) → d/dn
    return slopes[1], np.abs(slopes[1] - slopes[0])


def _conormal(op: PDEOperator, x: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """a_n = a (isotropic) or Σ_i a_i n_i² (diagonal A) at boundary points."""
    with np.errstate(all="ignore"):
        a = op.diffusivity_values(x)
    if not np.all(np.isfinite(a)):
        raise _Undecided
    if not op.anisotropic:
        return a[:, 0]
    return (a * normal**2).sum(1)


def _box_pieces(domain: Domain) -> list[_Piece]:
    d = domain.space_dim
    out = []
    for face in domain.faces:
        axis = domain.face_axis(face)
        side = 1 if face.endswith("+") else 0
        free = [b for i, b in enumerate(domain.box) if i != axis]
        rules = []
        for m in (FACE_NODES.get(d, 1), FACE_NODES.get(d, 1) // 2):
            pts, w = box_rule(free, m)
            x = np.insert(pts, axis, domain.box[axis][side], axis=1)
            n = np.zeros_like(x)
            n[:, axis] = 1.0 if side else -1.0
            rules.append((x, n, w))
        lo, hi = domain.box[axis]
        out.append(_Piece(face, tuple(rules), hi - lo))
    return out


def _shape_pieces(domain: Domain) -> list[_Piece]:
    geo = domain.geometry
    assert geo is not None
    lo, hi = (np.array(b, dtype=float) for b in zip(*domain.box))
    length = float(np.linalg.norm(hi - lo))
    out = []
    for i, (leaf, name) in enumerate(geo.leaves):
        rules = []
        for m in (SURFACE_NODES, SURFACE_NODES // 2):
            x, n, w = leaf.surface_quadrature(m)
            keep, outward = geo.boundary_filter(i, x, n)
            rules.append((x[keep], outward[keep], w[keep]))
        out.append(_Piece(name, tuple(rules), length))
    return out


def _integrate(
    piece: _Piece, fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> tuple[float, float, float]:
    """∫ F ds over a piece, ∫|F| ds and the error estimate (rule difference plus ∫ of the
    pointwise error), for ``fn(x, n) -> (F, pointwise error)``."""
    (x, n, w), (xc, nc, wc) = piece.rules
    values, err = fn(x, n)
    coarse, _ = fn(xc, nc)
    fine = _dot(w, values)
    return fine, _dot(w, np.abs(values)), abs(fine - _dot(wc, coarse)) + _dot(w, err)


def flux_balance(
    domain: Domain,
    operator: PDEOperator,
    source: Expression | None,
    exact: Expression | None,
    boundary: Mapping[str, BoundaryCondition],
) -> Balance | None:
    """∫_Ω (f − r) dx and Σ_Neumann ∮ a_n g ds of a problem with a gauge (module
    docstring), or None when they need not or cannot be compared: the data derive from
    ``exact`` throughout, the data are not finite, a periodic pair's diffusivity differs
    between its faces, or a shape has an anisotropic diffusivity."""
    variables = domain.variables
    explicit = [bc for bc in boundary.values() if bc.type == "neumann" and not bc.from_exact]
    periodic = any(bc.type == "periodic" for bc in boundary.values())
    if source is None and not explicit and not periodic:
        return None  # f = L u*, g = ∂u*/∂n: balanced by the divergence theorem
    if domain.geometry is not None and operator.anisotropic:
        return None  # the conormal flux of an oblique part is not a_n ∂u/∂n
    try:
        pieces = _box_pieces(domain) if domain.geometry is None else _shape_pieces(domain)
        if periodic:
            _check_periodic_diffusivity(operator, pieces, boundary)

        def flux(piece: _Piece) -> tuple[float, float, float]:  # ∮ a_n ∂u*/∂n
            assert exact is not None
            h = FD_STEP * piece.length

            def fn(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                a = _conormal(operator, x, n)
                du, err = _normal_derivative(exact, x, n, h, variables)
                return a * du, np.abs(a) * err

            return _integrate(piece, fn)

        def data(piece: _Piece, value: Expression) -> tuple[float, float, float]:
            def fn(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                return _conormal(operator, x, n) * _values(value, x, variables), 0.0 * x[:, 0]

            return _integrate(piece, fn)

        fluxes = {}
        bnd = bnd_abs = error = 0.0
        for piece in pieces:
            bc = boundary[piece.name]
            if bc.type != "neumann":
                continue
            assert bc.value is not None
            if bc.from_exact:
                fluxes[id(piece)] = flux(piece)
                value, absolute, err = fluxes[id(piece)]
            else:
                value, absolute, err = data(piece, bc.value)
            bnd, bnd_abs, error = bnd + value, bnd_abs + absolute, error + err
        if source is None:  # ∫(f − r) = −∮_∂Ω a_n ∂u*/∂n over every face (periodic too)
            vol = vol_abs = 0.0
            for piece in pieces:
                value, absolute, err = fluxes.get(id(piece)) or flux(piece)
                vol, vol_abs = vol - value, vol_abs + absolute
                if id(piece) not in fluxes:  # the shared values of a Neumann face cancel
                    error += err
        else:
            vol, vol_abs, err = _volume(domain, operator, source)
            error += err
    except _Undecided:
        return None
    return Balance(vol, bnd, vol_abs + bnd_abs, error)


def _check_periodic_diffusivity(
    op: PDEOperator, pieces: list[_Piece], boundary: Mapping[str, BoundaryCondition]
) -> None:
    """The fluxes through a periodic pair cancel only when a is equal on its two faces
    (the face rules of a box put the same nodes on both): else :class:`_Undecided`."""
    if op.constant:
        return
    by_name = {p.name: p for p in pieces}
    for name, bc in boundary.items():
        if bc.type != "periodic" or not name.endswith("-"):
            continue
        (x_lo, n_lo, _), _ = by_name[name].rules
        (x_hi, n_hi, _), _ = by_name[name[0] + "+"].rules
        a_lo, a_hi = _conormal(op, x_lo, n_lo), _conormal(op, x_hi, n_hi)
        if np.max(np.abs(a_lo - a_hi)) > 1e-12 * max(float(np.max(np.abs(a_lo))), 1e-300):
            raise _Undecided


def _volume(
    domain: Domain, op: PDEOperator, source: Expression
) -> tuple[float, float, float]:
    """∫_Ω (f − r) dx, ∫|f − r| dx and the error estimate (module docstring)."""
    variables = domain.variables

    def integrand(x: np.ndarray) -> np.ndarray:
        out = _values(source, x, variables)
        if op.reaction is not None:  # r(x) alone (a reaction in u has no gauge)
            out = out - _values(op.reaction, x, variables)
        return out

    if domain.geometry is None:
        d = domain.space_dim
        x, w = box_rule(list(domain.box), VOLUME_NODES[d])
        values = integrand(x)
        xc, wc = box_rule(list(domain.box), VOLUME_NODES[d] // 2)
        fine = _dot(w, values)
        return fine, _dot(w, np.abs(values)), abs(fine - _dot(wc, integrand(xc)))
    n = SHAPE_POINTS[domain.space_dim] // 4
    parts, absolute = [], 0.0
    for k in range(4):
        x, w = _shape_rule(domain, n, 0.25 * k + 0.125)
        values = integrand(x)
        parts.append(_dot(w, values))
        absolute += _dot(w, np.abs(values)) / 4.0
    mean = float(np.mean(parts))
    return mean, absolute, float(np.max(np.abs(np.array(parts) - mean)))


def check_compatibility(
    domain: Domain,
    operator: PDEOperator,
    source: Expression | None,
    exact: Expression | None,
    boundary: Mapping[str, BoundaryCondition],
) -> Balance | None:
    """Refuse, with a :class:`SchemaError` naming ``source`` (or ``boundary`` when f is
    derived from ``exact``) and both integrals, the data of a problem with a gauge that
    violate ∫(f − r) + ∮ a_n g = 0 (module docstring). Returns the balance (None when it
    was not evaluated)."""
    balance = flux_balance(domain, operator, source, exact, boundary)
    if balance is None or balance.compatible:
        return balance
    f = "∫_Ω (f − r) dx" if operator.reaction is not None else "∫_Ω f dx"
    faces = (
        "every face is Neumann or periodic"
        if domain.geometry is None
        else "every part of the boundary is Neumann"
    )
    raise SchemaError(
        "source" if source is not None else "boundary",
        f"has no solution: {faces}, so the data must balance, {f} + ∮_∂Ω a ∂u/∂n ds = 0 "
        f"(divergence theorem), but {f} = {balance.volume:.6g} and ∮ a g ds = "
        f"{balance.boundary:.6g} (sum {balance.imbalance:.3g}, tolerance "
        f"{balance.tolerance:.1g}); change the source or the Neumann values, or add a "
        "Dirichlet or Robin face",
    )
