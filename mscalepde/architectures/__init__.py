"""Registry of network architectures, by name.

Adding an architecture is one file (a subclass of :class:`Architecture` with its
``name``, ``forward`` and ``jet``), its options schema in :mod:`.options`, and one line in
:data:`ARCHITECTURES`.

The registry maps a name to ``module:Class`` and the schema. The class is imported on
first use, so validating a problem file (``mscalepde check``) never imports torch;
``ARCHITECTURES[name]`` is the class, as a plain dict of classes would give.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mscalepde.architectures import options as opts
from mscalepde.architectures.options import COMMON_OPTIONS
from mscalepde.errors import ExpressionError, SchemaError
from mscalepde.expressions.expression import Expression, parse_expression
from mscalepde.geometry.box import axis_names
from mscalepde.schema import Option, choice_option, validate_section

if TYPE_CHECKING:
    from mscalepde.architectures.base import Architecture


class Registry(Mapping[str, "type[Architecture]"]):
    """Architecture classes by name, imported lazily; :meth:`options` gives a schema
    without importing the class (nor torch)."""

    def __init__(self, entries: Mapping[str, tuple[str, Mapping[str, Option], bool]]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> type[Architecture]:
        module, cls = self._entries[name][0].split(":")
        return getattr(importlib.import_module(f".{module}", __name__), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def options(self, name: str) -> Mapping[str, Option]:
        return self._entries[name][1]

    def growable(self) -> tuple[str, ...]:
        """The architectures that can grow bands (``model.adapt``): those whose class is a
        :class:`~mscalepde.architectures.growable.Growable` (a test checks the flags)."""
        return tuple(name for name, entry in self._entries.items() if entry[2])


ARCHITECTURES = Registry({
    # name: (module:Class, options schema, growable)
    "mlp": ("mlp:MLP", opts.MLP, False),
    "mscale": ("mscale:MscaleDNN", opts.MSCALE, True),
    "fourier": ("fourier:FourierNet", opts.FOURIER, False),
    "mff": ("fourier:MultiscaleFourier", opts.MFF, True),
    "stmff": ("fourier:SpatioTemporalFourier", opts.STMFF, True),
    "siren": ("siren:Siren", opts.SIREN, False),
})


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
            expr = parse_expression(text, variables=axis_names(space_dim), params=params)
        except ExpressionError as exc:
            raise SchemaError(
                where, f"{exc} (a level set is a function of {', '.join(axis_names(space_dim))})"
            ) from None
        if expr.is_constant:
            raise SchemaError(where, "is constant: a level set must vary in space")
        out.append(expr)
    return tuple(out)


#: the options that may be ``auto``, by architecture (``mscalepde/frequencies/select.py``)
AUTO_KEYS: dict[str, tuple[str, ...]] = {
    "fourier": ("sigma",),
    "mff": ("sigmas",),
    "stmff": ("sigmas_x", "sigmas_t"),
    "mscale": ("scales",),
}

#: the architectures ``model.adapt`` can grow (one embedding / subnetwork per band)
ADAPTIVE = ARCHITECTURES.growable()  # the architectures model.adapt can grow


def is_auto(model: Mapping[str, Any]) -> bool:
    """Whether a model section asks for an automatic choice (``arch: auto`` or one of
    :data:`AUTO_KEYS` set to ``auto``; resolved by
    :func:`mscalepde.frequencies.select.resolve_auto`)."""
    arch = str(model.get("arch"))
    return arch == opts.AUTO or any(model.get(k) == opts.AUTO for k in AUTO_KEYS.get(arch, ()))


def validate_model_section(raw: Any, path: str = "model") -> dict[str, Any]:
    """Validate a ``model`` mapping: ``arch`` plus that architecture's own options and
    :data:`COMMON_OPTIONS`. ``arch: auto`` takes only the common options."""
    arch_raw = raw.get("arch", "mlp") if isinstance(raw, Mapping) else "mlp"
    arch = choice_option(*ARCHITECTURES, opts.AUTO)(arch_raw, f"{path}.arch")
    options: dict[str, Option] = {"arch": Option(lambda v, k: v, "mlp", "architecture name")}
    if arch == opts.AUTO:
        if isinstance(raw, Mapping):
            for key in raw:
                if key != "arch" and key not in COMMON_OPTIONS:
                    raise SchemaError(
                        f"{path}.{key}",
                        "arch: auto chooses the network and its options; name an "
                        f"architecture ({' | '.join(ARCHITECTURES)}) to set {key}",
                    )
    else:
        options.update(ARCHITECTURES.options(arch))
    options.update(COMMON_OPTIONS)
    clean = validate_section(raw, options, path)
    clean["arch"] = arch
    if not clean["interface"]:  # resolved configs name it only when it is used
        del clean["interface"]
    if clean["auto"] is None:
        del clean["auto"]
    elif not is_auto(clean) and clean["adapt"] is None:
        raise SchemaError(
            f"{path}.auto",
            "only used with arch: auto, an option set to auto (sigmas: auto ...) or adapt",
        )
    for key in ("adapt", "grown"):
        if not clean[key]:
            del clean[key]
            continue
        if arch not in (*ADAPTIVE, opts.AUTO) or (key == "grown" and arch == opts.AUTO):
            raise SchemaError(
                f"{path}.{key}",
                f"needs an architecture with one embedding or subnetwork per band "
                f"({' | '.join(ADAPTIVE)}), not {arch}",
            )
        if arch == "mscale" and clean.get("variant") != 2:
            raise SchemaError(f"{path}.{key}", "MscaleDNN grows by subnetworks: needs variant 2")
        if clean.get("interface"):
            raise SchemaError(f"{path}.{key}", "cannot be combined with interface inputs")
    if arch == "mscale":
        for i, (value, _seed) in enumerate(clean.get("grown", [])):
            if isinstance(value, list):
                raise SchemaError(f"{path}.grown[{i}][0]", "an MscaleDNN scale is one number")
    return clean


def check_axes(model: Mapping[str, Any], space_dim: int, has_time: bool) -> None:
    """Per-axis σ lists must have one entry per column their embedding sees: every input
    (fourier, mff), the spatial axes (stmff ``sigmas_x``) or t (``sigmas_t``); they do
    not combine with ``interface`` inputs."""
    n_in = space_dim + int(has_time)
    keys = {"sigma": n_in, "sigmas": n_in, "sigmas_x": space_dim, "sigmas_t": 1}
    for key, n in keys.items():
        value = model.get(key)
        if value is None or value == opts.AUTO:
            continue
        entries = [value] if key == "sigma" else list(value)
        for i, v in enumerate(entries):
            if not isinstance(v, list):
                continue
            where = f"model.{key}" if key == "sigma" else f"model.{key}[{i}]"
            if len(v) != n:
                raise SchemaError(
                    where, f"a per-axis sigma needs {n} entries (one per input column), "
                    f"got {len(v)}",
                )
            if model.get("interface"):
                raise SchemaError(where, "a per-axis sigma cannot be combined with interface")
    grown_n = {"mff": n_in, "stmff": space_dim}.get(str(model.get("arch")))
    for i, (value, _seed) in enumerate(model.get("grown") or []):
        if isinstance(value, list) and grown_n is not None and len(value) != grown_n:
            raise SchemaError(
                f"model.grown[{i}][0]",
                f"a per-axis sigma needs {grown_n} entries (one per input column), "
                f"got {len(value)}",
            )


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
    unresolved = [k for k, v in spec.items() if v == opts.AUTO]
    if unresolved:
        raise SchemaError(
            f"model.{unresolved[0]}",
            "is auto: resolve it first (mscalepde.frequencies.select.resolve_auto, as solve does)",
        )
    spec.pop("auto", None)
    spec.pop("adapt", None)  # used by the trainer's FrequencyAdapter, not the network
    grown = spec.pop("grown", None) or []
    cls = ARCHITECTURES[spec.pop("arch", "mlp")]
    interface = interface_expressions(spec.pop("interface", None) or [], space_dim, params)
    model = cls(space_dim=space_dim, has_time=has_time, bounds=bounds, interface=interface, **spec)
    for value, seed in grown:  # the bands model.adapt added in a run: the same blocks
        model.grow(value, int(seed))
    return model


__all__ = [
    "ADAPTIVE",
    "ARCHITECTURES",
    "AUTO_KEYS",
    "COMMON_OPTIONS",
    "Architecture",
    "Registry",
    "build_model",
    "check_axes",
    "is_auto",
    "interface_expressions",
    "validate_model_section",
]
