"""Training history: one row per logged step, written as CSV.

Columns: ``step``, ``time`` (training wall time in seconds, evaluation excluded), ``lr``,
``loss`` (the weighted total), ``loss_<term>`` for each loss term, ``rel_l2`` and
``max_error`` when a truth is available, ``phase`` (0 Adam, 1 L-BFGS, 2 Gauss–Newton) and,
on Gauss–Newton rows, ``damping`` (the relative λ of the accepted step) and ``step_size``
(α). A column a row lacks is written as ``nan``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator


class History:
    """An append-only table of floats with a fixed column order (first row's keys first)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.columns: list[str] = []

    def append(self, row: dict[str, float]) -> None:
        for k in row:
            if k not in self.columns:
                self.columns.append(k)
        self.rows.append(dict(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, float]]:
        return iter(self.rows)

    @property
    def last(self) -> dict[str, float]:
        return self.rows[-1] if self.rows else {}

    def column(self, name: str) -> list[float]:
        return [r.get(name, math.nan) for r in self.rows]

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for r in self.rows:
            w.writerow([_fmt(r.get(c, math.nan), c) for c in self.columns])
        return buf.getvalue()


def _fmt(v: float, column: str) -> str:
    if column in ("step", "phase") and math.isfinite(v):
        return str(int(v))
    return repr(float(v))
