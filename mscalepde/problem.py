"""Problem files: YAML in, a validated :class:`Problem` out.

The format is documented in README.md ("The problem file") and DESIGN.md §1. Every key is
validated; an error is a :class:`~mscalepde.errors.ProblemError` whose message reads
``FILE: key.path: what was expected, got what was found``.

Safety: the YAML is read with a safe loader that also refuses aliases (``*name``; this
rules out "billion laughs" alias bombs), duplicate keys, Python-object tags and files over
1 MiB; expressions go through :mod:`mscalepde.expressions` (an ``ast`` whitelist, never
``eval``).

Equations (``pde``; the operator is :class:`~mscalepde.operators.PDEOperator`):
- ``poisson``: −∇·(a ∇u) + r(x, u) = f in Ω (a = 1, r = 0 by default: −Δu = f);
- ``heat``: u_t − ∇·(a ∇u) + r(x, t, u) = f in Ω × (t0, t1], u(·, t0) = u_0;
- ``fit``: u = target (plain least-squares regression of ``exact``; no boundary).

``diffusivity`` a is a number, an expression of x (and t for heat), or a list with one
entry per axis (diagonal anisotropic A = diag(a_1, …, a_d)); ``reaction`` r is an expression
that may use u. Boundary conditions: Dirichlet u = g, Neumann ∂u/∂n = g, Robin
∂u/∂n + α u = g, periodic. ``train.loss`` is ``residual`` (strong form) or ``ritz`` (the
energy, Poisson only).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from mscalepde.architectures import (
    build_model,
    check_axes,
    interface_expressions,
    is_auto,
    validate_model_section,
)
from mscalepde.datafile import TruthData, read_truth
from mscalepde.errors import ExpressionError, ProblemError
from mscalepde.expressions import Expression, parse_expression, parse_params
from mscalepde.geometry import SAMPLERS, Domain, face_names
from mscalepde.geometry.shapes import geometry_from_yaml, shape_to_yaml
from mscalepde.operators import PDEOperator
from mscalepde.phases import OPTIMIZERS, GaussNewtonSettings
from mscalepde.schema import (
    Option,
    SchemaError,
    as_choice,
    as_float,
    as_mapping,
    as_str,
    bool_option,
    check_unknown,
    choice_option,
    describe,
    float_option,
    int_option,
    is_number,
    join,
    switch_option,
    validate_section,
)

if TYPE_CHECKING:
    from mscalepde.architectures.base import Architecture

PDES = ("poisson", "heat", "fit")
BOUNDARY_TYPES = ("dirichlet", "neumann", "robin", "periodic")
LOSSES = ("residual", "ritz")
TOP_KEYS = (
    "name",
    "description",
    "params",
    "pde",
    "diffusivity",
    "reaction",
    "source",
    "domain",
    "exact",
    "initial",
    "boundary",
    "model",
    "train",
    "diagnostics",
    "reference",
    "truth",
)
MAX_FILE_BYTES = 1 << 20
#: Top-level keys that do not change the equation, domain or data (not fingerprinted).
NOT_EQUATION_KEYS = (
    "name",
    "description",
    "model",
    "train",
    "diagnostics",
    "reference",
    "truth",
)


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


TRAIN_OPTIONS: dict[str, Option] = {
    "steps": Option(int_option(0, 10_000_000), 5000, "Adam steps"),
    "lr": Option(float_option(positive=True), 1e-3, "Adam learning rate"),
    "decay": Option(_decay, None, "step decay {every, factor} of the learning rate"),
    "lbfgs_steps": Option(int_option(0, 1_000_000), 0, "L-BFGS iterations after Adam"),
    "lbfgs_lr": Option(float_option(positive=True), 1.0, "L-BFGS step length"),
    "points": Option(
        lambda v, k: validate_section(
            v,
            {
                "interior": Option(int_option(1, 10_000_000), 2000),
                "boundary": Option(int_option(1, 10_000_000), 200),
                "initial": Option(int_option(1, 10_000_000), 200),
            },
            k,
        ),
        {"interior": 2000, "boundary": 200, "initial": 200},
        "collocation points per term",
    ),
    "sampler": Option(choice_option(*SAMPLERS), "sobol", "point sampler"),
    "resample_every": Option(int_option(0), 0, "steps between resampling (0: fixed)"),
    "weights": Option(
        lambda v, k: validate_section(
            v,
            {
                "pde": Option(float_option(minimum=0.0), 1.0),
                "boundary": Option(float_option(minimum=0.0), 1.0),
                "initial": Option(float_option(minimum=0.0), 1.0),
            },
            k,
        ),
        {"pde": 1.0, "boundary": 1.0, "initial": 1.0},
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
# benchmarks/README.md §7.3).
DEFAULT_OPTIMIZER: list[Any] = ["adam", {"gauss-newton": {"steps": 30, "resample_every": 1}}]
DEFAULT_ADAM_STEPS = 1000  # Adam steps of a default run (train.steps when given)


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
    }


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
    :meth:`~mscalepde.trainer.TrainSettings.phases` fills them in."""
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


def _times(value: Any, key: str) -> list[float] | None:
    if value is None:
        return None
    if is_number(value):
        value = [value]
    if not isinstance(value, list) or not value:
        raise SchemaError(key, f"expected a list of times, got {describe(value)}")
    return [as_float(v, join(key, i)) for i, v in enumerate(value)]


def _band_edges(value: Any, key: str) -> list[float]:
    """Increasing edges e0 < e1 < ... (>= 0) of the |k| bands of the spectral diagnostics."""
    if not isinstance(value, list) or len(value) < 2:
        raise SchemaError(key, f"expected a list of 2 or more band edges, got {describe(value)}")
    edges = [as_float(v, join(key, i), minimum=0.0) for i, v in enumerate(value)]
    if any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
        raise SchemaError(key, f"expected increasing band edges, got {describe(value)}")
    return edges


DIAGNOSTICS_OPTIONS: dict[str, Option] = {
    "every": Option(int_option(0), 100, "steps between evaluations (0: end only)"),
    "grid": Option(int_option(8, 1 << 16), None, "points per axis (default by dimension)"),
    "threshold": Option(float_option(positive=True), 0.05, "Δ_F below which a mode is resolved"),
    "transform": Option(choice_option("fft", "dst", "dct"), "fft", "spectral transform"),
    "magnitude": Option(bool_option(), False, "compare |ĥ| and |û| only (original papers)"),
    "floor": Option(float_option(positive=True, maximum=1.0), 1e-3, "peak floor, relative"),
    "times": Option(_times, None, "times of the heat diagnostics (default: final time)"),
    "delta": Option(float_option(positive=True), None, "variance δ of the Gaussian filter"),
    "enabled": Option(bool_option(), True, "record the spectral diagnostics while training"),
    "filter_points": Option(
        int_option(0, 20_000), 2000, "grid points subsampled for the Gaussian filter (0: off)"
    ),
    "bands": Option(_band_edges, None, "edges of the |k| bands (default: octaves)"),
}


def _reference_order(value: Any, key: str) -> int:
    if value not in (2, 4) or isinstance(value, bool):
        raise SchemaError(key, f"expected 2 or 4, got {describe(value)}")
    return int(value)


def _element_order(value: Any, key: str) -> int:
    if value not in (1, 2) or isinstance(value, bool):
        raise SchemaError(key, f"expected 1 or 2 (P1 or P2 elements), got {describe(value)}")
    return int(value)


REFERENCE_OPTIONS: dict[str, Option] = {
    "method": Option(choice_option("auto", "fd", "spectral", "fem"), "auto", "reference solver"),
    "n": Option(int_option(4, 1 << 20), None, "points per axis (default: by method)"),
    "order": Option(_reference_order, 2, "FD order: 2, or 4 by Richardson extrapolation"),
    "nt": Option(int_option(1, 10_000_000), None, "time steps (Chebyshev: nodes - 1)"),
    "time_method": Option(
        choice_option("auto", "cn", "bdf", "chebyshev"), "auto", "heat time integrator"
    ),
    "solver": Option(choice_option("auto", "direct", "cg", "fast"), "auto", "FD linear solver"),
    "tol": Option(
        float_option(positive=True, maximum=1e-2), 1e-10, "spectral resolution / BDF tolerance"
    ),
    "element": Option(_element_order, 2, "FEM (domain.shape): Lagrange order, P1 or P2"),
    "h": Option(float_option(positive=True), None, "FEM: first mesh size (default diam / 16)"),
    "fem_tol": Option(
        float_option(positive=True, maximum=1e-1), 1e-6, "FEM: refine until this error"
    ),
    "fem_seconds": Option(float_option(positive=True), 120.0, "FEM: refinement time budget"),
}


@dataclass(frozen=True)
class BoundaryCondition:
    """The condition on one face: ``dirichlet`` (u = g), ``neumann`` (n·∇u = g), ``robin``
    (n·∇u + α u = g, n the outward normal) or ``periodic`` (u and ∂u/∂n match the opposite
    face). ``value`` is None for periodic; ``from_exact`` says the data g is derived from
    the exact solution (u*, n·∇u* or n·∇u* + α u*); ``alpha`` is Robin's α."""

    face: str
    type: str
    value: Expression | None
    from_exact: bool = False
    alpha: Expression | None = None


@dataclass
class Problem:
    """A validated problem. Built by :func:`load_problem` or :func:`problem_from_dict`."""

    name: str
    pde: str
    domain: Domain
    params: dict[str, float]
    exact: Expression | None
    source: Expression | None  # None: derived from exact ('auto'); unused for fit
    operator: PDEOperator | None  # None for fit
    initial: Expression | None  # heat only
    boundary: dict[str, BoundaryCondition]
    model: dict[str, Any]
    train: dict[str, Any]
    diagnostics: dict[str, Any]
    description: str = ""
    origin: str = "<dict>"
    config: dict[str, Any] = field(default_factory=dict)
    truth: TruthData | None = None  # truth: {file: ...}: errors at the file's points

    @property
    def variables(self) -> tuple[str, ...]:
        return self.domain.variables

    @property
    def diffusivity(self) -> float:
        """The diffusivity when it is one number (the constant-coefficient solvers' κ)."""
        value = None if self.operator is None else self.operator.isotropic_constant
        if value is None:
            raise ValueError(f"{self.origin}: the diffusivity is not one constant")
        return value

    @property
    def plain(self) -> bool:
        """−Δu = f or u_t − κΔu = f: a constant isotropic diffusivity, no reaction."""
        return self.operator is None or self.operator.plain

    def fingerprint(self) -> str:
        """A hash of the equation, domain and data (not of model/train settings)."""
        keys = [k for k in TOP_KEYS if k not in NOT_EQUATION_KEYS]  # order-free: sorted dump
        text = yaml.safe_dump({k: self.config.get(k) for k in keys}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def make_model(self, dtype: Any = None) -> Architecture:
        """Build this problem's network, seeded by ``train.seed`` (torch's global RNG), in
        ``dtype`` (default: ``train.dtype``). A model section with ``auto`` is resolved
        from the spectrum first (:func:`mscalepde.bands.resolve_auto`)."""
        import torch

        from mscalepde.bands import is_auto, resolve_auto

        if is_auto(self.model):
            return resolve_auto(self)[0].make_model(dtype)
        torch.manual_seed(self.train["seed"])
        model = build_model(
            self.model,
            space_dim=self.domain.space_dim,
            has_time=self.domain.has_time,
            bounds=self.domain.bounds,
            params=self.params,
        )
        return model.to(dtype or getattr(torch, self.train["dtype"]))

    def with_overrides(self, **changes: Any) -> Problem:
        """A new problem with dotted-path overrides (``train.steps=100`` as
        ``{'train.steps': 100}`` or nested keywords ``train={'steps': 100}``)."""
        data = copy.deepcopy(self.config)
        for key, value in changes.items():
            if key == "model" and isinstance(value, Mapping):
                data["model"] = merge_model(data.get("model"), dict(value))
            elif isinstance(value, Mapping) and isinstance(data.get(key), Mapping):
                data[key] = {**data[key], **value}
            else:
                set_override(data, key, value)
        return problem_from_dict(data, origin=self.origin)


# --------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """Safe loader that refuses aliases and duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not supported", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, origin: str) -> Any:
    """Parse YAML text safely, turning every failure into a one-line ProblemError."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - strict safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "constructor for the tag" in problem:
            tag = re.search(r"'([^']*)'", problem)
            problem = f"the YAML tag {tag.group(1) if tag else '(unknown)'} is not allowed"
        raise ProblemError(origin, "", f"{where}invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ProblemError(origin, "", f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ProblemError(origin, "", "invalid YAML: nesting too deep") from None


def read_problem_file(path: str | Path) -> dict[str, Any]:
    """Read and parse a problem file into a plain mapping (not yet validated)."""
    origin = str(path)
    p = Path(path)
    try:
        if not p.is_file():
            raise ProblemError(origin, "", "no such file" if not p.exists() else "not a file")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ProblemError(origin, "", f"file too large ({size} bytes; limit 1 MiB)")
        raw = p.read_bytes()
    except OSError as exc:
        raise ProblemError(origin, "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProblemError(origin, "", "not a UTF-8 text file (binary data?)") from None
    if "\x00" in text:
        raise ProblemError(origin, "", "not a text file (contains NUL bytes)")
    if not text.strip():
        raise ProblemError(origin, "", "the file is empty (expected a problem mapping)")
    data = parse_yaml(text, origin)
    if data is None:
        raise ProblemError(origin, "", "the file has no content (expected a problem mapping)")
    if not isinstance(data, dict):
        raise ProblemError(
            origin, "", f"expected a mapping of keys (pde, domain, ...), got {describe(data)}"
        )
    return data


# --------------------------------------------------------------------------- overrides

_PATH_RE = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])?(\.[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])?)*$"
)  # keys may hold hyphens (train.optimizer[1].gauss-newton.steps)


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``data[a][b][i]... = value`` for ``path = 'a.b[i]...'`` (creating mappings)."""
    if not _PATH_RE.match(path):
        raise SchemaError(
            path, "expected a dotted key path such as train.steps or boundary[0].value"
        )
    parts: list[str | int] = []
    for piece in path.split("."):
        m = re.match(r"^([^\[]+)(?:\[(\d+)\])?$", piece)
        assert m is not None
        parts.append(m.group(1))
        if m.group(2) is not None:
            parts.append(int(m.group(2)))
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise SchemaError(path, f"no list item [{part}] to override")
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise SchemaError(path, f"cannot set a key inside {describe(node)}")
        if part not in node or node[part] is None:
            if isinstance(nxt, int):
                raise SchemaError(path, f"no list '{part}' to override")
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SchemaError(path, f"no list item [{last}] to override")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SchemaError(path, f"cannot set a key inside {describe(node)}")


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.steps=2000'`` → ``('train.steps', 2000)``; the value is read as YAML."""
    if "=" not in text:
        raise SchemaError(text, "expected KEY=VALUE (for example train.steps=2000)")
    key, _, value = text.partition("=")
    key = key.strip()
    try:
        parsed = yaml.load(value, Loader=_StrictLoader) if value.strip() else None  # noqa: S506
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def merge_model(current: Any, update: dict[str, Any]) -> dict[str, Any]:
    """Update a model section. Changing ``arch`` starts from the new architecture's
    defaults (the old architecture's keys would not mean the same thing, or not exist);
    keys given together with the new ``arch`` are kept."""
    current = dict(current) if isinstance(current, Mapping) else {}
    if "arch" in update and update["arch"] != current.get("arch", "mlp"):
        return dict(update)
    return {**current, **update}


def set_override(data: dict[str, Any], key: str, value: Any) -> None:
    """Set one dotted-path value in place; ``model.arch`` goes through :func:`merge_model`."""
    if key == "model.arch":
        data["model"] = merge_model(data.get("model"), {"arch": value})
    else:
        set_path(data, key, value)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], origin: str) -> dict[str, Any]:
    """Apply ``--set`` strings in order. ``model.arch=NAME`` (or ``model={arch: NAME, ...}``)
    with a different architecture resets the model section to that architecture's defaults;
    later ``model.*`` overrides then apply to it."""
    data = copy.deepcopy(data)
    for text in overrides:
        try:
            key, value = parse_override(text)
            set_override(data, key, value)
        except SchemaError as exc:
            raise ProblemError(f"{origin} (--set {text})", exc.key, exc.message) from None
    return data


# --------------------------------------------------------------------------- validation


def load_problem(path: str | Path, overrides: Sequence[str] = ()) -> Problem:
    """Read, override (``--set`` strings ``key.path=value``) and validate a problem file."""
    origin = str(path)
    data = read_problem_file(path)
    data.setdefault("name", Path(path).stem)
    data["train"] = with_default_optimizer(data.get("train"))  # before --set: see there
    data = apply_overrides(data, overrides, origin)
    try:
        return problem_from_dict(data, origin=origin)
    except ProblemError as exc:
        override_keys = [parse_override(o)[0] for o in overrides if "=" in o]
        if any(exc.key == k or exc.key.startswith(k + ".") for k in override_keys):
            raise ProblemError(f"{origin} (--set)", exc.key, exc.reason) from None
        raise


def problem_from_dict(data: Any, origin: str = "<dict>") -> Problem:
    """Validate a plain mapping (as read from YAML) into a :class:`Problem`."""
    try:
        return _validate(data, origin)
    except SchemaError as exc:
        raise ProblemError(origin, exc.key, exc.message) from None


def _expr(
    value: Any, key: str, variables: Sequence[str], params: Mapping[str, float]
) -> Expression:
    if not (isinstance(value, str) or is_number(value)):
        raise SchemaError(key, f"expected an expression or a number, got {describe(value)}")
    try:
        return parse_expression(value, variables=variables, params=params)
    except ExpressionError as exc:
        raise SchemaError(key, str(exc)) from None


def _interval(value: Any, key: str, what: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SchemaError(key, f"expected {what}, got {describe(value)}")
    lo = as_float(value[0], join(key, 0))
    hi = as_float(value[1], join(key, 1))
    if not lo < hi:
        raise SchemaError(key, f"expected {what}, got [{lo:g}, {hi:g}]")
    return lo, hi


def _validate(data: Any, origin: str) -> Problem:
    data = as_mapping(data, "")
    check_unknown(data, TOP_KEYS, "")
    if "pde" not in data:
        raise SchemaError("pde", f"is required ({' | '.join(PDES)})")
    pde = as_choice(data["pde"], "pde", PDES)
    name = as_str(data.get("name", Path(origin).stem if origin != "<dict>" else "problem"), "name")
    if not re.match(r"^[A-Za-z0-9_.+-]{1,100}$", name):
        raise SchemaError("name", f"expected letters, digits and _.+- only, got {describe(name)}")
    description = as_str(data.get("description", ""), "description")

    # domain
    if "domain" not in data:
        raise SchemaError(
            "domain", "is required (a mapping with 'box' or 'shape' and, for heat, 'time')"
        )
    dom = as_mapping(data["domain"], "domain")
    check_unknown(dom, ("box", "shape", "time"), "domain")
    geometry = None
    if "shape" in dom and "box" in dom:
        raise SchemaError("domain.shape", "give either box or shape, not both")
    if "shape" in dom:
        geometry = geometry_from_yaml(dom["shape"], "domain.shape")
        box = geometry.bounds
    else:
        if "box" not in dom:
            raise SchemaError(
                "domain.box", "is required: one [lo, hi] per spatial axis (or give domain.shape)"
            )
        box_raw = dom["box"]
        if (
            isinstance(box_raw, (list, tuple))
            and len(box_raw) == 2
            and all(is_number(v) for v in box_raw)
        ):
            box_raw = [box_raw]  # 'box: [0, 1]' is accepted for 1D
        if not isinstance(box_raw, (list, tuple)) or not 1 <= len(box_raw) <= 3:
            raise SchemaError(
                "domain.box", f"expected 1 to 3 intervals [[lo, hi], ...], got {describe(box_raw)}"
            )
        box = tuple(
            _interval(b, join("domain.box", i), "[lo, hi] with lo < hi")
            for i, b in enumerate(box_raw)
        )
    time = None
    if pde == "heat":
        if "time" not in dom:
            raise SchemaError("domain.time", "is required for heat: expected [t0, t1]")
        time = _interval(dom["time"], "domain.time", "[t0, t1] with t0 < t1")
    elif "time" in dom and dom["time"] is not None:
        if pde == "poisson":
            raise SchemaError("domain.time", "only heat (and fit) problems have a time interval")
        time = _interval(dom["time"], "domain.time", "[t0, t1] with t0 < t1")
    domain = Domain(box=box, time=time, geometry=geometry)
    variables = domain.variables

    # params and expressions
    params_raw = as_mapping(data.get("params") or {}, "params")
    try:
        params = parse_params(params_raw, reserved=(*variables, "u"))
    except ExpressionError as exc:
        pname, _, reason = str(exc).partition(": ")
        raise SchemaError(join("params", pname), reason or str(exc)) from None

    exact = None
    if data.get("exact") is not None:
        exact = _expr(data["exact"], "exact", variables, params)

    source = None
    if pde == "fit":
        if exact is None:
            raise SchemaError("exact", "is required for pde: fit (it is the target)")
        for key in ("source", "diffusivity", "reaction", "initial", "boundary"):
            if data.get(key) is not None:
                raise SchemaError(key, "is not used by pde: fit (remove it)")
    else:
        src = data.get("source", "auto")
        if src == "auto":
            if exact is None:
                raise SchemaError(
                    "source", "'auto' derives f from 'exact', which this file does not give"
                )
        else:
            source = _expr(src, "source", variables, params)

    operator = None
    if pde != "fit":
        operator = PDEOperator(
            time=pde == "heat",
            variables=variables,
            diffusivity=_diffusivity(data.get("diffusivity"), domain, params),
            reaction=_reaction(data.get("reaction"), variables, params),
        )

    initial = None
    initial_text: Any = None
    if pde == "heat":
        initial_text = data.get("initial", "exact" if exact is not None else None)
        if initial_text is None:
            raise SchemaError("initial", "is required for heat when there is no 'exact'")
        if initial_text == "exact":
            if exact is None:
                raise SchemaError("initial", "'exact' needs an exact solution ('exact' key)")
            initial = exact
        else:
            initial = _expr(initial_text, "initial", variables, params)
    elif pde == "poisson" and data.get("initial") is not None:
        raise SchemaError("initial", "is only used by pde: heat")

    boundary: dict[str, BoundaryCondition] = {}
    if pde != "fit":
        boundary = _boundary(data.get("boundary"), domain, exact, params)

    model = validate_model_section(data.get("model"), "model")
    interface_expressions(model.get("interface", []), domain.space_dim, params)  # at load
    check_axes(model, domain.space_dim, domain.has_time)
    if geometry is not None:
        if model.get("adapt"):
            raise SchemaError("model.adapt", "needs a box domain (its error estimate is on a grid)")
        if is_auto(model):
            raise SchemaError(
                "model", "auto needs a box domain (its spectrum comes from a box solve); "
                "give sigmas or scales"
            )
    if model.get("adapt"):
        if pde == "fit":
            raise SchemaError("model.adapt", "needs an equation (poisson or heat), not pde: fit")
        if any(bc.type == "periodic" for bc in boundary.values()):
            raise SchemaError("model.adapt", "does not support periodic boundaries")
        cap = {1: 8191, 2: 1023, 3: 127}[domain.space_dim]
        if (model["adapt"].get("grid") or 0) > cap:
            raise SchemaError(
                "model.adapt.grid", f"at most {cap} points per axis in {domain.space_dim}D"
            )
    train = validate_section(with_default_optimizer(data.get("train")), TRAIN_OPTIONS, "train")
    if train["optimizer"] is not None:
        train["optimizer"] = validate_optimizer(train["optimizer"], train, "train.optimizer")
    if train["loss"] == "ritz":
        _check_ritz(pde, boundary, train)
        natural = any(bc.type in ("neumann", "robin") for bc in boundary.values())
        if geometry is not None and operator is not None and operator.anisotropic and natural:
            raise SchemaError(
                "train.loss", "ritz on a shape needs an isotropic diffusivity (the conormal "
                "flux n·(A∇u) of an oblique boundary is not a multiple of ∂u/∂n)"
            )
    diagnostics = validate_section(data.get("diagnostics"), DIAGNOSTICS_OPTIONS, "diagnostics")
    reference = validate_section(data.get("reference"), REFERENCE_OPTIONS, "reference")
    if geometry is not None and reference["method"] in ("fd", "spectral"):
        raise SchemaError(
            "reference.method",
            f"{reference['method']} needs a box domain; a shape is solved by fem (or auto)",
        )
    if geometry is None and reference["method"] == "fem":
        raise SchemaError("reference.method", "fem is for domain.shape; a box takes fd or spectral")
    if diagnostics["times"] is not None:
        if time is None:
            raise SchemaError("diagnostics.times", "only problems with a time interval have times")
        for i, tv in enumerate(diagnostics["times"]):
            if not time[0] <= tv <= time[1]:
                raise SchemaError(
                    join("diagnostics.times", i),
                    f"expected a time in [{time[0]:g}, {time[1]:g}], got {tv:g}",
                )

    truth = _truth(data.get("truth"), origin, domain) if data.get("truth") is not None else None
    if geometry is not None and geometry.dim == 1 and exact is None and truth is None:
        raise SchemaError(
            "domain.shape",
            "a 1D shape needs 'exact' or 'truth: {file: ...}' (the finite-element reference "
            "is 2D and 3D; a 1D box takes the box solvers)",
        )

    config: dict[str, Any] = {"name": name}
    if description:
        config["description"] = description
    if params_raw:
        config["params"] = dict(params_raw)
    config["pde"] = pde
    if operator is not None and (pde == "heat" or data.get("diffusivity") is not None):
        config["diffusivity"] = _diffusivity_config(operator)
    if operator is not None and operator.reaction is not None:
        config["reaction"] = operator.reaction.text
    if pde != "fit":
        config["source"] = "auto" if source is None else source.text
    config["domain"] = (
        {"box": [list(b) for b in box]}
        if geometry is None
        else {"shape": shape_to_yaml(geometry.shape)}
    )
    if time is not None:
        config["domain"]["time"] = list(time)
    if exact is not None:
        config["exact"] = exact.text
    if pde == "heat":
        config["initial"] = "exact" if initial_text == "exact" else initial.text  # type: ignore[union-attr]
    if pde != "fit":
        config["boundary"] = copy.deepcopy(data.get("boundary"))
    config["model"] = model
    config["train"] = copy.deepcopy(train)
    if train["optimizer"] is not None:  # as a file writes it: [adam, {gauss-newton: {...}}]
        config["train"]["optimizer"] = [
            e["name"] if len(e) == 1 else {e["name"]: {k: v for k, v in e.items() if k != "name"}}
            for e in train["optimizer"]
        ]
    config["diagnostics"] = diagnostics
    if data.get("reference") is not None:
        config["reference"] = reference
    if truth is not None:
        config["truth"] = {"file": str(truth.path), "sha256": truth.sha256}

    return Problem(
        name=name,
        pde=pde,
        domain=domain,
        params=params,
        exact=exact,
        source=source,
        operator=operator,
        initial=initial,
        boundary=boundary,
        model=model,
        train=train,
        diagnostics=diagnostics,
        description=description,
        origin=origin,
        config=config,
        truth=truth,
    )


def _truth(raw: Any, origin: str, domain: Domain) -> TruthData:
    """``truth: {file: PATH[, sha256: HEX]}``: the file read and checked against the
    problem's columns and bounding box (a relative path is relative to the problem file)."""
    spec = as_mapping(raw, "truth")
    check_unknown(spec, ("file", "sha256"), "truth")
    if "file" not in spec:
        raise SchemaError("truth.file", "is required (a data file: columns x[, y, z][, t], u)")
    name = as_str(spec["file"], "truth.file")
    path = Path(name).expanduser()
    if not path.is_absolute() and origin != "<dict>":
        path = Path(origin).resolve().parent / path
    data = read_truth(path.resolve(), domain.variables, "truth.file")
    want = spec.get("sha256")
    if want is not None and as_str(want, "truth.sha256") != data.sha256:
        raise SchemaError(
            "truth.sha256", f"{data.path} has changed since this configuration was written"
        )
    lo = np.array([b[0] for b in domain.bounds])
    hi = np.array([b[1] for b in domain.bounds])
    tol = 1e-5 * (hi - lo)
    outside = np.any((data.points < lo - tol) | (data.points > hi + tol), axis=1)
    if domain.geometry is not None:  # inside the shape, or on its boundary (FEM nodes)
        geo = domain.geometry
        sd = domain.space_dim
        near = np.zeros(len(data.points), dtype=bool)
        for leaf, _ in geo.leaves:
            near |= leaf.on_surface(data.points[:, :sd], 1e-5 * float(np.max(hi[:sd] - lo[:sd])))
        outside |= ~(geo.shape.contains(data.points[:, :sd]) | near)
    if outside.any():
        i = int(np.argmax(outside))
        where = ", ".join(f"{v}={c:.6g}" for v, c in zip(domain.variables, data.points[i]))
        raise SchemaError(
            "truth.file",
            f"{data.path}: point {where} (data row {i + 1}) is outside the domain (by more "
            "than 1e-5 of its size: if it is a boundary node, write more digits)",
        )
    return data


def _diffusivity(raw: Any, domain: Domain, params: Mapping[str, float]) -> tuple[Expression, ...]:
    """a: a number, an expression of x (and t), or one entry per spatial axis."""
    if raw is None:
        return (parse_expression(1.0, variables=domain.variables),)
    entries = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, list) and len(raw) != domain.space_dim:
        raise SchemaError(
            "diffusivity",
            f"expected one entry per axis ({domain.space_dim} for {', '.join(domain.axes)}),"
            f" got {len(raw)}",
        )
    out = []
    for i, item in enumerate(entries):
        key = join("diffusivity", i) if isinstance(raw, list) else "diffusivity"
        try:
            expr = _expr(item, key, domain.variables, params)
        except SchemaError:
            with_u = isinstance(item, str)
            if with_u:
                try:
                    parse_expression(item, variables=(*domain.variables, "u"), params=params)
                except ExpressionError:
                    with_u = False
            if with_u:
                raise SchemaError(
                    key,
                    "may not depend on u (a is a coefficient of x"
                    + (" and t" if domain.has_time else "")
                    + "; put u-dependence in 'reaction')",
                ) from None
            raise
        if expr.is_constant:
            as_float(expr.constant_value, key, positive=True)
        out.append(expr)
    return tuple(out)


def _diffusivity_config(operator: PDEOperator) -> Any:
    """The diffusivity as a file writes it (numbers as numbers)."""
    items = [
        float(e.constant_value) if e.is_constant else e.text  # type: ignore[arg-type]
        for e in operator.diffusivity
    ]
    return items if operator.anisotropic else items[0]


def _reaction(raw: Any, variables: Sequence[str], params: Mapping[str, float]) -> Expression | None:
    """r(x[, t], u): an expression that may use u; None when absent."""
    if raw is None:
        return None
    return _expr(raw, "reaction", (*variables, "u"), params)


def _check_ritz(
    pde: str, boundary: Mapping[str, BoundaryCondition], train: Mapping[str, Any]
) -> None:
    """The Ritz energy exists for the elliptic problem with Dirichlet (penalty), Neumann and
    Robin (natural) conditions; refuse the rest in one line."""
    if pde != "poisson":
        raise SchemaError(
            "train.loss", f"ritz is the energy of an elliptic problem: pde: poisson only, got {pde}"
        )
    periodic = sorted(f for f, bc in boundary.items() if bc.type == "periodic")
    if periodic:
        raise SchemaError(
            "train.loss",
            f"ritz does not take periodic conditions (faces {', '.join(periodic)}); "
            "use loss: residual",
        )
    for i, entry in enumerate(train["optimizer"] or []):
        if entry["name"] == "gauss-newton" and entry.get("form") == "dual":
            raise SchemaError(
                join("train.optimizer", i) + ".gauss-newton.form",
                "the Ritz energy's Gauss-Newton step has no dual form (use primal or auto)",
            )


def _faces(value: Any, key: str, domain: Domain) -> list[str]:
    valid = domain.faces
    if value == "all":
        return list(valid)
    items = [value] if isinstance(value, str) else value
    what = "a face or a list of faces" if domain.is_box else "a part name or a list of names"
    if not isinstance(items, list) or not items:
        raise SchemaError(key, f"expected all, {what}, got {describe(value)}")
    out: list[str] = []
    for i, f in enumerate(items):
        if f == "all":
            out.extend(valid)
            continue
        if not isinstance(f, str) or f not in valid:
            extra = ""
            if domain.geometry is not None:
                given = domain.geometry.shape.names()
                if isinstance(f, str) and f in given:
                    extra = f" ('{f}' names no part of the domain's boundary)"
                elif isinstance(f, str) and f in face_names(3):
                    extra = " (box faces are not parts of a shape: name the box)"
            elif isinstance(f, str) and f in face_names(3):
                extra = f" (a {domain.space_dim}D box has no face {f})"
            raise SchemaError(
                join(key, i) if isinstance(value, list) else key,
                f"expected all or one of {', '.join(valid)}, got {describe(f)}{extra}",
            )
        out.append(f)
    return list(dict.fromkeys(out))


def _boundary(
    raw: Any, domain: Domain, exact: Expression | None, params: Mapping[str, float]
) -> dict[str, BoundaryCondition]:
    if raw is None:
        raise SchemaError("boundary", "is required: a list of conditions (start with faces: all)")
    if not isinstance(raw, list) or not raw:
        raise SchemaError("boundary", f"expected a list of conditions, got {describe(raw)}")
    resolved: dict[str, BoundaryCondition] = {}
    origin_of: dict[str, int] = {}
    for i, entry in enumerate(raw):
        key = join("boundary", i)
        entry = as_mapping(entry, key)
        check_unknown(entry, ("faces", "type", "value", "alpha"), key)
        if "type" not in entry:
            raise SchemaError(join(key, "type"), f"is required ({' | '.join(BOUNDARY_TYPES)})")
        btype = as_choice(entry["type"], join(key, "type"), BOUNDARY_TYPES)
        faces = _faces(entry.get("faces", "all"), join(key, "faces"), domain)
        value: Expression | None = None
        from_exact = False
        alpha: Expression | None = None
        if btype == "robin":
            if entry.get("alpha") is None:
                raise SchemaError(
                    join(key, "alpha"), "is required for robin (du/dn + alpha u = value)"
                )
            alpha = _expr(entry["alpha"], join(key, "alpha"), domain.variables, params)
        elif entry.get("alpha") is not None:
            raise SchemaError(join(key, "alpha"), f"is only used by type: robin, not {btype}")
        if btype == "periodic":
            if not domain.is_box:
                raise SchemaError(join(key, "type"), "periodic conditions need a box domain")
            if entry.get("value") is not None:
                raise SchemaError(join(key, "value"), "a periodic condition takes no value")
            for f in faces:
                partner = f[0] + ("+" if f.endswith("-") else "-")
                if partner not in faces:
                    raise SchemaError(
                        join(key, "faces"),
                        f"periodic needs both faces of an axis ({f[0]}- and {f[0]}+), got {f} only",
                    )
        else:
            if "value" not in entry or entry["value"] is None:
                raise SchemaError(
                    join(key, "value"), "is required (an expression, a number or exact)"
                )
            if entry["value"] == "exact":
                if exact is None:
                    raise SchemaError(
                        join(key, "value"), "'exact' needs an exact solution ('exact' key)"
                    )
                value, from_exact = exact, True
            else:
                value = _expr(entry["value"], join(key, "value"), domain.variables, params)
        for f in faces:
            resolved[f] = BoundaryCondition(f, btype, value, from_exact, alpha)
            origin_of[f] = i
    missing = [f for f in domain.faces if f not in resolved]
    if missing:
        what = "face(s)" if domain.is_box else "boundary part(s)"
        every = "every face" if domain.is_box else "every part of the boundary"
        hint = "" if domain.is_box else " (parts of shapes without a name are 'unnamed')"
        raise SchemaError(
            "boundary", f"no condition on {what} {', '.join(missing)} ({every} needs one){hint}"
        )
    for f, bc in resolved.items():
        partner = f[0] + ("+" if f.endswith("-") else "-")
        if bc.type == "periodic" and resolved[partner].type != "periodic":
            raise SchemaError(
                join("boundary", origin_of[partner]),
                f"face {partner} overrides half of the periodic pair {f[0]}-/{f[0]}+",
            )
    return resolved
