"""Where a command's wall time goes: :class:`Stopwatch`.

``summary.json`` gives ``wall_seconds``, the whole command's time from its start (the CLI
passes the moment it started, so validation is counted), and ``time_parts``, the seconds
spent in each part:

- ``validation``: reading and checking the problem file;
- ``auto``: the spectrum behind ``model: auto``;
- ``reference``: the truth (a classical solve, or loading it from the cache);
- ``setup``: building the network, drawing the collocation points and their data, sizing
  the Gauss–Newton phases;
- ``training``: the trainer's loop, checkpoints included, the spectral monitor's own time
  excluded;
- ``diagnostics``: the monitor during training, and its final analysis and figures;
- ``baseline``: the classical solver's comparison;
- ``figures``: the run's figures (solution, history, snapshots, animation, probes);
- ``other``: what no part claims (importing torch, writing files, the final error).

The parts add up to ``wall_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

PARTS = (
    "validation", "auto", "reference", "setup", "training", "diagnostics", "baseline",
    "figures",
)


class Stopwatch:
    """Accumulates seconds per named part since ``started`` (a ``time.perf_counter()``
    value; default: now)."""

    def __init__(self, started: float | None = None) -> None:
        self.started = time.perf_counter() if started is None else started
        self.parts: dict[str, float] = {}

    def add(self, part: str, seconds: float) -> None:
        self.parts[part] = self.parts.get(part, 0.0) + max(0.0, seconds)

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(part, time.perf_counter() - t0)

    def total(self) -> float:
        return time.perf_counter() - self.started

    def summary(self) -> tuple[float, dict[str, float]]:
        """``(wall_seconds, parts)``: the parts in :data:`PARTS` order (those that took
        0.5 ms or more, and training always), then ``other``, the wall time no part
        claimed."""
        wall = self.total()
        parts = {
            p: round(self.parts[p], 3)
            for p in PARTS
            if p in self.parts and (self.parts[p] >= 5e-4 or p == "training")
        }
        parts["other"] = round(max(0.0, wall - sum(self.parts.values())), 3)
        return wall, parts


def format_parts(wall: float, parts: dict[str, float]) -> str:
    """``wall time 24.1 s: validation 0.0, reference 2.3, training 20.0, ...`` (one line)."""
    body = ", ".join(f"{k} {v:.1f}" for k, v in parts.items() if v >= 0.05 or k == "training")
    return f"wall time          {wall:.1f} s ({body})"
