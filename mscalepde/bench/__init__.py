"""``mscalepde bench``: several model variants × seeds × problems, one comparison report.

Each (problem, variant, seed) is a normal :func:`mscalepde.solve` run with its own run
folder under ``OUT/runs/``; ``OUT/report.md``, ``OUT/results.csv`` and ``OUT/figures/``
summarise them (:mod:`.report`, :mod:`.figures`). The comparison is given either on the
command line (problem files, ``--model 'NAME KEY=VALUE ...'``, ``--seeds``) or as a sweep
file (:mod:`.sweep`), and runs in this process or on Dask workers (:mod:`.runs`).
A sweep started again skips the runs already finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mscalepde.bench.report import BenchRow, report, to_csv
from mscalepde.bench.runs import RunSpec, execute, plan
from mscalepde.bench.sweep import (
    ModelSpec,
    Sweep,
    Variant,
    is_sweep_file,
    load_sweep,
    variants_from_specs,
)
from mscalepde.io import atomic_write_text
from mscalepde.run.folder import prepare_out_dir


def run_bench(
    problems: Sequence[str | Path],
    models: Sequence[ModelSpec],
    seeds: Sequence[int],
    out: str | Path,
    overrides: Sequence[str] = (),
    progress: bool = False,
    log: Any = None,
    stop: Any = None,
    workers: int = 1,
    scheduler: str | None = None,
) -> list[BenchRow]:
    """Run every problem × model × seed (command-line form) and write the report."""
    specs = plan(problems, variants_from_specs(models), seeds, overrides)
    return _run(specs, out, overrides, progress, log, stop, workers, scheduler)


def run_sweep(
    sweep: Sweep | str | Path,
    out: str | Path,
    progress: bool = False,
    log: Any = None,
    stop: Any = None,
    workers: int = 1,
    scheduler: str | None = None,
) -> list[BenchRow]:
    """Run a sweep file (or a loaded :class:`Sweep`) and write the report."""
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    overrides = sweep.overrides()
    specs = plan(sweep.problems, sweep.variants, sweep.seeds, overrides, origin=sweep.origin)
    return _run(specs, out, overrides, progress, log, stop, workers, scheduler)


def _run(
    specs: Sequence[RunSpec],
    out: str | Path,
    overrides: Sequence[str],
    progress: bool,
    log: Any,
    stop: Any,
    workers: int,
    scheduler: str | None,
) -> list[BenchRow]:
    out = prepare_out_dir(out).resolve()  # workers elsewhere need absolute paths
    done: list[BenchRow] = []

    def on_row(row: BenchRow, reused: bool) -> None:
        done.append(row)
        if log is not None:
            err = f"{row.rel_l2:.3e}" if row.rel_l2 is not None else f"n/a ({row.status})"
            again = " (finished before: skipped)" if reused else ""
            print(f"{row.problem:24s} {row.model:40s} seed {row.seed}: rel_l2 {err} "
                  f"({row.train_seconds:.1f} s){again}", file=log, flush=True)

    try:
        rows = execute(specs, out, workers=workers, scheduler=scheduler, progress=progress,
                       stop=stop, on_row=on_row)
    except KeyboardInterrupt:
        if done:  # the report of what finished; a restart runs the rest
            write_results(out, done, overrides)
        raise
    write_results(out, rows, overrides)
    return rows


def write_results(out: Path, rows: Sequence[BenchRow], overrides: Sequence[str]) -> None:
    """``results.csv``, the figures and ``report.md`` (which links them)."""
    from mscalepde.bench.figures import write_figures

    atomic_write_text(out / "results.csv", to_csv(rows))
    links = write_figures(out, rows)
    atomic_write_text(out / "report.md", report(rows, overrides, links))


__all__ = [
    "BenchRow",
    "ModelSpec",
    "RunSpec",
    "Sweep",
    "Variant",
    "is_sweep_file",
    "load_sweep",
    "report",
    "run_bench",
    "run_sweep",
    "write_results",
]
