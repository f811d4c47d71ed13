"""mscalepde: physics-informed neural networks for multiscale Poisson and heat problems,
with Frequency-Principle (spectral bias) diagnostics.

Public API::

    from mscalepde import solve, load_problem
    result = solve("problems/poisson1d_sin.yaml", train={"steps": 2000})
    print(result.summary["rel_l2"])
"""

__version__ = "0.1.0"

from .allocator import retain_freed_memory  # noqa: E402
from .architectures import ARCHITECTURES, Architecture, build_model  # noqa: E402
from .errors import (  # noqa: E402
    ExpressionError,
    MscaleError,
    ProblemError,
    RunFolderError,
    TrainingError,
)
from .expressions import Expression, parse_expression  # noqa: E402
from .problem import Problem, load_problem, problem_from_dict  # noqa: E402
from .runfolder import load_run  # noqa: E402
from .solve import SolveResult, make_model, solve  # noqa: E402
from .trainer import Trainer, TrainSettings  # noqa: E402

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
    "retain_freed_memory",
    "solve",
]
