"""The editors' JSON Schema (draft 2020-12) of a problem file, generated from the validators.

``mscalepde schema --out problems/mscalepde.schema.json`` writes it; the problem files name
it on their first line (``# yaml-language-server: $schema=mscalepde.schema.json``), so that
VS Code and other editors complete keys, show each option's help and flag mistakes.

What it covers: every key of every section, built from the same :class:`~mscalepde.schema.Option`
dicts the validators use (``TRAIN_OPTIONS``, the optimiser phases, ``DIAGNOSTICS_OPTIONS``,
``REFERENCE_OPTIONS``, each architecture's options, ``model.auto``/``model.adapt``): an
option built with ``int_option``, ``float_option``, ``choice_option``, ``switch_option`` or
``bool_option`` carries its own JSON fragment (type, bounds, enum), so adding one appears here
without a second edit. Unknown keys are refused wherever the validator refuses them, each
property carries the option's help text and default. The parts validated by hand-written code
(the top-level keys of ``problem/validate.py``, shapes of ``geometry/shapes_yaml.py``, options
with their own parse functions) are described in :data:`HAND_WRITTEN`, :func:`_top` and
:func:`_shape`, next to a reference to their validator; ``problem_json_schema(strict=True)``
(the tests) fails on an option or top-level key that is described nowhere.

What it cannot express, and leaves to ``mscalepde check``: the expression grammar and the
names an expression may use; parameter values; cross-key rules beyond the simplest (periodic
pairs, faces that exist, every face covered, ``adapt`` only on growable architectures, per-axis
σ lengths, ritz only for Poisson, ``min_damping <= damping``); increasing band edges; shape
geometry (simple polygons, non-empty domains, dimensions); the bounds of numbers written as
strings (YAML 1.1 reads ``1e-3`` as a string); data files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mscalepde.architectures import ARCHITECTURES, COMMON_OPTIONS
from mscalepde.architectures import options as arch
from mscalepde.diagnostics.options import DIAGNOSTICS_OPTIONS, MAX_PROBES
from mscalepde.geometry import face_names
from mscalepde.geometry.box import MAX_DIM
from mscalepde.geometry.shapes import OPERATIONS, PRIMITIVES, UNNAMED
from mscalepde.geometry.shapes_yaml import MAX_VERTICES
from mscalepde.io import atomic_write_text
from mscalepde.problem.inverse import TRANSFORMS
from mscalepde.problem.model import BOUNDARY_TYPES, PDES, TOP_KEYS
from mscalepde.reference.options import REFERENCE_OPTIONS
from mscalepde.schema import Option, Parser, float_json, int_json
from mscalepde.training.options import DEFAULT_POINTS, OPTIMIZERS, TRAIN_OPTIONS, _phase_options

JSON = dict[str, Any]
DRAFT = "https://json-schema.org/draft/2020-12/schema"
NULL: JSON = {"type": "null"}
EXPR: JSON = {"$ref": "#/$defs/expression"}
NUMBER = float_json()  # a number, or a string as_float reads as one
INTERVAL: JSON = {"type": "array", "items": NUMBER, "minItems": 2, "maxItems": 2}
#: a coefficient from data (problem/coefficients.py): a file, or piecewise-constant blocks
DATA: JSON = {"oneOf": [
    {"type": "object", "required": ["file"], "additionalProperties": False, "properties": {
        "file": {"type": "string", "description": "columns x[, y, z][, t], value"},
        "interpolate": {"enum": ["linear", "nearest"], "default": "linear"},
        "time": {"type": "boolean", "default": False}, "sha256": {"type": "string"}}},
    {"type": "object", "required": ["blocks"], "additionalProperties": False, "properties": {
        "blocks": {"type": "object", "required": ["values"], "properties": {
            "x": {"type": "array", "items": NUMBER}, "y": {"type": "array", "items": NUMBER},
            "z": {"type": "array", "items": NUMBER}, "values": {"type": "array"}},
            "additionalProperties": False}}},
]}


def or_null(frag: JSON) -> JSON:
    if set(frag) == {"anyOf"}:
        return {"anyOf": [*frag["anyOf"], NULL]}
    return {"anyOf": [frag, NULL]}


def array(items: JSON, least: int = 0, most: int | None = None) -> JSON:
    out: JSON = {"type": "array", "items": items}
    if least:
        out["minItems"] = least
    if most is not None:
        out["maxItems"] = most
    return out


def obj(properties: Mapping[str, JSON], required: tuple[str, ...] = ()) -> JSON:
    out: JSON = {"type": "object", "properties": dict(properties), "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


class _Builder:
    """Turns Option dicts into JSON; ``strict`` refuses an option described nowhere."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict

    def option(self, opt: Option, path: str, defaults: bool = True) -> JSON:
        if isinstance(opt.parse, Parser):
            frag = dict(opt.parse.json)
        elif path in HAND_WRITTEN:
            frag = HAND_WRITTEN[path](self)
        elif self.strict:
            raise ValueError(f"{path}: no JSON Schema (add it to editor_schema.HAND_WRITTEN)")
        else:
            frag = {}
        if opt.default is None and frag:  # validate_section: null keeps a None default
            frag = or_null(frag)
        frag["description"] = opt.doc or path
        if defaults and opt.default is not None:
            frag["default"] = opt.default
        return frag

    def section(self, options: Mapping[str, Option], path: str, defaults: bool = True) -> JSON:
        """``validate_section``: the options, nothing else (null is the empty section)."""
        return obj({k: self.option(o, f"{path}.{k}", defaults) for k, o in options.items()})


# --- options with their own parse functions --------------------------------------------

def _decay(b: _Builder) -> JSON:  # training/options.py _decay
    section = obj({"every": {**int_json(1), "description": "steps between decays"},
                   "factor": {**float_json(positive=True, maximum=1.0),
                              "description": "lr multiplier"}})
    return {"anyOf": [section, {"const": False}]}


def _per_term(key: str, frag: JSON) -> Callable[[_Builder], JSON]:
    """``train.points``/``train.weights``: one entry per loss term (keys from the default)."""
    terms = TRAIN_OPTIONS[key].default
    if key == "points":  # or ``auto``: by dimension (training/options.py default_points)
        return lambda b: {"anyOf": [
            or_null(obj({t: {**frag, "description": f"{key}: {t} (default: by dimension)"}
                         for t in DEFAULT_POINTS[2]})),
            {"const": "auto", "description": "points by dimension (the package default)"},
        ]}
    return lambda b: or_null(obj({t: {**frag, "default": v, "description": f"{key}: {t}"}
                                  for t, v in terms.items()}))


def _optimizer(b: _Builder) -> JSON:  # training/options.py validate_optimizer
    train = {k: o.default for k, o in TRAIN_OPTIONS.items()}
    phases = [
        obj({n: or_null(b.section(_phase_options(n, train), f"train.optimizer.{n}", False))},
            required=(n,))
        for n in OPTIMIZERS
    ]
    name = {"enum": list(OPTIMIZERS)}
    return {"anyOf": [name, array({"anyOf": [name, *phases]}, least=1)]}


def _sigma(b: _Builder) -> JSON:  # architectures/options.py parse_sigma
    positive = float_json(positive=True)
    return {"anyOf": [*positive["anyOf"], array(positive, least=1)]}


def _sigmas(b: _Builder) -> JSON:  # parse_sigmas, with auto_or
    return {"anyOf": [{"const": arch.AUTO}, _sigma(b), array(_sigma(b), least=1)]}


def _scales(b: _Builder) -> JSON:  # parse_scales, with auto_or
    kinds = obj({"kind": {"enum": list(arch.SCALE_KINDS)}, "n": int_json(1, 64)},
                required=("kind", "n"))
    return {"anyOf": [{"const": arch.AUTO}, array(float_json(positive=True), least=1), kinds]}


def _grown(b: _Builder) -> JSON:  # grown_option: [[sigma, seed], ...]
    pair = {"type": "array", "prefixItems": [_sigma(b), int_json(0, 2**63 - 1)],
            "minItems": 2, "maxItems": 2}
    return array(pair)


HAND_WRITTEN: dict[str, Callable[[_Builder], JSON]] = {
    "train.decay": _decay,
    "train.optimizer.adam.decay": _decay,
    "train.points": _per_term("points", int_json(1, 10_000_000)),
    "train.weights": _per_term("weights", float_json(minimum=0.0)),
    "train.time_windows": lambda b: {  # training/options._time_windows
        "anyOf": [int_json(1, 1000), obj({"length": float_json(positive=True)}, ("length",))]
    },
    "train.optimizer": _optimizer,
    "model.interface": lambda b: {  # interface_option
        "anyOf": [{"type": "string", "pattern": r"\S"},
                  array({"type": "string", "pattern": r"\S"}, most=arch.MAX_INTERFACES)]},
    "model.auto": lambda b: b.section(arch.AUTO_SETTINGS, "model.auto"),
    "model.adapt": lambda b: {  # adapt_option
        "anyOf": [{"type": "boolean"}, b.section(arch.ADAPT_SETTINGS, "model.adapt")]},
    "model.grown": _grown,
    "model.scales": _scales,
    "model.variant": lambda b: {"enum": [1, 2]},  # parse_variant
    "model.sigma": lambda b: {"anyOf": [{"const": arch.AUTO}, *_sigma(b)["anyOf"]]},
    "model.sigmas": _sigmas,
    "model.sigmas_x": _sigmas,
    "model.sigmas_t": _sigmas,
    "diagnostics.times": lambda b: {"anyOf": [NUMBER, array(NUMBER, least=1)]},  # _times
    "diagnostics.bands": lambda b: array(float_json(minimum=0.0), least=2),  # _band_edges
    "diagnostics.probes": lambda b: {  # _probes; their place in Ω: validate._check_probes
        "type": "object",
        "maxProperties": MAX_PROBES,
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "additionalProperties": {"anyOf": [NUMBER, array(NUMBER, least=1, most=MAX_DIM)]},
    },
    "reference.order": lambda b: {"enum": [2, 4]},  # _reference_order
    "reference.element": lambda b: {"enum": [1, 2]},  # _element_order
}


# --- sections ---------------------------------------------------------------------------

def _model(b: _Builder) -> JSON:
    """``architectures.validate_model_section``: ``arch`` picks the options allowed."""
    names = [*ARCHITECTURES, arch.AUTO]
    arch_json = {"enum": names, "default": "mlp", "description": "architecture name"}
    common = {k: b.option(o, f"model.{k}") for k, o in COMMON_OPTIONS.items()}
    branches, union = [], {"arch": arch_json}
    for name in names:
        options = ARCHITECTURES.options(name) if name != arch.AUTO else {}
        own = {k: b.option(o, f"model.{k}") for k, o in options.items()}
        union.update({k: {"description": v["description"]} for k, v in own.items()})
        cond: JSON = {"properties": {"arch": {"const": name}}, "required": ["arch"]}
        if name == "mlp":  # the default
            cond = {"anyOf": [cond, {"not": {"required": ["arch"]}}]}
        # common keys (and arch) are checked by the outer properties: here, only allowed
        allowed = {k: True for k in ("arch", *common)}
        branches.append({"if": cond, "then": obj({**allowed, **own})})
    return {"type": ["object", "null"], "description": "the network (README: Architectures)",
            "properties": {**union, **common}, "allOf": branches}


def _shape() -> JSON:
    """``geometry/shapes_yaml.py`` ``_parse``: one primitive or operation, plus a name."""
    point = {"anyOf": [{"type": "number"}, array(NUMBER, 1, MAX_DIM)]}
    radii = float_json(positive=True)
    kinds: dict[str, JSON] = {
        "box": _box({"type": "number"}),
        "ball": obj({"center": point, "radius": {"type": "number", "exclusiveMinimum": 0}},
                    ("center", "radius")),
        "ellipse": obj({"center": array(NUMBER, 2, 2), "radii": array(radii, 2, 2)},
                       ("center", "radii")),
        "ellipsoid": obj({"center": array(NUMBER, 3, 3), "radii": array(radii, 3, 3)},
                         ("center", "radii")),
    }
    vertices = array(array({"type": "number"}, 2, 2), 3, MAX_VERTICES)
    kinds["polygon"] = {"anyOf": [vertices, obj({"vertices": vertices}, ("vertices",))]}
    for op in OPERATIONS:
        kinds[op] = array({"$ref": "#/$defs/shape"}, least=2 if op == "difference" else 1)
    missing = set(PRIMITIVES + OPERATIONS) - set(kinds)
    if missing:
        raise ValueError(f"domain.shape: no JSON Schema for {sorted(missing)}")
    name = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$",
            "not": {"enum": ["all", UNNAMED, *face_names(3)]},
            "description": "names the shape's boundary for boundary.faces"}
    out = obj({**kinds, "name": name})
    out["oneOf"] = [{"required": [k]} for k in kinds]
    out["description"] = f"one of {', '.join(kinds)}, plus an optional name"
    return out


def _box(number: JSON) -> JSON:
    """A box: one ``[lo, hi]`` per axis (1 to ``MAX_DIM``), or ``[lo, hi]`` alone in 1D."""
    return {"anyOf": [array({"type": "number"}, 2, 2), array(array(number, 2, 2), 1, MAX_DIM)]}


def _top(b: _Builder) -> dict[str, JSON]:
    """The top-level keys (``problem/validate.py`` ``_validate``, ``_domain``, ``_boundary``,
    ``_truth``; the sections from their Option dicts)."""
    condition = obj({
        "faces": {"anyOf": [{"type": "string"}, array({"type": "string"}, least=1)],
                  "default": "all", "description": "all, box faces (x-, x+, ...) or shape names"},
        "type": {"enum": list(BOUNDARY_TYPES), "description": "the kind of condition"},
        "value": {**or_null(EXPR), "description": "g: an expression, a number or exact"},
        "alpha": {**or_null(EXPR), "description": "robin: du/dn + alpha u = value"},
    }, ("type",))
    condition["allOf"] = [
        {"if": {"properties": {"type": {"const": "robin"}}},
         "then": {"required": ["alpha"], "properties": {"alpha": EXPR}},
         "else": {"properties": {"alpha": NULL}}},
        {"if": {"properties": {"type": {"const": "periodic"}}},
         "then": {"properties": {"value": NULL}},
         "else": {"required": ["value"], "properties": {"value": EXPR}}},
    ]
    axes = "one [lo, hi] per axis: x, y, z (x1 ... xd above 3D)"
    domain = obj({"box": {**_box(NUMBER), "description": axes},
                  "shape": {"$ref": "#/$defs/shape", "description": "a domain beyond boxes"},
                  "time": {**or_null(INTERVAL), "description": "[t0, t1] (heat; fit optional)"}})
    domain["oneOf"] = [{"required": ["box"]}, {"required": ["shape"]}]
    return {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.+-]{1,100}$",
                 "description": "the problem's name (default: the file's stem)"},
        "description": {"type": "string", "description": "free text"},
        "params": {**or_null({"type": "object", "additionalProperties": EXPR,
                              "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}),
                   "description": "named constants: numbers or expressions of earlier ones"},
        "pde": {"enum": list(PDES), "description": "poisson | heat | fit"},
        "diffusivity": {**or_null({"anyOf": [EXPR, DATA, array({"anyOf": [EXPR, DATA]}, 1,
                                                                 MAX_DIM)]}),
                        "description": "a > 0: an expression, data, or one per axis"},
        "reaction": {**or_null({"anyOf": [EXPR, DATA]}),
                     "description": "r(x, [t,] u) in -div(a grad u) + r = f (data: r(x))"},
        "source": {**or_null({"anyOf": [EXPR, DATA]}),
                   "description": "f: an expression, a number, data or auto"},
        "domain": {**domain, "description": "box or shape, and time for heat"},
        "exact": {**or_null(EXPR), "description": "the exact solution (fit: the target)"},
        "initial": {**or_null(EXPR), "description": "heat: u at t0 (an expression or exact)"},
        "boundary": {**or_null(array(condition, least=1)),
                     "description": "conditions in order; a later one overrides"},
        "model": _model(b),
        "train": {**or_null(b.section(TRAIN_OPTIONS, "train")), "description": "training"},
        "diagnostics": {**or_null(b.section(DIAGNOSTICS_OPTIONS, "diagnostics")),
                        "description": "the spectral diagnostics"},
        "reference": {**or_null(b.section(REFERENCE_OPTIONS, "reference")),
                      "description": "the classical reference solver"},
        "truth": {**or_null(obj({"file": {"type": "string"}, "sha256": {"type": "string"}},
                                ("file",))),
                  "description": "errors at a data file's points"},
        **_inverse(b),
    }


def _inverse(b: _Builder) -> dict[str, JSON]:
    """``unknowns`` and ``observations`` (``problem/inverse.py``)."""
    scalar = obj({
        "initial": {**NUMBER, "description": "the starting value"},
        "lower": {**or_null(NUMBER), "description": "lower bound (open)"},
        "upper": {**or_null(NUMBER), "description": "upper bound (open)"},
        "transform": {"enum": list(TRANSFORMS), "default": "auto",
                      "description": "map from the trained raw parameter to the value"},
        "exact": {**or_null(NUMBER), "description": "the true value (errors, exact data)"},
    }, ("initial",))
    field = obj({
        "field": {**_model(b), "description": "the field's network"},
        "positive": {"type": "boolean", "default": True, "description": "a = softplus(N)"},
        "time": {"type": "boolean", "default": False, "description": "a(x, t) (heat)"},
        "boundary": {**or_null(EXPR), "description": "known values on the boundary, or exact"},
        "exact": {**or_null(EXPR), "description": "the true field"},
    }, ("field",))
    points = {"anyOf": [{"type": "integer", "minimum": 1}, array({"type": "array"}, least=1),
                        obj({"grid": array({"type": "integer", "minimum": 1}, 1, 4)},
                            ("grid",)),
                        obj({"file": {"type": "string"}}, ("file",))]}
    observations = obj({
        "file": {"type": "string", "description": "a data file like a truth file"},
        "sha256": {"type": "string"},
        "points": {**points, "description": "a count, a list, {grid: [n, ...]} or {file: ...}"},
        "from": {"enum": ["exact"], "description": "synthetic data from exact"},
        "noise": {**NUMBER, "description": "standard deviation of the synthetic noise"},
        "seed": {"type": "integer", "minimum": 0},
        "sigma": {"anyOf": [NUMBER, {"const": "estimate"}], "default": "estimate",
                  "description": "noise sigma for the uncertainty"},
    })
    return {
        "unknowns": {**or_null({"type": "object",
                                "additionalProperties": {"anyOf": [scalar, field]}}),
                     "description": "inverse problem: scalars and fields to recover"},
        "observations": {**or_null(observations),
                         "description": "measurements of u: a file or synthetic"},
    }


def _when(pde: str, then: JSON) -> JSON:
    return {"if": {"properties": {"pde": {"const": pde}}, "required": ["pde"]}, "then": then}


def problem_json_schema(strict: bool = False) -> JSON:
    """The JSON Schema of a problem file; ``strict`` raises on a part described nowhere."""
    top = _top(_Builder(strict))
    if strict and set(top) != set(TOP_KEYS):
        raise ValueError(f"top-level keys without a schema: {sorted(set(TOP_KEYS) ^ set(top))}")
    fit_only = {k: NULL for k in ("source", "diffusivity", "reaction", "initial", "boundary")}
    # boundary is required unless observations constrain u (an inverse problem)
    equation = {"anyOf": [{"required": ["boundary"]}, {"required": ["observations"]}]}
    schema = obj({k: top[k] for k in TOP_KEYS}, ("pde", "domain"))
    schema.update({
        "$schema": DRAFT,
        "title": "mscalepde problem file",
        "description": "One problem (README: The problem file); mscalepde check validates "
                       "what this schema cannot (expressions, cross-key rules).",
        "$defs": {
            "expression": {"type": ["string", "number"],
                           "description": "a number or an expression (README: Expressions)"},
            "shape": _shape(),
        },
        "allOf": [
            _when("heat", {**equation, "properties": {"source": EXPR, "domain": {
                "required": ["time"], "properties": {"time": INTERVAL}}}}),
            _when("poisson", {**equation, "properties": {
                "source": EXPR, "initial": NULL, "domain": {"properties": {"time": NULL}}}}),
            _when("fit", {"required": ["exact"], "properties": fit_only}),
        ],
    })
    return schema


def schema_text() -> str:
    """The schema as written: JSON, indent 2, sorted keys, a trailing newline."""
    return json.dumps(problem_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(path: str | Path) -> Path:
    """Write :func:`schema_text` to ``path`` (atomically); returns the path."""
    path = Path(path)
    atomic_write_text(path, schema_text())
    return path
