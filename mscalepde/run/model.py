"""Building a problem's network: the one place where ``model: {arch: auto}`` is resolved.

A problem says what network it wants; resolving ``auto`` needs the solution's spectrum
(:mod:`mscalepde.frequencies`), which needs the classical references, which need the
problem. Doing it here, in the pipeline, keeps the arrows pointing one way.
"""

from __future__ import annotations

import torch

from mscalepde.architectures import build_model, is_auto
from mscalepde.architectures.base import Architecture
from mscalepde.equations import Objective
from mscalepde.frequencies.select import resolve_auto
from mscalepde.inverse.model import InverseModel
from mscalepde.inverse.objective import InverseObjective
from mscalepde.inverse.unknowns import Unknowns
from mscalepde.problem.model import Problem
from mscalepde.run.windows import WindowedModel, windowed_model


def make_model(
    problem: Problem, dtype: torch.dtype | None = None
) -> Architecture | InverseModel | WindowedModel:
    """Build the problem's network, seeded by ``train.seed`` (torch's global RNG), in
    ``dtype`` (default: ``train.dtype``). A model section with ``auto`` is resolved from
    the spectrum first (:func:`mscalepde.frequencies.select.resolve_auto`): the problem
    names what it wants, and this pipeline step, not the problem, decides how."""
    if is_auto(problem.model):
        problem = resolve_auto(problem)[0]
    if problem.train["time_windows"] > 1:  # one network per window (run/windows.py)
        return windowed_model(problem, lambda window: make_model(window, dtype))
    torch.manual_seed(problem.train["seed"])
    model = build_model(
        problem.model,
        space_dim=problem.domain.space_dim,
        has_time=problem.domain.has_time,
        bounds=problem.domain.bounds,
        params=problem.params,
    )
    model = model.to(dtype or getattr(torch, problem.train["dtype"]))
    if problem.inverse is not None and problem.inverse.names:
        return _with_unknowns(problem, model)
    return model


def _with_unknowns(problem: Problem, u: Architecture) -> InverseModel:
    """u and the unknowns (:mod:`mscalepde.inverse`); each field's network is built with
    the run's seed + 1, + 2, … after u's (so u is the same network as without them)."""
    spec = problem.inverse
    assert spec is not None
    dom = problem.domain
    fields = {}
    dtype = next(u.parameters()).dtype
    for i, (name, f) in enumerate(spec.fields.items()):
        torch.manual_seed(problem.train["seed"] + 1 + i)
        bounds = dom.bounds if f.time else dom.bounds[: dom.space_dim]
        fields[name] = build_model(
            f.model, space_dim=dom.space_dim, has_time=f.time, bounds=bounds,
            params=problem.params,
        ).to(dtype)
    with torch.device(next(u.parameters()).device):
        unknowns = Unknowns(spec, fields, dom.space_dim).to(dtype)
    return InverseModel(u, unknowns).to(next(u.parameters()).device)


def make_objective(
    problem: Problem, model: torch.nn.Module, *, dtype: torch.dtype, device: torch.device
) -> Objective:
    """The training objective of ``problem`` for ``model``: an inverse problem's
    (:class:`~mscalepde.inverse.objective.InverseObjective`) or the forward one."""
    if problem.inverse is not None:
        return InverseObjective.for_model(problem, model, dtype=dtype, device=device)
    return Objective.from_problem(problem, dtype=dtype, device=device)
