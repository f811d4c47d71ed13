"""The F-principle history of a run: the per-peak relative errors Δ_F(k) and the band
errors over training steps (:class:`SpectralHistory`), its npz file and its text table
(docs/design.md §2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mscalepde.diagnostics.fprinciple import (
    Peak,
    SpectralSnapshot,
    _as_pairs,
    band_errors_from_coefficients,
    delta_f_at_peaks,
    format_wavevector,
)
from mscalepde.diagnostics.transforms import Box, _check_box, _check_transform
from mscalepde.io import atomic_write_with

_NPZ_VERSION = 1


class SpectralHistory:
    """Δ_F at the peaks, band errors and (e_low, e_high) over training.

    One row per diagnostic step.  The peaks (and bands) are fixed by the constructor or by
    the first recorded snapshot; later snapshots are evaluated at those same peaks/bands
    (recomputed from the snapshot's spectra when its own differ).  A value not recorded at a
    step is nan.  Arrays: ``steps`` (S,), ``delta_f`` (S, P), ``band_error`` (S, B),
    ``e_low``/``e_high`` (S,).
    """

    def __init__(
        self,
        peaks: Sequence[Peak] | None = None,
        threshold: float = 0.05,
        transform: str = "fft",
        box: Box | None = None,
        magnitude: bool = False,
        bands: Any = None,
    ) -> None:
        self.threshold = float(threshold)
        self.transform = _check_transform(transform)
        self.box: tuple[tuple[float, float], ...] | None = (
            None if box is None else tuple(_check_box(box))
        )
        self.magnitude = bool(magnitude)
        self.peaks: tuple[Peak, ...] | None = None if peaks is None else tuple(peaks)
        self.band_pairs: np.ndarray | None = None if bands is None else _as_pairs(bands)
        self.band_energy: np.ndarray | None = None
        self._steps: list[int] = []
        self._delta_f: list[np.ndarray] = []
        self._band_error: list[np.ndarray] = []
        self._e_low: list[float] = []
        self._e_high: list[float] = []

    # ------------------------------------------------------------------ recording
    def __len__(self) -> int:
        return len(self._steps)

    def record(
        self,
        step: int,
        snapshot: SpectralSnapshot | None = None,
        e_low: float | None = None,
        e_high: float | None = None,
    ) -> None:
        """Add the diagnostics of training step ``step``.

        Steps must increase; recording the last step again fills in the values it lacks
        (e.g. a snapshot and the filter errors recorded by separate calls).
        """
        step = int(step)
        if self._steps and step < self._steps[-1]:
            raise ValueError(f"steps must not decrease: {step} after {self._steps[-1]}")
        merge = bool(self._steps) and step == self._steps[-1]
        dfr = bnd = None
        if snapshot is not None:
            dfr, bnd = self._from_snapshot(snapshot)
        if not merge:
            self._steps.append(step)
            self._delta_f.append(np.full(self.n_peaks, np.nan))
            self._band_error.append(np.full(self.n_bands, np.nan))
            self._e_low.append(float("nan"))
            self._e_high.append(float("nan"))
        if dfr is not None:
            self._delta_f[-1] = dfr
        if bnd is not None:
            self._band_error[-1] = bnd
        if e_low is not None:
            self._e_low[-1] = float(e_low)
        if e_high is not None:
            self._e_high[-1] = float(e_high)

    def _from_snapshot(self, snap: SpectralSnapshot) -> tuple[np.ndarray, np.ndarray]:
        if snap.transform != self.transform:
            if self.peaks is not None or self.band_pairs is not None:
                raise ValueError(
                    f"snapshot uses transform {snap.transform!r}, history {self.transform!r}"
                )
            self.transform = snap.transform
        if self.box is None:
            self.box = tuple(snap.box)
        first_peaks = self.peaks is None
        if first_peaks:
            self.peaks = tuple(snap.peaks)
            self._delta_f = [np.full(self.n_peaks, np.nan) for _ in self._delta_f]
        if tuple(snap.peaks) == self.peaks and snap.magnitude == self.magnitude:
            dfr = np.asarray(snap.delta_f, dtype=np.float64).copy()
        else:
            dfr = delta_f_at_peaks(
                snap.h_hat, snap.u_hat, self.peaks, self.transform, self.magnitude
            )
        if self.band_pairs is None:
            self.band_pairs = snap.band_pairs
            self._band_error = [np.full(self.n_bands, np.nan) for _ in self._band_error]
        if snap.band_pairs.shape == self.band_pairs.shape and np.array_equal(
            snap.band_pairs, self.band_pairs
        ):
            bands = list(snap.bands)
        else:
            bands = band_errors_from_coefficients(
                snap.h_hat, snap.u_hat, snap.box, snap.transform, self.band_pairs
            )
        if self.band_energy is None:
            self.band_energy = np.array([b.energy for b in bands], dtype=np.float64)
        return dfr, np.array([b.error for b in bands], dtype=np.float64)

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The recorded rows as plain arrays (a checkpoint; peaks and bands are fixed by
        the constructor and are not part of it)."""
        return {
            "steps": self.steps.copy(),
            "delta_f": self.delta_f,
            "band_error": self.band_error,
            "e_low": self.e_low.copy(),
            "e_high": self.e_high.copy(),
            "band_energy": None if self.band_energy is None else self.band_energy.copy(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the recorded rows by those of :meth:`state`."""
        self._steps = [int(v) for v in np.asarray(state["steps"])]
        self._delta_f = [np.asarray(r, dtype=np.float64) for r in np.asarray(state["delta_f"])]
        self._band_error = [
            np.asarray(r, dtype=np.float64) for r in np.asarray(state["band_error"])
        ]
        self._e_low = [float(v) for v in np.asarray(state["e_low"])]
        self._e_high = [float(v) for v in np.asarray(state["e_high"])]
        if state.get("band_energy") is not None:
            self.band_energy = np.asarray(state["band_energy"], dtype=np.float64)

    def truncate(self, step: int) -> None:
        """Forget the rows after ``step`` (a rolled-back run goes on from there)."""
        keep = sum(1 for s in self._steps if s <= step)
        for rows in (self._steps, self._delta_f, self._band_error, self._e_low, self._e_high):
            del rows[keep:]

    # ------------------------------------------------------------------ arrays
    @property
    def n_peaks(self) -> int:
        return 0 if self.peaks is None else len(self.peaks)

    @property
    def n_bands(self) -> int:
        return 0 if self.band_pairs is None else len(self.band_pairs)

    @property
    def steps(self) -> np.ndarray:
        return np.asarray(self._steps, dtype=np.int64)

    @property
    def delta_f(self) -> np.ndarray:
        """Δ_F, shape (steps, peaks)."""
        return np.array(self._delta_f, dtype=np.float64).reshape(len(self._steps), self.n_peaks)

    @property
    def band_error(self) -> np.ndarray:
        """Band errors, shape (steps, bands)."""
        return np.array(self._band_error, dtype=np.float64).reshape(len(self._steps), self.n_bands)

    @property
    def e_low(self) -> np.ndarray:
        return np.asarray(self._e_low, dtype=np.float64)

    @property
    def e_high(self) -> np.ndarray:
        return np.asarray(self._e_high, dtype=np.float64)

    # ------------------------------------------------------------------ resolution
    def resolved_table(self, threshold: float | None = None) -> list[dict[str, Any]]:
        """One dict per peak: when did Δ_F drop below ``threshold`` (default: the history's)?

        Keys: ``index`` (mode numbers), ``wavenumber`` (wave vector, tuples), ``k_norm``
        (|k|), ``amplitude``, ``final_delta_f`` (last recorded Δ_F, nan if none),
        ``first_resolved`` (first step with Δ_F < threshold, or None), ``resolved_since``
        (the step from which Δ_F stayed below the threshold through the last recorded step,
        or None = never), ``threshold``.  Steps where Δ_F was not recorded (nan) are skipped.
        """
        thr = self.threshold if threshold is None else float(threshold)
        steps = self.steps
        table = []
        df = self.delta_f
        for j, p in enumerate(self.peaks or ()):
            col = df[:, j]
            ok = ~np.isnan(col)
            st, vals = steps[ok], col[ok]
            below = vals < thr
            first = int(st[np.argmax(below)]) if below.any() else None
            since = None
            if below.size and below[-1]:
                above = np.nonzero(~below)[0]
                since = int(st[above[-1] + 1]) if above.size else int(st[0])
            table.append(
                {
                    "index": tuple(p.index),
                    "wavenumber": tuple(p.wavenumber),
                    "k_norm": p.norm,
                    "amplitude": p.amplitude,
                    "final_delta_f": float(vals[-1]) if vals.size else float("nan"),
                    "first_resolved": first,
                    "resolved_since": since,
                    "threshold": thr,
                }
            )
        return table

    # ------------------------------------------------------------------ persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numeric/string arrays (no objects) describing the history exactly."""
        peaks = self.peaks or ()
        d = len(self.box) if self.box is not None else (len(peaks[0].index) if peaks else 0)
        has = np.array(
            [
                self.peaks is not None,
                self.band_pairs is not None,
                self.band_energy is not None,
                self.box is not None,
            ]
        )
        return {
            "version": np.array(_NPZ_VERSION, dtype=np.int64),
            "defined": has,
            "threshold": np.array(self.threshold, dtype=np.float64),
            "transform": np.array(self.transform),
            "magnitude": np.array(self.magnitude),
            "box": np.array(
                self.box if self.box is not None else np.zeros((0, 2)), dtype=np.float64
            ).reshape(-1, 2),
            "steps": self.steps,
            "delta_f": self.delta_f,
            "band_error": self.band_error,
            "e_low": self.e_low,
            "e_high": self.e_high,
            "band_pairs": (
                np.zeros((0, 2))
                if self.band_pairs is None
                else np.asarray(self.band_pairs, dtype=np.float64)
            ),
            "band_energy": (
                np.zeros(0)
                if self.band_energy is None
                else np.asarray(self.band_energy, dtype=np.float64)
            ),
            "peak_index": np.array([p.index for p in peaks], dtype=np.int64).reshape(len(peaks), d),
            "peak_wavenumber": np.array([p.wavenumber for p in peaks], dtype=np.float64).reshape(
                len(peaks), d
            ),
            "peak_norm": np.array([p.norm for p in peaks], dtype=np.float64),
            "peak_amplitude": np.array([p.amplitude for p in peaks], dtype=np.float64),
        }

    def to_npz(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_arrays` with ``np.savez``, atomically (:mod:`mscalepde.io`)."""
        arrays = self.to_arrays()
        atomic_write_with(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def from_arrays(cls, a: Mapping[str, np.ndarray]) -> SpectralHistory:
        """The inverse of :meth:`to_arrays`: the one reader of a history's arrays, whether
        they come from :meth:`to_npz` or from a run's ``diagnostics.npz``."""
        has_peaks, has_bands, has_energy, has_box = (bool(v) for v in a["defined"])
        peaks = None
        if has_peaks:
            peaks = [
                Peak(
                    index=tuple(int(v) for v in idx),
                    wavenumber=tuple(float(v) for v in kv),
                    norm=float(nm),
                    amplitude=float(am),
                )
                for idx, kv, nm, am in zip(
                    a["peak_index"],
                    a["peak_wavenumber"],
                    a["peak_norm"],
                    a["peak_amplitude"],
                    strict=True,
                )
            ]
        hist = cls(
            peaks=peaks,
            threshold=float(a["threshold"]),
            transform=str(a["transform"]),
            box=[tuple(r) for r in a["box"]] if has_box else None,
            magnitude=bool(a["magnitude"]),
            bands=a["band_pairs"] if has_bands and len(a["band_pairs"]) else None,
        )
        if has_bands and hist.band_pairs is None:
            hist.band_pairs = np.zeros((0, 2))
        if has_energy:
            hist.band_energy = np.asarray(a["band_energy"], dtype=np.float64)
        hist._steps = [int(s) for s in a["steps"]]
        hist._delta_f = [np.asarray(r, dtype=np.float64) for r in a["delta_f"]]
        hist._band_error = [np.asarray(r, dtype=np.float64) for r in a["band_error"]]
        hist._e_low = [float(v) for v in a["e_low"]]
        hist._e_high = [float(v) for v in a["e_high"]]
        return hist

    @classmethod
    def from_npz(cls, path: str | os.PathLike[str]) -> SpectralHistory:
        """Load a history written by :meth:`to_npz` (``allow_pickle=False``)."""
        with np.load(os.fspath(path), allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        if int(a["version"]) != _NPZ_VERSION:
            raise ValueError(f"{path}: unsupported spectral history version {int(a['version'])}")
        return cls.from_arrays(a)


def format_table(rows: Sequence[dict[str, Any]], threshold: float | None = None) -> str:
    """Aligned plain-text table of :meth:`SpectralHistory.resolved_table` rows.

    Columns: k (wave vector; multiples of π written as 'Npi'), |k|, amplitude, Delta_F
    (final), first step below the threshold, step resolved since ("never" for None).
    """
    if threshold is None:
        threshold = rows[0].get("threshold", 0.05) if rows else 0.05
    header = [
        "k (wave vector)",
        "|k|",
        "amplitude",
        "Delta_F",
        f"first <{threshold:g}",
        "resolved since",
    ]

    def step(v: Any) -> str:
        return "never" if v is None else str(int(v))

    body = [
        [
            format_wavevector(r["wavenumber"]),
            f"{r['k_norm']:.4g}",
            f"{r['amplitude']:.3g}",
            f"{r['final_delta_f']:.3g}",
            step(r["first_resolved"]),
            step(r["resolved_since"]),
        ]
        for r in rows
    ]
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [header, ["-" * w for w in widths], *body]
    ]
    return "\n".join(lines)
