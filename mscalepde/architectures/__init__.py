"""Registry of network architectures, by name.

Adding an architecture is one file (a subclass of :class:`Architecture` with its
``name``, its ``options`` schema and a ``forward``) and one line in :data:`ARCHITECTURES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ExpressionError
from ..expressions import Expression, parse_expression
from ..schema import Option, SchemaError, choice_option, describe, validate_section
from .base import AXES, Architecture
from .fourier import FourierNet, MultiscaleFourier, SpatioTemporalFourier
from .mlp import MLP
from .mscale import MscaleDNN
from .siren import Siren

ARCHITECTURES: dict[str, type[Architecture]] = {
    "mlp": MLP,
    "mscale": MscaleDNN,
    "fourier": FourierNet,
    "mff": MultiscaleFourier,
    "stmff": SpatioTemporalFourier,
    "siren": Siren,
}


MAX_INTERFACES = 8


def interface_option(value: Any, key: str) -> list[str]:
    """``model.interface``: one level-set expression or a list of them (at most 8)."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_INTERFACES:
        raise SchemaError(key, f"at most {MAX_INTERFACES} level sets, got {len(items)}")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            where = f"{key}[{i}]" if isinstance(value, list) else key
            raise SchemaError(where, f"expected a level-set expression, got {describe(item)}")
    return list(items)


#: options every architecture accepts, beside its own
COMMON_OPTIONS: dict[str, Option] = {
    "interface": Option(
        interface_option, [], "level sets phi(x) of material interfaces: |phi| as extra inputs"
    ),
}


def interface_expressions(
    texts: Sequence[str],
    space_dim: int,
    params: Mapping[str, float] | None = None,
    key: str = "model.interface",
) -> tuple[Expression, ...]:
    """Compile the level sets φ_j of ``model.interface`` (expressions of the spatial
    coordinates; each must depend on one of them)."""
    out = []
    for i, text in enumerate(texts):
        where = f"{key}[{i}]" if len(texts) > 1 else key
        try:
            expr = parse_expression(text, variables=AXES[:space_dim], params=params)
        except ExpressionError as exc:
            raise SchemaError(
                where, f"{exc} (a level set is a function of {', '.join(AXES[:space_dim])})"
            ) from None
        if expr.is_constant:
            raise SchemaError(where, "is constant: a level set must vary in space")
        out.append(expr)
    return tuple(out)


def validate_model_section(raw: Any, path: str = "model") -> dict[str, Any]:
    """Validate a ``model`` mapping: ``arch`` plus that architecture's own options and
    :data:`COMMON_OPTIONS`."""
    arch_raw = raw.get("arch", "mlp") if isinstance(raw, Mapping) else "mlp"
    arch = choice_option(*ARCHITECTURES)(arch_raw, f"{path}.arch")
    options: dict[str, Option] = {"arch": Option(lambda v, k: v, "mlp", "architecture name")}
    options.update(ARCHITECTURES[arch].options)
    options.update(COMMON_OPTIONS)
    clean = validate_section(raw, options, path)
    clean["arch"] = arch
    if not clean["interface"]:  # resolved configs name it only when it is used
        del clean["interface"]
    return clean


def build_model(
    spec: Mapping[str, Any],
    *,
    space_dim: int,
    has_time: bool,
    bounds: Sequence[tuple[float, float]],
    params: Mapping[str, float] | None = None,
) -> Architecture:
    """Instantiate the architecture named by ``spec['arch']`` with the remaining options.

    ``bounds`` lists the interval of every input column (spatial axes, then time);
    ``params`` are the problem's named numbers, usable in ``interface`` level sets.
    """
    spec = dict(spec)
    cls = ARCHITECTURES[spec.pop("arch", "mlp")]
    interface = interface_expressions(spec.pop("interface", None) or [], space_dim, params)
    return cls(space_dim=space_dim, has_time=has_time, bounds=bounds, interface=interface, **spec)


__all__ = [
    "ARCHITECTURES",
    "COMMON_OPTIONS",
    "Architecture",
    "build_model",
    "interface_expressions",
    "validate_model_section",
]
