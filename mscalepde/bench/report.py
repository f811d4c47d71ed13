"""The comparison's results: one row per run (``results.csv``) and ``report.md``.

``report.md`` gives, per problem and model, the relative L2 error over the seeds (median,
mean, min–max), the training time, the parameter count and how many of the solution's
frequencies each run resolved (spectral diagnostics); a second table the median training
time to reach rel L2 1e-1, 1e-2 and 1e-3 (from the history rows, so at ``log_every``
resolution; "–" when no seed reached it), the steps per second and the optimiser phases;
then the figures (:mod:`mscalepde.bench.figures`) and the runs that failed.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass
class BenchRow:
    """One run's results (a row of ``results.csv``)."""

    problem: str
    model: str
    seed: int
    rel_l2: float | None
    max_error: float | None
    train_seconds: float
    parameters: int
    status: str
    resolved: int | None
    peaks: int | None
    run_dir: str
    error: str = ""  # why a run failed (status "failed") or diverged
    steps: int = 0
    steps_per_second: float | None = None
    phases: str = ""  # the optimiser phases run: "adam 1000 + gauss-newton 20"
    time_to_1e_1: float | None = None  # training seconds to rel L2 <= 1e-1 (None: never)
    time_to_1e_2: float | None = None
    time_to_1e_3: float | None = None


THRESHOLDS = (1e-1, 1e-2, 1e-3)  # the time-to-accuracy columns


def to_csv(rows: Sequence[BenchRow]) -> str:
    buf = io.StringIO()
    names = list(BenchRow.__dataclass_fields__)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    for r in rows:
        w.writerow([getattr(r, n) for n in names])
    return buf.getvalue()


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2e}"


def _seconds(x: float) -> str:
    return f"{x:.1f}" if math.isfinite(x) else "n/a"


def report(
    rows: Sequence[BenchRow],
    overrides: Sequence[str] = (),
    figures: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """Markdown tables: per problem and model, statistics over the seeds; ``figures`` maps a
    problem to ``{kind: relative path}`` links."""
    lines = ["# mscalepde bench report", ""]
    if overrides:
        lines.append("Overrides for every run: " + " ".join(f"`--set {o}`" for o in overrides))
        lines.append("")
    lines += [
        "| problem | model | params | seeds | rel L2 median | mean | min – max "
        "| train s (median) | resolved peaks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[BenchRow]] = {}
    for r in rows:
        groups.setdefault((r.problem, r.model), []).append(r)
    for (prob, model), rs in groups.items():
        errs = [r.rel_l2 for r in rs if r.rel_l2 is not None and math.isfinite(r.rel_l2)]
        times = [r.train_seconds for r in rs if math.isfinite(r.train_seconds)]
        res = [f"{r.resolved}/{r.peaks}" for r in rs if r.peaks is not None]
        diverged = sum(r.status == "diverged" for r in rs)
        failed = sum(r.status == "failed" for r in rs)
        notes = [f"{n} {what}" for n, what in ((diverged, "diverged"), (failed, "failed")) if n]
        seeds = ",".join(str(r.seed) for r in rs) + (f" ({', '.join(notes)})" if notes else "")
        lines.append(
            f"| {prob} | `{model}` | {max(r.parameters for r in rs)} | {seeds} | "
            f"{_fmt(statistics.median(errs) if errs else None)} | "
            f"{_fmt(statistics.fmean(errs) if errs else None)} | "
            f"{_fmt(min(errs) if errs else None)} – {_fmt(max(errs) if errs else None)} | "
            f"{_seconds(statistics.median(times) if times else math.nan)} | "
            f"{' '.join(res) or 'n/a'} |"
        )
    lines += [
        "",
        "Time to accuracy (median training seconds over the seeds that reached it), speed "
        "and optimiser phases:",
        "",
        "| problem | model | to 1e-1 | to 1e-2 | to 1e-3 | steps/s | phases |",
        "|---|---|---|---|---|---|---|",
    ]
    for (prob, model), rs in groups.items():
        cells = []
        for name in ("time_to_1e_1", "time_to_1e_2", "time_to_1e_3"):
            got = [getattr(r, name) for r in rs if getattr(r, name) is not None]
            cells.append(
                "–" if not got else f"{statistics.median(got):.1f} ({len(got)}/{len(rs)})"
            )
        speed = [r.steps_per_second for r in rs if r.steps_per_second]
        sps = f"{statistics.median(speed):.3g}" if speed else "n/a"
        phases = next((r.phases for r in rs if r.phases), "")
        lines.append(f"| {prob} | `{model}` | {' | '.join(cells)} | {sps} | {phases} |")
    if figures:
        lines += ["", "Figures (error against training time: median line and min–max band "
                      "over the seeds; resolved frequencies against training time):", ""]
        lines += [f"- {prob}: " + ", ".join(f"[{kind}]({path})" for kind, path in links.items())
                  for prob, links in figures.items()]
    failures = [r for r in rows if r.status == "failed"]
    if failures:
        lines += ["", "Failed runs (the others completed):", ""]
        lines += [f"- {r.problem}, `{r.model}`, seed {r.seed}: {r.error}" for r in failures]
    lines.append("")
    return "\n".join(lines)


__all__ = ["THRESHOLDS", "BenchRow", "report", "to_csv"]
