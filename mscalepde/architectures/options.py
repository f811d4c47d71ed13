"""The ``model:`` section's schema: each architecture's options (torch-free).

The schema lives apart from the networks (which are ``torch.nn.Module`` subclasses) so
that ``mscalepde check`` and problem loading validate a model section without importing
torch. Each architecture's class takes these options as keyword arguments and exposes them
as its ``options`` attribute; the registry (``architectures/__init__.py``) names both.
"""

from __future__ import annotations

import math  # noqa: F401 - used by option defaults of some architectures
from collections.abc import Mapping
from typing import Any

from ..schema import (
    Option,
    SchemaError,
    as_choice,
    as_float_list,
    as_int,
    as_mapping,
    bool_option,
    check_unknown,
    choice_option,
    describe,
    float_option,
    int_option,
    join,
)

AXES = ("x", "y", "z")

#: hidden activations by name (``activations.ACTIVATIONS`` implements them; a test checks
#: that the two agree)
ACTIVATION_NAMES = ("tanh", "sin", "gelu", "relu", "srelu", "s2relu")

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




def common_options(normalize: bool = True, activation: str = "tanh") -> dict[str, Option]:
    """Options shared by the trunk-based architectures: width, depth, activation, normalize."""
    return {
        "width": Option(int_option(1, 100_000), 100, "neurons per hidden layer"),
        "depth": Option(int_option(1, 1000), 4, "hidden layers"),
        "activation": Option(choice_option(*ACTIVATION_NAMES), activation, "hidden activation"),
        "normalize": Option(bool_option(), normalize, "map each input axis to [-1, 1]"),
    }


def parse_sigmas(value, key: str) -> list[float]:
    """A non-empty list of positive σ (a single number is accepted as [σ])."""
    return as_float_list(value, key, positive=True, min_len=1)


def trunk_options(features: int, width: int, depth: int = 2, activation: str = "tanh") -> dict:
    return {
        "features": Option(
            int_option(1, 100_000), features, "frequencies per embedding (rows of B)"
        ),
        "trainable": Option(bool_option(), False, "train B (default: frozen buffer)"),
        "width": Option(int_option(1, 100_000), width, "neurons per hidden layer"),
        "depth": Option(int_option(1, 1000), depth, "hidden layers after the embedding"),
        "activation": Option(choice_option(*ACTIVATION_NAMES), activation, "hidden activation"),
        "normalize": Option(
            bool_option(),
            False,
            "map each input axis to [-1, 1] first (default false: sigma in cycles per unit)",
        ),
    }



SCALE_KINDS = ("pow2", "linear")


def parse_scales(value: Any, key: str = "model.scales") -> list[float]:
    """A list of positive scales, or ``{kind: pow2 | linear, n: N}`` expanded to one."""
    if isinstance(value, Mapping):
        raw = as_mapping(value, key)
        check_unknown(raw, ["kind", "n"], key)
        if "kind" not in raw:
            raise SchemaError(join(key, "kind"), "is required (pow2 | linear)")
        if "n" not in raw:
            raise SchemaError(join(key, "n"), "is required (number of scales)")
        kind = as_choice(raw["kind"], join(key, "kind"), SCALE_KINDS)
        n = as_int(raw["n"], join(key, "n"), 1, 64)
        if kind == "pow2":
            return [float(2**i) for i in range(n)]
        return [float(i + 1) for i in range(n)]
    if not isinstance(value, (list, tuple)) or not value:
        raise SchemaError(
            key,
            "expected a non-empty list of positive numbers or {kind: pow2 | linear, n: N}, "
            f"got {describe(value)}",
        )
    return as_float_list(value, key, positive=True)


def parse_variant(value: Any, key: str = "model.variant") -> int:
    """1 or 2."""
    if isinstance(value, bool) or value not in (1, 2):
        raise SchemaError(key, f"expected 1 or 2, got {describe(value)}")
    return int(value)




MLP = common_options(normalize=True)

MSCALE: dict[str, Option] = {
    "scales": Option(
        parse_scales,
        [float(2**i) for i in range(6)],
        "scales a_i: a list, or {kind: pow2 | linear, n: N} (default pow2, n = 6)",
    ),
    "variant": Option(
        lambda v, k: parse_variant(v, k),
        2,
        "1: one network, first-layer neurons grouped by scale; 2: sum of N subnetworks",
    ),
    "width": Option(
        int_option(1, 100_000),
        30,
        "neurons per hidden layer (per subnetwork in variant 2, in total in variant 1)",
    ),
    "depth": Option(int_option(1, 1000), 3, "hidden layers"),
    "activation": Option(choice_option(*ACTIVATION_NAMES), "sin", "hidden activation"),
    "residual": Option(bool_option(), False, "residual connections between equal widths"),
    "normalize": Option(bool_option(), True, "map each input axis to [-1, 1]"),
}

FOURIER: dict[str, Option] = {
    "sigma": Option(float_option(positive=True), 5.0, "std of B, cycles per unit length"),
    **trunk_options(features=64, width=100),
}

MFF: dict[str, Option] = {
    "sigmas": Option(parse_sigmas, [1.0, 5.0], "one embedding per sigma"),
    **trunk_options(features=32, width=64),
}

STMFF: dict[str, Option] = {
    "sigmas_x": Option(parse_sigmas, [1.0, 5.0], "spatial embeddings, one per sigma"),
    "sigmas_t": Option(parse_sigmas, [1.0], "temporal embeddings, one per sigma"),
    **trunk_options(features=32, width=64),
}

SIREN: dict[str, Option] = {
    "omega0": Option(float_option(positive=True), 30.0, "frequency factor of the first layer"),
    "omega0_hidden": Option(
        float_option(positive=True), 30.0, "frequency factor of the other sine layers"
    ),
    "width": Option(int_option(1, 100_000), 100, "neurons per hidden layer"),
    "depth": Option(int_option(1, 1000), 3, "sine layers"),
    "normalize": Option(bool_option(), True, "map each input axis to [-1, 1]"),
}
