"""The on-disk cache of reference solutions (``$MSCALEPDE_CACHE``, default
``~/.cache/mscalepde``), keyed by the problem's fingerprint and the reference settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.errors import MscaleError, ReferenceSolveError
from mscalepde.problem.model import Problem
from mscalepde.reference.result import Reference
from mscalepde.reference.solve import _settings_key, compute_reference, reference_settings


def cache_dir() -> Path:
    """``$MSCALEPDE_CACHE/reference`` if set, else ``~/.cache/mscalepde/reference``."""
    base = os.environ.get("MSCALEPDE_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "mscalepde"
    return root / "reference"


def cache_path(
    problem: Problem, settings: Mapping[str, Any], directory: Path | None = None
) -> Path:
    d = Path(directory) if directory is not None else cache_dir()
    return d / f"{problem.fingerprint()}-{_settings_key(settings)}.npz"


_MEMO: dict[str, Reference] = {}


def get_reference(
    problem: Problem,
    *,
    cache: bool = True,
    refresh: bool = False,
    directory: str | Path | None = None,
    **overrides: Any,
) -> Reference:
    """The cached reference of ``problem`` (computed and stored when missing).

    The cache key is ``problem.fingerprint()`` (equation, domain and data) plus the
    settings (``reference`` section and ``overrides``) and the solver version."""
    settings = reference_settings(problem, **overrides)
    path = cache_path(problem, settings, Path(directory) if directory is not None else None)
    key = str(path)
    if cache and not refresh:
        if key in _MEMO:
            return _MEMO[key]
        if path.is_file():
            try:
                ref = Reference.load(path)
                if ref.fingerprint == problem.fingerprint():
                    _MEMO[key] = ref
                    return ref
            except ReferenceSolveError:
                pass  # a corrupt cache entry is recomputed
    ref = compute_reference(problem, settings)
    if cache:
        try:
            ref.save(path)
        except MscaleError:
            pass  # an unwritable cache is not an error
        _MEMO[key] = ref
    return ref


def reference_values(problem: Problem, points: np.ndarray) -> np.ndarray:
    """The (cached) reference solution at ``points`` (N, D): the truth of a problem
    without ``exact``."""
    return get_reference(problem)(points)


def link_reference(problem: Problem, dest: str | Path) -> Path:
    """Put the problem's reference at ``dest`` (a run folder's ``reference.npz``): a hard
    link to the cached file where the file system allows it (no second copy on disk),
    else a copy written atomically."""
    dest = Path(dest)
    ref = get_reference(problem)
    source = cache_path(problem, reference_settings(problem))
    if source.is_file():
        tmp = dest.with_name(f".{dest.name}.link-{os.getpid()}")
        try:
            if tmp.exists():
                tmp.unlink()
            os.link(source, tmp)
            os.replace(tmp, dest)
            return dest
        except OSError:
            if tmp.exists():
                tmp.unlink()
    return ref.save(dest)


def cache_entries(directory: Path | None = None) -> list[tuple[Path, int]]:
    """The reference files of the cache, largest first, with their sizes in bytes."""
    d = directory if directory is not None else cache_dir()
    if not d.is_dir():
        return []
    files = [(p, p.stat().st_size) for p in d.iterdir() if p.is_file() and p.suffix == ".npz"]
    return sorted(files, key=lambda e: -e[1])


def clear_cache(directory: Path | None = None) -> tuple[int, int]:
    """Delete the cache's reference files (and leftovers of interrupted writes); returns
    (files, bytes) removed. Run folders keep their own ``reference.npz``."""
    d = directory if directory is not None else cache_dir()
    removed, size = 0, 0
    if not d.is_dir():
        return 0, 0
    for p in d.iterdir():
        if p.is_file() and (p.suffix == ".npz" or p.name.endswith(".tmp")):
            size += p.stat().st_size
            p.unlink()
            removed += 1
    _MEMO.clear()
    return removed, size
