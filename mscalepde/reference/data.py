"""The problem's data on a reference grid: the source, the coefficients, the boundary and
initial data, sampled for the classical solvers (with the data derived from ``exact``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mscalepde.errors import ReferenceSolveError
from mscalepde.geometry import grid_points
from mscalepde.problem.model import Problem


class _Data:
    """Source, boundary and initial data of a problem on tensor grids."""

    def __init__(self, problem: Problem) -> None:
        self.p = problem
        self.variables = problem.variables
        self.space_dim = problem.domain.space_dim
        self.heat = problem.pde == "heat"

    def _env(self, grids: list[np.ndarray]) -> dict[str, np.ndarray]:
        d = len(grids)
        env = {}
        for i, (v, g) in enumerate(zip(self.variables, grids)):
            shape = [1] * d
            shape[i] = len(g)
            env[v] = np.asarray(g, dtype=np.float64).reshape(shape)
        return env

    def _numpy(self, expr: Any, grids: list[np.ndarray], what: str) -> np.ndarray:
        shape = tuple(len(g) for g in grids)
        out = np.broadcast_to(expr.numpy(self._env(grids)), shape).astype(np.float64)
        return self._finite(out, what)

    def _finite(self, values: np.ndarray, what: str) -> np.ndarray:
        if not np.all(np.isfinite(values)):
            raise ReferenceSolveError(
                f"{self.p.origin}: {what} evaluates to a non-finite value on the reference grid"
            )
        return values

    def _torch(self, grids: list[np.ndarray], what: str, axis: int = -1) -> np.ndarray:
        """``source: auto`` (axis < 0: L u* for the problem's operator, by the training
        derivative path, as ``Objective._source``) or ∂exact/∂x_axis, in float64."""
        from mscalepde.equations import exact_data

        assert self.p.exact is not None
        shape = tuple(len(g) for g in grids)
        out = exact_data(
            self.p.operator,
            self.p.exact,
            self.variables,
            grid_points(grids),
            self.space_dim,
            gradient=axis >= 0,
        )
        return self._finite((out[:, axis] if axis >= 0 else out).reshape(shape), what)

    def source(self, grids: list[np.ndarray]) -> np.ndarray:
        if self.p.source is not None:
            return self._numpy(self.p.source, grids, "source")
        return self._torch(grids, "source (auto, from exact)")

    def initial(self, grids: list[np.ndarray]) -> np.ndarray:
        assert self.p.initial is not None
        return self._numpy(self.p.initial, grids, "initial")

    def exact(self, grids: list[np.ndarray]) -> np.ndarray:
        assert self.p.exact is not None
        return self._numpy(self.p.exact, grids, "exact")

    def face(self, face: str, grids: list[np.ndarray]) -> np.ndarray:
        """Face data g on a grid whose face axis is the single coordinate of the face: the
        Dirichlet value, the outward normal derivative (Neumann) or ∂u/∂n + α u (Robin);
        ``value: exact`` derives it from ``exact`` (u*, n·∇u*, n·∇u* + α u*)."""
        bc = self.p.boundary[face]
        what = f"boundary (face {face}).value"
        if bc.type in ("neumann", "robin") and bc.from_exact:
            axis = self.p.domain.face_axis(face)
            sign = -1.0 if face.endswith("-") else 1.0
            g = sign * self._torch(grids, what, axis)
            if bc.type == "robin":
                g = g + self.alpha(face, grids) * self.exact(grids)
            return g
        return self._numpy(bc.value, grids, what)

    def alpha(self, face: str, grids: list[np.ndarray]) -> np.ndarray:
        """Robin's α on a face grid (as :meth:`face`)."""
        bc = self.p.boundary[face]
        assert bc.alpha is not None
        return self._numpy(bc.alpha, grids, f"boundary (face {face}).alpha")

    @property
    def time_dependent_source(self) -> bool:
        if self.p.source is None:
            return True
        return "t" in self.p.source.variables
