"""Time marching (``train.time_windows: K``): one network per time window, trained in turn.

The horizon [t0, t1] is cut into K equal windows [t_k, t_{k+1}]
(:func:`~mscalepde.problem.windows.window_edges`). Window k is an ordinary heat problem on
its own window, trained by the same optimiser phases as the whole run would be:

- its initial condition is u_{k−1}(x, t_k), the previous window's trained network
  (:class:`NetworkInitial`; window 0 keeps the problem's own);
- its network u_k starts from u_{k−1}'s weights, in window-local time coordinates (each
  network maps its own window to [−1, 1]), so u_k starts as u_{k−1} shifted by one window:
  the warm start of the jaxpi time-marching examples;
- only u_k is trained (the others' parameters are frozen: ``requires_grad`` is False), on
  points of window k only, drawn from the run's seed + 7919 k.

Everything downstream sees one network, :class:`WindowedModel`: a row (x, t) is answered
by the network of the window that holds t (t = t_k belongs to window k, t1 to the last).
The trainer runs the phases K times (``TrainSettings.phases``) and calls
:meth:`TimeMarching.enter` before each phase, which swaps the objective (and rebuilds the
Gauss–Newton phases for the new parameters) when a new window starts. A checkpoint holds
every window's network and the phase index, so a resumed run continues in the window it
stopped in, from the points it was using. The history's ``window`` column says which
window each row belongs to; its ``rel_l2`` covers [t0, t_{k+1}] (what has been trained so
far); ``summary.json``'s ``windows`` lists each window's final error.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mscalepde.architectures.base import Composite
from mscalepde.diagnostics.evaluation import Evaluator
from mscalepde.problem.model import Problem
from mscalepde.problem.windows import window_edges
from mscalepde.training.settings import TrainSettings
from mscalepde.training.trainer import Trainer

SEED_STRIDE = 7919  # window k draws its points from seed + 7919 k


class WindowedModel(Composite):
    """Networks u_0 … u_{K−1}; u_k answers the rows whose t lies in [t_k, t_{k+1})."""

    def __init__(self, nets: Sequence[nn.Module], edges: Sequence[float]) -> None:
        super().__init__()
        if len(nets) != len(edges) - 1:
            raise ValueError(f"{len(nets)} networks for {len(edges) - 1} windows")
        self.nets = nn.ModuleList(nets)
        self.edges = tuple(float(e) for e in edges)
        self.active = 0  # the window being trained: its network answers ``jet``

    def window_of(self, t: Tensor) -> Tensor:
        """The window index of each time (t_k → k; the inner edges compared in t's dtype,
        so that a point put at t_k in float32 lands in window k)."""
        inner = torch.tensor(self.edges[1:-1], dtype=t.dtype, device=t.device)
        return torch.bucketize(t, inner, right=True)

    def forward(self, x: Tensor) -> Tensor:
        w = self.window_of(x[:, -1].detach().contiguous())
        first = int(w[0]) if len(w) else 0
        if len(w) == 0 or bool((w == first).all()):
            return self.nets[first](x)
        index, pieces = [], []
        for k in torch.unique(w).tolist():
            rows = (w == k).nonzero().squeeze(1)
            index.append(rows)
            pieces.append(self.nets[k](x[rows]))
        out = torch.cat(pieces)
        return torch.zeros_like(out).index_copy(0, torch.cat(index), out)

    def jet(self, x: Tensor, spec: Any) -> Any:
        """The forward-Laplacian jet of the window being trained (its points are the only
        ones an objective builds jets on)."""
        return self.nets[self.active].jet(x, spec)

    def train_window(self, k: int) -> None:
        """Make u_k the trainable network and the others constants."""
        self.active = k
        for j, net in enumerate(self.nets):
            for p in net.parameters():
                p.requires_grad_(j == k)

    def primary(self) -> nn.Module:
        """u_0: ``space_dim``, ``in_dim`` and the rest are its (``parameter_count`` counts
        the window being trained)."""
        return self._modules["nets"][0]  # type: ignore[index]


class NetworkInitial:
    """u_0(x) = u_{k−1}(x, t_k): a trained network as a problem's initial condition.

    Duck-typed like an :class:`~mscalepde.expressions.expression.Expression` of the
    problem's variables (``torch(env)``, ``numpy(env)``): the objective evaluates it where
    it evaluates an ``initial`` expression, in float64, without a graph."""

    is_constant = False

    def __init__(self, net: nn.Module, t: float, variables: Sequence[str], window: int) -> None:
        self.net = net
        self.t = float(t)
        self.variables = tuple(variables)
        self.text = f"the network of window {window - 1} at t = {self.t:g}"
        self.config = self.text

    def torch(self, env: dict[str, Tensor]) -> Tensor:
        space = torch.stack([env[v] for v in self.variables[:-1]], 1)
        x = torch.cat([space, torch.full_like(space[:, :1], self.t)], 1)
        p = next(self.net.parameters())
        with torch.no_grad():
            u = self.net(x.detach().to(dtype=p.dtype, device=p.device))
        return u.reshape(-1).to(dtype=space.dtype, device=space.device)

    def numpy(self, env: dict[str, Any]) -> np.ndarray:
        tensors = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in env.items()}
        return self.torch(tensors).numpy()


def windowed_model(problem: Problem, build: Any) -> WindowedModel:
    """The K networks of a marching problem, each built by ``build(window_problem)``
    (the run's seed: identical weights, each normalised to its own window)."""
    edges = window_edges(problem.domain.time, problem.train["time_windows"])  # type: ignore[arg-type]
    one = {**problem.train, "time_windows": 1}
    nets = [
        build(dataclasses.replace(_window_problem(problem, edges, k), train=one))
        for k in range(len(edges) - 1)
    ]
    return WindowedModel(nets, edges)


def _window_problem(problem: Problem, edges: Sequence[float], k: int) -> Problem:
    """The heat problem of window k (its time interval and seed; the initial condition is
    set by :meth:`TimeMarching.problem_of`)."""
    domain = dataclasses.replace(problem.domain, time=(edges[k], edges[k + 1]))
    train = {**problem.train, "seed": problem.train["seed"] + SEED_STRIDE * k}
    return dataclasses.replace(problem, domain=domain, train=train)


class TimeMarching:
    """The trainer's ``enter_phase`` hook of a marching run, and its evaluations."""

    def __init__(
        self,
        problem: Problem,
        model: WindowedModel,
        evaluator: Evaluator | None,
        make_objective: Any,
    ) -> None:
        """``evaluator`` None: no errors (a rank other than 0 of a parallel run)."""
        self.problem = problem
        self.model = model
        self.edges = model.edges
        self.make_objective = make_objective  # problem -> objective
        self.per = len(TrainSettings.from_mapping(problem.train).window_phases())
        self.window = 0
        # window k holds [t_k, t_{k+1}): a point at t_{k+1} is the next window's (rounding
        # to the model's precision aside, hence the margin)
        self.so_far: list[Evaluator] = []
        self.slabs: list[Evaluator] = []
        if evaluator is not None:
            t = evaluator.points[:, -1]
            margin = 1e-6 * (self.edges[-1] - self.edges[0])
            ends = [e - margin for e in self.edges[1:-1]] + [np.inf]
            starts = [-np.inf] + ends[:-1]
            self.so_far = [_restricted(evaluator, t < e) for e in ends]
            self.slabs = [
                _restricted(evaluator, (t >= lo) & (t < hi))
                for lo, hi in zip(starts, ends, strict=True)
            ]
        model.train_window(0)

    def problem_of(self, k: int) -> Problem:
        """Window k's problem: its interval, seed, and u_{k−1}(·, t_k) as initial data."""
        window = _window_problem(self.problem, self.edges, k)
        if k == 0:
            return window
        net = self.model.nets[k - 1]
        initial = NetworkInitial(net, self.edges[k], self.problem.variables, k)
        return dataclasses.replace(window, initial=initial)

    def objective(self, k: int = 0) -> Any:
        return self.make_objective(self.problem_of(k))

    def enter(self, trainer: Trainer, phase: int, resuming: bool) -> None:
        """Before phase ``phase``: start its window if it is a new one (module docstring).
        A resumed run calls this with the checkpoint's phase before its state is applied:
        the networks are then the checkpoint's, not warm-started."""
        k = phase // self.per
        if k == self.window:
            return
        if not resuming and phase % self.per == 0 and k > 0:
            warm = self.model.nets[k - 1].state_dict()
            scaling = {n for n, _ in self.model.nets[k].named_buffers()}
            self.model.nets[k].load_state_dict(
                {**self.model.nets[k].state_dict(),
                 **{n: v for n, v in warm.items() if n not in scaling}}
            )
        self.model.train_window(k)
        self.window = k
        trainer.objective = self.objective(k)
        trainer.renew_gauss_newton(range(k * self.per, (k + 1) * self.per))

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """The history's errors: over [t0, t_{k+1}] while window k trains, and ``window``."""
        return {**self.so_far[self.window](model), "window": float(self.window)}

    def summary(self, model: nn.Module) -> list[dict[str, float]]:
        """Each window's final relative L2 and max error on its own slab of time."""
        out = []
        for k, ev in enumerate(self.slabs):
            err = ev(model)
            out.append({"window": k, "t0": self.edges[k], "t1": self.edges[k + 1], **err})
        return out


def _restricted(evaluator: Evaluator, keep: np.ndarray) -> Evaluator:
    """The evaluator on a subset of its points (same truth values, no recomputation)."""
    sub = copy.copy(evaluator)
    sub.points, sub.truth = evaluator.points[keep], evaluator.truth[keep]
    return sub

