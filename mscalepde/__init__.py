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
# solver lives in `solver.py`, because importing a submodule `solve` would rebind the
# package attribute `mscalepde.solve` to the module.
_EXPORTS = {
    "ARCHITECTURES": "architectures",
    "Architecture": "architectures",
    "build_model": "architectures",
    "ExpressionError": "errors",
    "MscaleError": "errors",
    "ProblemError": "errors",
    "RunFolderError": "errors",
    "TrainingError": "errors",
    "Expression": "expressions",
    "parse_expression": "expressions",
    "Problem": "problem",
    "load_problem": "problem",
    "problem_from_dict": "problem",
    "load_run": "runfolder",
    "retain_freed_memory": "allocator",
    "SolveResult": "solver",
    "make_model": "solver",
    "resume_run": "solver",
    "solve": "solver",
    "Trainer": "trainer",
    "TrainSettings": "trainer",
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
    from mscalepde.allocator import retain_freed_memory
    from mscalepde.architectures import ARCHITECTURES, Architecture, build_model
    from mscalepde.errors import (
        ExpressionError,
        MscaleError,
        ProblemError,
        RunFolderError,
        TrainingError,
    )
    from mscalepde.expressions import Expression, parse_expression
    from mscalepde.problem import Problem, load_problem, problem_from_dict
    from mscalepde.runfolder import load_run
    from mscalepde.solver import SolveResult, make_model, resume_run, solve
    from mscalepde.trainer import Trainer, TrainSettings

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
    "solve",
]
