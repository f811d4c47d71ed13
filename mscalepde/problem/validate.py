"""Problem files: YAML in, a validated :class:`Problem` out.

The format is documented in README.md ("The problem file") and docs/design.md §1. Every key is
validated; an error is a :class:`~mscalepde.errors.ProblemError` whose message reads
``FILE: key.path: what was expected, got what was found``.

Safety: the YAML is read with a safe loader that also refuses aliases (``*name``; this
rules out "billion laughs" alias bombs), duplicate keys, Python-object tags and files over
1 MiB; expressions go through :mod:`mscalepde.expressions` (an ``ast`` whitelist, never
``eval``).

Equations (``pde``; the operator is :class:`~mscalepde.calculus.operators.PDEOperator`):
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
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.architectures import (
    check_axes,
    interface_expressions,
    validate_model_section,
)
from mscalepde.calculus.operators import PDEOperator
from mscalepde.diagnostics.options import DIAGNOSTICS_OPTIONS
from mscalepde.errors import ExpressionError, ProblemError, SchemaError
from mscalepde.expressions.expression import Expression, parse_expression, parse_params
from mscalepde.geometry import Domain, face_names
from mscalepde.geometry.box import MAX_DIM, opposite_face
from mscalepde.geometry.sampling import inside_mask
from mscalepde.geometry.shapes_yaml import geometry_from_yaml, shape_to_yaml
from mscalepde.problem.coefficients import data_coefficient, is_data
from mscalepde.problem.datafile import TruthData, read_truth
from mscalepde.problem.defaults import default_model
from mscalepde.problem.dimension import check_high_dimension, is_high_dimensional
from mscalepde.problem.inverse_validate import validate_inverse
from mscalepde.problem.loader import read_problem_file
from mscalepde.problem.model import BOUNDARY_TYPES, PDES, TOP_KEYS, BoundaryCondition, Problem
from mscalepde.problem.overrides import apply_overrides, merge_model, parse_override, set_override
from mscalepde.problem.solvability import check_compatibility
from mscalepde.problem.solvability import gauge as gauge_of
from mscalepde.problem.windows import check_time_windows, window_edges
from mscalepde.reference.options import REFERENCE_OPTIONS
from mscalepde.schema import (
    as_choice,
    as_float,
    as_mapping,
    as_str,
    check_coordinate,
    check_length,
    check_unknown,
    describe,
    is_number,
    join,
    validate_section,
)
from mscalepde.training.options import (
    TRAIN_OPTIONS,
    resolve_points,
    validate_optimizer,
    with_default_optimizer,
)


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


def with_overrides(problem: Problem, **changes: Any) -> Problem:
    """A new problem with dotted-path overrides (``train.steps=100`` as
    ``{'train.steps': 100}`` or nested keywords ``train={'steps': 100}``)."""
    data = copy.deepcopy(problem.config)
    for key, value in changes.items():
        if key == "model" and isinstance(value, Mapping):
            data["model"] = merge_model(data.get("model"), dict(value))
        elif isinstance(value, Mapping) and isinstance(data.get(key), Mapping):
            data[key] = {**data[key], **value}
        else:
            set_override(data, key, value)
    return problem_from_dict(data, origin=problem.origin)


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
    lo = check_coordinate(as_float(value[0], join(key, 0)), join(key, 0))
    hi = check_coordinate(as_float(value[1], join(key, 1)), join(key, 1))
    if not lo < hi:
        raise SchemaError(key, f"expected {what}, got [{lo:g}, {hi:g}]")
    check_length(hi - lo, max(abs(lo), abs(hi)), key, "length")
    return lo, hi


def _validate(data: Any, origin: str, free: bool = False) -> Problem:
    """The problem of ``data``; ``free``: faces may go without a condition (an inverse
    problem whose observations constrain u)."""
    data = as_mapping(data, "")
    check_unknown(data, TOP_KEYS, "")
    if data.get("unknowns") is not None or data.get("observations") is not None:
        if data.get("model") is None:  # the package default (problem/defaults.py)
            data = {**data, "model": default_model(data, None)}
        return validate_inverse(data, origin, _validate, _faces, _model)
    if "pde" not in data:
        raise SchemaError("pde", f"is required ({' | '.join(PDES)})")
    pde = as_choice(data["pde"], "pde", PDES)
    name = as_str(data.get("name", Path(origin).stem if origin != "<dict>" else "problem"), "name")
    if not re.match(r"^[A-Za-z0-9_.+-]{1,100}$", name):
        raise SchemaError("name", f"expected letters, digits and _.+- only, got {describe(name)}")
    description = as_str(data.get("description", ""), "description")

    domain = _domain(data, pde)
    geometry, time = domain.geometry, domain.time
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

    source, operator = _equation(data, pde, domain, exact, params, origin)

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
        boundary = _boundary(data.get("boundary"), domain, exact, params, free)

    model_raw = data.get("model")
    if model_raw is None:  # a file as users write it: the package default (problem/defaults.py)
        model_raw = default_model(data, domain)
    model = _model(model_raw, domain, pde, boundary, params)
    train = validate_section(with_default_optimizer(data.get("train")), TRAIN_OPTIONS, "train")
    train["points"] = resolve_points(train["points"], domain.space_dim, domain.has_time)
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

    _check_probes(diagnostics["probes"], domain)
    check_time_windows(pde, domain, model, train)
    if time is not None and train["time_windows"] > 1 and diagnostics["times"] is None:
        # the spectrum of each window's end, reached while that window trains
        diagnostics["times"] = window_edges(time, train["time_windows"])[1:]
    truth = _truth(data.get("truth"), origin, domain) if data.get("truth") is not None else None
    if geometry is not None and geometry.dim == 1 and exact is None and truth is None:
        raise SchemaError(
            "domain.shape",
            "a 1D shape needs 'exact' or 'truth: {file: ...}' (the finite-element reference "
            "is 2D and 3D; a 1D box takes the box solvers)",
        )

    # last, as the costliest check (2-30 ms): a problem known up to a constant must have
    # balanced data, ∫(f − r) + ∮ a g = 0 (problem/solvability.py)
    gauge = None if free else gauge_of(pde, operator, boundary, exact)
    if gauge is not None and not is_high_dimensional(domain):
        assert operator is not None
        check_compatibility(domain, operator, source, exact, boundary)
    check_high_dimension(domain, model, reference, exact is not None or truth is not None, gauge)

    config = _config(
        data, name, description, params_raw, pde, operator, source, domain, exact,
        initial_text, initial, model, train, diagnostics, reference, truth,
    )

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
        gauge=gauge,
    )


def _equation(
    data: Mapping[str, Any],
    pde: str,
    domain: Domain,
    exact: Expression | None,
    params: Mapping[str, float],
    origin: str,
) -> tuple[Expression | None, PDEOperator | None]:
    """``source`` (None: ``auto``, or ``fit``) and the operator (``diffusivity``,
    ``reaction``; expressions or data, :mod:`mscalepde.problem.coefficients`)."""
    variables = domain.variables
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
        elif is_data(src):
            source = data_coefficient(src, "source", domain, origin)  # type: ignore[assignment]
        else:
            source = _expr(src, "source", variables, params)

    operator = None
    if pde != "fit":
        operator = PDEOperator(
            time=pde == "heat",
            variables=variables,
            diffusivity=_diffusivity(data.get("diffusivity"), domain, params, origin),
            reaction=(
                data_coefficient(data["reaction"], "reaction", domain, origin)
                if is_data(data.get("reaction"))
                else _reaction(data.get("reaction"), variables, params)
            ),
        )

    return source, operator


def _domain(data: Mapping[str, Any], pde: str) -> Domain:
    """``domain``: a box or a shape, and a time interval for heat."""
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
        if not isinstance(box_raw, (list, tuple)) or not 1 <= len(box_raw) <= MAX_DIM:
            raise SchemaError(
                "domain.box",
                f"expected 1 to {MAX_DIM} intervals [[lo, hi], ...], got {describe(box_raw)}",
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
    return Domain(box=box, time=time, geometry=geometry)


def _model(
    raw: Any,
    domain: Domain,
    pde: str,
    boundary: Mapping[str, BoundaryCondition],
    params: Mapping[str, float],
) -> dict[str, Any]:
    """``model``: the architecture's section, checked against the domain and equation."""
    model = validate_model_section(raw, "model")
    interface_expressions(model.get("interface", []), domain.space_dim, params)  # at load
    check_axes(model, domain.space_dim, domain.has_time)
    if model.get("adapt") and not is_high_dimensional(domain):
        if pde == "fit":
            raise SchemaError("model.adapt", "needs an equation (poisson or heat), not pde: fit")
        if any(bc.type == "periodic" for bc in boundary.values()):
            raise SchemaError("model.adapt", "does not support periodic boundaries")
        cap = {1: 8191, 2: 1023, 3: 127}[domain.space_dim]
        if (model["adapt"].get("grid") or 0) > cap:
            raise SchemaError(
                "model.adapt.grid", f"at most {cap} points per axis in {domain.space_dim}D"
            )
    return model


def _config(
    data: Mapping[str, Any],
    name: str,
    description: str,
    params_raw: Mapping[str, Any],
    pde: str,
    operator: PDEOperator | None,
    source: Expression | None,
    domain: Domain,
    exact: Expression | None,
    initial_text: Any,
    initial: Expression | None,
    model: dict[str, Any],
    train: dict[str, Any],
    diagnostics: dict[str, Any],
    reference: dict[str, Any],
    truth: TruthData | None,
) -> dict[str, Any]:
    """The resolved problem as a file would write it (``config.yaml`` of a run): every
    section with its defaults filled in, keys in a fixed order."""
    config: dict[str, Any] = {"name": name}
    if description:
        config["description"] = description
    if params_raw:
        config["params"] = dict(params_raw)
    config["pde"] = pde
    if operator is not None and (pde == "heat" or data.get("diffusivity") is not None):
        config["diffusivity"] = _diffusivity_config(operator)
    if operator is not None and operator.reaction is not None:
        config["reaction"] = getattr(operator.reaction, "config", None) or operator.reaction.text
    if pde != "fit":
        config["source"] = (
            "auto" if source is None else getattr(source, "config", None) or source.text
        )
    config["domain"] = (
        {"box": [list(b) for b in domain.box]}
        if domain.geometry is None
        else {"shape": shape_to_yaml(domain.geometry.shape)}
    )
    if domain.time is not None:
        config["domain"]["time"] = list(domain.time)
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
    return config


def _check_probes(probes: dict[str, list[float]] | None, domain: Domain) -> None:
    """Each probe is a point of Ω: as many coordinates as space dimensions, inside."""
    for name, point in (probes or {}).items():
        key = join("diagnostics.probes", name)
        if len(point) != domain.space_dim:
            raise SchemaError(
                key, f"expected {domain.space_dim} coordinate(s) ({', '.join(domain.axes)}), "
                f"got {len(point)}"
            )
        in_box = all(lo <= c <= hi for c, (lo, hi) in zip(point, domain.box))
        if not in_box or not inside_mask(domain, np.array([point]))[0]:
            where = ", ".join(f"{v}={c:g}" for v, c in zip(domain.axes, point))
            raise SchemaError(key, f"the point {where} lies outside the domain")


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


def _diffusivity(
    raw: Any, domain: Domain, params: Mapping[str, float], origin: str = "<dict>"
) -> tuple[Expression, ...]:
    """a: a number, an expression of x (and t), data (:mod:`mscalepde.problem.coefficients`),
    or one entry per spatial axis."""
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
        if is_data(item):
            out.append(data_coefficient(item, key, domain, origin, positive=True))
            continue
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
        else:
            _check_positive(expr, domain, key)
        out.append(expr)
    return tuple(out)


POSITIVITY_POINTS = 4096  # grid points of Ω's bounding box (× time) where a is checked


def _check_positive(expr: Expression, domain: Domain, key: str) -> None:
    """a(x[, t]) > 0 and finite at the points of a uniform grid of about
    :data:`POSITIVITY_POINTS` points over Ω's bounding box (× the time interval), ends
    included, that lie in Ω: a sampled check, so a coefficient that is negative only
    between the grid points still passes (README "The problem file")."""
    bounds = domain.bounds
    m = max(2, math.ceil(POSITIVITY_POINTS ** (1 / len(bounds))))
    axes = [np.linspace(lo, hi, m) for lo, hi in bounds]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(bounds))
    if domain.geometry is not None:
        pts = pts[domain.geometry.shape.contains(pts[:, : domain.space_dim])]
    env = {v: pts[:, i] for i, v in enumerate(domain.variables)}
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(expr.numpy(env), dtype=float), (len(pts),))
    bad = ~(values > 0) | ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        where = ", ".join(f"{v}={pts[i, k]:.4g}" for k, v in enumerate(domain.variables))
        raise SchemaError(
            key,
            f"must be > 0 on the domain; at ({where}) it is {values[i]:.4g} "
            f"(checked at {len(pts)} sampled points)",
        )


def _diffusivity_config(operator: PDEOperator) -> Any:
    """The diffusivity as a file writes it (numbers as numbers)."""
    items = [
        float(e.constant_value) if e.is_constant else getattr(e, "config", None) or e.text  # type: ignore[arg-type]
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
    raw: Any,
    domain: Domain,
    exact: Expression | None,
    params: Mapping[str, float],
    free: bool = False,
) -> dict[str, BoundaryCondition]:
    if raw is None and free:
        return {}
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
                partner = opposite_face(f)
                if partner not in faces:
                    raise SchemaError(
                        join(key, "faces"),
                        f"periodic needs both faces of an axis ({f[:-1]}- and {f[:-1]}+), "
                        f"got {f} only",
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
    if missing and not free:
        what = "face(s)" if domain.is_box else "boundary part(s)"
        every = "every face" if domain.is_box else "every part of the boundary"
        hint = "" if domain.is_box else " (parts of shapes without a name are 'unnamed')"
        raise SchemaError(
            "boundary", f"no condition on {what} {', '.join(missing)} ({every} needs one){hint}"
        )
    for f, bc in resolved.items():
        partner = opposite_face(f)
        if bc.type == "periodic" and resolved[partner].type != "periodic":
            raise SchemaError(
                join("boundary", origin_of[partner]),
                f"face {partner} overrides half of the periodic pair {f[:-1]}-/{f[:-1]}+",
            )
    return resolved
