"""Dotted-path overrides of a problem's data: ``--set train.steps=100`` on the command line,
``train={'steps': 100}`` in Python. A value is parsed as YAML (``--set model.sigmas=[1,10]``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mscalepde.errors import ProblemError, SchemaError
from mscalepde.io import MAX_DEPTH, parse_yaml
from mscalepde.schema import describe

_PATH_RE = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])?(\.[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])?)*$"
)  # keys may hold hyphens (train.optimizer[1].gauss-newton.steps)


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``data[a][b][i]... = value`` for ``path = 'a.b[i]...'`` (creating mappings)."""
    if not _PATH_RE.match(path):
        raise SchemaError(
            path, "expected a dotted key path such as train.steps or boundary[0].value"
        )
    parts: list[str | int] = []
    for piece in path.split("."):
        m = re.match(r"^([^\[]+)(?:\[(\d+)\])?$", piece)
        assert m is not None
        parts.append(m.group(1))
        if m.group(2) is not None:
            parts.append(int(m.group(2)))
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise SchemaError(path, f"no list item [{part}] to override")
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise SchemaError(path, f"cannot set a key inside {describe(node)}")
        auto = node.get(part) == "auto" and isinstance(nxt, str)  # e.g. train.points.interior
        if part not in node or node[part] is None or auto:  # (auto: the other keys stay auto)
            if isinstance(nxt, int):
                raise SchemaError(path, f"no list '{part}' to override")
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SchemaError(path, f"no list item [{last}] to override")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SchemaError(path, f"cannot set a key inside {describe(node)}")


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.steps=2000'`` → ``('train.steps', 2000)``; the value is read as YAML."""
    if "=" not in text:
        raise SchemaError(text, "expected KEY=VALUE (for example train.steps=2000)")
    key, _, value = text.partition("=")
    key = key.strip()
    if not value.strip():
        return key, None
    try:
        return key, parse_yaml(value, "--set", key)
    except ProblemError as exc:
        if "nested more than" in str(exc):
            raise SchemaError(key, f"the value is nested more than {MAX_DEPTH} deep") from None
        return key, value  # not YAML: the text itself (e.g. an expression with a colon)


def merge_model(current: Any, update: dict[str, Any]) -> dict[str, Any]:
    """Update a model section. Changing ``arch`` starts from the new architecture's
    defaults (the old architecture's keys would not mean the same thing, or not exist);
    keys given together with the new ``arch`` are kept."""
    current = dict(current) if isinstance(current, Mapping) else {}
    if "arch" in update and update["arch"] != current.get("arch", "mlp"):
        return dict(update)
    return {**current, **update}


def set_override(data: dict[str, Any], key: str, value: Any) -> None:
    """Set one dotted-path value in place; ``model.arch`` goes through :func:`merge_model`."""
    if key == "model.arch":
        data["model"] = merge_model(data.get("model"), {"arch": value})
    else:
        set_path(data, key, value)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], origin: str) -> dict[str, Any]:
    """Apply ``--set`` strings in order. ``model.arch=NAME`` (or ``model={arch: NAME, ...}``)
    with a different architecture resets the model section to that architecture's defaults;
    later ``model.*`` overrides then apply to it."""
    data = copy.deepcopy(data)
    for text in overrides:
        try:
            key, value = parse_override(text)
            set_override(data, key, value)
        except SchemaError as exc:
            raise ProblemError(f"{origin} (--set {text})", exc.key, exc.message) from None
    return data
