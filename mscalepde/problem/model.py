"""The validated problem: :class:`Problem` and its boundary conditions.

A :class:`Problem` is built by :func:`mscalepde.problem.validate.load_problem` or
:func:`~mscalepde.problem.validate.problem_from_dict`; it is the one object that the
trainer, the references and the diagnostics read. The problem format is described in
README.md ("The problem file") and docs/design.md §1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from mscalepde.calculus.operators import PDEOperator
from mscalepde.expressions.expression import Expression
from mscalepde.geometry import Domain
from mscalepde.problem.datafile import TruthData
from mscalepde.problem.inverse import InverseSpec

if TYPE_CHECKING:
    pass


PDES = ("poisson", "heat", "fit")


BOUNDARY_TYPES = ("dirichlet", "neumann", "robin", "periodic")




TOP_KEYS = (
    "name",
    "description",
    "params",
    "pde",
    "diffusivity",
    "reaction",
    "source",
    "domain",
    "exact",
    "initial",
    "boundary",
    "model",
    "train",
    "diagnostics",
    "reference",
    "truth",
    "unknowns",
    "observations",
)


#: Top-level keys that do not change the equation, domain or data (not fingerprinted).
NOT_EQUATION_KEYS = (
    "name",
    "description",
    "model",
    "train",
    "diagnostics",
    "reference",
    "truth",
)


@dataclass(frozen=True)
class BoundaryCondition:
    """The condition on one face: ``dirichlet`` (u = g), ``neumann`` (n·∇u = g), ``robin``
    (n·∇u + α u = g, n the outward normal) or ``periodic`` (u and ∂u/∂n match the opposite
    face). ``value`` is None for periodic; ``from_exact`` says the data g is derived from
    the exact solution (u*, n·∇u* or n·∇u* + α u*); ``alpha`` is Robin's α."""

    face: str
    type: str
    value: Expression | None
    from_exact: bool = False
    alpha: Expression | None = None


@dataclass
class Problem:
    """A validated problem. Built by :func:`load_problem` or :func:`problem_from_dict`."""

    name: str
    pde: str
    domain: Domain
    params: dict[str, float]
    exact: Expression | None
    source: Expression | None  # None: derived from exact ('auto'); unused for fit
    operator: PDEOperator | None  # None for fit
    initial: Expression | None  # heat only
    boundary: dict[str, BoundaryCondition]
    model: dict[str, Any]
    train: dict[str, Any]
    diagnostics: dict[str, Any]
    description: str = ""
    origin: str = "<dict>"
    config: dict[str, Any] = field(default_factory=dict)
    truth: TruthData | None = None  # truth: {file: ...}: errors at the file's points
    #: how a solution defined up to a constant is fixed (pure Neumann / periodic Poisson):
    #: "mean-zero" (∫_Ω u = 0), "mean-of-exact" (∫_Ω u = ∫_Ω u*), or None (the problem
    #: fixes it); see :mod:`mscalepde.problem.solvability`
    gauge: str | None = None
    #: unknowns and observations of an inverse problem (:mod:`mscalepde.problem.inverse`);
    #: the rest of the object is then its forward problem, with the unknowns' true values
    inverse: InverseSpec | None = None

    @property
    def variables(self) -> tuple[str, ...]:
        return self.domain.variables

    @property
    def diffusivity(self) -> float:
        """The diffusivity when it is one number (the constant-coefficient solvers' κ)."""
        value = None if self.operator is None else self.operator.isotropic_constant
        if value is None:
            raise ValueError(f"{self.origin}: the diffusivity is not one constant")
        return value

    @property
    def plain(self) -> bool:
        """−Δu = f or u_t − κΔu = f: a constant isotropic diffusivity, no reaction."""
        return self.operator is None or self.operator.plain

    @property
    def gauge_note(self) -> str | None:
        """One line on how the constant is fixed, for the command line; None without a
        gauge."""
        if self.gauge is None:
            return None
        target = "the mean of exact" if self.gauge == "mean-of-exact" else "0"
        return (
            "u is determined up to a constant (only Neumann/periodic faces): "
            f"fixed by mean(u) over the domain = {target}"
        )

    def fingerprint(self) -> str:
        """A hash of the equation, domain and data (not of model/train settings)."""
        keys = [k for k in TOP_KEYS if k not in NOT_EQUATION_KEYS]  # order-free: sorted dump
        text = yaml.safe_dump({k: self.config.get(k) for k in keys}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
