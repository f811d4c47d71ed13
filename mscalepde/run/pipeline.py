"""The solver: ``solve``, a problem in, a trained network, its history and a run folder out.

This module wires the one-way pipeline
problem (validated) → model + objective + trainer → history → evaluation/figures/run folder.
It is what ``mscalepde solve`` runs and what the Python API exposes.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import torch

from mscalepde import __version__
from mscalepde.architectures import is_auto
from mscalepde.architectures.base import Architecture
from mscalepde.architectures.growable import growth_of
from mscalepde.calculus.derivatives import engine_for
from mscalepde.diagnostics.evaluation import Evaluator
from mscalepde.errors import MscaleError, ResumeError, Stopped, TrainingError, first_line
from mscalepde.frequencies.select import Selection, resolve_auto
from mscalepde.frequencies.spectrum import save_spectrum
from mscalepde.io import atomic_write_text, remove_stale_temporaries, write_json, write_yaml
from mscalepde.parallel.comm import Communicator, Single
from mscalepde.problem.model import Problem
from mscalepde.problem.overrides import apply_overrides
from mscalepde.problem.validate import load_problem, problem_from_dict, with_overrides
from mscalepde.run.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    check_resumable,
    load_checkpoint,
    save_checkpoint,
)
from mscalepde.run.clock import Stopwatch
from mscalepde.run.evolution import animation, snapshots_figure, write_probes
from mscalepde.run.figures import history_figure, solution_figure, spectrum_figure
from mscalepde.run.folder import replace_folder, run_folder, save_state
from mscalepde.run.inverse import (
    InverseEvaluator,
    field_errors,
    inverse_summary,
    unknowns_figure,
)
from mscalepde.run.model import make_model
from mscalepde.run.ranks import check_parallel, objective_factory
from mscalepde.run.result import Run
from mscalepde.run.windows import TimeMarching, WindowedModel
from mscalepde.training.callbacks import Callback
from mscalepde.training.settings import TrainSettings, plain_value
from mscalepde.training.signals import StopRequest
from mscalepde.training.trainer import Trainer

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MscaleError("train.device: cuda was requested but no CUDA device is available")
    return torch.device(name)


def versions() -> dict[str, str]:
    return {
        "mscalepde": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


def config_with_growth(config: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The run's config with ``model.grown`` naming what ``model.adapt`` added, so that
    ``model.pt`` loads with ``config.yaml`` alone."""
    grown = [[plain_value(v), seed] for v, seed in growth_of(model)]
    if not grown:
        return dict(config)
    return {**config, "model": {**config["model"], "grown": grown}}


class RunWriter(Callback):
    """Writes checkpoints into the run folder during training: ``checkpoint.pt`` (the
    complete state, :mod:`mscalepde.run.checkpoint`), and ``model.pt`` and ``history.csv`` as
    readable views of it."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], monitor: Any = None) -> None:
        self.run_dir = run_dir
        self.config = config
        self.monitor = monitor
        self._grown = 0  # growths config.yaml names

    def write_checkpoint(self, trainer: Trainer) -> None:
        monitor = self.monitor.state_dict() if self.monitor is not None else None
        save_checkpoint(self.run_dir, self.config, trainer.state_dict(), monitor)

    def on_checkpoint(self, trainer: Trainer, step: int) -> None:
        self.write_checkpoint(trainer)
        grown = len(growth_of(trainer.model))
        if grown != self._grown:  # model.pt grew: config.yaml must say so
            write_yaml(self.run_dir / "config.yaml", config_with_growth(self.config, trainer.model))
            self._grown = grown
        save_state(self.run_dir / "model.pt", trainer.model)
        atomic_write_text(self.run_dir / "history.csv", trainer.history.to_csv())


class ProgressBar(Callback):
    """A tqdm progress bar (``tqdm.auto``: a widget in Jupyter) with the phase, the current
    loss (refreshed at most every ``refresh`` seconds) and the last logged error."""

    def __init__(self, description: str = "", refresh: float = 0.5) -> None:
        self.description = description
        self.refresh = refresh
        self.bar: Any = None
        self.post: dict[str, str] = {}
        self._shown = 0.0

    def on_start(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.total_steps,
            initial=trainer.step,  # a resumed run starts where it stopped
            desc=self.description,
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=True,
        )

    def on_step(self, trainer: Trainer, step: int) -> None:
        self.bar.update(1)
        now = time.perf_counter()
        loss = getattr(trainer, "last_loss", None)
        if loss is not None and now - self._shown >= self.refresh:
            self._shown = now
            # an Adam step's loss still holds its graph: float() of it warns in torch ≥ 2.13
            value = float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
            self.post.update(phase=trainer.phase, loss=f"{value:.3e}")
            self.bar.set_postfix(self.post, refresh=False)

    def on_restore(self, trainer: Trainer) -> None:
        if self.bar is not None:  # a rollback: back to the checkpoint's step
            self.bar.n = trainer.step
            self.bar.refresh()

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.bar is None:
            return
        self.post.update(phase=trainer.phase, loss=f"{row['loss']:.3e}")
        if "rel_l2" in row:
            self.post["rel_l2"] = f"{row['rel_l2']:.3e}"
        self.bar.set_postfix(self.post, refresh=False)

    def on_end(self, trainer: Trainer) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _as_problem(
    problem_or_path: Problem | str | Path, overrides: Sequence[str], changes: Mapping[str, Any]
) -> Problem:
    if isinstance(problem_or_path, Problem):
        problem = problem_or_path
        if overrides:
            data = apply_overrides(problem.config, overrides, problem.origin)
            problem = problem_from_dict(data, origin=problem.origin)
    else:
        problem = load_problem(problem_or_path, overrides)
    if changes:
        problem = with_overrides(problem, **changes)
    return problem


def _callbacks(
    problem: Problem,
    given: Sequence[Callback],
    run_dir: Path | None,
    dtype: torch.dtype,
    device: torch.device,
    progress: bool,
    root: bool = True,
    selection: Selection | None = None,
) -> tuple[list[Callback], Any, RunWriter | None, ProgressBar | None]:
    """The training callbacks of a solve: the run writer first, the caller's, the spectral
    monitor (unless the caller gave one, or diagnostics are off, or this is not rank 0 of a
    run on several processes), ``model.adapt``'s frequency adapter and the progress bar."""
    from mscalepde.diagnostics.monitor import SpectralMonitor

    cbs: list[Callback] = list(given)
    monitor = next((c for c in cbs if isinstance(c, SpectralMonitor)), None)
    if monitor is None and problem.diagnostics["enabled"] and root:
        # without exact, its truth is the cached reference (diagnostics.truth_function)
        monitor = SpectralMonitor(problem, dtype=dtype, device=device, run_dir=run_dir)
        cbs.append(monitor)
    writer = RunWriter(run_dir, problem.config, monitor) if run_dir is not None else None
    if writer is not None:
        cbs.insert(0, writer)
    if problem.model.get("adapt"):
        from mscalepde.frequencies.adapt import FrequencyAdapter

        spectrum = selection.spectrum if selection is not None else None  # not twice
        cbs.append(FrequencyAdapter(problem, problem.model["adapt"], spectrum))
    bar = ProgressBar(problem.name) if progress else None
    if bar is not None:
        cbs.append(bar)
    return cbs, monitor, writer, bar


def solve(
    problem_or_path: Problem | str | Path,
    *,
    out: str | Path | None = None,
    runs_dir: str | Path = "runs",
    overrides: Sequence[str] = (),
    write: bool = True,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    resume: str | Path | Checkpoint | None = None,
    stop: StopRequest | None = None,
    selection: Selection | None = None,
    overwrite: bool = False,
    baseline: bool = True,
    animate: bool = False,
    clock: Stopwatch | None = None,
    comm: Communicator | None = None,
    **changes: Any,
) -> Run:
    """Train a physics-informed network on a problem.

    ``problem_or_path``: a :class:`Problem` or a YAML path. ``overrides``: ``--set``
    strings (``"train.steps=2000"``); ``changes``: section updates as keywords
    (``train={"steps": 2000}, model={"arch": "mlp"}``). With ``write`` a run folder is
    written to ``out`` (default ``runs_dir/<name>-<timestamp>``). Raises
    :class:`TrainingError` on a non-finite loss after writing the run folder with the last
    good parameters and ``status: diverged``.

    ``resume``: a run folder with a ``checkpoint.pt`` (or that checkpoint, already loaded
    by :func:`resume_problem`); training continues from it and
    writes into that folder (:func:`mscalepde.run.checkpoint.check_resumable` says which
    settings may differ). ``stop``: a :class:`~mscalepde.training.signals.StopRequest`; when set,
    training stops at the next step boundary after a checkpoint, the run folder is written
    and :class:`~mscalepde.errors.Stopped` is raised with ``run_dir`` set.

    A model section with ``auto`` (``arch: auto``, ``sigmas: auto``, ...) is resolved from
    the problem's spectrum first (:func:`mscalepde.frequencies.select.resolve_auto`); the run
    folder's
    ``config.yaml`` holds the chosen values, ``summary.json`` the choice (``auto``) and
    ``figures/spectrum.png`` the spectrum with the bands. ``selection``: the choice already
    made for this (resolved) problem, as the CLI does to print it before training.

    An ``out`` that already holds files is refused unless ``overwrite``; then the new run
    is written into a staging folder beside it and replaces the old one only when it ends
    well (:func:`mscalepde.run.folder.run_folder`). Nothing is written into a run folder
    before every check that can fail has passed (the checkpoint, the Gauss–Newton memory).

    ``baseline=False`` skips the classical solver's comparison; ``animate`` writes
    ``figures/animation.gif`` of a heat run (:mod:`mscalepde.run.evolution`). ``clock``: a
    :class:`~mscalepde.run.clock.Stopwatch` started with the command (the CLI's), so that
    ``summary.json``'s ``wall_seconds`` and ``time_parts`` cover all of it.

    ``comm``: this process's rank of a run on several (:mod:`mscalepde.run.ranks`): rank 0
    writes and evaluates, the others train and return their status and training time."""
    clock = clock if clock is not None else Stopwatch()
    comm = comm if comm is not None else Single()
    with clock("validation"):
        problem = _as_problem(problem_or_path, overrides, changes)
    check_parallel(problem, comm)
    device = resolve_device(problem.train["device"])  # before any costly step
    if comm.world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", comm.local_rank)  # one GPU per rank
        write, progress = write and comm.is_root, progress and comm.is_root
    if is_auto(problem.model):
        with clock("auto"):
            problem, selection = resolve_auto(problem)
    if stop is not None:
        stop.deferred = False  # until training starts, a signal stops at once
    checkpoint = _checkpoint(resume, out, problem, tidy=comm.is_root)
    if checkpoint is not None:
        out = checkpoint.run_dir
    dtype = DTYPES[problem.train["dtype"]]
    with clock("setup"):
        model = make_model(problem, dtype).to(device)
        comm.broadcast([*model.parameters(), *model.buffers()])  # one network on all ranks
    evaluator, marching, objective, tr = _objective(problem, model, comm, dtype, device, clock)

    run_dir: Path | None = None
    target: Path | None = None  # with overwrite: the folder the staging one replaces
    if write:  # the folder is checked (writable) before any training
        run_dir, target = run_folder(
            out, runs_dir, problem.name, resumed=checkpoint is not None, overwrite=overwrite
        )
    cbs, monitor, writer, bar = _callbacks(
        problem, callbacks, run_dir, dtype, device, progress, comm.is_root, selection
    )
    evaluate = evaluator if marching is None else marching.evaluate
    trainer = Trainer(
        model, objective, TrainSettings.from_mapping(tr), callbacks=cbs, stop=stop,
        evaluate=evaluate if comm.is_root else None, comm=comm,
    )
    if marching is not None:
        trainer.enter_phase = marching.enter
    if checkpoint is not None:
        _restore(checkpoint, trainer, monitor)
    with clock("setup"):
        trainer.prepare()  # the Gauss–Newton phases and their memory: may refuse, in one line
    if run_dir is not None:  # every check passed: from here on the run folder is written
        write_yaml(run_dir / "config.yaml", config_with_growth(problem.config, model))
        if writer is not None:
            writer._grown = len(growth_of(model))  # replayed from the checkpoint
    started = time.perf_counter()
    monitor_before = monitor.seconds if monitor is not None else 0.0
    status, message, interrupt = _run_training(trainer, run_dir, bar)
    if writer is not None and status == "ok":
        writer.write_checkpoint(trainer)  # the final state: `resume` can extend it
    monitored = (monitor.seconds if monitor is not None else 0.0) - monitor_before
    if monitor is not None:
        clock.add("diagnostics", monitored)
    clock.add("training", time.perf_counter() - started - monitored)
    if not comm.is_root:  # rank 0 evaluates and writes; this rank's part is done
        return _rank_result(problem, model, trainer, comm, status, message, interrupt)

    # after a signal the run folder must be finished quickly: no classical baseline
    compare = "ok" if baseline else "skipped: --no-baseline"
    if status != "ok" or stop:
        compare = "skipped: the run was stopped"
    summary = build_summary(
        problem, model, trainer, evaluator, device, status, message, compare, clock
    )
    grown = _record_choices(summary, selection, checkpoint, model, trainer)
    if marching is not None:
        summary["windows"] = marching.summary(model)
    if problem.inverse is not None:
        with clock("diagnostics"):
            summary["inverse"] = inverse_summary(
                problem, model, objective, tr["weights"], run_dir
            )
            summary["inverse"]["fields"] = field_errors(problem, model, evaluator)
    if monitor is not None:
        with clock("diagnostics"):
            diag = monitor.finish(run_dir)  # diagnostics.npz + figures/ when run_dir is set
        summary["frequencies"] = diag.pop("rows")
        summary["diagnostics"] = diag
    result = Run(problem, model, trainer.history, summary, run_dir, _evaluator=evaluator)
    if run_dir is not None:
        if grown:  # config.yaml names the grown network, so model.pt loads with it
            write_yaml(run_dir / "config.yaml", config_with_growth(problem.config, model))
        write_run(result, selection, clock, animate=animate)
        if target is not None and status == "ok":
            replace_folder(run_dir, target)  # the new run, whole, in place of the old one
            result.run_dir = target
    else:
        summary["wall_seconds"], summary["time_parts"] = clock.summary()
    if status == "diverged":
        raise TrainingError(message + (f" Run folder: {run_dir}" if run_dir else ""))
    if interrupt is not None:
        raise interrupt
    return result


def _objective(
    problem: Problem, model: Any, comm: Communicator, dtype: torch.dtype,
    device: torch.device, clock: Stopwatch,
) -> tuple[Any, TimeMarching | None, Any, dict[str, Any]]:
    """The evaluator (rank 0: exact, else the cached classical reference, computed here when
    missing), the time marching of a windowed run, the objective (this rank's shard of the
    points with several processes) and the train section as the trainer takes it."""
    tr = dict(problem.train)
    evaluator: Any = None
    if comm.is_root:
        with clock("reference"):
            evaluator = Evaluator(problem, dtype=dtype, device=device)
            if problem.inverse is not None:
                evaluator = InverseEvaluator(evaluator, problem)
    make_objective = objective_factory(comm, model, dtype, device)
    if comm.world > 1:
        tr["compile"] = "off"  # the loss holds an all-reduce (training/compile.py)
    with clock("setup"):
        if isinstance(model, WindowedModel):  # time windows: run/windows.py
            tr["compile"] = "off"  # the objective changes between windows
            marching = TimeMarching(problem, model, evaluator, make_objective)
            return evaluator, marching, marching.objective(0), tr
        return evaluator, None, make_objective(problem), tr


def _rank_result(
    problem: Problem, model: Any, trainer: Trainer, comm: Communicator, status: str,
    message: str, interrupt: KeyboardInterrupt | None,
) -> Run:
    """What a rank other than 0 returns (or raises) once training has ended."""
    if interrupt is not None:
        raise interrupt
    if status == "diverged":
        raise TrainingError(message)
    summary = {"status": status, "rank": comm.rank, "train_seconds": trainer.train_seconds}
    return Run(problem, model, trainer.history, summary, None)


def _checkpoint(
    resume: str | Path | Checkpoint | None, out: str | Path | None, problem: Problem,
    tidy: bool = True,
) -> Checkpoint | None:
    """The checkpoint a resumed run continues from, checked against ``problem`` and
    ``out`` (None for a new run). ``tidy``: remove what a killed writer left (rank 0)."""
    if resume is None:
        return None
    checkpoint = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
    where = checkpoint.run_dir
    if out is not None and Path(out).resolve() != where.resolve():
        raise ResumeError(f"{out}: a resumed run writes into its own folder ({where})")
    saved = problem_from_dict(checkpoint.config, origin=f"{where}/{CHECKPOINT_FILE}")
    check_resumable(saved, problem, checkpoint.trainer, str(where))
    if tidy:
        remove_stale_temporaries(where)  # what a killed writer left beside its whole files
    return checkpoint


def _restore(checkpoint: Checkpoint, trainer: Trainer, monitor: Any) -> None:
    """Load the trainer's (and the spectral monitor's) state from the checkpoint."""
    try:
        trainer.load_state_dict(checkpoint.trainer)
        if monitor is not None and checkpoint.monitor is not None:
            monitor.load_state_dict(checkpoint.monitor)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        raise ResumeError(
            f"{checkpoint.run_dir}/{CHECKPOINT_FILE}: cannot resume: {first_line(exc)}"
        ) from None


def _run_training(
    trainer: Trainer, run_dir: Path | None, bar: ProgressBar | None
) -> tuple[str, str, KeyboardInterrupt | None]:
    """Train; returns ``(status, message, interrupt)``: ``ok``, ``diverged`` (a non-finite
    loss) or ``interrupted`` (Ctrl-C, SIGTERM, a stop request; re-raised by the caller
    once the run folder is written)."""
    try:
        trainer.run()
    except TrainingError as exc:
        return "diverged", str(exc), None
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM (the CLI), a stop request
        reason = getattr(exc, "reason", None) or str(exc)
        why = f" by {reason}" if reason else ""
        message = f"interrupted{why} at step {trainer.step}"
        if isinstance(exc, Stopped) and run_dir is not None:
            message += " (checkpoint written at this step)"
            exc.run_dir = run_dir
        return "interrupted", message, exc
    finally:
        if bar is not None:
            bar.close()
    return "ok", "", None


def _record_choices(
    summary: dict[str, Any],
    selection: Selection | None,
    checkpoint: Checkpoint | None,
    model: Architecture,
    trainer: Trainer,
) -> list[list[Any]]:
    """Add to ``summary`` what ``auto`` chose and what ``model.adapt`` grew (a resumed run
    keeps both records); returns the growth list."""
    if checkpoint is not None:
        summary["resumed_from_step"] = checkpoint.step
    if selection is not None:
        summary["auto"] = selection.to_dict()
        if trainer.train_seconds > 0:
            summary["auto"]["fraction_of_training"] = selection.seconds / trainer.train_seconds
    elif checkpoint is not None:  # a resumed run keeps the record of its choice
        previous = _previous_summary(checkpoint.run_dir)
        if "auto" in previous:
            summary["auto"] = previous["auto"]
    grown = [[plain_value(v), seed] for v, seed in growth_of(model)]
    if grown:  # what model.adapt added, and when (its notes survive a resume)
        summary["adapt"] = {
            "grown": grown,
            "final": [plain_value(v) for v in model.band_values()],
            "notes": [n for n in trainer.notes if n.startswith("adapt:")],
        }
    return grown


def _previous_summary(run_dir: Path) -> dict[str, Any]:
    """The run folder's summary.json before this resumed run rewrites it ({} if none)."""
    import json

    try:
        data = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resume_problem(
    run_dir: str | Path, overrides: Sequence[str] = ()
) -> tuple[Problem, Checkpoint]:
    """The problem a run in ``run_dir`` was trained with (from its checkpoint), changed by
    ``overrides`` (``--set`` strings), and the loaded checkpoint."""
    checkpoint = load_checkpoint(run_dir)
    origin = f"{run_dir}/{CHECKPOINT_FILE}"
    data = apply_overrides(checkpoint.config, overrides, origin)
    return problem_from_dict(data, origin=origin), checkpoint


def resume_run(
    run_dir: str | Path, overrides: Sequence[str] = (), **kwargs: Any
) -> Run:
    """Continue the run in ``run_dir`` from its last checkpoint with the settings it was
    trained with, changed by ``overrides`` (``--set`` strings; e.g. more steps).
    Keywords go to :func:`solve`."""
    problem, checkpoint = resume_problem(run_dir, overrides)
    return solve(problem, resume=checkpoint, **kwargs)


def build_summary(
    problem: Problem,
    model: Architecture,
    trainer: Trainer,
    evaluator: Evaluator,
    device: torch.device,
    status: str,
    message: str,
    baseline: str = "ok",
    clock: Stopwatch | None = None,
) -> dict[str, Any]:
    """The content of ``summary.json`` (README, "The run folder"); ``baseline``: "ok" to
    run the classical comparison, else the reason it is skipped. ``wall_seconds`` and
    ``time_parts`` are set when the run is written (:func:`write_run`)."""
    clock = clock if clock is not None else Stopwatch()
    s: dict[str, Any] = {"problem": problem.name, "pde": problem.pde, "status": status}
    if message:
        s["message"] = message
    s.update(evaluator(model))  # against exact, or the classical reference
    with clock("baseline"):
        s.update(
            _truth_and_baseline(problem, evaluator, s["rel_l2"], trainer.train_seconds, baseline)
        )
    last = trainer.history.last
    s["loss"] = last.get("loss")
    s["losses"] = {k: v for k, v in last.items() if k.startswith("loss_")}
    s["train_seconds"] = trainer.train_seconds
    s["steps"] = trainer.step
    s["phases"] = list(trainer.phase_log)
    for name, key in (("adam", "adam_steps"), ("lbfgs", "lbfgs_steps"),
                      ("gauss-newton", "gauss_newton_steps")):
        s[key] = sum(p["steps"] for p in trainer.phase_log if p["name"] == name)
    s["seed"] = problem.train["seed"]
    s["arch"] = problem.model["arch"]
    s["parameters"] = model.parameter_count()
    s["dtype"] = problem.train["dtype"]
    s["final_dtype"] = str(next(model.parameters()).dtype).replace("torch.", "")
    s["compiled"] = trainer.compiled
    s["engine"] = engine_for(model, problem.train["engine"])
    if trainer.notes:
        s["notes"] = list(trainer.notes)
    s["device"] = str(device)
    s["versions"] = versions()
    return s


def _truth_and_baseline(
    problem: Problem,
    evaluator: Evaluator,
    rel_l2: float,
    train_seconds: float,
    baseline: str = "ok",
) -> dict[str, Any]:
    """``truth`` (exact or reference) and ``classical_baseline``: the FD solver's time to
    reach the network's error on the evaluation grid, and its error in the same time."""
    if problem.pde == "fit":
        return {"truth": "exact"}
    from mscalepde.reference.baseline import classical_baseline
    from mscalepde.reference.truth import truth_info

    out = truth_info(problem)
    if problem.inverse is not None and baseline == "ok":  # solving it needs the unknowns
        baseline = "skipped: an inverse problem (the classical solvers need its unknowns)"
    if baseline != "ok":
        out["classical_baseline"] = {"error": baseline}
        return out
    try:
        out["classical_baseline"] = classical_baseline(
            problem,
            rel_l2,
            seconds=train_seconds,
            points=evaluator.points,
            truth=evaluator.truth,
            max_seconds=min(30.0, 0.5 + 0.5 * train_seconds),
        )
    except MscaleError as exc:
        out["classical_baseline"] = {"error": str(exc)}
    except (ValueError, ArithmeticError, MemoryError) as exc:  # the baseline is a comparison:
        # its failure is reported, never at the cost of the trained result
        out["classical_baseline"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def write_run(
    result: Run,
    selection: Selection | None = None,
    clock: Stopwatch | None = None,
    *,
    animate: bool = False,
) -> None:
    """Write model.pt, history.csv, the figures and summary.json (last, with the command's
    wall time and its parts) of a finished run (and ``auto_spectrum.npz`` with
    ``figures/spectrum.png`` when the model was chosen by ``auto``)."""
    run_dir = result.run_dir
    assert run_dir is not None
    clock = clock if clock is not None else Stopwatch()
    save_state(run_dir / "model.pt", result.model)
    atomic_write_text(run_dir / "history.csv", result.history.to_csv())
    if result.summary.get("truth") == "reference":
        from mscalepde.reference.cache import link_reference

        link_reference(result.problem, run_dir / "reference.npz")  # no second copy on disk
    if selection is not None:
        save_spectrum(run_dir / "auto_spectrum.npz", selection.spectrum)
    with clock("figures"):
        _write_figures(result, selection, animate)
    result.summary["wall_seconds"], result.summary["time_parts"] = clock.summary()
    write_json(run_dir / "summary.json", result.summary)


def _write_figures(result: Run, selection: Selection | None, animate: bool = False) -> None:
    run_dir = result.run_dir
    assert run_dir is not None
    figures = run_dir / "figures"
    problem = result.problem
    ev = result.evaluator
    try:
        if selection is not None:
            spectrum_figure(figures / "spectrum.png", selection, problem.name)
        if len(result.history):
            history_figure(figures / "history.png", result.history, problem.name)
        pred, truth = ev.figure_fields(result.model)
        solution_figure(
            figures / "solution.png",
            ev.axes,
            problem.variables,
            pred,
            truth,
            title=f"{problem.name} ({problem.model['arch']})",
        )
        if problem.inverse is not None:
            unknowns_figure(figures / "unknowns.png", result.history, result.summary,
                            problem.name)
        if problem.domain.has_time:
            snapshots_figure(figures / "snapshots.png", result)
            if animate:
                animation(figures / "animation.gif", result)
        if problem.diagnostics.get("probes"):
            result.summary["probes"] = write_probes(run_dir, result)
    except MscaleError:
        raise
    except Exception as exc:  # noqa: BLE001 - a figure must not lose the run's results
        print(f"warning: figures not written: {exc}", file=sys.stderr)
