"""``mscalepde bench``: several architectures × seeds × problems, one comparison report.

Each (problem, model, seed) is a normal :func:`mscalepde.solve` run with its own run folder
under ``OUT/runs/``; the report ``OUT/report.md`` (and ``OUT/results.csv``) gives, per
problem and model, the relative L2 error over the seeds (median, mean, min–max), the
training time, the parameter count and, from the spectral diagnostics, how many of the
solution's frequencies each run resolved.

A model is given as ``NAME [KEY=VALUE ...]`` (values read as YAML), e.g.
``"fourier sigma=5 features=64"``; it replaces the problem's ``model`` section. Training
settings come from the problem file, overridden by ``--set`` for all runs alike.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import MscaleError, ProblemError, TrainingError
from .problem import load_problem
from .runfolder import atomic_write_text, prepare_out_dir


@dataclass
class ModelSpec:
    """A model section given on the command line: ``NAME KEY=VALUE ...`` (an empty
    section keeps each problem file's own model)."""

    label: str
    section: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        tokens = text.split()
        if not tokens:
            raise ProblemError("--model", "", "expected NAME [KEY=VALUE ...]")
        section: dict[str, Any] = {"arch": tokens[0]}
        for tok in tokens[1:]:
            key, sep, value = tok.partition("=")
            if not sep or not key:
                raise ProblemError(f"--model {text!r}", tok, "expected KEY=VALUE")
            try:
                section[key] = yaml.safe_load(value)
            except yaml.YAMLError:
                section[key] = value
        return cls(label=text.strip(), section=section)


@dataclass
class BenchRow:
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


def run_bench(
    problems: Sequence[str | Path],
    models: Sequence[ModelSpec],
    seeds: Sequence[int],
    out: str | Path,
    overrides: Sequence[str] = (),
    progress: bool = False,
    log: Any = None,
    stop: Any = None,
) -> list[BenchRow]:
    """Run every combination and write ``report.md`` and ``results.csv`` into ``out``.

    ``stop``: a :class:`~mscalepde.signals.StopRequest`; a stop (or Ctrl-C) ends the run in
    progress at a step boundary, and the report of the runs finished so far is written
    before the interrupt propagates."""
    from .solver import solve

    out = prepare_out_dir(out)
    # validate everything before the first (long) run
    plan = []
    for path in problems:
        for spec in models:
            model_sets = []
            if spec.section:  # empty: the problem file's own model
                flow = yaml.safe_dump(spec.section, default_flow_style=True).strip()
                model_sets = [f"model={flow}"]
            for seed in seeds:
                sets = [*overrides, *model_sets, f"train.seed={seed}"]
                plan.append((load_problem(path, sets), spec, seed))
    rows: list[BenchRow] = []
    for problem, spec, seed in plan:
        tag = f"{problem.name}__{problem.model['arch']}__{len(rows)}__seed{seed}"
        run_dir = out / "runs" / tag
        status, error = "ok", ""
        try:
            result = solve(problem, out=run_dir, progress=progress, stop=stop)
            s = result.summary
        except KeyboardInterrupt:
            if rows:
                atomic_write_text(out / "results.csv", to_csv(rows))
                atomic_write_text(out / "report.md", report(rows, overrides))
            raise
        except TrainingError as exc:
            s = json.loads((run_dir / "summary.json").read_text())
            status, error = "diverged", str(exc)
        except MscaleError as exc:  # e.g. a Gauss-Newton system that cannot fit in memory:
            # recorded, and the other runs go on
            s, status, error = {}, "failed", str(exc)
        freqs = s.get("frequencies") or []
        row = BenchRow(
            problem=problem.name,
            model=spec.label,
            seed=seed,
            rel_l2=s.get("rel_l2"),
            max_error=s.get("max_error"),
            train_seconds=float(s.get("train_seconds", math.nan)),
            parameters=int(s.get("parameters", 0)),
            status=status,
            resolved=sum(1 for f in freqs if f.get("resolved")) if freqs else None,
            peaks=len(freqs) if freqs else None,
            run_dir=str(run_dir),
            error=error,
        )
        rows.append(row)
        if log is not None:
            err = f"{row.rel_l2:.3e}" if row.rel_l2 is not None else f"n/a ({status})"
            print(f"{row.problem:24s} {row.model:40s} seed {seed}: rel_l2 {err} "
                  f"({row.train_seconds:.1f} s)", file=log, flush=True)
    atomic_write_text(out / "results.csv", to_csv(rows))
    atomic_write_text(out / "report.md", report(rows, overrides))
    return rows


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


def report(rows: Sequence[BenchRow], overrides: Sequence[str] = ()) -> str:
    """Markdown table: per problem and model, statistics over the seeds."""
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
        errs = [r.rel_l2 for r in rs if r.rel_l2 is not None]
        times = [r.train_seconds for r in rs]
        res = [f"{r.resolved}/{r.peaks}" for r in rs if r.peaks is not None]
        diverged = sum(r.status == "diverged" for r in rs)
        failed = sum(r.status == "failed" for r in rs)
        notes = [f"{n} {what}" for n, what in ((diverged, "diverged"), (failed, "failed")) if n]
        seeds = ",".join(str(r.seed) for r in rs) + (f" ({', '.join(notes)})" if notes else "")
        lines.append(
            f"| {prob} | `{model}` | {rs[0].parameters} | {seeds} | "
            f"{_fmt(statistics.median(errs) if errs else None)} | "
            f"{_fmt(statistics.fmean(errs) if errs else None)} | "
            f"{_fmt(min(errs) if errs else None)} – {_fmt(max(errs) if errs else None)} | "
            f"{_seconds(statistics.median(times))} | {' '.join(res) or 'n/a'} |"
        )
    failures = [r for r in rows if r.status == "failed"]
    if failures:
        lines += ["", "Failed runs (the others completed):", ""]
        lines += [f"- {r.problem}, `{r.model}`, seed {r.seed}: {r.error}" for r in failures]
    lines.append("")
    return "\n".join(lines)


__all__ = ["BenchRow", "ModelSpec", "report", "run_bench"]
