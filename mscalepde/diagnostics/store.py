"""The run folder's diagnostics file: one writer and one reader of its npz format
(settings, the F-principle histories, the final fields).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mscalepde.diagnostics.grid import slice_name
from mscalepde.diagnostics.history import SpectralHistory
from mscalepde.diagnostics.settings import DiagnosticSettings
from mscalepde.errors import RunFolderError
from mscalepde.io import atomic_write_with

FORMAT_VERSION = 1


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    atomic_write_with(path, lambda buf: np.savez(buf, **arrays))


def _pack(
    *,
    histories: Sequence[SpectralHistory],
    times: Sequence[float | None],
    settings: DiagnosticSettings,
    grid_shape: Sequence[int],
    truth: np.ndarray,
    fields: Sequence[tuple[int, np.ndarray]],
    fields_complete: bool,
    filter_index: np.ndarray,
    overhead_seconds: float,
    train_seconds: float | None,
    notes: Sequence[str],
    final: Mapping[str, np.ndarray] | None = None,
    original: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    primary = len(histories) - 1
    a: dict[str, np.ndarray] = dict(histories[primary].to_arrays())
    for i, h in enumerate(histories):
        for k, v in h.to_arrays().items():
            a[f"s{i}__{k}"] = v
    shape = tuple(int(s) for s in grid_shape)
    a.update(
        {
            "diag_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "slice_names": np.array([slice_name(t) for t in times]),
            "slice_times": np.array([np.nan if t is None else t for t in times], dtype=np.float64),
            "primary": np.array(primary, dtype=np.int64),
            "settings_json": np.array(json.dumps(settings.to_dict())),
            "grid_shape": np.array(shape, dtype=np.int64),
            "truth": np.asarray(truth, dtype=np.float64),
            "field_steps": np.array([s for s, _ in fields], dtype=np.int64),
            "fields": (
                np.stack([f for _, f in fields]).astype(np.float32)
                if fields
                else np.zeros((0, len(times), *shape), dtype=np.float32)
            ),
            "fields_complete": np.array(bool(fields_complete)),
            "filter_index": np.asarray(filter_index, dtype=np.int64),
            "overhead_seconds": np.array(float(overhead_seconds)),
            "train_seconds": np.array(np.nan if train_seconds is None else float(train_seconds)),
            "notes_json": np.array(json.dumps(list(notes))),
        }
    )
    if settings.window_field is not None:  # the smooth window the fields were multiplied by
        a["window"] = np.asarray(settings.window_field, dtype=np.float64).reshape(shape)
    if final:
        a.update({f"final__{k}": v for k, v in final.items()})
    if original:
        a.update(original)
    return a


@dataclass
class SavedDiagnostics:
    """The contents of a ``diagnostics.npz`` written by this module."""

    settings: DiagnosticSettings
    histories: list[SpectralHistory]
    times: tuple[float | None, ...]
    grid_shape: tuple[int, ...]
    box: tuple[tuple[float, float], ...]
    truth: np.ndarray
    field_steps: np.ndarray
    fields: np.ndarray
    fields_complete: bool
    filter_index: np.ndarray
    overhead_seconds: float
    train_seconds: float | None
    notes: list[str]
    original: dict[str, np.ndarray]

    @property
    def original_histories(self) -> list[SpectralHistory]:
        """The histories recorded during training (kept under ``train__*`` once
        :func:`diagnose_run` has rewritten the file; else the current ones)."""
        if not self.original:
            return self.histories
        out = []
        for i in range(len(self.times)):
            prefix = f"train__s{i}__"
            out.append(
                SpectralHistory.from_arrays(
                    {k[len(prefix):]: v for k, v in self.original.items() if k.startswith(prefix)}
                )
            )
        return out

    def original_arrays(self) -> dict[str, np.ndarray]:
        """``train__*`` arrays preserving the training-time histories and settings."""
        if self.original:
            return dict(self.original)
        a = {
            f"train__s{i}__{k}": v
            for i, h in enumerate(self.histories)
            for k, v in h.to_arrays().items()
        }
        a["train__settings_json"] = np.array(json.dumps(self.settings.to_dict()))
        return a

    @property
    def final_step(self) -> int | None:
        steps = self.histories[0].steps if self.histories else np.zeros(0)
        return int(steps[-1]) if len(steps) else None


def load_spectral(path: str | Path) -> SavedDiagnostics:
    """Read ``diagnostics.npz`` (raises :class:`RunFolderError` when unreadable)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - corrupted file: one line
        raise RunFolderError(f"{path}: cannot read the spectral history: {exc}") from None
    if "diag_version" not in a or int(a["diag_version"]) != FORMAT_VERSION:
        raise RunFolderError(f"{path}: not a spectral diagnostics file of version {FORMAT_VERSION}")
    n = len(a["slice_names"])
    histories = []
    for i in range(n):
        prefix = f"s{i}__"
        histories.append(
            SpectralHistory.from_arrays(
                {k[len(prefix) :]: v for k, v in a.items() if k.startswith(prefix)}
            )
        )
    times = tuple(None if math.isnan(t) else float(t) for t in a["slice_times"])
    train = float(a["train_seconds"])
    settings = DiagnosticSettings.from_dict(json.loads(str(a["settings_json"])))
    if "window" in a:  # the window of the stored fields' grid (DiagnosticGrid reuses it)
        settings = replace(
            settings, window_field=a["window"], window_key=(settings.grid, settings.transform)
        )
    return SavedDiagnostics(
        settings=settings,
        histories=histories,
        times=times,
        grid_shape=tuple(int(s) for s in a["grid_shape"]),
        box=tuple((float(lo), float(hi)) for lo, hi in a["box"]),
        truth=a["truth"],
        field_steps=a["field_steps"],
        fields=a["fields"],
        fields_complete=bool(a["fields_complete"]),
        filter_index=a["filter_index"],
        overhead_seconds=float(a["overhead_seconds"]),
        train_seconds=None if math.isnan(train) else train,
        notes=list(json.loads(str(a["notes_json"]))),
        original={k: v for k, v in a.items() if k.startswith("train__")},
    )
