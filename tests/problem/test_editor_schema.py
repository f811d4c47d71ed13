"""The editors' JSON Schema (problems/mscalepde.schema.json): committed as generated, accepts
every shipped problem, refuses typical mistakes as the validator does, and follows the
validators' Option declarations."""

from __future__ import annotations

import ast
import copy
import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mscalepde.architectures import ARCHITECTURES, COMMON_OPTIONS
from mscalepde.architectures.options import ADAPT_SETTINGS, AUTO_SETTINGS
from mscalepde.diagnostics.options import DIAGNOSTICS_OPTIONS
from mscalepde.errors import MscaleError, SchemaError
from mscalepde.problem.editor_schema import problem_json_schema, schema_text, write_schema
from mscalepde.problem.model import TOP_KEYS
from mscalepde.problem.validate import load_problem, problem_from_dict
from mscalepde.reference.options import REFERENCE_OPTIONS
from mscalepde.schema import Option, Parser
from mscalepde.training.options import OPTIMIZERS, TRAIN_OPTIONS, _phase_options

ROOT = Path(__file__).resolve().parents[2]
PROBLEMS = ROOT / "problems"
SCHEMA_FILE = PROBLEMS / "mscalepde.schema.json"
REGENERATE = "mscalepde schema --out problems/mscalepde.schema.json"
PROBLEM_FILES = sorted(PROBLEMS.rglob("*.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return problem_json_schema(strict=True)


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_the_generated_one(tmp_path: Path) -> None:
    assert SCHEMA_FILE.exists(), f"problems/mscalepde.schema.json is missing: run {REGENERATE}"
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == schema_text(), f"the schema is out of date: run {REGENERATE}"
    assert json.loads(committed) == problem_json_schema()
    written = write_schema(tmp_path / "s.json")
    assert written.read_text(encoding="utf-8") == committed


def test_strict_generation_describes_every_option_and_top_level_key(schema) -> None:
    assert set(schema["properties"]) == set(TOP_KEYS)
    assert schema["additionalProperties"] is False
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", PROBLEM_FILES, ids=lambda p: str(p.relative_to(PROBLEMS)))
def test_every_shipped_problem_satisfies_the_schema(path: Path, validator) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in validator.iter_errors(data)]
    assert not errors, errors


@pytest.mark.parametrize("path", PROBLEM_FILES, ids=lambda p: str(p.relative_to(PROBLEMS)))
def test_the_resolved_config_of_every_problem_satisfies_the_schema(path: Path, validator) -> None:
    """A run folder's config.yaml (every default written out) is a problem file too."""
    config = json.loads(json.dumps(load_problem(path).config))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in validator.iter_errors(config)]
    assert not errors, errors


@pytest.mark.parametrize("path", PROBLEM_FILES, ids=lambda p: str(p.relative_to(PROBLEMS)))
def test_every_problem_file_names_the_schema_on_its_first_line(path: Path) -> None:
    rel = Path(os.path.relpath(SCHEMA_FILE, path.parent)).as_posix()
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema={rel}"


GOOD: dict[str, Any] = {
    "pde": "poisson",
    "domain": {"box": [[0, 1]]},
    "exact": "sin(pi*x)",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
    "model": {"arch": "mlp", "width": 8},
    "train": {"steps": 10, "lr": 1.0e-3},
    "diagnostics": {"every": 0},
}


def _with(**changes: Any) -> dict[str, Any]:
    """GOOD with dotted keys set (``train.steps``; a value of None removes the key)."""
    doc = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        *head, last = dotted.split("__")
        node = doc
        for k in head:
            node = node.setdefault(k, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return doc


BAD: dict[str, dict[str, Any]] = {
    "unknown_top_level_key": _with(solver="fd"),
    "misspelt_train_key": _with(train__stpes=100),
    "negative_steps": _with(train__steps=-5),
    "unknown_arch": _with(model__arch="transformer"),
    "lr_of_wrong_type": _with(train__lr="fast"),
    "lr_as_a_list": _with(train__lr=[1e-3]),
    "wrong_boundary_type": _with(boundary=[{"faces": "all", "type": "dirchlet", "value": 0}]),
    "dtype_float16": _with(train__dtype="float16"),
    "unknown_diagnostics_key": _with(diagnostics__evry=10),
    "missing_pde": _with(pde=None),
    "missing_domain": _with(domain=None),
    "box_and_shape": _with(domain__shape={"ball": {"center": [0.5], "radius": 0.2}}),
    "option_of_another_arch": _with(model__sigmas=[1, 5]),
    "unknown_phase_setting": _with(train__optimizer=[{"gauss-newton": {"stpes": 3}}]),
    "unknown_optimizer": _with(train__optimizer=["sgd"]),
    "robin_without_alpha": _with(boundary=[{"faces": "all", "type": "robin", "value": 0}]),
    "periodic_with_value": _with(domain__box=[[0, 1], [0, 1]], boundary=[
        {"faces": ["x-", "x+"], "type": "periodic", "value": 0},
        {"faces": ["y-", "y+"], "type": "dirichlet", "value": 0}]),
    "heat_without_time": _with(pde="heat"),
    "fit_with_boundary": _with(pde="fit"),
    "reference_order_3": _with(reference={"order": 3}),
    "bool_for_width": _with(model__width=True),
    "unknown_boundary_key": _with(boundary=[{"faces": "all", "type": "dirichlet", "valu": 0}]),
    "shape_with_two_kinds": _with(domain={"shape": {"ball": {"center": [0, 0], "radius": 1},
                                                    "box": [[0, 1], [0, 1]]}}),
}


def test_the_good_document_is_valid(validator) -> None:
    problem_from_dict(copy.deepcopy(GOOD))
    assert not list(validator.iter_errors(GOOD))


@pytest.mark.parametrize("name", sorted(BAD))
def test_typical_mistakes_fail_the_schema_and_the_validator(name: str, validator) -> None:
    doc = BAD[name]
    assert list(validator.iter_errors(doc)), f"{name}: the schema accepts it"
    with pytest.raises(MscaleError):
        problem_from_dict(copy.deepcopy(doc))


# --- every Option appears in the schema with its bounds, enum and default ----------------

def _props(frag: Mapping[str, Any]) -> Mapping[str, Any]:
    """The properties of the object alternative of a (possibly nullable) section."""
    if "properties" in frag:
        return frag["properties"]
    for alt in frag.get("anyOf", []):
        if alt.get("type") == "object":
            return alt["properties"]
    raise AssertionError(f"no object in {frag}")


def _sections(schema: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Option], Mapping]]:
    top = schema["properties"]
    yield "train", TRAIN_OPTIONS, _props(top["train"])
    yield "diagnostics", DIAGNOSTICS_OPTIONS, _props(top["diagnostics"])
    yield "reference", REFERENCE_OPTIONS, _props(top["reference"])
    model = top["model"]
    yield "model", COMMON_OPTIONS, model["properties"]
    yield "model.auto", AUTO_SETTINGS, _props(model["properties"]["auto"])
    yield "model.adapt", ADAPT_SETTINGS, _props(model["properties"]["adapt"])
    for branch in model["allOf"]:
        cond = branch["if"]
        cond = cond.get("anyOf", [cond])[0]
        name = cond["properties"]["arch"]["const"]
        if name in ARCHITECTURES:
            yield f"model[{name}]", ARCHITECTURES.options(name), branch["then"]["properties"]
    train = {k: o.default for k, o in TRAIN_OPTIONS.items()}
    phases = _props(top["train"])["optimizer"]["anyOf"][1]["items"]["anyOf"][1:]
    assert len(phases) == len(OPTIMIZERS)
    for name, phase in zip(OPTIMIZERS, phases, strict=True):
        yield f"optimizer.{name}", _phase_options(name, train), _props(phase["properties"][name])


def _core(frag: Mapping[str, Any]) -> Mapping[str, Any]:
    """The fragment without its null alternative."""
    alts = [a for a in frag.get("anyOf", []) if a != {"type": "null"}]
    if "anyOf" in frag and len(alts) == 1:
        return alts[0]
    return frag


BOUNDS = ("enum", "minimum", "maximum", "exclusiveMinimum", "type")


def _number_part(frag: Mapping[str, Any]) -> Mapping[str, Any]:
    for alt in frag.get("anyOf", [frag]):
        if alt.get("type") in ("number", "integer") or "enum" in alt:
            return alt
    return frag


def _accepts(parse: Any, value: Any) -> bool:
    try:
        parse(value, "key")
    except SchemaError:
        return False
    return True


def test_every_option_appears_with_its_enum_bounds_and_default(schema) -> None:
    seen = 0
    for where, options, props in _sections(schema):
        assert set(props) >= set(options), f"{where}: missing {set(options) - set(props)}"
        for key, opt in options.items():
            prop = props[key]
            assert prop.get("description"), f"{where}.{key} has no description"
            if where == "train" or where == "diagnostics" or where == "reference":
                if opt.default is not None:
                    assert prop["default"] == opt.default, f"{where}.{key}"
            if not isinstance(opt.parse, Parser):
                continue
            seen += 1
            want, got = _number_part(opt.parse.json), _number_part(_core(prop))
            for bound in BOUNDS:
                assert got.get(bound) == want.get(bound), f"{where}.{key}: {bound}"
            _check_parser_agrees(f"{where}.{key}", opt.parse, got)
    assert seen > 50


def _check_parser_agrees(key: str, parse: Parser, frag: Mapping[str, Any]) -> None:
    """The schema's enum and bounds are what the parser itself accepts and refuses."""
    for member in frag.get("enum", []):
        assert _accepts(parse, member), f"{key}: refuses {member!r} of its enum"
    if "enum" in frag:
        assert not _accepts(parse, "not-a-choice"), key
    step = 1 if frag.get("type") == "integer" else 1e-6
    if "minimum" in frag:
        lo = frag["minimum"]
        assert _accepts(parse, lo), f"{key}: refuses its minimum {lo}"
        assert not _accepts(parse, lo - step * max(1.0, abs(lo))), f"{key}: below {lo}"
    if "maximum" in frag:
        hi = frag["maximum"]
        assert _accepts(parse, hi), f"{key}: refuses its maximum {hi}"
        assert not _accepts(parse, hi + step * max(1.0, abs(hi))), f"{key}: above {hi}"
    if "exclusiveMinimum" in frag:
        assert not _accepts(parse, frag["exclusiveMinimum"]), f"{key}: accepts its bound"
        tiny = min(1e-9, frag.get("maximum", math.inf))
        assert _accepts(parse, frag["exclusiveMinimum"] + tiny), key
    if frag.get("type") == "boolean":
        assert _accepts(parse, True) and not _accepts(parse, "yes"), key


def test_the_package_does_not_import_jsonschema() -> None:
    for path in (ROOT / "mscalepde").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "jsonschema" for n in names), path
