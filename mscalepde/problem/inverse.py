"""Inverse problems: the ``unknowns:`` and ``observations:`` sections (torch-free).

An inverse problem is a forward problem (``pde``, ``domain``, ``diffusivity``, …) some of
whose coefficients are unknown, plus measurements of u. The unknowns are

- **scalars** θ_k with an initial value, optional bounds [lo, hi] and a map from an
  unconstrained raw parameter s (what the optimisers move) to θ:
  ``none`` θ = s; ``log`` θ = lo + eˢ; ``softplus`` θ = lo + log(1 + eˢ);
  ``logit`` (both bounds) θ = lo + (hi − lo) / (1 + e⁻ˢ); ``auto`` picks ``logit`` with two
  bounds, ``log`` with a lower bound only (an upper bound only: θ = hi − eˢ), ``none``
  otherwise;
- **fields** a(x) (or a(x, t) with ``time: true``): a network of any registered
  architecture, made positive by a softplus when ``positive`` (a diffusivity must be), and
  optionally known on ∂Ω (``boundary:``), as in PINNacle's PInv and HInv tasks (Hao et al.
  2024, ``src/pde/inverse.py``).

Each unknown's name may appear in any expression of the equation: ``diffusivity``,
``reaction``, ``source``, ``initial`` and the boundary ``value`` and ``alpha``. An unknown
that appears in none is refused. ``exact:`` (a number, or an expression for a field) gives
the value that made synthetic data; it is used for errors, for ``source: auto`` and
``value: exact`` (data derived from the exact solution need the true coefficients), and for
the classical references, and never in training.

The **forward problem** is the file with every unknown replaced by its true value (its
initial value, or 1 for a field, when no ``exact`` is given: then ``truth_known`` is False):
it is validated like any problem and is what the references solve. Training reads the
expressions with the unknowns' names kept (:attr:`InverseSpec.expressions`).

**Observations** y_i = u(x_i) + ε_i, ε_i ~ N(0, σ²): from a data file written like a truth
file (``file:``), or synthetic (``points:`` a count, a list, ``{grid: [n_1, …]}`` or
``{file: PATH}``, a points file with a truth file's columns without u; ``from: exact``,
``noise:`` σ, ``seed:``). ``sigma:`` is σ for the uncertainty (a number, or ``estimate``:
the residual variance ‖u_θ(x_i) − y_i‖² / (n − p) with p the number of scalar unknowns).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.errors import ExpressionError, SchemaError
from mscalepde.expressions.expression import Expression, parse_expression
from mscalepde.geometry import Domain
from mscalepde.geometry.sampling import inside_mask, sample_interior
from mscalepde.problem.datafile import read_points, read_truth
from mscalepde.schema import (
    as_bool,
    as_choice,
    as_float,
    as_int,
    as_mapping,
    as_str,
    check_unknown,
    describe,
    is_number,
    join,
)

TRANSFORMS = ("auto", "none", "log", "softplus", "logit")
SCALAR_KEYS = ("initial", "lower", "upper", "transform", "exact")
FIELD_KEYS = ("field", "positive", "time", "boundary", "exact")
OBSERVATION_KEYS = ("file", "points", "from", "noise", "seed", "sigma", "sha256")
MAX_UNKNOWNS = 32
MAX_OBSERVATIONS = 1_000_000
#: the keys whose expressions may use unknowns (``boundary`` entries: value and alpha)
EXPRESSION_KEYS = ("diffusivity", "reaction", "source", "initial")


@dataclass(frozen=True)
class ScalarUnknown:
    """θ = map(s) (module docstring); ``initial`` and ``true`` (the file's ``exact``) are
    values of θ."""

    name: str
    initial: float
    lower: float | None
    upper: float | None
    transform: str  # none | log | softplus | logit | log-upper
    true: float | None = None

    def raw_initial(self) -> float:
        """s such that map(s) = ``initial``."""
        return raw_of(self, self.initial)


def raw_of(u: ScalarUnknown, value: float) -> float:
    """The inverse of the map θ(s) of ``u`` at ``value``."""
    lo = 0.0 if u.lower is None else u.lower
    if u.transform == "none":
        return value
    if u.transform == "log":
        return math.log(value - lo)
    if u.transform == "log-upper":
        assert u.upper is not None
        return math.log(u.upper - value)
    if u.transform == "softplus":
        v = value - lo
        return v + math.log(-math.expm1(-v))  # log(e^v − 1), stable
    assert u.lower is not None and u.upper is not None
    p = (value - u.lower) / (u.upper - u.lower)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class FieldUnknown:
    """A field a(x) (``time``: a(x, t)) as a network of the ``model`` section ``model``."""

    name: str
    model: dict[str, Any]
    positive: bool
    time: bool
    boundary: Expression | None  # known values on ∂Ω, or None
    true: Expression | None = None


@dataclass(frozen=True, eq=False)
class Observations:
    """Points (n, D), values (n,), how they were made, and σ (None: estimate it)."""

    points: np.ndarray
    values: np.ndarray
    sigma: float | None
    noise: float | None = None  # synthetic: the σ the noise was drawn with
    origin: str = "exact"  # "exact" or the file's path
    sha256: str = ""  # the file's, for config.yaml


@dataclass(frozen=True)
class InverseSpec:
    """The inverse part of a problem: unknowns, observations, and the expressions with
    the unknowns' names kept (keys ``diffusivity`` (a tuple), ``reaction``, ``source``,
    ``initial``, ``value:<face>``, ``alpha:<face>``; absent where the key is absent or
    derived from ``exact``)."""

    scalars: dict[str, ScalarUnknown]
    fields: dict[str, FieldUnknown]
    observations: Observations | None
    expressions: dict[str, Any] = field(default_factory=dict)
    #: heat without an ``initial`` key, observed: no initial rows (the data constrain u)
    free_initial: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.scalars, *self.fields)

    @property
    def truth_known(self) -> bool:
        """Every unknown has an ``exact`` value (the forward problem is the true one)."""
        return all(u.true is not None for u in (*self.scalars.values(), *self.fields.values()))


# ---------------------------------------------------------------------- the forward problem
def _substitute(text: Any, values: Mapping[str, str]) -> Any:
    """``text`` with every whole-word occurrence of a name replaced by ``(value)``."""
    if not isinstance(text, str) or not values:
        return text
    pattern = r"(?<![A-Za-z0-9_.])(" + "|".join(map(re.escape, values)) + r")(?![A-Za-z0-9_])"
    return re.sub(pattern, lambda m: f"({values[m.group(1)]})", text)


def forward_data(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The file's data with ``unknowns``/``observations`` removed and each unknown replaced
    by its true value (module docstring), and the replacement texts used."""
    raw = as_mapping(data.get("unknowns"), "unknowns")
    values: dict[str, str] = {}
    for name, entry in raw.items():
        entry = as_mapping(entry, join("unknowns", name))
        true = entry.get("exact")
        if true is None:
            true = 1.0 if "field" in entry else entry.get("initial", 1.0)
        values[str(name)] = str(true) if is_number(true) or isinstance(true, str) else "1"
    out = {k: copy.deepcopy(v) for k, v in data.items() if k not in ("unknowns", "observations")}
    for key in EXPRESSION_KEYS:
        value = out.get(key)
        if isinstance(value, list):
            out[key] = [_substitute(v, values) for v in value]
        elif value is not None:
            out[key] = _substitute(value, values)
    if isinstance(out.get("boundary"), list):
        for entry in out["boundary"]:
            if isinstance(entry, dict):
                for k in ("value", "alpha"):
                    if k in entry:
                        entry[k] = _substitute(entry[k], values)
    return out, values


# ---------------------------------------------------------------------- the unknowns
def check_name(name: Any, taken: Sequence[str], params: Mapping[str, Any]) -> str:
    """A valid unknown name: a word, not a variable, u, a parameter or a function."""
    key = join("unknowns", str(name))
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", name):
        raise SchemaError(key, "expected a name of letters, digits and _ (a letter first)")
    if name in taken or name == "u":
        raise SchemaError(key, f"'{name}' is a variable of the problem; name the unknown otherwise")
    if name in params:
        raise SchemaError(key, f"'{name}' is already a parameter (params); remove one of them")
    try:
        expr = parse_expression(name, variables=(name,))
    except (ExpressionError, ValueError) as exc:
        raise SchemaError(key, f"'{name}' cannot name an unknown ({exc})") from None
    if expr.variables != {name}:
        raise SchemaError(key, f"'{name}' is a function or constant of the expression language")
    return name


def _scalar(name: str, raw: Mapping[str, Any]) -> ScalarUnknown:
    key = join("unknowns", name)
    check_unknown(raw, SCALAR_KEYS, key)
    if "initial" not in raw:
        raise SchemaError(join(key, "initial"), "is required (the starting value)")
    initial = as_float(raw["initial"], join(key, "initial"))
    lower = None if raw.get("lower") is None else as_float(raw["lower"], join(key, "lower"))
    upper = None if raw.get("upper") is None else as_float(raw["upper"], join(key, "upper"))
    for b, k in ((initial, "initial"), (lower, "lower"), (upper, "upper")):
        if b is not None and not math.isfinite(b):
            raise SchemaError(join(key, k), f"expected a finite number, got {b}")
    if lower is not None and upper is not None and not lower < upper:
        raise SchemaError(join(key, "upper"), f"must exceed lower ({lower:g}), got {upper:g}")
    if (lower is not None and not initial > lower) or (upper is not None and not initial < upper):
        lo = "-inf" if lower is None else f"{lower:g}"
        hi = "inf" if upper is None else f"{upper:g}"
        raise SchemaError(
            join(key, "initial"), f"{initial:g} is outside the open interval ({lo}, {hi}) "
            "that the bounds allow"
        )
    transform = as_choice(raw.get("transform", "auto"), join(key, "transform"), TRANSFORMS)
    if transform == "auto":
        if lower is not None and upper is not None:
            transform = "logit"
        elif lower is not None:
            transform = "log"
        elif upper is not None:
            transform = "log-upper"
        else:
            transform = "none"
    elif transform == "logit" and (lower is None or upper is None):
        raise SchemaError(join(key, "transform"), "logit needs both lower and upper")
    elif transform in ("log", "softplus"):
        if upper is not None:
            raise SchemaError(
                join(key, "transform"), f"{transform} maps to (lower, inf): drop upper"
            )
        if lower is None:
            lower = 0.0
            if not initial > 0:
                raise SchemaError(
                    join(key, "initial"), f"{transform} keeps the unknown positive, got {initial:g}"
                )
    elif transform == "none" and (lower is not None or upper is not None):
        raise SchemaError(join(key, "transform"), "none cannot keep the bounds: use auto")
    true = None
    if raw.get("exact") is not None:
        true = as_float(raw["exact"], join(key, "exact"))
    return ScalarUnknown(name, initial, lower, upper, transform, true)


def _field(
    name: str, raw: Mapping[str, Any], domain: Domain, params: Mapping[str, float],
    validate_model: Any,
) -> FieldUnknown:
    key = join("unknowns", name)
    check_unknown(raw, FIELD_KEYS, key)
    time = as_bool(raw.get("time", False), join(key, "time"))
    if time and domain.time is None:
        raise SchemaError(join(key, "time"), "the problem has no time interval")
    variables = domain.variables if time else domain.variables[: domain.space_dim]
    model = validate_model(raw["field"], join(key, "field"), time)
    positive = as_bool(raw.get("positive", True), join(key, "positive"))

    def expr(value: Any, k: str) -> Expression:
        if not (isinstance(value, str) or is_number(value)):
            raise SchemaError(join(key, k), f"expected an expression, got {describe(value)}")
        try:
            return parse_expression(value, variables=variables, params=params)
        except ExpressionError as exc:
            raise SchemaError(join(key, k), str(exc)) from None

    true = expr(raw["exact"], "exact") if raw.get("exact") is not None else None
    boundary = None
    if raw.get("boundary") is not None:
        if raw["boundary"] == "exact":
            if true is None:
                raise SchemaError(join(key, "boundary"), "'exact' needs the field's exact value")
            boundary = true
        else:
            boundary = expr(raw["boundary"], "boundary")
    return FieldUnknown(name, model, positive, time, boundary, true)


def parse_unknowns(
    raw: Any, domain: Domain, params: Mapping[str, float], validate_model: Any
) -> tuple[dict[str, ScalarUnknown], dict[str, FieldUnknown]]:
    """The ``unknowns`` section: ``{name: {initial, lower, upper, transform, exact}}`` for a
    scalar, ``{name: {field: MODEL, positive, time, boundary, exact}}`` for a field.
    ``validate_model(section, key, time)`` checks a field's network section."""
    section = as_mapping(raw, "unknowns")
    if not section:
        raise SchemaError("unknowns", "expected at least one unknown")
    if len(section) > MAX_UNKNOWNS:
        raise SchemaError("unknowns", f"at most {MAX_UNKNOWNS} unknowns, got {len(section)}")
    scalars: dict[str, ScalarUnknown] = {}
    fields: dict[str, FieldUnknown] = {}
    for name, entry in section.items():
        name = check_name(name, domain.variables, params)
        entry = as_mapping(entry, join("unknowns", name))
        if "field" in entry:
            fields[name] = _field(name, entry, domain, params, validate_model)
        else:
            scalars[name] = _scalar(name, entry)
    return scalars, fields


# ---------------------------------------------------------------------- the expressions
def inverse_expressions(
    data: Mapping[str, Any],
    names: Sequence[str],
    variables: Sequence[str],
    params: Mapping[str, float],
    faces_of: Any,
) -> dict[str, Any]:
    """The equation's expressions parsed with the unknowns' names as variables (keys of
    :attr:`InverseSpec.expressions`); ``faces_of(entry_value, key)`` lists an entry's faces.
    An unknown used by none of them is refused."""
    allowed = (*variables, *names)

    def parse(value: Any, key: str, extra: Sequence[str] = ()) -> Expression:
        try:
            return parse_expression(value, variables=(*allowed, *extra), params=params)
        except ExpressionError as exc:
            raise SchemaError(key, str(exc)) from None

    out: dict[str, Any] = {}
    raw = data.get("diffusivity")
    entries = raw if isinstance(raw, list) else [raw]
    if raw is not None and not any(isinstance(e, Mapping) for e in entries):  # data: as is
        out["diffusivity"] = tuple(
            parse(v, join("diffusivity", i) if isinstance(raw, list) else "diffusivity")
            for i, v in enumerate(entries)
        )
    if data.get("reaction") is not None and not isinstance(data["reaction"], Mapping):
        out["reaction"] = parse(data["reaction"], "reaction", ("u",))
    if data.get("source") not in (None, "auto") and not isinstance(data["source"], Mapping):
        out["source"] = parse(data["source"], "source")
    if data.get("initial") not in (None, "exact"):
        out["initial"] = parse(data["initial"], "initial")
    for i, entry in enumerate(data.get("boundary") or []):
        faces = faces_of(entry.get("faces", "all"), join(join("boundary", i), "faces"))
        for k in ("value", "alpha"):
            if entry.get(k) is not None and entry[k] != "exact":
                expr = parse(entry[k], join(join("boundary", i), k))
                for f in faces:
                    out[f"{k}:{f}"] = expr
    used: set[str] = set()
    for expr in out.values():
        for e in expr if isinstance(expr, tuple) else (expr,):
            used |= set(e.variables)
    for name in names:
        if name not in used:
            raise SchemaError(
                join("unknowns", name),
                "appears in no expression (diffusivity, reaction, source, initial or a "
                "boundary value/alpha): nothing could determine it",
            )
    return out


# ---------------------------------------------------------------------- the observations
def parse_observations(
    raw: Any, origin: str, domain: Domain, exact: Expression | None
) -> Observations:
    """The ``observations`` section (module docstring); points must lie in Ω (× time)."""
    spec = as_mapping(raw, "observations")
    check_unknown(spec, OBSERVATION_KEYS, "observations")
    sigma: float | None = None
    if spec.get("sigma", "estimate") != "estimate":
        sigma = as_float(spec["sigma"], "observations.sigma")
        if not (math.isfinite(sigma) and sigma > 0):
            raise SchemaError("observations.sigma", f"expected a positive number, got {sigma:g}")
    if "file" in spec:
        for k in ("points", "from", "noise", "seed"):
            if k in spec:
                raise SchemaError(join("observations", k), "is for synthetic data, not a file")
        path = Path(as_str(spec["file"], "observations.file")).expanduser()
        if not path.is_absolute() and origin != "<dict>":
            path = Path(origin).resolve().parent / path
        data = read_truth(path.resolve(), domain.variables, "observations.file")
        want = spec.get("sha256")
        if want is not None and as_str(want, "observations.sha256") != data.sha256:
            raise SchemaError("observations.sha256", f"{data.path} has changed")
        points, values, noise, where = data.points, data.values, None, str(data.path)
        sha = data.sha256
    else:
        if spec.get("from", "exact") != "exact":
            raise SchemaError("observations.from", "expected exact (or give observations.file)")
        if exact is None:
            raise SchemaError("observations.from", "'exact' needs an exact solution ('exact' key)")
        if "points" not in spec:
            raise SchemaError("observations.points", "is required: a count or a list of points")
        seed = as_int(spec.get("seed", 0), "observations.seed", minimum=0)
        noise = as_float(spec.get("noise", 0.0), "observations.noise")
        if not (math.isfinite(noise) and noise >= 0):
            raise SchemaError("observations.noise", f"expected a number >= 0, got {noise:g}")
        points = _points(spec["points"], domain, seed, origin)
        env = {v: points[:, i] for i, v in enumerate(domain.variables)}
        clean = np.broadcast_to(exact.numpy(env), (len(points),)).astype(float)
        rng = np.random.default_rng(seed + 1)
        values = clean + noise * rng.standard_normal(len(points))
        where, sha = "exact", ""
    _check_inside(points, domain)
    return Observations(np.ascontiguousarray(points, float), values, sigma, noise, where, sha)


def _points(raw: Any, domain: Domain, seed: int, origin: str = "<dict>") -> np.ndarray:
    if isinstance(raw, Mapping) and "file" in raw:  # {file: PATH}: the points of a data file
        check_unknown(raw, ("file",), "observations.points")
        path = Path(as_str(raw["file"], "observations.points.file")).expanduser()
        if not path.is_absolute() and origin != "<dict>":
            path = Path(origin).resolve().parent / path
        return read_points(path.resolve(), domain.variables, "observations.points.file")
    if isinstance(raw, Mapping):  # {grid: [n_1, ..., n_D]}: endpoints included, inside Ω
        check_unknown(raw, ("grid",), "observations.points")
        counts = raw.get("grid")
        dim = len(domain.variables)
        if not isinstance(counts, list) or len(counts) != dim:
            raise SchemaError("observations.points.grid", f"expected {dim} point counts")
        n = [as_int(c, join("observations.points.grid", i), minimum=1, maximum=10_000)
             for i, c in enumerate(counts)]
        if math.prod(n) > MAX_OBSERVATIONS:
            raise SchemaError("observations.points.grid", f"at most {MAX_OBSERVATIONS} points")
        axes = [np.linspace(lo, hi, k) for (lo, hi), k in zip(domain.bounds, n, strict=True)]
        grid = np.stack([a.reshape(-1) for a in np.meshgrid(*axes, indexing="ij")], 1)
        return grid[inside_mask(domain, grid)] if domain.geometry is not None else grid
    if isinstance(raw, int) and not isinstance(raw, bool):
        n = as_int(raw, "observations.points", minimum=1, maximum=MAX_OBSERVATIONS)
        return sample_interior(domain, n, "uniform", seed)[:n]
    if not isinstance(raw, list) or not raw:
        raise SchemaError("observations.points", f"expected a count or a list, got {describe(raw)}")
    if len(raw) > MAX_OBSERVATIONS:
        raise SchemaError("observations.points", f"at most {MAX_OBSERVATIONS} points")
    dim = len(domain.variables)
    out = np.empty((len(raw), dim))
    for i, p in enumerate(raw):
        p = p if isinstance(p, list) else [p]
        if len(p) != dim:
            raise SchemaError(
                join("observations.points", i),
                f"expected {dim} coordinate(s) ({', '.join(domain.variables)}), got {describe(p)}",
            )
        out[i] = [as_float(c, join(join("observations.points", i), j)) for j, c in enumerate(p)]
    return out


def _check_inside(points: np.ndarray, domain: Domain) -> None:
    lo = np.array([b[0] for b in domain.bounds])
    hi = np.array([b[1] for b in domain.bounds])
    tol = 1e-9 * (hi - lo)
    outside = np.any((points < lo - tol) | (points > hi + tol), axis=1)
    if domain.geometry is not None:
        outside |= ~inside_mask(domain, points)
    if outside.any():
        i = int(np.argmax(outside))
        where = ", ".join(f"{v}={c:.6g}" for v, c in zip(domain.variables, points[i]))
        raise SchemaError(
            "observations", f"point {where} (observation {i + 1}) lies outside the domain"
        )
