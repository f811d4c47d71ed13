"""Exceptions of the package.

Every exception class of the package is here, so that any layer can raise and catch them.
Every error caused by user input derives from :class:`MscaleError`; the command line turns
these into one line on stderr and exit code 2 (input errors) or 3 (training failures),
never a traceback. :class:`Stopped` and :class:`Terminated` are the two ways a signal ends
training (they derive from ``KeyboardInterrupt``, as Ctrl-C does).
"""

from __future__ import annotations

import re
from pathlib import Path

#: What :func:`one_line` escapes: C0 and C1 control characters (newlines, carriage returns,
#: escapes of terminal sequences, NUL …) and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
MAX_MESSAGE = 1000  # characters of one error line


def _escape(match: re.Match[str]) -> str:
    c = match.group(0)
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as exactly one printable line: control characters and line separators
    escaped (a newline becomes the two characters backslash-n), cut to ``limit``
    characters. Every message that can carry user text (file names, keys, names, file
    content) goes through here, so that no input can forge a second line."""
    out = _CONTROL.sub(_escape, text)
    if len(out) > limit:
        out = f"{out[:limit]}… ({len(out) - limit} more characters)"
    return out


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when it has none), escaped
    and cut to ``limit`` characters: what a one-line error reports of a foreign exception."""
    lines = str(exc).strip().splitlines()
    return one_line(lines[0] if lines else type(exc).__name__, limit)


class MscaleError(Exception):
    """Base class of the package's user-facing errors: ``str(error)`` is always one line
    (:func:`one_line`), whatever user text the message quotes."""

    exit_code = 2

    def __str__(self) -> str:
        return one_line(super().__str__())


class ExpressionError(MscaleError):
    """An expression string is malformed or uses something outside the whitelist.

    ``column`` is the 1-based column of the offending token when known.
    """

    def __init__(self, message: str, column: int | None = None) -> None:
        self.reason = message
        self.column = column
        text = message if column is None else f"{message} (column {column})"
        super().__init__(text)


class ProblemError(MscaleError):
    """A problem file (or an override) fails validation.

    The message has the form ``FILE: key.path: what was expected, what was found``.
    """

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.reason = message
        parts = [p for p in (source, key) if p]
        super().__init__(": ".join([*parts, message]))


class TrainingError(MscaleError):
    """Training stopped abnormally (a NaN or infinite loss); the last good state is kept."""

    exit_code = 3


class ParallelError(MscaleError):
    """A run on several processes cannot start, or lost one of its ranks
    (:mod:`mscalepde.parallel`); the run folder keeps its last checkpoint."""

    exit_code = 3


class RunFolderError(MscaleError):
    """A run folder cannot be written or read (disk full, permissions, missing files)."""

    exit_code = 4


class SchemaError(ValueError):
    """Validation failure at ``key`` (a dotted path) with a one-line ``message``."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class MeshError(MscaleError):
    """gmsh failed, or the mesh does not carry every boundary part."""


class SpectrumError(MscaleError):
    """No spectrum could be estimated (one line naming the key)."""


class ReferenceSolveError(MscaleError):
    """The reference solver cannot handle this problem or these settings."""


class ResumeError(MscaleError):
    """A run cannot be resumed (no checkpoint, another problem, changed settings)."""

    exit_code = 2


class Stopped(KeyboardInterrupt):
    """Training stopped at a step boundary on request; a checkpoint was written.

    ``reason`` is the signal's name, ``step`` the last completed step; ``run_dir`` is set by
    ``solve`` when the run has a folder (the place to resume from)."""

    def __init__(self, reason: str, step: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.step = step
        self.run_dir: Path | None = None


class Terminated(KeyboardInterrupt):
    """A second signal (or one outside training): stop now, mid-step."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
