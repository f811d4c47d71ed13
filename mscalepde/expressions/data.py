"""Coefficients given as data: values at points, interpolated; and piecewise-constant blocks.

A :class:`DataField` stands wherever an :class:`~mscalepde.expressions.expression.Expression`
of x does (a diffusivity, a source, a reaction r(x)): it has ``variables``, ``text``,
``is_constant`` and evaluates with :meth:`DataField.torch` and :meth:`DataField.numpy`.

Three kinds (``interpolate``):

- ``linear``:
  - on a tensor grid (the points are the product of their coordinates per axis), the
    multilinear interpolant: exact at the nodes, second order between them for smooth data,
    error ≤ h²/8 · max|∂²a| per axis;
  - on scattered points (2D/3D), the piecewise-linear interpolant on their Delaunay
    triangulation (barycentric weights), also exact at the points and second order;
  - outside the data, the value at the nearest point of the grid's box (grid) or the
    nearest data point (scattered).
- ``nearest``: the value of the nearest data point: exact at the points, first order
  between them, piecewise constant (its gradient is zero inside each cell, so a diffusivity
  read this way enters ∇·(a∇u) as a Δu: the interfaces' jumps are not differentiated).
- ``blocks``: a piecewise-constant a on the cells of given edges per axis,
  a(x) = values[i, j, …] for edges_x[i] ≤ x < edges_x[i+1], … (the last cell closed), the
  form of PINNacle's Poisson 2d-MS coefficients (``Poisson2D_ManyArea``, Hao et al. 2024).

The torch evaluation is differentiable in x where the interpolant is (``linear``): the
cell of each point is found on detached coordinates and the weights are computed from x
itself, so autograd gives the interpolant's gradient (what ∇a of a diffusivity needs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

INTERPOLATIONS = ("linear", "nearest")


class DataField:
    """A coefficient of the columns ``variables`` (module docstring)."""

    def __init__(
        self,
        variables: Sequence[str],
        *,
        points: np.ndarray | None = None,
        values: np.ndarray,
        interpolate: str = "linear",
        edges: Sequence[np.ndarray] | None = None,
        config: Mapping[str, Any] | None = None,
        label: str = "data",
    ) -> None:
        self.columns = tuple(variables)
        self.variables = frozenset(self.columns)
        self.kind = "blocks" if edges is not None else interpolate
        self.config = dict(config or {})
        self.text = label
        self.is_constant = False
        self.constant_value = None
        self.values = np.asarray(values, dtype=float)
        self.axes: list[np.ndarray] | None = None
        self.points = None if points is None else np.asarray(points, dtype=float)
        if edges is not None:
            self.axes = [np.asarray(e, dtype=float) for e in edges]
            return
        assert self.points is not None
        self.axes, grid = as_grid(self.points, self.values)
        if grid is not None:
            self.values = grid
        self._tree: Any = None
        self._tri: Any = None

    # ------------------------------------------------------------ evaluation
    def _columns(self, env: Mapping[str, Any]) -> tuple[list[Any], tuple[int, ...]]:
        missing = [v for v in self.columns if v not in env]
        if missing:
            raise ValueError(f"{self.text}: variable(s) {', '.join(missing)} missing")
        return [env[v] for v in self.columns], ()

    def numpy(self, env: Mapping[str, np.ndarray]) -> np.ndarray:
        cols, _ = self._columns(env)
        shape = np.broadcast_shapes(*(np.shape(np.asarray(v)) for v in env.values()))
        x = np.stack([np.broadcast_to(np.asarray(c, float), shape).reshape(-1) for c in cols], 1)
        return self._evaluate(x, np).reshape(shape)

    def torch(self, env: Mapping[str, Any]) -> Any:
        import torch

        cols, _ = self._columns(env)
        tensors = [v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for v in env.values()]
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
        ref = next(t for t in tensors if t.is_floating_point())
        x = torch.stack([torch.broadcast_to(torch.as_tensor(c, dtype=ref.dtype,
                                                            device=ref.device), shape).reshape(-1)
                         for c in cols], 1)
        return self._evaluate(x, torch).reshape(shape)

    def _evaluate(self, x: Any, xp: Any) -> Any:
        xn = x.detach().cpu().numpy() if xp is not np else x
        if self.kind == "blocks":
            return self._take(self._cell_index(xn), x, xp)
        if self.axes is not None:
            if self.kind == "nearest":
                return self._take(self._nearest_node(xn), x, xp)
            return self._multilinear(x, xn, xp)
        if self.kind == "nearest":
            return self._take(self._nearest_point(xn), x, xp)
        return self._barycentric(x, xn, xp)

    def _take(self, index: Any, x: Any, xp: Any) -> Any:
        v = self.values[index]
        return v if xp is np else xp.as_tensor(v, dtype=x.dtype, device=x.device)

    def _cell_index(self, xn: np.ndarray) -> tuple[np.ndarray, ...]:
        assert self.axes is not None
        return tuple(
            np.clip(np.searchsorted(e, xn[:, d], side="right") - 1, 0, len(e) - 2)
            for d, e in enumerate(self.axes)
        )

    def _nearest_node(self, xn: np.ndarray) -> tuple[np.ndarray, ...]:
        assert self.axes is not None
        out = []
        for d, a in enumerate(self.axes):
            i = np.clip(np.searchsorted(a, xn[:, d]), 1, max(len(a) - 1, 1))
            if len(a) == 1:
                out.append(np.zeros(len(xn), dtype=int))
                continue
            left = np.abs(xn[:, d] - a[i - 1]) <= np.abs(a[i] - xn[:, d])
            out.append(np.where(left, i - 1, i))
        return tuple(out)

    def _multilinear(self, x: Any, xn: np.ndarray, xp: Any) -> Any:
        assert self.axes is not None
        lows, weights = [], []
        for d, a in enumerate(self.axes):
            if len(a) == 1:
                lows.append(np.zeros(len(xn), dtype=int))
                weights.append(None)
                continue
            i = np.clip(np.searchsorted(a, xn[:, d], side="right") - 1, 0, len(a) - 2)
            lo, hi = a[i], a[i + 1]
            if xp is np:
                t = (np.clip(x[:, d], a[0], a[-1]) - lo) / (hi - lo)
            else:
                lo_t = xp.as_tensor(lo, dtype=x.dtype, device=x.device)
                hi_t = xp.as_tensor(hi, dtype=x.dtype, device=x.device)
                t = (x[:, d].clamp(float(a[0]), float(a[-1])) - lo_t) / (hi_t - lo_t)
            lows.append(i)
            weights.append(t)
        out = 0.0
        dims = len(self.axes)
        for corner in range(1 << dims):
            index, w = [], 1.0
            for d in range(dims):
                up = (corner >> d) & 1
                if weights[d] is None:
                    if up:
                        break
                    index.append(lows[d])
                    continue
                index.append(lows[d] + up)
                w = w * (weights[d] if up else 1.0 - weights[d])
            else:
                out = out + w * self._take(tuple(index), x, xp)
        return out

    def _nearest_point(self, xn: np.ndarray) -> np.ndarray:
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.points)
        return self._tree.query(xn)[1]

    def _barycentric(self, x: Any, xn: np.ndarray, xp: Any) -> Any:
        if self._tri is None:
            from scipy.spatial import Delaunay

            self._tri = Delaunay(self.points)
        tri = self._tri
        simplex = tri.find_simplex(xn)
        inside = simplex >= 0
        s = np.where(inside, simplex, 0)
        dims = xn.shape[1]
        trans = tri.transform[s]  # (M, D + 1, D): T⁻¹ and the last vertex r
        corners = tri.simplices[s]  # (M, D + 1)
        if xp is np:
            b = np.einsum("mij,mj->mi", trans[:, :dims], x - trans[:, dims])
            lam = np.concatenate([b, 1.0 - b.sum(1, keepdims=True)], 1)
            value = (lam * self.values[corners]).sum(1)
        else:
            t = xp.as_tensor(trans, dtype=x.dtype, device=x.device)
            b = xp.einsum("mij,mj->mi", t[:, :dims], x - t[:, dims])
            lam = xp.cat([b, 1.0 - b.sum(1, keepdim=True)], 1)
            vals = xp.as_tensor(self.values[corners], dtype=x.dtype, device=x.device)
            value = (lam * vals).sum(1)
        if inside.all():
            return value
        near = self._take(self._nearest_point(xn), x, xp)
        mask = inside if xp is np else xp.as_tensor(inside, device=x.device)
        return xp.where(mask, value, near)

    def __repr__(self) -> str:
        return f"DataField({self.text!r}, {self.kind})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tree"] = state["_tri"] = None  # rebuilt on first use
        return state


def as_grid(points: np.ndarray, values: np.ndarray) -> tuple[list[np.ndarray] | None, Any]:
    """(axes, values on the grid) when the points are a full tensor grid (every combination
    of their coordinates once), else (None, None): scattered points."""
    axes = [np.unique(points[:, d]) for d in range(points.shape[1])]
    if int(np.prod([len(a) for a in axes])) != len(points):
        return None, None
    index = tuple(np.searchsorted(a, points[:, d]) for d, a in enumerate(axes))
    grid = np.full(tuple(len(a) for a in axes), np.nan)
    grid[index] = values
    if np.isnan(grid).any():  # a repeated point: not a grid
        return None, None
    return axes, grid
