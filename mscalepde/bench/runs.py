"""Running a comparison: the plan (every problem × variant × seed, validated and
fingerprinted before the first run), one run, and the two executors (in this process, or on
Dask distributed workers).

**Resumable.** Each finished run leaves ``OUT/runs/<tag>/bench_row.json``: its results row
and the *fingerprint* of its resolved settings (a hash of the validated problem, with the
variant's label). A sweep started again skips every run whose row is there with the same
fingerprint, and continues a run that was cut short from its checkpoint
(:mod:`mscalepde.run.checkpoint`); a run whose settings changed gets a new tag. A run that fails
— diverges, raises, or its worker dies — is recorded with its error and the others go on.

**Threads.** ``--workers N`` on this machine starts a Dask ``LocalCluster`` of N processes
with one task each, and every run sets ``torch.set_num_threads(cores // N)``, so that N
concurrent trainings do not oversubscribe the cores (on a 2-core machine torch's default
of all cores per process made steps 10–20× slower; docs/DEVELOPING.md). On an existing
cluster (``--scheduler``) a run takes ``cores // tasks`` threads of its worker's machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from mscalepde.bench.report import THRESHOLDS, BenchRow
from mscalepde.bench.sweep import Variant
from mscalepde.errors import MscaleError, ProblemError, TrainingError, first_line
from mscalepde.io import atomic_write_text
from mscalepde.problem.validate import load_problem

ROW_FILE = "bench_row.json"


@dataclass(frozen=True)
class RunSpec:
    """One training of a comparison (picklable: it travels to Dask workers)."""

    problem_file: str
    problem: str  # the problem's name
    variant: str  # the variant's label
    seed: int
    sets: tuple[str, ...]  # --set strings: the sweep's, the variant's, the seed
    fingerprint: str
    tag: str  # the run folder's name under OUT/runs/


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "-" for c in text)
    return "-".join(p for p in keep.split("-") if p)[:40] or "model"


def plan(
    problems: Sequence[str | Path],
    variants: Sequence[Variant],
    seeds: Sequence[int],
    overrides: Sequence[str] = (),
    origin: str | None = None,
) -> list[RunSpec]:
    """Every problem × variant × seed, each loaded and validated now (before the first
    long run). With ``origin`` (a sweep file), an error names that file and the variant's
    key: ``sweep.yaml: models.wide.model.widht: unknown key``."""
    out = []
    for path in problems:
        try:  # the file itself first: its errors name the file
            load_problem(path, overrides)
        except ProblemError as exc:
            if origin is None or "(--set" not in exc.source:
                raise
            raise ProblemError(origin, "set", f"{exc.key}: {exc.reason} (with {path})") from None
        for variant in variants:
            for seed in seeds:
                sets = (*overrides, *variant.overrides(), f"train.seed={seed}")
                try:
                    problem = load_problem(path, sets)
                except ProblemError as exc:  # the file loads alone: the variant is wrong
                    if origin is None:
                        raise
                    raise ProblemError(
                        origin, f"models.{variant.label}.{exc.key}".rstrip("."),
                        f"{exc.reason} (with {path})",
                    ) from None
                text = yaml.safe_dump(problem.config, sort_keys=True)
                digest = hashlib.sha256(f"{variant.label}\n{text}".encode()).hexdigest()
                tag = f"{problem.name}__{_slug(variant.label)}__seed{seed}__{digest[:8]}"
                out.append(RunSpec(str(Path(path).resolve()), problem.name, variant.label,
                                   seed, sets, digest, tag))
    seen: dict[str, RunSpec] = {}
    for spec in out:
        if spec.tag in seen:
            raise ProblemError(origin or "bench", "", (
                f"the run {spec.problem} / {spec.variant} / seed {spec.seed} is listed twice "
                f"({seen[spec.tag].problem_file}, {spec.problem_file})"))
        seen[spec.tag] = spec
    return out


def _cores() -> int:
    """The cores this process may use (a SLURM allocation or container limit included)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def finished_row(spec: RunSpec, out: Path) -> BenchRow | None:
    """The stored row of a run already finished with the same settings, else None."""
    path = out / "runs" / spec.tag / ROW_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != spec.fingerprint:
        return None
    try:
        return BenchRow(**data["row"])
    except TypeError:  # written by another version: run it again
        return None


def _threads(threads: int | None) -> None:
    """Set torch's intra-op threads for this run (see the module docstring)."""
    import torch

    if threads is None:
        try:
            from distributed import get_worker

            tasks = max(1, int(get_worker().state.nthreads))
        except (ImportError, ValueError, AttributeError):
            return
        threads = max(1, _cores() // tasks)
    torch.set_num_threads(max(1, int(threads)))


def _time_to(history: Any, threshold: float) -> float | None:
    for row in history:
        err = row.get("rel_l2", math.nan)
        if math.isfinite(err) and err <= threshold:
            return float(row["time"])
    return None


def run_one(
    spec: RunSpec,
    out: str,
    threads: int | None = None,
    progress: bool = False,
    stop: Any = None,
) -> BenchRow:
    """Train one run (continuing from its checkpoint if it was cut short) and store its row.
    User-level failures become a row with ``status`` ``diverged`` or ``failed``."""
    from mscalepde.errors import ResumeError
    from mscalepde.run.checkpoint import CHECKPOINT_FILE
    from mscalepde.run.pipeline import solve

    _threads(threads)
    run_dir = Path(out) / "runs" / spec.tag
    status, error, s, history = "ok", "", {}, None
    try:
        problem = load_problem(spec.problem_file, spec.sets)
        resume = run_dir if (run_dir / CHECKPOINT_FILE).is_file() else None
        try:
            result = solve(problem, out=run_dir, progress=progress, stop=stop, resume=resume,
                           overwrite=True)  # the sweep owns its run folders
        except ResumeError:  # an unusable checkpoint: start this run again
            result = solve(problem, out=run_dir, progress=progress, stop=stop, overwrite=True)
        s, history = result.summary, result.history
    except TrainingError as exc:
        status, error = "diverged", str(exc)
        try:
            s = json.loads((run_dir / "summary.json").read_text())
        except (OSError, ValueError):
            s = {}
    except MscaleError as exc:  # e.g. a Gauss–Newton system over max_memory_gb
        status, error = "failed", str(exc)
    freqs = s.get("frequencies") or []
    steps = int(s.get("steps", 0))
    seconds = float(s.get("train_seconds", math.nan))
    phases = " + ".join(f"{p['name']} {p['steps']}" for p in s.get("phases", []))
    times = {t: (_time_to(history, t) if history is not None else None) for t in THRESHOLDS}
    row = BenchRow(
        problem=spec.problem,
        model=spec.variant,
        seed=spec.seed,
        rel_l2=s.get("rel_l2"),
        max_error=s.get("max_error"),
        train_seconds=seconds,
        parameters=int(s.get("parameters", 0)),
        status=status,
        resolved=sum(1 for f in freqs if f.get("resolved")) if freqs else None,
        peaks=len(freqs) if freqs else None,
        run_dir=str(run_dir),
        error=error,
        steps=steps,
        steps_per_second=steps / seconds if seconds and math.isfinite(seconds) else None,
        phases=phases,
        time_to_1e_1=times[1e-1],
        time_to_1e_2=times[1e-2],
        time_to_1e_3=times[1e-3],
    )
    if run_dir.is_dir():
        atomic_write_text(run_dir / ROW_FILE, json.dumps(
            {"fingerprint": spec.fingerprint, "row": asdict(row)}, indent=1, default=str))
    return row


def failed_row(spec: RunSpec, out: Path, error: str) -> BenchRow:
    """The row of a run that crashed outside our error handling (a killed worker)."""
    return BenchRow(problem=spec.problem, model=spec.variant, seed=spec.seed, rel_l2=None,
                    max_error=None, train_seconds=math.nan, parameters=0, status="failed",
                    resolved=None, peaks=None, run_dir=str(out / "runs" / spec.tag),
                    error=error)


def execute(
    specs: Sequence[RunSpec],
    out: Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = False,
    stop: Any = None,
    on_row: Callable[[BenchRow, bool], None] | None = None,
) -> list[BenchRow]:
    """Run what is not finished yet; rows in the order of ``specs``. ``on_row(row,
    reused)`` is called as each row becomes known."""
    rows: dict[int, BenchRow] = {}
    pending = []
    for i, spec in enumerate(specs):
        done = finished_row(spec, out)
        if done is not None:
            rows[i] = done
            if on_row is not None:
                on_row(done, True)
        else:
            pending.append(i)
    if pending and (workers > 1 or scheduler):
        _execute_dask(specs, pending, out, rows, workers, scheduler, on_row)
    else:
        for i in pending:
            if stop:  # a signal between two runs: stop before the next one starts
                from mscalepde.errors import Terminated

                raise Terminated(str(stop.reason))
            try:
                rows[i] = run_one(specs[i], str(out), progress=progress, stop=stop)
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: recorded, as on Dask
                rows[i] = failed_row(specs[i], out,
                                     f"{type(exc).__name__}: {first_line(exc, 300)}")
            if on_row is not None:
                on_row(rows[i], False)
    return [rows[i] for i in sorted(rows)]


def _execute_dask(
    specs: Sequence[RunSpec],
    pending: Sequence[int],
    out: Path,
    rows: dict[int, BenchRow],
    workers: int,
    scheduler: str | None,
    on_row: Callable[[BenchRow, bool], None] | None,
) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise MscaleError(
            "--workers > 1 and --scheduler need Dask distributed: pip install -e '.[cluster]'"
        ) from None
    cluster = None
    threads: int | None = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="30s")
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, host="127.0.0.1")
            client = Client(cluster)
            threads = max(1, _cores() // workers)
    except (OSError, ValueError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        where = f"--scheduler {scheduler}" if scheduler else f"--workers {workers}"
        raise MscaleError(
            f"{where}: cannot start or reach the Dask cluster: {first_line(exc)}"
        ) from None
    # task keys are unique per output folder: two sweeps on one scheduler never share results
    salt = hashlib.sha256(str(out).encode()).hexdigest()[:8]
    try:
        futures = {
            client.submit(run_one, specs[i], str(out), threads, pure=False,
                          key=f"{specs[i].tag}-{salt}"): i
            for i in pending
        }
        for future in as_completed(futures):
            i = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # noqa: BLE001 - a killed worker, a crash: recorded
                row = failed_row(specs[i], out, f"{type(exc).__name__}: {first_line(exc, 300)}")
            rows[i] = row
            if on_row is not None:
                on_row(row, False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
