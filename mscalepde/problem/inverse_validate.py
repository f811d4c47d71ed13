"""Validating an inverse problem: the forward problem, then the unknowns, the expressions
that use them and the observations (:mod:`mscalepde.problem.inverse`)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from mscalepde.architectures import check_axes, is_auto, validate_model_section
from mscalepde.errors import SchemaError
from mscalepde.problem.dimension import is_high_dimensional
from mscalepde.problem.inverse import (
    EXPRESSION_KEYS,
    InverseSpec,
    check_name,
    forward_data,
    inverse_expressions,
    parse_observations,
    parse_unknowns,
)
from mscalepde.problem.model import Problem
from mscalepde.schema import as_mapping, join


def validate_inverse(
    data: Mapping[str, Any],
    origin: str,
    validate: Callable[..., Problem],
    faces: Callable[..., list[str]],
    model: Callable[..., dict[str, Any]],
) -> Problem:
    """The :class:`Problem` of a file with ``unknowns`` and/or ``observations``: its forward
    problem (``validate(data, origin, free)``) with :attr:`Problem.inverse` set and the
    file's own expressions in its ``config``."""
    has_unknowns = data.get("unknowns") is not None
    if has_unknowns:  # the names first: the forward problem would misreport a bad one
        params = data.get("params") if isinstance(data.get("params"), Mapping) else {}
        for name in as_mapping(data["unknowns"], "unknowns"):
            check_name(name, ("x", "y", "z", "t"), params)
        fwd, _ = forward_data(data)
    else:
        fwd = {k: copy.deepcopy(v) for k, v in data.items() if k != "observations"}
    observed = data.get("observations") is not None
    forward = validate(fwd, origin, observed)
    if forward.train["time_windows"] > 1:
        raise SchemaError("train.time_windows", "inverse problems train in one window")
    if is_high_dimensional(forward.domain):
        raise SchemaError(
            "unknowns" if has_unknowns else "observations",
            f"inverse problems run in 1 to 3 space dimensions, not {forward.domain.space_dim}",
        )
    domain, params = forward.domain, forward.params
    if forward.pde == "fit":
        raise SchemaError("unknowns" if has_unknowns else "observations", "needs poisson or heat")
    if not forward.boundary and not observed:
        raise SchemaError("boundary", "is required (or give observations)")

    def field_model(raw: Any, key: str, time: bool) -> dict[str, Any]:
        section = validate_model_section(raw, key)
        if is_auto(section):
            raise SchemaError(key, "auto is for u; give the field's network")
        check_axes(section, domain.space_dim, time)
        return section

    scalars, fields = ({}, {})
    if has_unknowns:
        scalars, fields = parse_unknowns(data["unknowns"], domain, params, field_model)
    names = (*scalars, *fields)
    expressions = inverse_expressions(
        data, names, domain.variables, params, lambda v, k: faces(v, k, domain)
    )
    spec = InverseSpec(scalars, fields, None, expressions)
    free = set(domain.faces) - set(forward.boundary)
    if free and forward.exact is None and forward.truth is None:
        raise SchemaError(
            "boundary", f"face(s) {', '.join(sorted(free))} have no condition, so no classical "
            "reference can be the truth: give 'exact' or 'truth: {file: ...}'"
        )
    if not spec.truth_known:
        _check_no_exact_data(data, names)
        if forward.exact is None and forward.truth is None:
            raise SchemaError(
                "unknowns", "the errors of u need a truth: give 'exact', 'truth: {file: ...}' "
                "or every unknown's exact value (its forward problem is then solved as the truth)"
            )
    observations = None
    if observed:
        observations = parse_observations(data["observations"], origin, domain, forward.exact)
    free_initial = observed and forward.pde == "heat" and data.get("initial") is None
    spec = dataclasses.replace(spec, observations=observations, free_initial=free_initial)
    if has_unknowns and (is_auto(forward.model) or forward.model.get("adapt")):
        raise SchemaError(
            "model", "auto and adapt read u's spectrum from the forward problem, that is from "
            "the true unknowns; an inverse problem must name its network"
        )
    if forward.train["loss"] == "ritz":
        raise SchemaError("train.loss", "an inverse problem trains on residuals (loss: residual)")
    config = dict(forward.config)
    for key in (*EXPRESSION_KEYS, "boundary"):
        if key in data:
            config[key] = copy.deepcopy(data[key])
    if free_initial:
        config.pop("initial", None)  # reloaded, the file must stay free of initial rows
    if has_unknowns:
        config["unknowns"] = copy.deepcopy(data["unknowns"])
        for name, f in fields.items():  # the field's network with its defaults
            config["unknowns"][name] = {**config["unknowns"][name], "field": f.model}
    if observed:
        config["observations"] = copy.deepcopy(data["observations"])
        if observations is not None and observations.origin != "exact":
            config["observations"]["file"] = observations.origin
            config["observations"]["sha256"] = observations.sha256
    return dataclasses.replace(forward, inverse=spec, config=config, gauge=None)


def _check_no_exact_data(data: Mapping[str, Any], names: tuple[str, ...]) -> None:
    """Data derived from ``exact`` need the true unknowns: refuse them when one is missing."""
    missing = ", ".join(names)
    if data.get("source", "auto") == "auto" and data.get("exact") is not None:
        raise SchemaError(
            "source", f"'auto' derives f from exact with the true unknowns ({missing}): give "
            "each an 'exact' value, or write the source"
        )
    for i, entry in enumerate(data.get("boundary") or []):
        if isinstance(entry, Mapping) and entry.get("value") == "exact":
            raise SchemaError(
                join(join("boundary", i), "value"),
                f"'exact' data need the true unknowns ({missing}): give each an 'exact' value",
            )
