"""Building a problem's network: the one place where ``model: {arch: auto}`` is resolved.

A problem says what network it wants; resolving ``auto`` needs the solution's spectrum
(:mod:`mscalepde.frequencies`), which needs the classical references, which need the
problem. Doing it here, in the pipeline, keeps the arrows pointing one way.
"""

from __future__ import annotations

import torch

from mscalepde.architectures import build_model, is_auto
from mscalepde.architectures.base import Architecture
from mscalepde.frequencies.select import resolve_auto
from mscalepde.problem.model import Problem


def make_model(problem: Problem, dtype: torch.dtype | None = None) -> Architecture:
    """Build the problem's network, seeded by ``train.seed`` (torch's global RNG), in
    ``dtype`` (default: ``train.dtype``). A model section with ``auto`` is resolved from
    the spectrum first (:func:`mscalepde.frequencies.select.resolve_auto`): the problem
    names what it wants, and this pipeline step, not the problem, decides how."""
    if is_auto(problem.model):
        problem = resolve_auto(problem)[0]
    torch.manual_seed(problem.train["seed"])
    model = build_model(
        problem.model,
        space_dim=problem.domain.space_dim,
        has_time=problem.domain.has_time,
        bounds=problem.domain.bounds,
        params=problem.params,
    )
    return model.to(dtype or getattr(torch, problem.train["dtype"]))
