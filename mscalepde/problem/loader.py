"""Reading a problem file: the package's guarded reader (:mod:`mscalepde.io`: a regular
UTF-8 file of at most 1 MiB; no aliases, duplicate keys, tags or deep nesting), then the
checks that it holds a problem mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mscalepde.errors import ProblemError
from mscalepde.io import parse_yaml, read_text
from mscalepde.schema import describe


def read_problem_file(path: str | Path) -> dict[str, Any]:
    """Read and parse a problem file into a plain mapping (not yet validated)."""
    origin = str(path)
    text = read_text(path, "problem file")
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
