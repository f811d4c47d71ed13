"""mscalepde: physics-informed neural networks for multiscale Poisson and heat problems,
with Frequency-Principle (spectral bias) diagnostics.

Example::

    import mscalepde
    run = mscalepde.solve("problems/poisson1d_sin.yaml", train={"steps": 2000})
    print(run.rel_l2, run.predict([[0.25], [0.5]]))       # (N, 1) arrays
    mscalepde.export(run.run_dir, format="vtu")            # for ParaView

Public names (each is ``mscalepde.NAME``; no submodule import needed):

- solve, resume_run: train a problem (a YAML path or a Problem); both return a Run;
- Run, load_run: a trained run (problem, model, history, summary, predict, truth,
  residual), returned by solve or read back from a run folder;
- export: a run's fields as VTU/PVD, XDMF, NPZ or CSV;
- load_problem, problem_from_dict, Problem: a validated problem file;
- make_model, build_model, ARCHITECTURES, Architecture: the networks and their registry;
- Trainer, TrainSettings: the training loop on its own;
- Expression, parse_expression: the safe expression language of problem files;
- set_threads, retain_freed_memory: CPU threads and the allocator;
- MscaleError, ProblemError, ExpressionError, RunFolderError, TrainingError: errors.
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
    "load_run": "run.result",
    "export": "formats.writers",
    "Run": "run.result",
    "retain_freed_memory": "training.allocator",
    "set_threads": "training.threads",
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
    from mscalepde.formats.writers import export
    from mscalepde.problem.model import Problem
    from mscalepde.problem.validate import load_problem, problem_from_dict
    from mscalepde.run.model import make_model
    from mscalepde.run.pipeline import resume_run, solve
    from mscalepde.run.result import Run, load_run
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
    "Run",
    "TrainSettings",
    "Trainer",
    "TrainingError",
    "build_model",
    "export",
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
