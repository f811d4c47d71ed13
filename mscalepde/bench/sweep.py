"""Sweep files: the problems, model variants, seeds and budget of a comparison.

A sweep file is YAML, read by the same guarded reader as a problem file (size, aliases,
nesting: :mod:`mscalepde.io`) and validated like one (one line naming the file and key)::

    problems: [../problems/poisson1d_multiscale.yaml, ../problems/heat1d.yaml]
    models:                       # named variants: partial model:/train: overrides
      mlp: {model: {arch: mlp, width: 64, depth: 3}}
      mff: {model: {arch: mff, sigmas: [1, 10]}}
      own: {}                     # each problem's own model and training
      adam: {train: {optimizer: [adam], steps: 5000}}
    seeds: [0, 1, 2]
    budget: {seconds: 20}         # equal training time per run; or {steps: N}; optional
    set: [train.log_every=10]     # --set overrides for every run (optional)

Problem paths are relative to the sweep file. A variant's ``model`` is merged into the
problem's model section (naming another ``arch`` starts from that architecture's defaults,
as ``--set model.arch=`` does), its ``train`` into the train section, key by key. The budget
becomes ``train.budget_seconds`` or ``train.budget_steps`` of every run
(:mod:`mscalepde.training.trainer`): runs end at the step boundary where it is spent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mscalepde.errors import ProblemError, SchemaError
from mscalepde.io import read_yaml
from mscalepde.problem.overrides import parse_override
from mscalepde.schema import as_float, as_int, check_unknown, describe

SWEEP_KEYS = ("description", "problems", "models", "seeds", "budget", "set")
#: Limits of a sweep file, checked before any run starts (validation stays under a second).
MAX_PROBLEMS, MAX_MODELS, MAX_SEEDS, MAX_RUNS = 100, 100, 1000, 10_000
VARIANT_KEYS = ("model", "train")


@dataclass
class Variant:
    """A named model variant: partial ``model`` and ``train`` sections."""

    label: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    replace_model: bool = False  # the command line's --model: the section replaces the file's

    def overrides(self) -> list[str]:
        """The variant as ``--set`` strings (``model.arch`` first)."""
        sets = []
        if self.replace_model and self.model:
            return [f"model={_flow(self.model)}", *_dotted("train", self.train)]
        model = dict(self.model)
        if "arch" in model:
            sets.append(f"model.arch={_flow(model.pop('arch'))}")
        sets += _dotted("model", model)
        sets += _dotted("train", self.train)
        return sets


@dataclass
class Sweep:
    """A validated sweep file."""

    origin: str
    problems: list[Path]
    variants: list[Variant]
    seeds: list[int]
    budget: dict[str, float] = field(default_factory=dict)  # {"seconds": s} | {"steps": n}
    sets: list[str] = field(default_factory=list)

    def overrides(self) -> list[str]:
        """``--set`` strings for every run: the file's ``set`` list and the budget."""
        out = list(self.sets)
        if "seconds" in self.budget:
            out.append(f"train.budget_seconds={self.budget['seconds']}")
        if "steps" in self.budget:
            out.append(f"train.budget_steps={int(self.budget['steps'])}")
        return out


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix(
        "\n..."
    )


def _dotted(prefix: str, section: Mapping[str, Any]) -> list[str]:
    out = []
    for key, value in section.items():
        path = f"{prefix}.{key}"
        if isinstance(value, Mapping) and value:
            out += _dotted(path, value)
        else:
            out.append(f"{path}={_flow(value)}")
    return out


def _is_sweep(data: Any) -> bool:
    """A mapping with no ``pde`` and one of the sweep's own keys: a sweep, not a problem,
    so that a sweep file that forgot ``problems`` is told so as a sweep."""
    return (
        isinstance(data, Mapping)
        and "pde" not in data
        and any(k in data for k in ("problems", "models", "seeds", "budget"))
    )


def read_sweep(path: str | Path) -> Sweep | None:
    """The sweep in ``path``, validated (:class:`ProblemError` names the file and key), or
    None when ``path`` is not a sweep file (e.g. a problem file). The file is read once."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        return None
    try:
        data = read_yaml(path, "sweep file")  # the problem files' guards: size, aliases, depth
    except ProblemError:
        return None  # not readable as a sweep: the problem path reports it
    if not _is_sweep(data):
        return None
    try:
        return _validate(data, path)
    except SchemaError as exc:
        raise ProblemError(str(path), exc.key, exc.message) from None


def is_sweep_file(path: str | Path) -> bool:
    """True when ``path`` is a YAML mapping that is a sweep (see :func:`_is_sweep`)."""
    p = Path(path)
    if p.suffix not in (".yaml", ".yml"):
        return False
    try:
        return _is_sweep(read_yaml(p, "sweep file"))
    except ProblemError:
        return False


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; :class:`ProblemError` names the file and key."""
    path = Path(path)
    data = read_yaml(path, "sweep file")  # the problem files' guards: size, aliases, depth
    try:
        return _validate(data, path)
    except SchemaError as exc:
        raise ProblemError(str(path), exc.key, exc.message) from None


def _validate(data: Any, path: Path) -> Sweep:
    if not isinstance(data, Mapping):
        raise SchemaError("", f"expected a mapping with {', '.join(SWEEP_KEYS)}, "
                              f"got {describe(data)}")
    check_unknown(data, SWEEP_KEYS, "")
    for key in ("problems", "models"):
        if key not in data:
            raise SchemaError(key, "is required")
    raw_problems = data["problems"]
    if isinstance(raw_problems, list) and len(raw_problems) > MAX_PROBLEMS:
        raise SchemaError("problems", f"at most {MAX_PROBLEMS} problems, got {len(raw_problems)}")
    if not isinstance(raw_problems, list) or not raw_problems:
        raise SchemaError("problems", f"expected a non-empty list of problem files, "
                                      f"got {describe(raw_problems)}")
    problems = []
    for i, item in enumerate(raw_problems):
        if not isinstance(item, str):
            raise SchemaError(f"problems[{i}]", f"expected a file name, got {describe(item)}")
        p = Path(item) if Path(item).is_absolute() else path.parent / item
        if not p.is_file():
            raise SchemaError(f"problems[{i}]", f"no such problem file: {p}")
        problems.append(p)
    models = data["models"]
    if not isinstance(models, Mapping) or not models:
        raise SchemaError("models", f"expected a mapping of named variants, got "
                                    f"{describe(models)}")
    if len(models) > MAX_MODELS:
        raise SchemaError("models", f"at most {MAX_MODELS} variants, got {len(models)}")
    variants = []
    for label, body in models.items():
        key = f"models.{label}"
        body = {} if body is None else body
        if not isinstance(body, Mapping):
            raise SchemaError(key, f"expected a mapping with model and/or train, got "
                                   f"{describe(body)}")
        check_unknown(body, VARIANT_KEYS, key)
        parts = {}
        for part in VARIANT_KEYS:
            value = body.get(part)
            value = {} if value is None else value
            if not isinstance(value, Mapping):
                raise SchemaError(f"{key}.{part}", f"expected a mapping, got {describe(value)}")
            parts[part] = dict(value)
        variants.append(Variant(str(label), parts["model"], parts["train"]))
    seeds_raw = data.get("seeds", [0])
    seeds_raw = seeds_raw if isinstance(seeds_raw, list) else [seeds_raw]
    if not seeds_raw:
        raise SchemaError("seeds", "expected at least one seed")
    if len(seeds_raw) > MAX_SEEDS:
        raise SchemaError("seeds", f"at most {MAX_SEEDS} seeds, got {len(seeds_raw)}")
    if isinstance(data.get("seeds"), Mapping):
        raise SchemaError("seeds", f"expected a list of integers, got {describe(seeds_raw)}")
    seeds = [as_int(s, f"seeds[{i}]", 0, 2**32 - 1) for i, s in enumerate(seeds_raw)]
    if len(set(seeds)) != len(seeds):
        raise SchemaError("seeds", f"a seed is listed twice: {seeds}")
    runs = len(problems) * len(variants) * len(seeds_raw)
    if runs > MAX_RUNS:
        raise SchemaError("", f"at most {MAX_RUNS} runs (problems x models x seeds), got {runs}")
    budget: dict[str, float] = {}
    raw_budget = data.get("budget")
    if raw_budget is not None:
        if not isinstance(raw_budget, Mapping) or len(raw_budget) != 1:
            raise SchemaError("budget", f"expected {{seconds: S}} or {{steps: N}}, got "
                                        f"{describe(raw_budget)}")
        check_unknown(raw_budget, ("seconds", "steps"), "budget")
        if "seconds" in raw_budget:
            budget["seconds"] = as_float(raw_budget["seconds"], "budget.seconds", positive=True)
        else:
            budget["steps"] = as_int(raw_budget["steps"], "budget.steps", 1)
    sets = data.get("set") or []
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        raise SchemaError("set", f"expected a list of KEY=VALUE strings, got {describe(sets)}")
    return Sweep(str(path), problems, variants, seeds, budget, list(sets))


@dataclass
class ModelSpec:
    """A model section given on the command line: ``NAME KEY=VALUE ...`` (an empty
    section keeps each problem file's own model)."""

    label: str
    section: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        tokens = text.split()
        if not tokens:
            raise ProblemError("--model", "", "expected NAME [KEY=VALUE ...]")
        section: dict[str, Any] = {"arch": tokens[0]}
        for tok in tokens[1:]:
            key, sep, value = tok.partition("=")
            if not sep or not key:
                raise ProblemError(f"--model {text!r}", tok, "expected KEY=VALUE")
            try:  # the --set rules and guards (depth)
                section[key] = parse_override(f"{key}={value}")[1]
            except SchemaError as exc:
                raise ProblemError("--model", key, exc.message) from None
        return cls(label=text.strip(), section=section)


def variants_from_specs(specs: Sequence[Any]) -> list[Variant]:
    """Command-line ``--model 'NAME KEY=VALUE ...'`` specs as variants (a spec's section
    replaces the problem's model section; an empty one keeps it)."""
    return [Variant(s.label, dict(s.section), {}, replace_model=True) for s in specs]
