"""Figures of a comparison, one pair per problem, linked from ``report.md``:

- ``error_<problem>.png``: relative L2 error against training time, every model on one
  plot, the median over the seeds as a line and the min–max band shaded. A run's error at
  time t is that of its last history row at or before t (a staircase; after its end, its
  final error), so runs of different lengths and logging intervals share one time axis.
- ``frequencies_<problem>.png``: the number of the solution's frequencies resolved
  (Δ_F below the threshold, docs/design.md §2) against training time, median over the seeds,
  from each run's ``diagnostics.npz``: which model resolves which scale first.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.run.figures import plt, save_figure

GRID = 300  # points of the common time axis


def _history(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(step, time, rel_l2) of a run's history rows with a finite error."""
    try:
        with (run_dir / "history.csv").open() as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    out = [(float(r["step"]), float(r["time"]), float(r.get("rel_l2", "nan"))) for r in rows]
    arr = np.array([o for o in out if math.isfinite(o[2])], dtype=float).reshape(-1, 3)
    return (arr[:, 0], arr[:, 1], arr[:, 2]) if len(arr) else None


def _staircase(t: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values at the last time ≤ t (the first value before the first time)."""
    idx = np.searchsorted(times, t, side="right") - 1
    return values[np.clip(idx, 0, len(values) - 1)]


def _band(curves: Sequence[tuple[np.ndarray, np.ndarray]], t: np.ndarray):
    stack = np.stack([_staircase(t, x, y) for x, y in curves])
    return np.median(stack, 0), stack.min(0), stack.max(0)


def _gather(runs: Mapping[str, Sequence[Path]], read: Callable[[Path], Any]) -> dict:
    """``read(run_dir)`` for every run, per model; runs and models without data left out."""
    out = {m: [x for x in (read(d) for d in dirs) if x is not None] for m, dirs in runs.items()}
    return {m: xs for m, xs in out.items() if xs}


def _time_axis(ends: Iterable[float]) -> np.ndarray:
    """The common time axis: 0 to the latest end of any run."""
    return np.linspace(0.0, max(max(ends), 1e-9), GRID)


def error_figure(path: Path, problem: str, runs: Mapping[str, Sequence[Path]]) -> bool:
    """Error against training time for every model (see the module docstring); False
    when no run has an error history."""
    curves = _gather(runs, _history)
    if not curves:
        return False
    t = _time_axis(h[1][-1] for c in curves.values() for h in c)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for model, hs in curves.items():
        med, lo, hi = _band([(h[1], h[2]) for h in hs], t)
        (line,) = ax.semilogy(t, med, label=f"{model} ({len(hs)} seeds)")
        ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("relative L2 error")
    ax.set_title(f"{problem}: median and min–max over seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return True


def _resolved(run_dir: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(time, resolved count, peaks) at a run's diagnostic steps."""
    h = _history(run_dir)
    try:
        with np.load(run_dir / "diagnostics.npz") as z:
            steps, dfr, thr = z["steps"], z["delta_f"], float(z["threshold"])
    except (OSError, KeyError, ValueError):
        return None
    if h is None or dfr.ndim != 2 or dfr.shape[1] == 0 or not len(steps):
        return None
    times = np.interp(steps.astype(float), h[0], h[1])
    count = np.sum(np.nan_to_num(dfr, nan=np.inf) < thr, axis=1).astype(float)
    return times, count, dfr.shape[1]


def frequency_figure(path: Path, problem: str, runs: Mapping[str, Sequence[Path]]) -> bool:
    """Resolved frequencies against training time per model; False without diagnostics."""
    data = _gather(runs, _resolved)
    if not data:
        return False
    t = _time_axis(r[0][-1] for rs in data.values() for r in rs)
    peaks = max(r[2] for rs in data.values() for r in rs)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for model, rs in data.items():
        med, lo, hi = _band([(r[0], r[1]) for r in rs], t)
        (line,) = ax.plot(t, med, drawstyle="steps-post", label=model)
        ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.15, step="post",
                        linewidth=0)
    ax.set_ylim(-0.2, peaks + 0.2)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel(f"resolved frequencies (of {peaks})")
    ax.set_title(f"{problem}: frequencies with Delta_F below the threshold")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return True


def write_figures(out: Path, rows: Sequence) -> dict[str, dict[str, str]]:
    """Both figures for every problem of ``rows`` into ``out/figures``; returns the links
    (relative to ``out``) per problem. A figure that cannot be drawn is left out."""
    by_problem: dict[str, dict[str, list[Path]]] = {}
    for r in rows:
        if r.status != "failed":
            by_problem.setdefault(r.problem, {}).setdefault(r.model, []).append(Path(r.run_dir))
    links: dict[str, dict[str, str]] = {}
    for problem, runs in by_problem.items():
        mine: dict[str, str] = {}
        for kind, draw in (("error", error_figure), ("frequencies", frequency_figure)):
            rel = f"figures/{kind}_{problem}.png"
            try:
                if draw(out / rel, problem, runs):
                    mine[kind] = rel
            except Exception as exc:  # noqa: BLE001 - a figure never loses the results
                print(f"warning: {rel} not written: {exc}")
        if mine:
            links[problem] = mine
    return links
