"""Error of a network against the truth on a fixed evaluation grid.

The grid is a uniform tensor-product grid of the box (× time), endpoints included, with
points per axis chosen by the number of input columns D: 2001 (D = 1), 201 (D = 2),
41 (D = 3), 17 (D = 4). Errors:

- relative L2: ‖u_θ − u*‖₂ / ‖u*‖₂ over the grid points (a discrete L2 norm);
- max error: max |u_θ − u*| over the grid.

In more than three space dimensions no grid is affordable: the errors are measured at
``HIGH_DIM_POINTS`` scrambled Sobol' points of Ω (× time) with a fixed seed (a
quasi-Monte Carlo estimate of the L2 norms), and the figure grid is the plane of the first
two axes through the middle of the others (at the final time for heat).

On a domain that is not a box the grid is the bounding box's, and only its points in Ω
count (``mask``); figures leave the others blank. With ``truth: {file: ...}`` the errors
are measured at the file's points against its values instead (no interpolation); the grid
then serves the figures only.

Evaluation never builds a graph (``torch.inference_mode``) and runs in batches.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mscalepde.geometry import grid_points, tensor_grid
from mscalepde.geometry.sampling import inside_mask, sample_interior
from mscalepde.problem.dimension import is_high_dimensional
from mscalepde.problem.model import Problem
from mscalepde.reference.truth import truth_values

GRID_POINTS = {1: 2001, 2: 201, 3: 41, 4: 17}
HIGH_DIM_POINTS = 2**15
HIGH_DIM_SEED = 20240917  # fixed: a reloaded run measures at the same points


def predict(
    model: nn.Module,
    points: np.ndarray,
    *,
    dtype: torch.dtype,
    device: torch.device | str,
    batch: int = 65536,
) -> np.ndarray:
    """u_θ at ``points`` (N, D) as a float64 numpy array of shape (N,).

    The points are cast to the model's own precision when it has parameters (a
    Gauss–Newton phase trains in float64 whatever ``dtype`` the run started with)."""
    first = next(model.parameters(), None)
    if first is not None:
        dtype = first.dtype
    out = []
    with torch.inference_mode():
        for i in range(0, len(points), batch):
            x = torch.as_tensor(points[i : i + batch], dtype=dtype, device=device)
            out.append(model(x).reshape(-1).to(torch.float64).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def relative_l2(pred: np.ndarray, truth: np.ndarray) -> float:
    denom = float(np.linalg.norm(truth))
    err = float(np.linalg.norm(pred - truth))
    return err / denom if denom > 0 else err


class Evaluator:
    """Callable ``model -> {'rel_l2', 'max_error'}`` on the evaluation grid."""

    def __init__(self, problem: Problem, *, dtype: torch.dtype, device: torch.device | str):
        domain = problem.domain
        bounds = domain.bounds
        high = is_high_dimensional(domain)
        if high:
            self.axes = [np.linspace(lo, hi, GRID_POINTS[2]) for lo, hi in bounds[:2]]
            self.axes += [np.array([0.5 * (lo + hi)]) for lo, hi in domain.box[2:]]
            self.axes += [np.array([domain.time[1]])] if domain.time is not None else []
        else:
            n = GRID_POINTS[len(bounds)]
            self.axes = tensor_grid(bounds, [n] * len(bounds))
        grid = grid_points(self.axes)
        self.mask = inside_mask(domain, grid)  # all True on a box
        self.grid_points = grid[self.mask]
        self.problem = problem
        if problem.truth is not None:
            self.points, self.truth = problem.truth.points, problem.truth.values
        else:
            self.points = (
                sample_interior(domain, HIGH_DIM_POINTS, "sobol", HIGH_DIM_SEED)
                if high
                else self.grid_points
            )
            self.truth = truth_values(problem, self.points)
        self.dtype = dtype
        self.device = device

    def predict(self, model: nn.Module) -> np.ndarray:
        return predict(model, self.points, dtype=self.dtype, device=self.device)

    def figure_fields(self, model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
        """The network and the truth on the whole grid (NaN outside Ω) for figures."""
        pred = predict(model, self.grid_points, dtype=self.dtype, device=self.device)
        if self.points is self.grid_points:
            truth = self.truth
        else:
            truth = truth_values(self.problem, self.grid_points)
        return self.on_grid(pred), self.on_grid(truth)

    def on_grid(self, values: np.ndarray) -> np.ndarray:
        """Values at :attr:`points` placed on the whole grid (NaN outside Ω), shaped by
        :attr:`axes`."""
        full = np.full(self.mask.shape, np.nan)
        full[self.mask] = values
        return full.reshape(tuple(len(a) for a in self.axes))

    def __call__(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        pred = self.predict(model)
        model.train(was_training)
        return {
            "rel_l2": relative_l2(pred, self.truth),
            "max_error": float(np.max(np.abs(pred - self.truth))),
        }
