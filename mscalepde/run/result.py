"""A run: the trained network with its problem, history and summary (:class:`Run`).

:func:`~mscalepde.run.pipeline.solve` returns a :class:`Run`, and :func:`load_run` reads
the same object back from a run folder, so a finished run and a reloaded one offer the
same methods. Shapes (README, "The Python API"):

=====================  ==============  ===============================================
call                   input           output
=====================  ==============  ===============================================
``run.model(x)``       tensor (N, D)   tensor (N, 1)
``run.predict(p)``     array (N, D)    array (N, 1), float64
``run.truth(p)``       array (N, D)    array (N, 1), float64
``run.residual(p)``    array (N, D)    array (N, 1), float64
=====================  ==============  ===============================================

D is the number of input columns: the space variables in the order of
``problem.variables`` (x, y, z), then t for heat.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mscalepde.architectures.base import Architecture
from mscalepde.diagnostics.evaluation import Evaluator, predict
from mscalepde.equations import residual_at
from mscalepde.errors import ProblemError, RunFolderError
from mscalepde.problem.model import Problem
from mscalepde.reference.result import Reference
from mscalepde.reference.truth import truth_values
from mscalepde.run.folder import load_model
from mscalepde.training.history import History


@dataclass
class Run:
    """A trained network and what it was trained on.

    ``problem``: the validated problem (``auto`` choices resolved); ``model``: the network
    u_θ; ``history``: the training log (one row per logged step); ``summary``: the content
    of ``summary.json`` (``rel_l2``, ``max_error``, times, phases, diagnostics, ...);
    ``run_dir``: the run folder, or None for ``solve(..., write=False)``.
    """

    problem: Problem
    model: Architecture
    history: History
    summary: dict[str, Any]
    run_dir: Path | None = None
    _evaluator: Evaluator | None = field(default=None, repr=False)
    _reference: Any = field(default=None, repr=False)

    @property
    def rel_l2(self) -> float | None:
        """The relative L2 error ‖u_θ − u*‖₂/‖u*‖₂ at the evaluation points (summary)."""
        return self.summary.get("rel_l2")

    @property
    def evaluator(self) -> Evaluator:
        """The evaluation grid and truth the summary's errors were measured on."""
        if self._evaluator is None:
            p = next(self.model.parameters())
            self._evaluator = Evaluator(self.problem, dtype=p.dtype, device=p.device)
        return self._evaluator

    def _points(self, points: Any) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim == 1 and len(self.problem.variables) == 1:
            pts = pts[:, None]
        width = len(self.problem.variables)
        if pts.ndim != 2 or pts.shape[1] != width:
            names = ", ".join(self.problem.variables)
            raise ProblemError(
                "points", "", f"expected an array (N, {width}) with columns {names}, "
                f"got shape {tuple(pts.shape)}"
            )
        return pts

    def predict(self, points: Any) -> np.ndarray:
        """u_θ at ``points`` (N, D) as a float64 array (N, 1)."""
        pts = self._points(points)
        p = next(self.model.parameters())
        return predict(self.model, pts, dtype=p.dtype, device=p.device)[:, None]

    def reference(self) -> Any:
        """The classical reference this run was measured against, from its run folder's
        ``reference.npz`` (None when the run has none: a truth file, ``exact``, or no
        folder)."""
        if self.problem.truth is not None or self.problem.exact is not None or not self.run_dir:
            return None
        saved = self.run_dir / "reference.npz"
        if self._reference is None and saved.is_file():
            self._reference = Reference.load(saved)
        return self._reference

    def truth(self, points: Any) -> np.ndarray:
        """The truth u* at ``points`` (N, D), float64 (N, 1): the ``truth`` file's values,
        else ``exact``, else the classical reference (the run folder's
        ``reference.npz`` when it has one, else the cached reference)."""
        pts = self._points(points)
        ref = self.reference()
        if ref is not None:
            return np.asarray(ref(pts), dtype=np.float64).reshape(-1, 1)
        return truth_values(self.problem, pts).reshape(-1, 1)

    def residual(self, points: Any, batch: int = 16384) -> np.ndarray:
        """The PDE residual L u_θ − f at ``points`` (N, D), float64 (N, 1)
        (:func:`mscalepde.equations.residual_at`)."""
        pts = self._points(points)
        p = next(self.model.parameters())
        out = []
        for s in range(0, len(pts), batch):
            x = torch.as_tensor(pts[s : s + batch], dtype=p.dtype, device=p.device)
            r = residual_at(self.problem, self.model, x)
            out.append(r.to(torch.float64).cpu().numpy())
        return (np.concatenate(out) if out else np.zeros(0)).reshape(-1, 1)


def read_history(path: Path) -> History:
    """A :class:`History` from a run folder's ``history.csv`` (empty when missing)."""
    history = History()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return history
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read: {exc.strerror}") from None
    for row in csv.DictReader(io.StringIO(text)):
        try:
            history.append({k: float(v) for k, v in row.items() if k is not None})
        except (TypeError, ValueError):
            raise RunFolderError(f"{path}: not a history written by mscalepde") from None
    return history


def load_run(run_dir: str | Path) -> Run:
    """The run in ``run_dir`` (written by ``mscalepde solve``) as a :class:`Run`: the
    network rebuilt from ``config.yaml`` and ``model.pt`` (eval mode), ``history.csv`` and
    ``summary.json``."""
    run_dir = Path(run_dir)
    problem, model = load_model(run_dir)
    history = read_history(run_dir / "history.csv")
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except FileNotFoundError:
        summary = {}  # a run still training: model.pt and history.csv only
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{run_dir / 'summary.json'}: cannot read: {exc}") from None
    if not isinstance(summary, dict):
        raise RunFolderError(f"{run_dir / 'summary.json'}: not a summary written by mscalepde")
    return Run(problem, model, history, summary, run_dir)
