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

from mscalepde.errors import SchemaError
from mscalepde.schema import (
    Option,
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


AUTO = "auto"

#: the plain network of the package default: what ``arch: auto`` gives a smooth solution,
#: and what a file without a ``model`` section gets where ``auto`` cannot run
#: (``problem/defaults.py``). Three tanh layers of 48: the library's smooth files use it
#: (benchmarks/README.md §23); 4×100 (the ``mlp`` architecture's own default) has 30 601
#: parameters in 2D, which makes a dense Gauss–Newton step ~25× dearer for no gain.
DEFAULT_MLP: dict[str, object] = {"arch": "mlp", "width": 48, "depth": 3}

#: ``model.auto``: the settings of the automatic choice (``mscalepde/frequencies/select.py``)
AUTO_SETTINGS: dict[str, Option] = {
    "delta": Option(
        float_option(positive=True, maximum=0.5), 1e-4,
        "energy fraction the selected modes may leave out (relative L2 error ~ sqrt(delta))",
    ),
    "floor": Option(
        float_option(positive=True, maximum=1.0), 1e-3,
        "modes below this amplitude relative to the largest are ignored",
    ),
    "gap": Option(
        float_option(minimum=1.01), 2.0, "|k| ratio between neighbours that splits bands"
    ),
    "sigma_factor": Option(
        float_option(positive=True), None,
        "sigma of a higher band as a fraction of its frequency (default: by the equation)",
    ),
    "max_bands": Option(int_option(1, 16), 4, "at most this many bands"),
}

#: ``model.adapt``: in-training adaptation of the frequencies (``mscalepde/frequencies/adapt.py``)
ADAPT_SETTINGS: dict[str, Option] = {
    "every": Option(int_option(1, 10_000_000), 500, "steps between re-estimates"),
    "max_bands": Option(
        int_option(1, 32), 8, "at most this many embeddings or subnetworks in all"
    ),
    "grid": Option(int_option(16, 1 << 16), None, "grid points per axis (default: by dimension)"),
}


def auto_settings_option(value: Any, key: str) -> dict[str, Any]:
    from mscalepde.schema import validate_section

    return validate_section(value, AUTO_SETTINGS, key)


def adapt_option(value: Any, key: str) -> dict[str, Any] | None:
    """``adapt: true`` (defaults), ``false``/``null`` (off) or a mapping of settings."""
    from mscalepde.schema import validate_section

    if value is False:
        return None
    if value is True:
        value = {}
    return validate_section(value, ADAPT_SETTINGS, key)


def grown_option(value: Any, key: str) -> list[list[Any]]:
    """``grown``: the bands ``model.adapt`` added, as ``[[value, seed], ...]`` (a run folder's
    config.yaml writes it so that model.pt loads with the config alone)."""
    if not isinstance(value, list):
        raise SchemaError(key, f"expected a list of [value, seed] pairs, got {describe(value)}")
    out = []
    for i, item in enumerate(value):
        where = join(key, i)
        if not isinstance(item, list) or len(item) != 2:
            raise SchemaError(where, f"expected [value, seed], got {describe(item)}")
        seed = as_int(item[1], join(where, 1), 0, 2**63 - 1)
        out.append([parse_sigma(item[0], join(where, 0)), seed])
    return out


#: options every architecture accepts, beside its own
COMMON_OPTIONS: dict[str, Option] = {
    "interface": Option(
        interface_option, [], "level sets phi(x) of material interfaces: |phi| as extra inputs"
    ),
    "auto": Option(auto_settings_option, None, "settings of the automatic choice of frequencies"),
    "adapt": Option(adapt_option, None, "add frequency bands during training (mff, stmff, mscale)"),
    "grown": Option(grown_option, [], "bands added during training: [[value, seed], ...]"),
}


def common_options(normalize: bool = True, activation: str = "tanh") -> dict[str, Option]:
    """Options shared by the trunk-based architectures: width, depth, activation, normalize."""
    return {
        "width": Option(int_option(1, 100_000), 100, "neurons per hidden layer"),
        "depth": Option(int_option(1, 1000), 4, "hidden layers"),
        "activation": Option(choice_option(*ACTIVATION_NAMES), activation, "hidden activation"),
        "normalize": Option(bool_option(), normalize, "map each input axis to [-1, 1]"),
    }


def parse_sigma(value: Any, key: str) -> float | list[float]:
    """One positive σ, or one per input axis (a list: anisotropic features)."""
    if isinstance(value, (list, tuple)):
        return as_float_list(value, key, positive=True, min_len=1)
    return float_option(positive=True)(value, key)


def parse_sigmas(value: Any, key: str) -> list[float | list[float]]:
    """A non-empty list of σ (a single number is accepted as [σ]); each entry a positive
    number or a list with one σ per input axis."""
    if not isinstance(value, (list, tuple)):
        return [parse_sigma(value, key)]
    if not value:
        raise SchemaError(key, "expected a non-empty list of sigma, got []")
    return [parse_sigma(v, join(key, i)) for i, v in enumerate(value)]


def auto_or(parse: Any) -> Any:
    """A parser that also accepts ``auto`` (chosen from the spectrum, ``bands.py``)."""

    def parse_or_auto(value: Any, key: str) -> Any:
        if value == AUTO:
            return AUTO
        return parse(value, key)

    return parse_or_auto


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
        auto_or(parse_scales),
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
    "sigma": Option(
        auto_or(parse_sigma), 5.0, "std of B, cycles per unit length (or one per axis, or auto)"
    ),
    **trunk_options(features=64, width=100),
}

MFF: dict[str, Option] = {
    "sigmas": Option(auto_or(parse_sigmas), [1.0, 5.0], "one embedding per sigma (or auto)"),
    **trunk_options(features=32, width=64),
}

STMFF: dict[str, Option] = {
    "sigmas_x": Option(
        auto_or(parse_sigmas), [1.0, 5.0], "spatial embeddings, one per sigma (or auto)"
    ),
    "sigmas_t": Option(
        auto_or(parse_sigmas), [1.0], "temporal embeddings, one per sigma (or auto)"
    ),
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
