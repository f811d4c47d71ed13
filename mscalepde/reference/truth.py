"""What a run's errors are measured against: a truth data file, else the exact solution,
else the cached classical reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mscalepde.problem.model import Problem
from mscalepde.reference.cache import cache_path, get_reference, reference_values
from mscalepde.reference.solve import reference_settings


def truth_values(problem: Problem, points: np.ndarray) -> np.ndarray:
    """The truth at ``points`` (N, D), float64, shape (N,): the one resolver of what a run
    is measured against. In order: a ``truth`` data file's values (interpolated linearly
    between its points, :mod:`mscalepde.problem.datafile`), else the exact solution, else
    the cached classical reference solution (computed on first use)."""
    if problem.truth is not None:
        return problem.truth(points)
    if problem.exact is None:
        return reference_values(problem, points)
    env = {v: points[:, i] for i, v in enumerate(problem.variables)}
    return np.asarray(problem.exact.numpy(env), dtype=np.float64).reshape(-1)


def truth_info(problem: Problem) -> dict[str, Any]:
    """What the errors of a run are measured against (for ``summary.json``)."""
    if problem.truth is not None:
        return {
            "truth": "file",
            "file": str(problem.truth.path),
            "sha256": problem.truth.sha256,
            "points": len(problem.truth.values),
        }
    if problem.exact is not None:
        return {"truth": "exact"}
    ref = get_reference(problem)
    return {
        "truth": "reference",
        "reference": {
            "method": ref.method,
            "n": ref.n,
            "nt": ref.nt,
            "estimated_error": ref.estimated_error,
            "seconds": ref.seconds,
            "file": str(cache_path(problem, reference_settings(problem))),
        },
    }
