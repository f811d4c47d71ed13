"""Small declarative validation of configuration mappings.

A section of a problem file (``model``, ``train``, ...) is described by a dict of
:class:`Option` objects; :func:`validate_section` checks a user mapping against it and
returns a complete mapping with defaults filled in.  Errors are :class:`SchemaError`
carrying the dotted key path and a one-line message of the form
``expected <what>, got <what was found>``; the problem loader adds the file name.

Hand-written rather than pydantic/jsonschema: the messages must name the key path in the
user's own vocabulary (``train.points.interior: expected an integer >= 1, got -5``) and
unknown keys must suggest the nearest valid one; both are a few lines here and awkward to
coax out of a general-purpose validator.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mscalepde.errors import SchemaError


def describe(value: Any, limit: int = 60) -> str:
    """A short, bounded description of a user value for error messages.

    Containers are summarised by type and size so that a huge (or alias-bomb) value can
    never produce a huge message.
    """
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return f"a mapping with {len(value)} key(s)"
    if isinstance(value, (list, tuple)):
        if len(value) <= 4 and all(isinstance(v, (int, float, str)) for v in value):
            text = "[" + ", ".join(describe(v, 20) for v in value) + "]"
            if len(text) <= limit:
                return text
        return f"a list of {len(value)} item(s)"
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return repr(text)
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    return f"a value of type {type(value).__name__}"


def join(path: str, key: str | int) -> str:
    """Dotted child path: ``join('train', 'lr') == 'train.lr'``, lists as ``boundary[0]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_int(value: Any, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (a float with an integral value such as ``1e4`` is accepted)."""
    bound = ""
    if minimum is not None:
        bound = f" >= {minimum}"
    if maximum is not None:
        bound += f" and <= {maximum}" if bound else f" <= {maximum}"
    what = f"an integer{bound}"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(key, f"expected {what}, got {describe(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise SchemaError(key, f"expected {what}, got {value}")
    return int(value)


def as_float(
    value: Any,
    key: str,
    minimum: float | None = None,
    positive: bool = False,
    maximum: float | None = None,
) -> float:
    """A finite real number (YAML ints are accepted; strings like ``'1e-3'`` too)."""
    what = "a positive number" if positive else "a number"
    if minimum is not None:
        what += f" >= {minimum:g}"
    if maximum is not None:
        what += f" <= {maximum:g}"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SchemaError(key, f"expected {what}, got {describe(value)}") from None
    if not is_number(value) or not math.isfinite(float(value)):
        raise SchemaError(key, f"expected {what}, got {describe(value)}")
    value = float(value)
    if (
        (positive and value <= 0)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        raise SchemaError(key, f"expected {what}, got {value:g}")
    return value


#: The range of coordinates (box bounds, centres, vertices, times) a problem may use, and
#: the shortest length (an interval, a radius) relative to where it lies: beyond these,
#: float64 arithmetic on points (areas, normals, the sampler's ε) loses its meaning.
MAX_COORDINATE = 1e9
MIN_RELATIVE_LENGTH = 1e-9


def check_coordinate(value: float, key: str) -> float:
    """A coordinate within ±:data:`MAX_COORDINATE`."""
    if not abs(value) <= MAX_COORDINATE:
        raise SchemaError(
            key, f"expected a coordinate within ±{MAX_COORDINATE:g}, got {value:g}"
        )
    return value


def check_length(length: float, where: float, key: str, what: str = "length") -> float:
    """A positive ``length`` at least :data:`MIN_RELATIVE_LENGTH` · max(1, |where|) and at
    most 2·:data:`MAX_COORDINATE`."""
    least = MIN_RELATIVE_LENGTH * max(1.0, abs(where))
    if not least <= length <= 2 * MAX_COORDINATE:
        raise SchemaError(
            key, f"expected a {what} between {least:g} and {2 * MAX_COORDINATE:g}, got {length:g}"
        )
    return length


def as_bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaError(key, f"expected true or false, got {describe(value)}")
    return value


def as_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(key, f"expected a string, got {describe(value)}")
    return value


def as_choice(value: Any, key: str, choices: Sequence[str]) -> str:
    options = " | ".join(choices)
    if not isinstance(value, str) or value not in choices:
        hint = ""
        if isinstance(value, str):
            near = difflib.get_close_matches(value, list(choices), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise SchemaError(key, f"expected one of {options}, got {describe(value)}{hint}")
    return value


def as_mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SchemaError(key, f"expected a mapping (key: value), got {describe(value)}")
    for k in value:
        if not isinstance(k, str):
            raise SchemaError(key, f"expected string keys, got the key {describe(k)}")
    return value


def as_float_list(value: Any, key: str, positive: bool = False, min_len: int = 1) -> list[float]:
    if is_number(value):
        value = [value]
    if not isinstance(value, (list, tuple)) or len(value) < min_len:
        raise SchemaError(
            key, f"expected a list of at least {min_len} number(s), got {describe(value)}"
        )
    return [as_float(v, join(key, i), positive=positive) for i, v in enumerate(value)]


def check_unknown(raw: Mapping[str, Any], known: Sequence[str], path: str) -> None:
    """Raise on the first key of ``raw`` not in ``known``, suggesting the nearest one."""
    for k in raw:
        if k not in known:
            near = difflib.get_close_matches(str(k), list(known), n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise SchemaError(
                join(path, str(k)),
                f"unknown key ({hint}valid keys: {', '.join(sorted(known))})",
            )


@dataclass(frozen=True)
class Option:
    """One key of a configuration section.

    ``parse(value, key)`` converts/validates a user value and returns the clean value;
    ``default`` is used when the key is absent.
    """

    parse: Callable[[Any, str], Any]
    default: Any
    doc: str = ""


def validate_section(raw: Any, options: Mapping[str, Option], path: str) -> dict[str, Any]:
    """Validate ``raw`` against ``options``; unknown keys are errors; defaults filled in
    (``null`` for an option whose default is ``None`` keeps the default)."""
    if raw is None:
        raw = {}
    raw = as_mapping(raw, path)
    check_unknown(raw, list(options), path)
    out: dict[str, Any] = {}
    for name, opt in options.items():
        key = join(path, name)
        if name in raw and not (raw[name] is None and opt.default is None):
            out[name] = opt.parse(raw[name], key)
        else:
            out[name] = opt.default
    return out


# Ready-made parsers for Option(...). Each is a :class:`Parser`: it also carries the
# JSON-Schema fragment of the values it accepts, from which
# ``mscalepde/problem/editor_schema.py`` generates the editors' schema of a problem file.

#: The strings :func:`as_float` reads as numbers (YAML 1.1 reads ``1e-3`` as a string).
NUMBER_PATTERN = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"


class Parser:
    """A parse function ``(value, key) -> clean value`` with ``json``, the JSON-Schema
    fragment (draft 2020-12) of the values it accepts."""

    __slots__ = ("_parse", "json")

    def __init__(self, parse: Callable[[Any, str], Any], json: Mapping[str, Any]) -> None:
        self._parse = parse
        self.json = dict(json)

    def __call__(self, value: Any, key: str) -> Any:
        return self._parse(value, key)

    def __repr__(self) -> str:
        return f"Parser({self.json})"


def int_json(minimum: int | None = None, maximum: int | None = None) -> dict[str, Any]:
    """The JSON Schema of :func:`as_int` (JSON's integers include 1.0, as ``as_int`` does)."""
    out: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def float_json(
    minimum: float | None = None, positive: bool = False, maximum: float | None = None
) -> dict[str, Any]:
    """The JSON Schema of :func:`as_float`: a number within the bounds, or a numeric string
    (whose bounds only the validator checks)."""
    number: dict[str, Any] = {"type": "number"}
    if positive:
        number["exclusiveMinimum"] = 0
    if minimum is not None:
        number["minimum"] = minimum
    if maximum is not None:
        number["maximum"] = maximum
    return {"anyOf": [number, {"type": "string", "pattern": NUMBER_PATTERN}]}


def int_option(minimum: int | None = None, maximum: int | None = None) -> Parser:
    return Parser(lambda v, k: as_int(v, k, minimum, maximum), int_json(minimum, maximum))


def float_option(
    minimum: float | None = None, positive: bool = False, maximum: float | None = None
) -> Parser:
    return Parser(
        lambda v, k: as_float(v, k, minimum, positive, maximum),
        float_json(minimum, positive, maximum),
    )


def choice_option(*choices: str) -> Parser:
    return Parser(lambda v, k: as_choice(v, k, choices), {"enum": list(choices)})


def switch_option() -> Parser:
    """``auto | on | off``. YAML 1.1 (PyYAML) reads a bare ``on``/``off``/``yes``/``no`` as a
    boolean, so ``compile: off`` arrives as ``False``: booleans map to ``on``/``off``."""

    def parse(value: Any, key: str) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        return as_choice(value, key, ("auto", "on", "off"))

    return Parser(parse, {"enum": ["auto", "on", "off", True, False]})


def bool_option() -> Parser:
    return Parser(as_bool, {"type": "boolean"})
