"""The ``train`` section's schema (torch-free): its keys, their defaults and checks, the
optimiser phases (``train.optimizer``) and the Gauss–Newton phase's settings.

This is the one source of the training defaults: :class:`~mscalepde.training.settings.TrainSettings`
takes its defaults from :data:`TRAIN_OPTIONS`. The optimisers themselves are described in
docs/design.md §8.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mscalepde.errors import SchemaError
from mscalepde.geometry import SAMPLERS
from mscalepde.schema import (
    Option,
    as_choice,
    bool_option,
    check_unknown,
    choice_option,
    describe,
    float_option,
    int_option,
    join,
    switch_option,
    validate_section,
)

OPTIMIZERS = ("adam", "lbfgs", "gauss-newton")
LOSSES = ("residual", "ritz")


@dataclass
class GaussNewtonSettings:
    """Settings of one ``gauss-newton`` phase (``train.optimizer``)."""

    steps: int = 30
    method: str = "lm"  # lm | line-search
    damping: float = 1e-6  # relative λ: initial (lm) or fixed (line-search)
    min_damping: float = 1e-12
    decrease: float = 1.0 / 3.0  # lm: smallest factor on λ after an accepted step
    max_damping: float = 1e6
    max_tries: int = 12  # lm: solves per iteration before giving up
    halvings: int = 10  # line-search: α = 1, 1/2, …, 2^-halvings
    form: str = "auto"  # auto | dual | primal
    chunk: int = 1024  # points per Jacobian pass
    max_memory_gb: float = 4.0
    dtype: str = "float64"
    resample_every: int = 0
    solver: str = "auto"  # auto | dense | cg (matrix-free)
    preconditioner: str = "nystrom"  # cg: nystrom | kfac | none
    rank: int = 50  # cg: rank of the Nyström preconditioner
    cg_tol: float = 1e-10  # cg: floor of the relative residual of the inner solve
    cg_max_iter: int = 300  # cg: inner iterations at most
    forcing: float = 1e-3  # cg: largest inexact-Newton forcing term η (0: always cg_tol)
    patience: int = 0  # stop when the last `patience` iterations gained less than `stall`
    stall: float = 0.8  # the factor `patience` iterations must gain (GaussNewton.stalled)
    keep_best: bool = False  # end on the iterate with the lowest validation loss


def settings_from_mapping(m: Mapping[str, object]) -> GaussNewtonSettings:
    names = GaussNewtonSettings.__dataclass_fields__
    return GaussNewtonSettings(**{k: v for k, v in m.items() if k in names})  # type: ignore[arg-type]


def _decay(value: Any, key: str) -> dict[str, Any] | None:
    if value is None or value is False:
        return None
    return validate_section(
        value,
        {
            "every": Option(int_option(1), 1000, "steps between decays"),
            "factor": Option(float_option(positive=True, maximum=1.0), 0.9, "lr multiplier"),
        },
        key,
    )


#: ``train.points: auto``, the points of a default run (a file that names no
#: ``train.points``), by spatial dimension. A dense Gauss–Newton iteration costs about
#: M²P for M rows, so 1D takes fewer; a steady 1D problem's boundary is its two end
#: points; the library's shape files need 400 boundary points in 2D to resolve holes and
#: corners, 3D surfaces more; the 5D PINNacle files use 1 000.
AUTO_POINTS = "auto"


TRAIN_OPTIONS: dict[str, Option] = {
    "steps": Option(int_option(0, 10_000_000), 5000, "Adam steps"),
    "lr": Option(float_option(positive=True), 1e-3, "Adam learning rate"),
    "decay": Option(_decay, None, "step decay {every, factor} of the learning rate"),
    "lbfgs_steps": Option(int_option(0, 1_000_000), 0, "L-BFGS iterations after Adam"),
    "lbfgs_lr": Option(float_option(positive=True), 1.0, "L-BFGS step length"),
    "points": Option(
        lambda v, k: AUTO_POINTS if v == AUTO_POINTS else validate_section(
            v,
            {
                "interior": Option(int_option(1, 10_000_000), None),
                "boundary": Option(int_option(1, 10_000_000), None),
                "initial": Option(int_option(1, 10_000_000), None),
            },
            k,
        ),
        AUTO_POINTS,
        "collocation points per term; a term not given (or auto) gets its default by "
        "dimension",
    ),
    "sampler": Option(choice_option(*SAMPLERS), "sobol", "point sampler"),
    "resample_every": Option(int_option(0), 0, "steps between resampling (0: fixed)"),
    "time_windows": Option(
        lambda v, k: _time_windows(v, k), 1,
        "heat: train [t0, t1] in K equal windows one after the other (time marching); "
        "K or {length: L}",
    ),
    "weights": Option(
        lambda v, k: validate_section(
            v,
            {
                "pde": Option(float_option(minimum=0.0), 1.0),
                "boundary": Option(float_option(minimum=0.0), 1.0),
                "initial": Option(float_option(minimum=0.0), 1.0),
                "data": Option(float_option(minimum=0.0), 1.0),
            },
            k,
        ),
        {"pde": 1.0, "boundary": 1.0, "initial": 1.0, "data": 1.0},
        "loss weights",
    ),
    "log_every": Option(int_option(1), 100, "steps between history rows"),
    "checkpoint_every": Option(int_option(0), 1000, "steps between checkpoints (0: end only)"),
    "checkpoint_seconds": Option(
        float_option(minimum=0.0), 120.0,
        "also checkpoint when this much training time passed since the last one (0: off)",
    ),
    "budget_seconds": Option(
        float_option(minimum=0.0), 0.0,
        "end training after this much training time, at a step boundary (0: no limit)",
    ),
    "budget_steps": Option(
        int_option(0), 0, "end training after this many steps of all phases (0: no limit)"
    ),
    "on_nan": Option(
        choice_option("stop", "rollback"), "stop",
        "a NaN/inf loss: stop, or reload the last checkpoint and halve the learning rate",
    ),
    "rollbacks": Option(int_option(1, 100), 3, "at most this many rollbacks (on_nan)"),
    "dtype": Option(choice_option("float32", "float64"), "float32", "floating point type"),
    "seed": Option(int_option(0, 2**32 - 1), 0, "random seed"),
    "device": Option(choice_option("auto", "cpu", "cuda"), "auto", "device"),
    "compile": Option(switch_option(), "auto", "torch.compile the loss (auto: long runs)"),
    "engine": Option(choice_option("auto", "forward", "autograd"), "auto", "derivative engine"),
    "optimizer": Option(
        lambda v, k: v, None, "optimiser phases in order, e.g. [adam, gauss-newton]"
    ),
    "loss": Option(
        choice_option(*LOSSES), "residual", "residual (strong form) | ritz (energy, Poisson)"
    ),
}


# The phases a file gets when its train section names neither ``optimizer`` nor ``steps``
# nor ``lbfgs_steps`` (measured over problems/ without their model and train sections:
# benchmarks/README.md §7.3 and §23). Gauss–Newton runs on new points every iteration
# until its loss stalls (at most ``steps`` iterations), so that an easy problem ends early
# and a hard one keeps going.
DEFAULT_OPTIMIZER: list[Any] = [
    "adam",
    {"gauss-newton": {"steps": 100, "resample_every": 1, "decrease": 0.1, "patience": 15,
                      "stall": 0.7}},
]


DEFAULT_ADAM_STEPS = 500  # Adam steps of a default run (train.steps when given)

#: the counts of ``auto`` by spatial dimension (4: every dimension above 3)
DEFAULT_POINTS: dict[int, dict[str, int]] = {
    1: {"interior": 1000, "boundary": 2, "initial": 200},
    2: {"interior": 1500, "boundary": 400, "initial": 400},
    3: {"interior": 2000, "boundary": 600, "initial": 600},
    4: {"interior": 2000, "boundary": 1000, "initial": 500},
}


def default_points(space_dim: int, has_time: bool) -> dict[str, int]:
    """What ``train.points: auto`` means for a domain (:data:`DEFAULT_POINTS`; the boundary
    of a 1D heat problem is two lines in (x, t), not two points)."""
    out = dict(DEFAULT_POINTS[min(space_dim, 4)])
    if space_dim == 1 and has_time:
        out["boundary"] = 200
    return out


def resolve_points(points: Any, space_dim: int, has_time: bool) -> dict[str, int]:
    """The validated ``train.points`` (``auto`` or a mapping whose missing terms are None)
    with every term set: the given counts, the rest from :func:`default_points`."""
    given = {} if points == AUTO_POINTS else {k: v for k, v in points.items() if v is not None}
    return {**default_points(space_dim, has_time), **given}


def _phase_options(name: str, train: Mapping[str, Any]) -> dict[str, Option]:
    """The settings of one optimiser phase; defaults from the rest of ``train``."""
    if name == "adam":
        return {
            "steps": Option(int_option(0, 10_000_000), train["steps"], "Adam steps"),
            "lr": Option(float_option(positive=True), train["lr"], "learning rate"),
            "decay": Option(_decay, train["decay"], "step decay {every, factor}"),
            "resample_every": Option(int_option(0), train["resample_every"], "resampling"),
        }
    if name == "lbfgs":
        return {
            "steps": Option(int_option(0, 1_000_000), train["lbfgs_steps"] or 500, "iterations"),
            "lr": Option(float_option(positive=True), train["lbfgs_lr"], "step length"),
        }
    d = GaussNewtonSettings()
    return {
        "steps": Option(int_option(0, 1_000_000), d.steps, "iterations"),
        "method": Option(choice_option("lm", "line-search"), d.method, "step control"),
        "damping": Option(float_option(positive=True), d.damping, "relative damping λ"),
        "min_damping": Option(float_option(positive=True), d.min_damping, "lm: floor of λ"),
        "decrease": Option(
            float_option(positive=True, maximum=1.0), d.decrease, "lm: smallest λ factor"
        ),
        "max_damping": Option(float_option(positive=True), d.max_damping, "lm: give up above"),
        "max_tries": Option(int_option(1, 1000), d.max_tries, "lm: solves per iteration"),
        "halvings": Option(int_option(0, 60), d.halvings, "line-search: α down to 2^-halvings"),
        "form": Option(choice_option("auto", "dual", "primal"), d.form, "J Jᵀ or JᵀJ system"),
        "chunk": Option(int_option(1, 10_000_000), d.chunk, "points per Jacobian pass"),
        "max_memory_gb": Option(float_option(positive=True), d.max_memory_gb, "memory cap"),
        "dtype": Option(choice_option("float32", "float64"), d.dtype, "precision of the phase"),
        "resample_every": Option(
            int_option(0), train["resample_every"], "iterations between resampling"
        ),
        "solver": Option(
            choice_option("auto", "dense", "cg"), d.solver,
            "dense (J or JᵀJ factored), cg (matrix-free), auto (dense while it fits)",
        ),
        "preconditioner": Option(
            choice_option("nystrom", "kfac", "none"), d.preconditioner, "cg: preconditioner"
        ),
        "rank": Option(int_option(1, 100_000), d.rank, "cg: rank of the Nyström sketch"),
        "cg_tol": Option(
            float_option(positive=True, maximum=0.5), d.cg_tol,
            "cg: smallest relative residual the inner solve asks for",
        ),
        "cg_max_iter": Option(int_option(1, 1_000_000), d.cg_max_iter, "cg: inner iterations"),
        "forcing": Option(
            float_option(minimum=0.0, maximum=0.5), d.forcing,
            "cg: largest forcing term η = min(forcing, √(‖JᵀR‖/‖JᵀR₀‖)) (0: cg_tol only)",
        ),
        "patience": Option(
            int_option(0, 1_000_000), d.patience,
            "end the phase when the best loss of the last `patience` iterations is not below "
            "`stall` times the best before them (0: run every iteration)",
        ),
        "stall": Option(
            float_option(positive=True, maximum=1.0), d.stall,
            "the factor the last `patience` iterations must gain",
        ),
        "keep_best": Option(
            bool_option(), d.keep_best,
            "end the phase on the iterate whose loss on a fixed validation set of points "
            "(drawn once, as many as the training points) was lowest",
        ),
    }


def _time_windows(value: Any, key: str) -> int | dict[str, float]:
    """``train.time_windows``: a count K (1 … 1000), or ``{length: L}`` (L > 0), which
    must divide the time span (checked with the domain: problem/windows.py)."""
    if isinstance(value, Mapping):
        check_unknown(value, ("length",), key)
        if "length" not in value:
            raise SchemaError(join(key, "length"), "is required (the length of one window)")
        return {"length": float_option(positive=True)(value["length"], join(key, "length"))}
    return int_option(1, 1000)(value, key)


def with_default_optimizer(train: Any) -> Any:
    """A ``train`` section that names none of ``optimizer``, ``steps`` and ``lbfgs_steps``,
    with the package default filled in (a new mapping); anything else unchanged. Applied to
    a file before its ``--set`` overrides, so that ``--set train.steps=300`` sizes the
    default's Adam phase instead of replacing it."""
    if train is None:
        train = {}
    if not isinstance(train, Mapping):
        return train  # validate_section reports it
    if train.get("optimizer") is not None or {"steps", "lbfgs_steps"} & set(train):
        return train
    if train.get("loss") == "ritz":  # no Gauss–Newton for an energy: Adam, train.steps
        return train
    return {**train, "steps": DEFAULT_ADAM_STEPS, "optimizer": copy.deepcopy(DEFAULT_OPTIMIZER)}


def validate_optimizer(raw: Any, train: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """``train.optimizer``: a list of phases, each a name (``adam``) or a one-key mapping
    ``{name: {settings}}``. Returns ``[{'name': ..., <settings given>}, ...]``: every setting
    is checked, but only those given are kept, so that a phase's defaults keep following
    ``train.steps``, ``train.lr`` and the rest (``--set train.steps=...`` still works);
    :meth:`~mscalepde.training.settings.TrainSettings.phases` fills them in."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise SchemaError(key, f"expected a list of optimiser phases, got {describe(raw)}")
    out = []
    for i, entry in enumerate(raw):
        k = join(key, i)
        settings: Any = None
        if isinstance(entry, Mapping):
            if len(entry) != 1:
                raise SchemaError(
                    k, f"expected a name or {{name: {{settings}}}}, got {describe(entry)}"
                )
            entry, settings = next(iter(entry.items()))
        name = as_choice(entry, k, OPTIMIZERS)
        clean = validate_section(settings, _phase_options(name, train), join(k, name))
        if name == "gauss-newton" and not (
            clean["min_damping"] <= clean["damping"] <= clean["max_damping"]
        ):
            raise SchemaError(
                join(join(k, name), "damping"),
                f"expected min_damping <= damping <= max_damping, got {clean['min_damping']:g}"
                f" <= {clean['damping']:g} <= {clean['max_damping']:g}",
            )
        given = set(settings) if isinstance(settings, Mapping) else set()
        out.append({"name": name, **{o: v for o, v in clean.items() if o in given}})
    return out
