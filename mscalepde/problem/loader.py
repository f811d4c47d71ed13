"""Reading a problem file: a guarded YAML loader.

The loader is PyYAML's safe loader, which also refuses aliases (``*name``; this rules out
"billion laughs" alias bombs), duplicate keys, Python-object tags and files over
:data:`MAX_FILE_BYTES`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mscalepde.errors import ProblemError
from mscalepde.schema import describe

MAX_FILE_BYTES = 1 << 20


class _StrictLoader(yaml.SafeLoader):
    """Safe loader that refuses aliases and duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not supported", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, origin: str) -> Any:
    """Parse YAML text safely, turning every failure into a one-line ProblemError."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - strict safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "constructor for the tag" in problem:
            tag = re.search(r"'([^']*)'", problem)
            problem = f"the YAML tag {tag.group(1) if tag else '(unknown)'} is not allowed"
        raise ProblemError(origin, "", f"{where}invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ProblemError(origin, "", f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ProblemError(origin, "", "invalid YAML: nesting too deep") from None


def read_problem_file(path: str | Path) -> dict[str, Any]:
    """Read and parse a problem file into a plain mapping (not yet validated)."""
    origin = str(path)
    p = Path(path)
    try:
        if not p.is_file():
            raise ProblemError(origin, "", "no such file" if not p.exists() else "not a file")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ProblemError(origin, "", f"file too large ({size} bytes; limit 1 MiB)")
        raw = p.read_bytes()
    except OSError as exc:
        raise ProblemError(origin, "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProblemError(origin, "", "not a UTF-8 text file (binary data?)") from None
    if "\x00" in text:
        raise ProblemError(origin, "", "not a text file (contains NUL bytes)")
    if not text.strip():
        raise ProblemError(origin, "", "the file is empty (expected a problem mapping)")
    data = parse_yaml(text, origin)
    if data is None:
        raise ProblemError(origin, "", "the file has no content (expected a problem mapping)")
    if not isinstance(data, dict):
        raise ProblemError(
            origin, "", f"expected a mapping of keys (pde, domain, ...), got {describe(data)}"
        )
    return data
