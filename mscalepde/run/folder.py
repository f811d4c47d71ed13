"""The run folder: atomic writes of a run's files, and rebuilding its model.

Layout (docs/design.md §5): ``config.yaml`` (the resolved problem and settings),
``history.csv``, ``diagnostics.npz`` (diagnostics), ``model.pt`` (a state dict; the model is
rebuilt from ``config.yaml``), ``summary.json`` and ``figures/*.png``.

Every file is written to a temporary name in the same folder and renamed into place
(``os.replace`` is atomic on POSIX), so an interrupted run never leaves a half-written
file. Write failures (disk full, permissions) raise :class:`RunFolderError` naming the file.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from mscalepde.errors import MscaleError, RunFolderError
from mscalepde.io import atomic_write_with
from mscalepde.run.model import make_model


def save_state(path: str | Path, model: torch.nn.Module) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write_with(path, lambda buf: torch.save(state, buf))


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - corrupted file: one-line message
        raise RunFolderError(f"{path}: cannot read the model: {exc}") from None


def load_model(run_dir: str | Path) -> tuple[Any, torch.nn.Module]:
    """Rebuild a saved model from ``config.yaml`` and ``model.pt`` of a run folder;
    returns ``(problem, model)`` with the model in eval mode (the whole run, history and
    summary included: :func:`mscalepde.run.result.load_run`)."""
    from mscalepde.problem.validate import load_problem

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    problem = load_problem(run_dir / "config.yaml")
    model = make_model(problem)
    state = load_state(run_dir / "model.pt")
    saved = next((v.dtype for v in state.values() if v.is_floating_point()), None)
    if saved is not None:  # a Gauss–Newton phase leaves the model in float64
        model = model.to(saved)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        path = run_dir / "model.pt"
        raise RunFolderError(f"{path}: does not match config.yaml: {first}") from None
    model.eval()
    return problem, model


def new_run_dir(base: str | Path, name: str) -> Path:
    """``base/name-YYYYmmdd-HHMMSS[-k]``, created; never reuses an existing folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(base)
    for k in range(1000):
        cand = base / (f"{name}-{stamp}" + (f"-{k}" if k else ""))
        try:
            cand.mkdir(parents=True, exist_ok=False)
            return cand
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunFolderError(f"{cand}: cannot create the run folder: {exc.strerror}") from None
    raise RunFolderError(f"{base}: too many runs named {name}-{stamp}")


def prepare_out_dir(out: str | Path) -> Path:
    """Create (or reuse) an explicit ``--out`` folder."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot create the run folder: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise RunFolderError(f"{path}: the run folder is not writable")
    return path


def run_folder(
    out: str | Path | None, runs_dir: str | Path, name: str, *, resumed: bool, overwrite: bool
) -> tuple[Path, Path | None]:
    """The folder a run writes into, and the folder it is to replace at the end (or None).

    - no ``out``: a new ``runs_dir/<name>-<timestamp>`` folder;
    - a resumed run: its own folder;
    - an ``out`` that is missing or empty: that folder;
    - an ``out`` that holds files: refused (one line, exit 2) unless ``overwrite``; then a
      staging folder ``.<name>.partial-<pid>`` beside it, which :func:`replace_folder`
      moves over ``out`` once the run has ended well. Until then the old run stays as it
      was, byte for byte, whatever fails."""
    if out is None:
        return new_run_dir(runs_dir, name), None
    path = Path(out)
    if resumed or not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return prepare_out_dir(path), None
    if not path.is_dir():
        raise RunFolderError(f"{path}: exists and is not a folder")
    if not overwrite:
        raise MscaleError(
            f"{path}: already holds files (a run?); give --overwrite to replace them with "
            "this run, or choose another --out"
        )
    staging = path.parent / f".{path.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    return prepare_out_dir(staging), path


def replace_folder(staging: Path, target: Path) -> None:
    """Move ``staging`` over ``target``: the old folder is renamed aside, the new one
    renamed into place (both renames are atomic on one file system), then the old one is
    deleted. A failure before the second rename puts the old folder back."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    try:
        os.replace(target, old)
        try:
            os.replace(staging, target)
        except OSError:
            os.replace(old, target)
            raise
    except OSError as exc:
        raise RunFolderError(
            f"{target}: cannot replace the run folder: {exc.strerror or exc}; the new run is "
            f"in {staging}"
        ) from None
    shutil.rmtree(old, ignore_errors=True)
