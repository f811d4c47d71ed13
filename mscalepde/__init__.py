"""mscalepde: physics-informed neural networks for multiscale Poisson and heat problems,
with Frequency-Principle (spectral bias) diagnostics.

Public API::

    from mscalepde import solve, load_problem
    result = solve("problems/poisson1d_sin.yaml", train={"steps": 2000})
    print(result.summary["rel_l2"])
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

# Public names and the module each comes from. They are imported on first use (PEP 562),
# so that `mscalepde --help` and `mscalepde check` do not pay for importing torch
# (benchmarks/README.md, "CLI start-up"). No module is named like a public function: the
# pipeline lives in `run/pipeline.py`, because importing a submodule `solve` would rebind the
# package attribute `mscalepde.solve` to the module.
_EXPORTS = {
    "ARCHITECTURES": "architectures",
    "Architecture": "architectures.base",
    "build_model": "architectures",
    "ExpressionError": "errors",
    "MscaleError": "errors",
    "ProblemError": "errors",
    "RunFolderError": "errors",
    "TrainingError": "errors",
    "Expression": "expressions.expression",
    "parse_expression": "expressions.expression",
    "Problem": "problem.model",
    "load_problem": "problem.validate",
    "problem_from_dict": "problem.validate",
    "load_run": "run.folder",
    "retain_freed_memory": "training.allocator",
    "set_threads": "training.threads",
    "SolveResult": "run.pipeline",
    "make_model": "run.model",
    "resume_run": "run.pipeline",
    "solve": "run.pipeline",
    "Trainer": "training.trainer",
    "TrainSettings": "training.settings",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mscalepde' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from mscalepde.architectures import ARCHITECTURES, build_model
    from mscalepde.architectures.base import Architecture
    from mscalepde.errors import (
        ExpressionError,
        MscaleError,
        ProblemError,
        RunFolderError,
        TrainingError,
    )
    from mscalepde.expressions.expression import Expression, parse_expression
    from mscalepde.problem.model import Problem
    from mscalepde.problem.validate import load_problem, problem_from_dict
    from mscalepde.run.folder import load_run
    from mscalepde.run.model import make_model
    from mscalepde.run.pipeline import SolveResult, resume_run, solve
    from mscalepde.training.allocator import retain_freed_memory
    from mscalepde.training.settings import TrainSettings
    from mscalepde.training.threads import set_threads
    from mscalepde.training.trainer import Trainer

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Expression",
    "ExpressionError",
    "MscaleError",
    "Problem",
    "ProblemError",
    "RunFolderError",
    "SolveResult",
    "TrainSettings",
    "Trainer",
    "TrainingError",
    "build_model",
    "load_problem",
    "load_run",
    "make_model",
    "parse_expression",
    "problem_from_dict",
    "resume_run",
    "retain_freed_memory",
    "set_threads",
    "solve",
]
