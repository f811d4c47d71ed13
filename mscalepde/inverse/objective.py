"""The residuals of an inverse problem: the equation with trainable unknowns, and the
observations.

With unknowns θ (scalars) and a(x) (fields) the residual rows are those of
:mod:`mscalepde.equations` with every coefficient read at its current value:

- interior: r = [u_t] − ∇·(A(x; θ, a) ∇u) + r(x, u; θ, a) − f(x; θ, a), where
  ∇·(a∇u) = a Δu + ∇a·∇u and ∇a is the total spatial derivative of the diffusivity
  expression (through the fields it uses: a dual-number identity, ``_coefficients``);
- boundary rows whose value or α uses an unknown: u − g, n·∇u − g, n·∇u + α u − g with g,
  α evaluated on every pass;
- a field known on ∂Ω: a(x_b) − a_b(x_b) (term ``boundary``);
- observations: u_θ(x_i) − y_i (term ``data``, weight ``train.weights.data``).

The loss is L = Σ_k w_k mean(r_k²) as for a forward problem, so Adam, L-BFGS and the
Gauss–Newton phase train u and the unknowns jointly (Raissi, Perdikaris, Karniadakis 2019,
§4, "data-driven discovery"). Data derived from ``exact`` (``source: auto``,
``value: exact``) are the forward problem's, computed with the true unknowns once per draw
of points (validation refuses them when a true value is missing).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from mscalepde.calculus.derivatives import Derivatives
from mscalepde.calculus.jet import LinearTape
from mscalepde.equations import (
    Objective,
    ResidualBlock,
    _normal_derivative,
    _robin,
    _value,
    _value_and_slope,
    expression_field,
)
from mscalepde.expressions.expression import Expression
from mscalepde.geometry import split_boundary_points
from mscalepde.geometry.sampling import sample_boundary
from mscalepde.inverse.unknowns import Unknowns, Value

Live = Callable[[Tensor, tuple[Tensor, ...], "LinearTape | None"], tuple[Tensor, ...]]


class InverseObjective(Objective):
    """:class:`~mscalepde.equations.Objective` of a problem with ``unknowns`` and/or
    ``observations``; ``unknowns`` is the model's :class:`Unknowns` (None without)."""

    def __init__(self, problem, *, unknowns: Unknowns | None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        assert problem.inverse is not None
        self.spec = problem.inverse
        self.unknowns = unknowns
        self.names = () if unknowns is None else unknowns.names
        super().__init__(problem, **kwargs)

    @classmethod
    def for_model(cls, problem, model, **kwargs) -> InverseObjective:  # type: ignore[no-untyped-def]
        """The objective of ``problem`` for an :class:`~mscalepde.inverse.model.InverseModel`
        (or a plain network, for observations without unknowns), with the point counts of
        the problem's ``train`` section."""
        tr = problem.train
        args = {**tr["points"], "sampler": tr["sampler"], "seed": tr["seed"],
                "engine": tr["engine"], **kwargs}
        return cls(problem, unknowns=getattr(model, "unknowns", None), **args)

    # ---------------------------------------------------------------- helpers
    def _uses(self, expr: Expression | tuple[Expression, ...] | None) -> bool:
        exprs = expr if isinstance(expr, tuple) else (expr,)
        return any(e is not None and set(e.variables) & set(self.names) for e in exprs)

    def _values(self, x: Tensor, tape: LinearTape | None, grad: bool) -> dict[str, Value]:
        if self.unknowns is None:
            return {}
        return self.unknowns.values(x, tape, grad)

    def _env(self, x: Tensor, values: dict[str, Value]) -> dict[str, Tensor]:
        env = {v: x[:, i] for i, v in enumerate(self.variables)}
        env.update({n: v for n, (v, _) in values.items()})
        return env

    def _coefficients_live(self, x: Tensor, values: dict[str, Value]) -> Tensor:
        """(N, k, 1 + d): a_k and its total spatial gradient at x. A field a enters the
        expression as a + (x − x̄)·∇a with x̄ = x held fixed: its value is a and its
        derivative in x is ∇a, so one autograd pass gives ∂_x A + ∂_a A ∇a."""
        exprs = self.spec.expressions.get("diffusivity") or self.pde.diffusivity  # type: ignore[union-attr]
        sd = self.domain.space_dim
        keep = torch.is_grad_enabled()  # evaluation (no grad): the values, detached
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            env = {v: xg[:, i] for i, v in enumerate(self.variables)}
            shift = xg[:, :sd] - xg[:, :sd].detach()
            for name, (v, g) in values.items():
                env[name] = v if g is None else v + (shift * g).sum(1)
            out = []
            for expr in exprs:
                a = expr.torch(env).reshape(-1).expand(len(x))
                ga = None
                if a.requires_grad:
                    (ga,) = torch.autograd.grad(
                        a.sum(), xg, create_graph=True, allow_unused=True
                    )
                ga = torch.zeros_like(x[:, :sd]) if ga is None else ga[:, :sd]
                out.append(torch.cat([a[:, None], ga], 1))
        c = torch.stack(out, 1)
        return c if keep else c.detach()

    # ---------------------------------------------------------------- points
    def resample(self, seed: int) -> None:
        """The forward problem's points and exact-derived data, the observations, the
        field boundary points; then the blocks (:meth:`_build_blocks`)."""
        obs = self.spec.observations
        self.x_data = self.y_data = None
        if obs is not None:
            self.x_data, self.y_data = self._tensor(obs.points), self._tensor(obs.values)
        self.field_boundary: dict[str, tuple[Tensor, Tensor]] = {}
        for name, f in self.spec.fields.items():
            if f.boundary is None:
                continue
            dom = self.domain
            faces = list(dom.faces)
            split = split_boundary_points(dom, faces, max(self.counts["boundary"], len(faces)))
            xs = [sample_boundary(dom, face, split[face], self.sampler, seed + 104729 * (j + 1))[0]
                  for j, face in enumerate(faces) if split[face]]
            x = self._tensor(np.concatenate(xs))
            cols = list(self.variables if f.time else self.variables[: dom.space_dim])
            g = expression_field(f.boundary, cols)(x[:, : len(cols)].to(torch.float64))
            self.field_boundary[name] = (x, self._finite(g.reshape(-1).to(self.dtype), x,
                                                          f"unknowns.{name}.boundary"))
        super().resample(seed)

    def _coefficients(self, x: Tensor) -> Tensor:
        """The forward problem's coefficients (its true ones) are not training data; the
        positivity check of a fixed diffusivity stays."""
        if self._uses(self.spec.expressions.get("diffusivity")):
            assert self.pde is not None
            return x.new_zeros(len(x), len(self.pde.diffusivity), 1 + self.domain.space_dim)
        return super()._coefficients(x)

    # ---------------------------------------------------------------- blocks
    def _interior_block(self) -> ResidualBlock:
        pde, sd = self.pde, self.domain.space_dim
        assert pde is not None
        spec = self.spec.expressions
        reaction = spec.get("reaction", pde.reaction)
        source = spec.get("source")
        aniso = pde.anisotropic
        k = len(spec.get("diffusivity") or pde.diffusivity)
        names = list(self.names)

        def live(x: Tensor, aux: tuple[Tensor, ...], tape: LinearTape | None) -> tuple[Tensor, ...]:
            values = self._values(x, tape, grad=True)
            c = self._coefficients_live(x, values)
            f = aux[1] if source is None else source.torch(self._env(x, values)).reshape(-1)
            return (c, f.expand(len(x)), *(values[n][0] for n in names))

        def select(d: Derivatives, aux: tuple[Tensor, ...]) -> list[Tensor]:
            x, c, f = aux[0], aux[2], aux[3]
            assert d.grad is not None
            if aniso:
                assert d.second is not None
                flux = sum(c[:, i, 0] * d.second[:, i] + c[:, i, 1 + i] * d.grad[:, i]
                           for i in range(k))
            else:
                assert d.lap is not None
                flux = c[:, 0, 0] * d.lap + (c[:, 0, 1:] * d.grad).sum(1)
            out = -flux if d.ut is None else d.ut - flux
            if reaction is not None:
                env = {v: x[:, i] for i, v in enumerate(self.variables)}
                env.update(zip(names, aux[4:]))
                env["u"] = d.u
                out = out + reaction.torch(env).reshape(-1).expand(len(x))
            return [out - f]

        zero = torch.zeros_like(self.f_interior)
        return ResidualBlock(
            "pde", (self.x_interior,), (1.0,), select, (zero,), grad=True,
            ut=pde.time, lap=not aniso, second=aniso, space_dim=sd,
            aux=(self.x_interior, self.f_interior), live=live,
        )

    def _face_ids(self, kind: str) -> Tensor:
        ids = [torch.full((n,), float(i)) for i, (_, n) in enumerate(self.face_rows.get(kind, []))]
        return torch.cat(ids).to(self.dtype).to(self.device) if ids else torch.zeros(0)

    def _face_data(self, kind: str, key: str, static: Tensor | None) -> Callable | None:
        """g(x) (or α) per face on every pass, where a face's expression uses an unknown;
        None when none does (the static data stand)."""
        faces = [f for f, _ in self.face_rows.get(kind, [])]
        exprs = [self.spec.expressions.get(f"{key}:{f}") for f in faces]
        if not any(self._uses(e) for e in exprs):
            return None

        def data(x: Tensor, face_id: Tensor, values: dict[str, Value]) -> Tensor:
            env = self._env(x, values)
            out = x.new_zeros(len(x))
            for i, e in enumerate(exprs):
                if e is None:  # derived from exact: that face's static data
                    assert static is not None
                    v = static
                else:
                    v = e.torch(env).reshape(-1).expand(len(x))
                out = torch.where(face_id == i, v, out)
            return out

        return data

    def _boundary_blocks(self) -> list[ResidualBlock]:
        sd = self.domain.space_dim
        out: list[ResidualBlock] = []
        kinds = (("dirichlet", self.dirichlet), ("neumann", self.neumann), ("robin", self.robin))
        for kind, sets in kinds:
            for b in sets:  # one joined set per kind
                ids = self._face_ids(kind)
                g_live = self._face_data(kind, "value", b.g)
                a_live = self._face_data(kind, "alpha", b.alpha) if kind == "robin" else None
                if g_live is None and a_live is None:
                    out.extend(self._static_boundary(kind, b, sd))
                    continue
                out.append(self._live_boundary(kind, b, ids, g_live, a_live, sd))
        return out

    def _static_boundary(self, kind: str, b, sd: int) -> list[ResidualBlock]:  # type: ignore[no-untyped-def]
        if kind == "dirichlet":
            return [ResidualBlock("boundary", (b.x,), (1.0,), _value, (b.g,), space_dim=sd)]
        if kind == "neumann":
            return [ResidualBlock("boundary", (b.x,), (1.0,), _normal_derivative, (b.g,),
                                  grad=True, space_dim=sd, aux=(b.normal,))]
        return [ResidualBlock("boundary", (b.x,), (1.0,), _robin, (b.g,), grad=True,
                              space_dim=sd, aux=(b.normal, b.alpha))]

    def _live_boundary(self, kind, b, ids, g_live, a_live, sd) -> ResidualBlock:  # type: ignore[no-untyped-def]
        def live(x: Tensor, aux: tuple[Tensor, ...], tape: LinearTape | None) -> tuple[Tensor, ...]:
            values = self._values(x, tape, grad=False)
            face_id, g0, a0 = aux[0], aux[2], aux[3]
            g = g0 if g_live is None else g_live(x, face_id, values)
            a = a0 if a_live is None else a_live(x, face_id, values)
            return (g, a)

        def select(d: Derivatives, aux: tuple[Tensor, ...]) -> list[Tensor]:
            normal, g, a = aux[1], aux[4], aux[5]
            if kind == "dirichlet":
                return [d.u - g]
            assert d.grad is not None
            flux = (d.grad * normal).sum(1)
            return [flux - g] if kind == "neumann" else [flux + a * d.u - g]

        alpha = b.alpha if b.alpha is not None else torch.zeros_like(b.g)
        return ResidualBlock(
            "boundary", (b.x,), (1.0,), select, (torch.zeros_like(b.g),),
            grad=kind != "dirichlet", space_dim=sd, aux=(ids, b.normal, b.g, alpha), live=live,
        )

    def _initial_block(self) -> ResidualBlock | None:
        if self.x_initial is None or self.spec.free_initial:
            return None
        sd = self.domain.space_dim
        expr = self.spec.expressions.get("initial")
        if not self._uses(expr):
            return ResidualBlock("initial", (self.x_initial,), (1.0,), _value,
                                 (self.u_initial,), space_dim=sd)
        assert expr is not None

        def live(x: Tensor, aux: tuple[Tensor, ...], tape: LinearTape | None) -> tuple[Tensor, ...]:
            return (expr.torch(self._env(x, self._values(x, tape, grad=False))).reshape(-1),)

        def select(d: Derivatives, aux: tuple[Tensor, ...]) -> list[Tensor]:
            return [d.u - aux[0]]

        return ResidualBlock("initial", (self.x_initial,), (1.0,), select,
                             (torch.zeros_like(self.u_initial),), space_dim=sd, live=live)

    def _field_blocks(self) -> list[ResidualBlock]:
        out = []
        for name, (x, g) in self.field_boundary.items():

            def live(x: Tensor, aux: tuple[Tensor, ...], tape: LinearTape | None,
                     name: str = name) -> tuple[Tensor, ...]:
                assert self.unknowns is not None
                return (self.unknowns.field(name, x, False, tape)[0],)

            def select(d: Derivatives, aux: tuple[Tensor, ...]) -> list[Tensor]:
                return [aux[0]]

            out.append(ResidualBlock("boundary", (x,), (1.0,), select, (g,),
                                     space_dim=self.domain.space_dim, live=live))
        return out

    def _build_blocks(self) -> list[ResidualBlock]:
        out = [self._interior_block(), *self._boundary_blocks()]
        sd = self.domain.space_dim
        for x_lo, x_hi, axis in self.periodic:
            zero = torch.zeros(len(x_lo), dtype=x_lo.dtype, device=x_lo.device)
            out.append(ResidualBlock("boundary", (x_lo, x_hi), (1.0, -1.0),
                                     _value_and_slope(axis), (zero, zero), grad=True,
                                     space_dim=sd))
        initial = self._initial_block()
        if initial is not None:
            out.append(initial)
        out.extend(self._field_blocks())
        if self.x_data is not None and self.y_data is not None:
            out.append(ResidualBlock("data", (self.x_data,), (1.0,), _value, (self.y_data,),
                                     space_dim=sd))
        return out
