"""The resolved settings of the spectral diagnostics of one run (:class:`DiagnosticSettings`),
from a problem's validated ``diagnostics`` section (docs/design.md §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mscalepde.diagnostics.choice import TruthFn, choose_transform
from mscalepde.diagnostics.fprinciple import cutoff_for_delta, default_delta
from mscalepde.diagnostics.options import DIAGNOSTICS_OPTIONS
from mscalepde.diagnostics.transforms import TRANSFORMS
from mscalepde.errors import MscaleError
from mscalepde.geometry.box import Domain
from mscalepde.problem.dimension import is_high_dimensional
from mscalepde.problem.model import Problem

DEFAULT_GRID = {1: 512, 2: 128, 3: 32}


def diagnostic_slice(domain: Domain) -> tuple[tuple[tuple[float, float], ...], tuple[float, ...]]:
    """The box the diagnostic grid covers and the coordinates fixed beside it: the whole
    box up to 3D; above, the plane of the first two axes through the middle of the others
    (a grid of n^d points is out of reach)."""
    if not is_high_dimensional(domain):
        return domain.box, ()
    return domain.box[:2], tuple(0.5 * (lo + hi) for lo, hi in domain.box[2:])


DEFAULT_FILTER_POINTS = 2000


FIELDS_BUDGET_BYTES = 64 << 20


MAX_GRID_POINTS = 1 << 24  # per evaluation (all time slices together)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))


@dataclass(frozen=True)
class DiagnosticSettings:
    """The resolved ``diagnostics`` section (defaults by dimension filled in).

    ``times`` is None for steady problems, else the sorted times of the slices;
    ``delta_default`` says that ``delta`` came from :func:`default_delta`. ``transform`` is
    resolved (``auto`` chose it when ``auto`` is true, :mod:`~mscalepde.diagnostics.choice`);
    ``window`` is the width in grid cells of the smooth window the fields are multiplied
    by (:mod:`~mscalepde.diagnostics.window`; 0: none, or the indicator of a shape).
    ``window_field`` is that window on the grid when it was read back from a
    ``diagnostics.npz`` (``window_key``: the (grid, transform) it belongs to), so a run
    folder's history can be recomputed without the problem's shape; it is not part of
    :meth:`to_dict`.
    """

    every: int = 100
    grid: int = 512
    threshold: float = 0.05
    transform: str = "fft"
    magnitude: bool = False
    floor: float = 1e-3
    times: tuple[float, ...] | None = None
    delta: float = 0.0
    filter_points: int = DEFAULT_FILTER_POINTS
    bands: tuple[float, ...] | None = None
    delta_default: bool = True
    window: float = 0.0
    auto: bool = False
    window_field: np.ndarray | None = field(default=None, compare=False, repr=False)
    window_key: tuple[int, str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_problem(
        cls, problem: Problem, *, truth: TruthFn | None = None, **overrides: Any
    ) -> DiagnosticSettings:
        """Settings of ``problem.diagnostics``; keyword ``overrides`` (None = keep) win.

        ``transform: auto`` is resolved here from the truth on the box faces
        (:func:`~mscalepde.diagnostics.choice.choose_transform`; ``truth`` as in
        :func:`~mscalepde.diagnostics.choice.truth_function`).
        """
        d = dict(problem.diagnostics)
        for k, v in overrides.items():
            if v is not None:
                d[k] = v
        times = None
        if problem.domain.has_time:
            assert problem.domain.time is not None
            t0, t1 = problem.domain.time
            raw = d.get("times") or [t1]
            for t in raw:
                if not t0 - 1e-12 <= float(t) <= t1 + 1e-12:
                    raise MscaleError(f"diagnostics.times: {t:g} is outside [{t0:g}, {t1:g}]")
            times = tuple(sorted({float(t) for t in raw}))
        elif d.get("times"):
            raise MscaleError("diagnostics.times: only problems with a time interval have times")
        delta = d.get("delta")
        bands = d.get("bands")
        cells = float(d.get("window", DIAGNOSTICS_OPTIONS["window"].default))
        transform = d.get("transform", DIAGNOSTICS_OPTIONS["transform"].default)
        auto = transform == "auto"
        box = diagnostic_slice(problem.domain)[0]  # d > 3: a plane of the first two axes
        if is_high_dimensional(problem.domain):  # the plane's edges fit no transform
            transform, windowed = "fft", True
        elif auto and not d.get("enabled", True):  # nothing analysed: no truth to test
            transform, windowed = "fft", problem.domain.geometry is not None
        elif auto:
            choice = choose_transform(problem, truth, (None,) if times is None else times)
            transform, windowed = choice.transform, choice.window
        else:  # an explicit transform is kept; a shape is always windowed
            windowed = problem.domain.geometry is not None
        return cls(
            every=int(d.get("every", 100)),
            grid=int(d.get("grid") or DEFAULT_GRID[len(box)]),
            threshold=float(d.get("threshold", 0.05)),
            transform=_check_transform(transform),
            magnitude=bool(d.get("magnitude", False)),
            floor=float(d.get("floor", 1e-3)),
            times=times,
            delta=float(delta) if delta is not None else default_delta(box),
            filter_points=int(d.get("filter_points", DEFAULT_FILTER_POINTS)),
            bands=None if bands is None else tuple(float(b) for b in bands),
            delta_default=delta is None,
            window=cells if windowed else 0.0,
            auto=auto,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe mapping (lists instead of tuples)."""
        return {
            "every": self.every,
            "grid": self.grid,
            "threshold": self.threshold,
            "transform": self.transform,
            "magnitude": self.magnitude,
            "floor": self.floor,
            "times": None if self.times is None else list(self.times),
            "delta": self.delta,
            "delta_default": self.delta_default,
            "k_split": cutoff_for_delta(self.delta),
            "filter_points": self.filter_points,
            "bands": None if self.bands is None else list(self.bands),
            "window": self.window,
            "auto": self.auto,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DiagnosticSettings:
        return cls(
            every=int(d["every"]),
            grid=int(d["grid"]),
            threshold=float(d["threshold"]),
            transform=str(d["transform"]),
            magnitude=bool(d["magnitude"]),
            floor=float(d["floor"]),
            times=None if d.get("times") is None else tuple(float(t) for t in d["times"]),
            delta=float(d["delta"]),
            filter_points=int(d["filter_points"]),
            bands=None if d.get("bands") is None else tuple(float(b) for b in d["bands"]),
            delta_default=bool(d.get("delta_default", False)),
            window=float(d.get("window", 0.0)),  # files before the window: the indicator
            auto=bool(d.get("auto", False)),
        )

    def same_sampling(self, other: DiagnosticSettings) -> bool:
        """Same grid, transform, window and times (so stored fields can be reused)."""
        if self.grid != other.grid or self.transform != other.transform:
            return False
        if not _close(self.window, other.window):
            return False
        if (self.times is None) != (other.times is None):
            return False
        if self.times is None or other.times is None:
            return True
        return len(self.times) == len(other.times) and all(
            _close(a, b) for a, b in zip(self.times, other.times, strict=True)
        )


def _check_transform(t: Any) -> str:
    if t not in TRANSFORMS:
        raise MscaleError(
            f"diagnostics.transform: expected one of {', '.join(TRANSFORMS)}, got {t!r}"
        )
    return str(t)
