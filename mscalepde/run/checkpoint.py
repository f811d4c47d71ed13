"""Checkpoints: the file that lets a run continue after a stop, a kill or a reboot.

``RUN_DIR/checkpoint.pt`` holds, in one file written atomically (a temporary file renamed
into place, so a kill at any instant leaves the previous checkpoint whole):

- ``config``: the resolved problem the run was trained with;
- ``trainer``: :meth:`mscalepde.training.trainer.Trainer.state_dict` (parameters, optimiser state,
  phase and step, seed of the current points, RNG states, history, notes);
- ``monitor``: :meth:`mscalepde.diagnostics.monitor.SpectralMonitor.state_dict` (the spectral
  history so far), or None.

It contains tensors, numbers, strings and containers only and is read with
``torch.load(weights_only=True)``: loading a checkpoint never runs pickled code.

Resuming with other settings is allowed only where the continuation stays meaningful
(:func:`check_resumable`): more steps for the phase in progress or a later one, other
logging, checkpointing, device or compile settings. Everything else (the problem, the
model, the points, learning rates, seeds, a finished phase's length) must be unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mscalepde.errors import ResumeError, first_line
from mscalepde.io import atomic_write_with
from mscalepde.problem.model import Problem
from mscalepde.training.settings import TrainSettings

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1

# train keys a resumed run may change (phase lengths are checked phase by phase)
FREE_TRAIN_KEYS = frozenset(
    {"log_every", "checkpoint_every", "checkpoint_seconds", "device", "compile", "on_nan",
     "rollbacks", "budget_seconds", "budget_steps"}
)
# train keys that only set phases: compared phase by phase (a phase not yet started may
# change them freely)
PHASE_KEYS = frozenset(
    {"steps", "lbfgs_steps", "optimizer", "lr", "lbfgs_lr", "decay", "resample_every"}
)
# other keys a resumed run may change: how often the spectral diagnostics are recorded
FREE_KEYS = frozenset({"diagnostics.every"})


@dataclass
class Checkpoint:
    """A loaded ``checkpoint.pt`` and the run folder it belongs to."""

    run_dir: Path
    config: dict[str, Any]
    trainer: dict[str, Any]
    monitor: dict[str, Any] | None

    @property
    def step(self) -> int:
        return int(self.trainer["step"])


def _to_torch(obj: Any) -> Any:
    """numpy arrays → tensors (``weights_only`` loading does not accept numpy objects)."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_torch(v) for v in obj]
    return obj


def _to_numpy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, Mapping):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_numpy(v) for v in obj]
    return obj


def save_checkpoint(
    run_dir: str | Path,
    config: Mapping[str, Any],
    trainer: Mapping[str, Any],
    monitor: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/checkpoint.pt`` atomically; returns its path."""
    path = Path(run_dir) / CHECKPOINT_FILE
    data = {
        "format": FORMAT,
        "config": _to_torch(dict(config)),
        "trainer": _to_torch(dict(trainer)),
        "monitor": None if monitor is None else _to_torch(dict(monitor)),
    }
    atomic_write_with(path, lambda buf: torch.save(data, buf))
    return path


def load_checkpoint(run_dir: str | Path) -> Checkpoint:
    """Read ``run_dir/checkpoint.pt``; :class:`ResumeError` (one line) when there is none
    or it cannot be read."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_FILE
    if not run_dir.is_dir():
        raise ResumeError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise ResumeError(
            f"{run_dir}: no {CHECKPOINT_FILE} to resume from (this folder was not written "
            f"by a solve of this version, or the run stopped before its first checkpoint)"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: one line
        raise ResumeError(f"{path}: cannot read the checkpoint: {first_line(exc)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ResumeError(f"{path}: not a checkpoint of format {FORMAT} (found {found})")
    monitor = data.get("monitor")
    try:
        checkpoint = Checkpoint(
            run_dir=run_dir,
            config=dict(data["config"]),
            trainer=dict(data["trainer"]),
            monitor=None if monitor is None else _to_numpy(monitor),
        )
        int(checkpoint.trainer["phase_index"]), int(checkpoint.trainer["phase_k"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ResumeError(f"{path}: an incomplete checkpoint (missing {exc})") from None
    return checkpoint


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    return {prefix: obj}


def _phase_key(problem: Problem, index: int, name: str, steps: bool) -> str:
    """The key a user writes to change phase ``index``'s steps (or settings)."""
    written = problem.config["train"].get("optimizer")
    entry = written[index] if written is not None and index < len(written) else None
    if isinstance(entry, Mapping) or (entry is not None and not steps):
        return f"train.optimizer[{index}]" + (f".{name}.steps" if steps else f" ({name})")
    return {"adam": "train.steps", "lbfgs": "train.lbfgs_steps"}.get(
        name, f"train.optimizer[{index}]"
    )


def _option_key(problem: Problem, index: int, name: str, option: str) -> str:
    """The key a user writes for setting ``option`` of phase ``index``."""
    written = problem.config["train"].get("optimizer")
    entry = written[index] if written is not None and index < len(written) else None
    if isinstance(entry, Mapping) and option in (entry.get(name) or {}):
        return f"train.optimizer[{index}].{name}.{option}"
    if name == "lbfgs" and option == "lr":
        return "train.lbfgs_lr"
    return f"train.{option}"


def check_resumable(
    saved_problem: Problem, new_problem: Problem, trainer: Mapping[str, Any], where: str
) -> None:
    """Refuse (:class:`ResumeError`, one line naming the key) a resume whose settings
    (``new_problem``) would make the continuation of the run saved with ``saved_problem``
    meaningless.

    ``trainer`` is the checkpoint's trainer state (its position); ``where`` names the run
    folder in messages."""
    saved, new = saved_problem.config, new_problem.config
    if saved.get("name") != new.get("name"):
        raise ResumeError(
            f"{where}: holds a run of problem '{saved.get('name')}', not '{new.get('name')}'"
            f" (name differs)"
        )
    a = {k: v for k, v in _flatten(saved).items() if not k.startswith("train.")}
    b = {k: v for k, v in _flatten(new).items() if not k.startswith("train.")}
    for key in ("description", *FREE_KEYS):
        a.pop(key, None)
        b.pop(key, None)
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            raise ResumeError(
                f"{where}: {key} differs from the checkpoint's settings "
                f"({a.get(key)!r} there, {b.get(key)!r} now); resume with the same problem"
            )
    ta, tb = saved["train"], new["train"]
    for key in sorted(set(ta) | set(tb)):
        if key in FREE_TRAIN_KEYS or key in PHASE_KEYS:
            continue
        if ta.get(key) != tb.get(key):
            raise ResumeError(
                f"{where}: train.{key} differs from the checkpoint's settings "
                f"({ta.get(key)!r} there, {tb.get(key)!r} now); only step counts, logging, "
                f"checkpointing, device and compile may change on resume"
            )
    tsa, tsb = saved_problem.train, new_problem.train
    old = TrainSettings.from_mapping(tsa).phases()
    now = TrainSettings.from_mapping(tsb).phases()
    at, done = int(trainer["phase_index"]), int(trainer["phase_k"])
    for j in range(at + 1):
        if j >= len(now) or now[j].name != old[j].name:
            have = "no such phase" if j >= len(now) else now[j].name
            raise ResumeError(
                f"{where}: train.optimizer: the run reached phase {j + 1} ({old[j].name}); "
                f"the new settings have {have} there"
            )
        changed = [k for k in sorted(set(now[j].options) | set(old[j].options))
                   if now[j].options.get(k) != old[j].options.get(k)]
        if changed:
            k = changed[0]
            raise ResumeError(
                f"{where}: {_option_key(new_problem, j, now[j].name, k)} differs from the "
                f"checkpoint's settings ({old[j].options.get(k)!r} there, "
                f"{now[j].options.get(k)!r} now); a phase that has started keeps its settings"
            )
        key = _phase_key(new_problem, j, now[j].name, True)
        if j < at and now[j].steps != old[j].steps:
            raise ResumeError(
                f"{where}: {key}: the {old[j].name} phase finished with {old[j].steps} "
                f"steps; a resumed run cannot change it (now {now[j].steps})"
            )
        if j == at and now[j].steps < done:
            raise ResumeError(
                f"{where}: {key}: the {old[j].name} phase has already run {done} steps; "
                f"resume with at least that many (now {now[j].steps})"
            )
