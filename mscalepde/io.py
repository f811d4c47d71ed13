"""File input and output: the one guarded reader of the package's YAML files, and atomic
writes.

**Reading.** Every YAML file the package reads (problem files, sweep files) and every
``--set`` value goes through :func:`read_yaml` / :func:`parse_yaml`: the file must be a
regular file of at most :data:`MAX_FILE_BYTES`, UTF-8 text without NUL bytes; the parser is
PyYAML's safe loader that also refuses aliases (``*name``: no "billion laughs" expansion),
duplicate keys and Python-object tags, and the value may nest at most :data:`MAX_DEPTH`
containers deep and hold at most :data:`MAX_NODES` values (checked on the parser's event
stream, before anything is built; libyaml's C parser is used where installed). Every
failure is one :class:`~mscalepde.errors.ProblemError` line naming the file.

**Writing.** Every file the package writes (run folders, caches, reports) goes through
:func:`atomic_write_bytes`, which writes a temporary file in the same folder, flushes it to
disk and renames it over the target, so that a reader or a crash never sees a half-written
file.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mscalepde.errors import ProblemError, RunFolderError

MAX_FILE_BYTES = 1 << 20  # a problem or sweep file: at most 1 MiB
MAX_DEPTH = 32  # nested lists and mappings in a YAML file or a --set value
MAX_NODES = 100_000  # values (scalars, lists, mappings) in one YAML document


_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed


class _StrictLoader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """Safe loader that refuses duplicate keys (aliases and depth are refused by
    :func:`_scan` before it runs)."""

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
                    None, None, f"duplicate key '{str(key)[:40]}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _scan(text: str) -> str | None:
    """What is wrong with the YAML event stream, before anything is built: an alias
    (``*name``, the "billion laughs" bomb), nesting deeper than :data:`MAX_DEPTH`, or more
    than :data:`MAX_NODES` nodes. Events come from libyaml's C parser where installed."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_BASE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            return "YAML aliases (*name) are not supported"
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            nodes += 1
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} deep"
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
        if nodes > MAX_NODES:
            return f"more than {MAX_NODES} values (the limit of a file)"
    return None


def nesting_depth(value: Any) -> int:
    """How many lists/mappings deep ``value`` nests (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            items: Any = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        deepest = max(deepest, d)
        if d <= MAX_DEPTH:
            stack.extend((x, d + 1) for x in items)
    return deepest


def _text_depth(text: str) -> int:
    """An upper bound of the flow-collection nesting of YAML text ([ and { openers), found
    without parsing, so that a deep document is refused before the recursive parser sees it."""
    depth = deepest = 0
    for ch in re.sub(r"#[^\n]*|'[^'\n]*'|\"[^\"\n]*\"", "", text):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest


def parse_yaml(text: str, origin: str, key: str = "") -> Any:
    """Parse YAML text with the strict safe loader; every failure (syntax, alias, tag,
    duplicate key, nesting deeper than :data:`MAX_DEPTH`) is one ProblemError line."""
    if _text_depth(text) > MAX_DEPTH:
        raise ProblemError(origin, key, f"invalid YAML: nested more than {MAX_DEPTH} deep")
    try:
        problem = _scan(text)
        if problem is not None:
            raise ProblemError(origin, key, f"invalid YAML: {problem}")
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - strict safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "constructor for the tag" in problem:
            tag = re.search(r"'([^']*)'", problem)
            problem = f"the YAML tag {tag.group(1)[:60] if tag else '(unknown)'} is not allowed"
        raise ProblemError(origin, key, f"{where}invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ProblemError(origin, key, f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        too_deep = f"invalid YAML: nested more than {MAX_DEPTH} deep"
        raise ProblemError(origin, key, too_deep) from None
    if nesting_depth(data) > MAX_DEPTH:
        raise ProblemError(origin, key, f"invalid YAML: nested more than {MAX_DEPTH} deep")
    return data


def read_text(path: str | Path, what: str = "file", max_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of a regular file of at most ``max_bytes``, UTF-8 without NUL bytes; a
    directory, a FIFO, a device, a missing, unreadable, binary or oversized file is one
    ProblemError line (nothing of its content is echoed)."""
    origin = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ProblemError(origin, "", "no such file") from None
    except OSError as exc:
        raise ProblemError(origin, "", f"cannot read the file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ProblemError(origin, "", f"is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = "a device, FIFO or socket"
        raise ProblemError(origin, "", f"not a regular file ({kind}): no {what}")
    if st.st_size > max_bytes:
        limit = f"limit {max_bytes} bytes"
        raise ProblemError(origin, "", f"file too large ({st.st_size} bytes; {limit})")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ProblemError(origin, "", f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise ProblemError(origin, "", f"file too large (over {max_bytes} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProblemError(origin, "", "not a UTF-8 text file (binary data?)") from None
    if "\x00" in text:
        raise ProblemError(origin, "", "not a text file (contains NUL bytes)")
    return text


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """:func:`read_text` then :func:`parse_yaml`: the one way the package reads YAML files."""
    return parse_yaml(read_text(path, what), str(path))


def _file_mode() -> int:
    """The mode ``open()`` would give a new file: 0666 less the process's umask, read from
    ``/proc/self/status`` where Linux gives it (reading it with ``os.umask`` changes it for
    an instant, which another thread creating a file could see)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), _file_mode())  # mkstemp makes 0600: use the umask
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot write: {exc.strerror or exc}") from None


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write_bytes` leaves when its process
    is killed between writing and renaming (``.NAME.<8 random characters>.tmp``; SIGKILL runs no
    cleanup). Call it only for a folder no live process writes to: a resumed run's own.
    Returns the files removed."""
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        if p.is_file() and re.fullmatch(r"\..+\.[A-Za-z0-9_]{8}\.tmp", p.name):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | Path, writer: Callable[[io.BytesIO], None]) -> None:
    """Serialise with ``writer(buffer)`` into memory, then write atomically."""
    buf = io.BytesIO()
    writer(buf)
    atomic_write_bytes(path, buf.getvalue())


def write_yaml(path: str | Path, data: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=True, default=str) + "\n")
