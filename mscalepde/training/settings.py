"""The resolved training settings of one run: :class:`TrainSettings` and its optimiser
:class:`Phase` list, built from a validated ``train`` section. Defaults come from the
schema (:data:`mscalepde.training.options.TRAIN_OPTIONS`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mscalepde.training.options import TRAIN_OPTIONS, GaussNewtonSettings


def plain_value(value: Any) -> Any:
    """A growth value as checkpoint-safe numbers (a float or a list of floats)."""
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


PHASE_CODES = {"adam": 0.0, "lbfgs": 1.0, "gauss-newton": 2.0}  # history's ``phase``


@dataclass
class Phase:
    """One optimiser phase: ``name`` (``adam``, ``lbfgs`` or ``gauss-newton``), its number
    of steps (iterations) and its own settings (``lr``, ``decay``, ``method``, …)."""

    name: str
    steps: int
    options: Mapping[str, Any] = field(default_factory=dict)


def _schema(key: str) -> Any:
    """A dataclass field whose default is the ``train`` schema's (one source of truth)."""
    return field(default_factory=lambda: copy.deepcopy(TRAIN_OPTIONS[key].default))


@dataclass
class TrainSettings:
    """Optimisation settings (the ``train`` section of a problem, minus data settings).

    Every default is the schema's (:data:`~mscalepde.training.options.TRAIN_OPTIONS`), so
    a ``TrainSettings()`` built in Python trains as a problem file without those keys.
    ``optimizer`` is the validated ``train.optimizer`` list (each entry a mapping with
    ``name``, ``steps`` and the phase's settings); without it the phases are today's
    Adam (``steps``, ``lr``, ``decay``) then L-BFGS (``lbfgs_steps``, ``lbfgs_lr``).
    """

    steps: int = _schema("steps")
    lr: float = _schema("lr")
    decay: Mapping[str, Any] | None = _schema("decay")  # {"every": int, "factor": float}
    lbfgs_steps: int = _schema("lbfgs_steps")
    lbfgs_lr: float = _schema("lbfgs_lr")
    resample_every: int = _schema("resample_every")
    weights: Mapping[str, float] = _schema("weights")
    log_every: int = _schema("log_every")
    checkpoint_every: int = _schema("checkpoint_every")
    checkpoint_seconds: float = _schema("checkpoint_seconds")  # 0: off
    seed: int = _schema("seed")
    compile: str = _schema("compile")
    optimizer: list[Mapping[str, Any]] | None = _schema("optimizer")
    on_nan: str = _schema("on_nan")  # stop | rollback
    rollbacks: int = _schema("rollbacks")  # at most this many rollbacks per run
    budget_seconds: float = _schema("budget_seconds")  # 0: no limit
    budget_steps: int = _schema("budget_steps")  # 0: no limit
    time_windows: int = _schema("time_windows")  # the phases run once per window

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> TrainSettings:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in m.items() if k in names})

    def phases(self) -> list[Phase]:
        """The optimiser phases in order (phases of zero steps left out), once per time
        window: with ``time_windows: K`` window k runs phases k·n … k·n + n − 1."""
        return self.window_phases() * self.time_windows

    def window_phases(self) -> list[Phase]:
        """The phases of one time window (of the whole run without windows)."""
        if self.optimizer is None:
            out = [
                Phase(
                    "adam",
                    self.steps,
                    {"lr": self.lr, "decay": self.decay, "resample_every": self.resample_every},
                ),
                Phase("lbfgs", self.lbfgs_steps, {"lr": self.lbfgs_lr}),
            ]
        else:
            out = [self._phase(m) for m in self.optimizer]
        return [p for p in out if p.steps > 0]

    def _phase(self, entry: Mapping[str, Any]) -> Phase:
        """A validated ``train.optimizer`` entry with its defaults filled in: Adam from
        ``steps``/``lr``/``decay``/``resample_every``, L-BFGS from ``lbfgs_steps`` (500
        when 0)/``lbfgs_lr``, Gauss–Newton from :class:`GaussNewtonSettings`."""
        name = str(entry["name"])
        given = {k: v for k, v in entry.items() if k != "name"}
        if name == "adam":
            base: dict[str, Any] = {
                "steps": self.steps,
                "lr": self.lr,
                "decay": self.decay,
                "resample_every": self.resample_every,
            }
        elif name == "lbfgs":
            base = {"steps": self.lbfgs_steps or 500, "lr": self.lbfgs_lr}
        elif name == "gauss-newton":
            base = {"steps": GaussNewtonSettings().steps, "resample_every": self.resample_every}
        else:
            raise ValueError(f"unknown optimiser phase '{name}'")
        opts = {**base, **given}
        return Phase(name, int(opts.pop("steps")), opts)


def describe_phases(phases: list[Phase]) -> str:
    """One line: ``200 Adam steps (lr 0.002) + 20 Gauss-Newton iterations (lm, float64)``."""
    out = []
    for p in phases:
        o = p.options
        if p.name == "adam":
            out.append(f"{p.steps} Adam steps (lr {o.get('lr', 0):g})")
        elif p.name == "lbfgs":
            out.append(f"{p.steps} L-BFGS")
        else:
            out.append(
                f"{p.steps} Gauss-Newton iterations ({o.get('method', 'lm')}, "
                f"{o.get('dtype', 'float64')})"
            )
    return " + ".join(out) or "no training"
