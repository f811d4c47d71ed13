"""Exceptions of the package.

Every error caused by user input derives from :class:`MscaleError`; the command line turns
these into one line on stderr and exit code 2 (input errors) or 3 (training failures),
never a traceback.
"""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when it has none), cut to
    ``limit`` characters: what a one-line error reports of a foreign exception."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


class MscaleError(Exception):
    """Base class of the package's user-facing errors (one-line message)."""

    exit_code = 2


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


class RunFolderError(MscaleError):
    """A run folder cannot be written or read (disk full, permissions, missing files)."""

    exit_code = 4
