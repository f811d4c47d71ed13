"""Registry of network architectures, by name.

Adding an architecture is one file (a subclass of :class:`Architecture` with its
``name``, its ``options`` schema and a ``forward``) and one line in :data:`ARCHITECTURES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..schema import Option, choice_option, validate_section
from .base import Architecture
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


def validate_model_section(raw: Any, path: str = "model") -> dict[str, Any]:
    """Validate a ``model`` mapping: ``arch`` plus that architecture's own options."""
    arch_raw = raw.get("arch", "mlp") if isinstance(raw, Mapping) else "mlp"
    arch = choice_option(*ARCHITECTURES)(arch_raw, f"{path}.arch")
    options: dict[str, Option] = {"arch": Option(lambda v, k: v, "mlp", "architecture name")}
    options.update(ARCHITECTURES[arch].options)
    clean = validate_section(raw, options, path)
    clean["arch"] = arch
    return clean


def build_model(
    spec: Mapping[str, Any],
    *,
    space_dim: int,
    has_time: bool,
    bounds: Sequence[tuple[float, float]],
) -> Architecture:
    """Instantiate the architecture named by ``spec['arch']`` with the remaining options.

    ``bounds`` lists the interval of every input column (spatial axes, then time).
    """
    spec = dict(spec)
    cls = ARCHITECTURES[spec.pop("arch", "mlp")]
    return cls(space_dim=space_dim, has_time=has_time, bounds=bounds, **spec)


__all__ = ["ARCHITECTURES", "Architecture", "build_model", "validate_model_section"]
