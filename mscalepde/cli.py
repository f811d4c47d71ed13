"""Command line: ``mscalepde solve | resume | check | diagnose | reference | bench | export |
schema | cache`` (see
``mscalepde --help``).

Errors in the user's input end with one line on stderr and exit code 2 (problem files,
overrides, a run that cannot be resumed), 3 (training diverged; the run folder keeps the
last good state), 4 (the run folder cannot be written or read); never a traceback. SIGINT
and SIGTERM stop training at the next step boundary with a checkpoint (``signals.py``) and
exit with 130 and 143.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mscalepde.errors import MscaleError, Stopped, one_line


def _add_problem_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting by its dotted path, e.g. --set train.steps=2000 (repeatable)",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="same as --set train.device=")
    p.add_argument("--dtype", choices=["float32", "float64"], help="same as --set train.dtype=")
    p.add_argument("--seed", type=int, help="same as --set train.seed=")
    p.add_argument(
        "--threads", type=int, metavar="N",
        help="CPU threads for training (default: MSCALEPDE_THREADS, OMP_NUM_THREADS, "
        "SLURM_CPUS_PER_TASK, else the CPUs this process may use)",
    )


def _add_quick_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the classical solver's comparison at the end")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="one run on N processes of this machine, the points split between "
                   "them (torch.distributed: gloo on CPU, NCCL on GPUs); a resume needs the "
                   "same N")
    p.add_argument("--no-diagnostics", action="store_true",
                   help="no spectral diagnostics (same as --set diagnostics.enabled=false)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mscalepde",
        description="Physics-informed neural networks for multiscale Poisson and heat "
        "problems, with Frequency-Principle diagnostics.",
    )
    from mscalepde import __version__

    parser.add_argument("--version", action="version", version=f"mscalepde {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("solve", help="train a network on a problem file and write a run folder")
    p.add_argument("problem", help="problem file (YAML)")
    p.add_argument("--out", help="run folder (default: runs/<name>-<timestamp>)")
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace the run in --out (written beside it, moved in when the run ends well)",
    )
    p.add_argument("--runs-dir", default="runs", help="parent of default run folders")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--animate", action="store_true",
                   help="heat: write figures/animation.gif (u, truth and error in time)")
    _add_quick_args(p)
    p.add_argument(
        "--resume", metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its checkpoint.pt (same problem; more steps "
        "allowed) and write into that folder",
    )
    _add_problem_args(p)

    p = sub.add_parser(
        "resume",
        help="continue a stopped or finished run from its checkpoint",
        description="Continues RUN_DIR from its checkpoint.pt with the settings it was "
        "trained with; --set may extend step counts (e.g. --set train.steps=4000) or change "
        "logging, checkpointing, device and compile.",
    )
    p.add_argument("run_dir", help="run folder written by 'mscalepde solve'")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_quick_args(p)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="same as --set train.device=")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for training")

    p = sub.add_parser(
        "diagnose",
        help="recompute the spectral diagnostics of a run folder without retraining",
        description="A new threshold reuses the stored Delta_F history; magnitude, floor, "
        "bands and delta recompute it from the stored network fields; another grid, "
        "transform or times recompute the final state only (from model.pt).",
    )
    p.add_argument("run_dir", help="run folder written by 'mscalepde solve'")
    p.add_argument("--grid", type=int, help="points per axis of the diagnostic grid")
    p.add_argument("--threshold", type=float, help="Delta_F below which a frequency is resolved")
    p.add_argument("--transform", choices=["fft", "dst", "dct"])
    p.add_argument("--magnitude", action=argparse.BooleanOptionalAction, default=None,
                   help="compare |h^| and |u^| only (the papers' figures)")
    p.add_argument("--floor", type=float, help="peak floor relative to max |u^|")
    p.add_argument("--times", type=float, nargs="+", help="heat: times of the slices")
    p.add_argument("--delta", type=float, help="variance of the Gaussian filter")
    p.add_argument("--bands", type=float, nargs="+", help="edges of the |k| bands")
    p.add_argument("--out", help="write diagnostics.npz and figures here (default: the run folder)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")

    p = sub.add_parser(
        "reference", help="solve a problem classically (FD / spectral) and save reference.npz"
    )
    p.add_argument("problem", help="problem file (YAML)")
    p.add_argument("--out", help="folder for reference.npz (it is always cached as well)")
    p.add_argument("--method", choices=["auto", "fd", "spectral"], help="reference.method")
    p.add_argument("--n", type=int, help="points per axis (reference.n)")
    p.add_argument("--order", type=int, choices=[2, 4], help="FD order (4: Richardson)")
    p.add_argument("--nt", type=int, help="time steps (heat)")
    p.add_argument("--time-method", choices=["auto", "cn", "bdf", "chebyshev"])
    p.add_argument("--refresh", action="store_true", help="recompute even when cached")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser(
        "bench",
        help="compare models over seeds on problems; writes report.md, results.csv, figures",
        description="Runs every problem x model x seed as a normal solve and writes "
        "OUT/report.md, OUT/results.csv, OUT/figures/ and one run folder per run under "
        "OUT/runs/. Give problem files and --model options, or one sweep file (problems, "
        "named model variants, seeds and a budget; see the README). Started again, it skips "
        "the runs already finished.",
    )
    p.add_argument("problems", nargs="+", metavar="FILE",
                   help="problem files (YAML), or one sweep file")
    p.add_argument(
        "--model", action="append", dest="models", metavar="'NAME [KEY=VALUE ...]'",
        help="a model to compare, e.g. --model mlp --model 'fourier sigma=5' (repeatable; "
        "default: each problem's own model)",
    )
    p.add_argument("--seeds", type=int, nargs="+", help="default: 0 1 2")
    p.add_argument("--out", default="bench", help="output folder (default: bench)")
    p.add_argument("--workers", type=int, default=1,
                   help="trainings at once on this machine (Dask LocalCluster; needs "
                   "pip install -e '.[cluster]')")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://10.0.0.1:8786")
    p.add_argument("--progress", action="store_true", help="a progress bar per run")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser(
        "export",
        help="write a run's solution, truth, error and PDE residual for ParaView and others",
        description="Evaluates the trained network of RUN_DIR at a grid of the box, a "
        "mesh of the shape, or the points of a file, and writes u, truth, error and "
        "residual as VTU (a .pvd collection in time for heat), XDMF + HDF5, NPZ or CSV.",
    )
    p.add_argument("run_dir", help="run folder written by 'mscalepde solve'")
    p.add_argument("--format", choices=["vtu", "xdmf", "npz", "csv"], default="vtu")
    p.add_argument("--out", help="file to write (default: RUN_DIR/export/<name>.<ext>)")
    p.add_argument("--grid", type=int, metavar="N",
                   help="points per axis of a box (default 1001/201/41 in 1D/2D/3D), or "
                   "diameter/h of a shape's mesh (default 100 in 2D, 24 in 3D)")
    p.add_argument("--points", metavar="FILE",
                   help="evaluate at the points of FILE instead (csv/txt/npz; columns named "
                   "like the variables, as a truth file without u)")
    p.add_argument("--times", type=float, nargs="+", metavar="T",
                   help="heat: the times to write (default: 11 across the time window)")

    p = sub.add_parser(
        "schema",
        help="write the JSON Schema of problem files (for editors: completion and checks)",
        description="Prints (or writes to --out) the JSON Schema of the problem file, "
        "generated from the validators. Editors with the YAML language server use it "
        "through the first line of a problem file: "
        "'# yaml-language-server: $schema=mscalepde.schema.json'.",
    )
    p.add_argument("--out", help="file to write (default: standard output)")

    p = sub.add_parser(
        "cache",
        help="show where the reference cache is and how big it is (--clear: empty it)",
        description="Classical reference solutions are cached by problem and settings "
        "($MSCALEPDE_CACHE, default ~/.cache/mscalepde). Run folders keep their own "
        "reference.npz (a hard link to the cached file where possible).",
    )
    p.add_argument("--clear", action="store_true", help="delete the cached references")

    p = sub.add_parser("check", help="validate problem files (one line per file)")
    p.add_argument("problems", nargs="+", help="problem files (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    for name in ("device", "dtype", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            extra.append(f"train.{name}={value}")
    if getattr(args, "no_diagnostics", False):
        extra.append("diagnostics.enabled=false")
    return extra


def cmd_check(args: argparse.Namespace) -> int:
    from mscalepde.problem.validate import load_problem

    failed = 0
    for path in args.problems:
        try:
            p = load_problem(path, args.overrides)
        except MscaleError as exc:
            print(f"FAIL {exc}")
            failed += 1
            continue
        dims = f"{p.domain.space_dim}D" + (" + time" if p.domain.has_time else "")
        exact = "exact" if p.exact is not None else "no exact"
        print(f"ok   {one_line(path)}: {p.name}: {p.pde}, {dims}, {exact}, model {p.model['arch']}")
        if p.gauge_note:
            print(f"     {p.gauge_note}")
    return 2 if failed else 0


def cmd_reference(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mscalepde.problem.validate import load_problem
    from mscalepde.reference.baseline import describe_reference
    from mscalepde.reference.cache import cache_path, get_reference
    from mscalepde.reference.solve import reference_settings
    from mscalepde.run.folder import prepare_out_dir

    problem = load_problem(args.problem, args.overrides)
    chosen = {
        "method": args.method,
        "n": args.n,
        "order": args.order,
        "nt": args.nt,
        "time_method": args.time_method,
    }
    print(f"problem         {problem.name} ({problem.pde}, {one_line(problem.origin)})")
    ref = get_reference(problem, refresh=args.refresh, **chosen)
    print("\n".join(describe_reference(ref)))
    print(f"cache           {cache_path(problem, reference_settings(problem, **chosen))}")
    if args.out:
        path = ref.save(Path(prepare_out_dir(args.out)) / "reference.npz")
        print(f"saved           {path}")
    return 0


def cmd_solve(args: argparse.Namespace, stop: Any = None) -> int:
    from mscalepde.problem.validate import load_problem

    with args.clock("validation"):
        problem = load_problem(args.problem, _overrides(args))
    return _train(problem, args, stop, resume=args.resume)


def cmd_resume(args: argparse.Namespace, stop: Any = None) -> int:
    from mscalepde.run.pipeline import resume_problem

    with args.clock("validation"):
        problem, checkpoint = resume_problem(args.run_dir, _overrides(args))
    if os.environ.get("RANK", "0") == "0":  # (a launched run: rank 0 alone prints)
        print(f"resume    {args.run_dir} from step {checkpoint.step}")
    args.out, args.runs_dir = None, "runs"
    return _train(problem, args, stop, resume=checkpoint)


def _train(problem: Any, args: argparse.Namespace, stop: Any, resume: Any) -> int:
    from mscalepde.parallel.comm import join, leave

    device = _device_kind(problem)  # --device cuda without CUDA: before any work
    comm = join(device)  # one process, or this rank of a launched run (mscalepde.parallel)
    ended = False
    try:
        if comm.is_root:
            code = _train_rank(problem, args, stop, resume, comm)
        else:
            with contextlib.redirect_stdout(io.StringIO()):  # rank 0 alone prints
                code = _train_rank(problem, args, stop, resume, comm)
        ended = True
        return code
    except Stopped:
        ended = True  # a stop is agreed: every rank stops at the same step
        raise
    finally:
        leave(comm, synchronise=ended)  # (a barrier only after an orderly end)


def _device_kind(problem: Any) -> str:
    from mscalepde.run.pipeline import resolve_device

    return resolve_device(problem.train["device"]).type


def _train_rank(problem: Any, args: argparse.Namespace, stop: Any, resume: Any, comm: Any) -> int:
    from mscalepde.frequencies.select import resolve_auto
    from mscalepde.run.pipeline import solve
    from mscalepde.training.callbacks import Callback
    from mscalepde.training.settings import TrainSettings, describe_phases
    from mscalepde.training.trainer import Trainer

    with args.clock("auto"):
        problem, selection = resolve_auto(problem)  # model: auto → chosen from the spectrum
    if selection is not None:
        print(selection.line(), flush=True)
    m = problem.model
    arch_desc = ", ".join(f"{k}={v}" for k, v in m.items() if k != "arch")
    print(f"problem   {problem.name} ({problem.pde}, {one_line(problem.origin)})")
    if comm.world > 1:
        print(f"processes {comm.world} (the points split between them; rank 0 writes)")
    if problem.gauge_note:
        print(f"gauge     {problem.gauge_note}")
    if problem.truth is not None:  # errors at the file's points: no reference needed
        t = problem.truth
        print(f"truth     data file {one_line(str(t.path))} ({len(t.values)} values)")
    elif problem.exact is None and problem.pde != "fit" and comm.is_root:
        from mscalepde.reference.cache import get_reference

        with args.clock("reference"):
            ref = get_reference(problem)  # cached; solve and the diagnostics reuse it
        grid = "x".join(str(v) for v in ref.n)
        est = ref.estimated_error
        print(f"truth     classical reference ({ref.method} {grid}, est. error {est:.1e})")
    tr = problem.train
    windows = int(tr["time_windows"])
    per = f" in each of {windows} time windows" if windows > 1 else ""
    training = (
        f"training  {describe_phases(TrainSettings.from_mapping(tr).window_phases())}{per}, "
        f"{tr['dtype']}, device {tr['device']}, seed {tr['seed']}"
    )

    class ModelLine(Callback):
        """Prints the architecture and its parameter count once the model is built."""

        def on_start(self, trainer: Trainer) -> None:
            n_params = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
            print(f"model     {m['arch']} ({arch_desc}); {n_params} parameters")
            print(training, flush=True)

    result = solve(problem, out=args.out, runs_dir=args.runs_dir, progress=not args.quiet,
                   callbacks=[ModelLine()], resume=resume, stop=stop, selection=selection,
                   overwrite=getattr(args, "overwrite", False), baseline=not args.no_baseline,
                   animate=getattr(args, "animate", False),
                   clock=args.clock, comm=comm)
    if not comm.is_root:
        return 0
    s = result.summary
    print(format_summary(s))
    if "inverse" in s:
        from mscalepde.run.inverse import format_inverse

        print(format_inverse(s))
    if "diagnostics" in s:
        from mscalepde.diagnostics.report import format_report

        print(format_report({**s["diagnostics"], "rows": s["frequencies"]}))
    print(f"run folder {result.run_dir}")
    return 0


def cmd_bench(args: argparse.Namespace, stop: Any = None) -> int:
    from mscalepde.bench import ModelSpec, run_bench, run_sweep
    from mscalepde.bench.sweep import read_sweep
    from mscalepde.errors import ProblemError

    if args.workers < 1:
        raise ProblemError("--workers", "", f"expected an integer >= 1, got {args.workers}")
    if args.workers > 1 and args.scheduler:
        raise ProblemError("--workers", "", "not with --scheduler (the cluster has its workers)")
    common = {"progress": args.progress, "log": sys.stdout, "stop": stop,
              "workers": args.workers, "scheduler": args.scheduler}
    sweep = read_sweep(args.problems[0]) if len(args.problems) == 1 else None
    if sweep is not None:
        for flag, given in (("--model", args.models), ("--seeds", args.seeds),
                            ("--set", args.overrides)):
            if given:
                raise ProblemError(flag, "", "comes from the sweep file; give it there")
        run_sweep(sweep, args.out, **common)
    else:
        models = [ModelSpec.parse(m) for m in args.models or []] or [
            ModelSpec("problem's own")
        ]
        run_bench(args.problems, models, args.seeds or [0, 1, 2], args.out, args.overrides,
                  **common)
    print((Path(args.out) / "report.md").read_text())
    print(f"report written to {Path(args.out) / 'report.md'}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from mscalepde.diagnostics.report import format_report
    from mscalepde.run.diagnose import diagnose_run

    result = diagnose_run(
        args.run_dir, grid=args.grid, threshold=args.threshold, transform=args.transform,
        magnitude=args.magnitude, floor=args.floor, times=args.times, delta=args.delta,
        bands=args.bands, out=args.out, figures=not args.no_figures,
    )
    print(format_report(result))
    print(f"written to {result['out']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mscalepde.formats.writers import export

    files = export(args.run_dir, args.out, format=args.format, grid=args.grid,
                   points=args.points, times=args.times)
    for path in files:
        print(f"written   {one_line(str(path))}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from mscalepde.reference.cache import cache_dir, cache_entries, clear_cache

    where = cache_dir()
    if args.clear:
        files, size = clear_cache()
        print(f"cache     {one_line(str(where))}: removed {files} file(s), {size / 1e6:.1f} MB")
        return 0
    entries = cache_entries()
    total = sum(size for _, size in entries)
    print(f"cache     {one_line(str(where))}")
    print(f"holds     {len(entries)} reference(s), {total / 1e6:.1f} MB")
    for path, size in entries[:10]:
        print(f"  {size / 1e6:8.1f} MB  {one_line(path.name)}")
    if len(entries) > 10:
        print(f"  ... and {len(entries) - 10} more")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from mscalepde.problem.editor_schema import schema_text, write_schema

    if args.out:
        print(f"written   {one_line(str(write_schema(args.out)))}")
    else:
        sys.stdout.write(schema_text())
    return 0


def format_summary(s: dict) -> str:
    truth = "" if s.get("truth", "exact") == "exact" else f"  (against the {s['truth']})"
    lines = [
        f"relative L2 error  {s['rel_l2']:.3e}{truth}",
        f"max error          {s['max_error']:.3e}",
    ]
    lines.append(f"final loss         {s['loss']:.3e}")
    names = {"adam": "Adam", "lbfgs": "L-BFGS", "gauss-newton": "Gauss-Newton"}
    runs = [f"{p['steps']} {names.get(p['name'], p['name'])}" for p in s.get("phases", [])]
    windows = s.get("windows") or []
    if windows and len(runs) % len(windows) == 0:  # one line for K identical windows
        per = runs[: len(runs) // len(windows)]
        if per * len(windows) == runs:
            runs = [f"{len(windows)} windows of {' + '.join(per)}"]
    parts = " + ".join(runs)
    lines.append(f"steps              {s['steps']}" + (f" ({parts})" if parts else ""))
    if windows:
        errs = [w["rel_l2"] for w in windows]
        shown = " ".join(f"{e:.1e}" for e in errs) if len(errs) <= 10 else (
            f"{min(errs):.1e} to {max(errs):.1e} (windows {errs.index(min(errs))}, "
            f"{errs.index(max(errs))})")
        lines.append(f"per window         rel L2 {shown}")
    lines.append(f"training time      {s['train_seconds']:.1f} s")
    if "time_parts" in s:
        from mscalepde.run.clock import format_parts

        lines.append(format_parts(s["wall_seconds"], s["time_parts"]))
    if "auto" in s:
        share = s["auto"].get("fraction_of_training")
        pct = f" ({100 * share:.1f} % of the training time)" if share is not None else ""
        lines.append(f"auto selection     {s['auto']['seconds']:.2f} s{pct}")
    from mscalepde.reference.baseline import baseline_line

    line = baseline_line(s)
    if line:
        lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "solve": cmd_solve,
        "resume": cmd_resume,
        "check": cmd_check,
        "diagnose": cmd_diagnose,
        "bench": cmd_bench,
        "reference": cmd_reference,
        "export": cmd_export,
        "schema": cmd_schema,
        "cache": cmd_cache,
    }
    if args.command not in ("solve", "resume", "bench"):
        return _run(lambda: handlers[args.command](args))
    if getattr(args, "nproc", None) is not None:
        launched = _launch(args, list(sys.argv[1:] if argv is None else argv))
        if launched is not None:
            return launched
    from mscalepde.training.threads import configure_threads, load_warning

    if getattr(args, "threads", None) is not None and args.threads < 1:
        print(f"error: --threads: expected an integer >= 1, got {args.threads}", file=sys.stderr)
        return 2
    threads, source = configure_threads(getattr(args, "threads", None))  # before torch
    warning = load_warning(threads) if source == "CPU affinity" else None
    if warning:
        print(warning, file=sys.stderr)
    from mscalepde.run.clock import Stopwatch
    from mscalepde.training.allocator import retain_freed_memory
    from mscalepde.training.signals import StopRequest, graceful_stop

    args.clock = Stopwatch(started)  # summary.json: the whole command's time and its parts

    retain_freed_memory()  # no page faults in every training step (allocator.py)
    with graceful_stop(StopRequest()) as stop:  # SIGINT/SIGTERM: stop at a step boundary
        return _run(lambda: handlers[args.command](args, stop))


def _launch(args: argparse.Namespace, argv: list[str]) -> int | None:
    """``--nproc N``: this command as N processes (:mod:`mscalepde.parallel.launch`); its
    exit code, or None to run here (N = 1)."""
    from mscalepde.parallel.comm import launched_world
    from mscalepde.training.threads import thread_count

    n = args.nproc
    if n < 1:
        print(f"error: --nproc: expected an integer >= 1, got {n}", file=sys.stderr)
        return 2
    if launched_world() > 1:
        print("error: --nproc: this process is already one of a launched run's "
              f"{launched_world()}; give --nproc or torchrun, not both", file=sys.stderr)
        return 2
    if n == 1:
        return None
    from mscalepde.parallel.launch import launch, without_nproc

    # each process's share of the CPUs (an explicit --threads is passed on, per process)
    threads = max(1, thread_count(getattr(args, "threads", None))[0] // n)
    return _run(lambda: launch(n, without_nproc(argv), threads))


def _run(command: Any) -> int:
    """Run a command; user errors and signals end in one line on stderr and an exit code.

    numpy and torch warnings are held back while the command runs: a failed command prints
    its one error line only, a successful one then prints each distinct warning once, as
    one escaped line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = _guarded(command)
    if code == 0:
        seen = set()
        for w in caught:
            line = one_line(f"warning: {w.category.__name__}: {w.message}", 300)
            if line not in seen:
                seen.add(line)
                print(line, file=sys.stderr)
    return code


def _guarded(command: Any) -> int:
    from mscalepde.training.signals import EXIT_CODES

    try:
        return command()
    except MscaleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # errors.Stopped / Terminated, or a plain Ctrl-C
        reason = getattr(exc, "reason", "SIGINT")
        code = EXIT_CODES.get(reason, 130)
        if os.environ.get("RANK", "0") != "0":  # a launched run: rank 0 says where it stopped
            return code
        run_dir = getattr(exc, "run_dir", None)
        if run_dir is not None:
            print(f"stopped by {reason} at step {exc.step}; checkpoint written. Resume with: "
                  f"mscalepde resume {one_line(str(run_dir))}", file=sys.stderr)
        elif hasattr(exc, "step"):
            print(f"stopped by {reason} at step {exc.step}", file=sys.stderr)
        else:
            print(f"interrupted by {reason} (a run folder keeps its last checkpoint)",
                  file=sys.stderr)
        return code
    except BrokenPipeError:
        return 1


def entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
