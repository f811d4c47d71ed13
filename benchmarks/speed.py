"""Training-step speed: the forward-Laplacian engine (eager and compiled) versus the autograd
way and versus DeepXDE's own training loop, on identical problems, networks and points.

Usage::

    python benchmarks/speed.py --quick                      # smoke run (1-2 minutes, 1 thread)
    python benchmarks/speed.py --markdown --out speed.json  # everything (tens of minutes)
    python benchmarks/speed.py --problems poisson1d,poisson2d --archs mlp,mff --threads 2
    python benchmarks/speed.py --device cuda --markdown

What is timed is one full Adam step, exactly as :class:`mscalepde.training.trainer.Trainer` does it:
``zero_grad``, the loss terms ``objective.terms(model)``, the weighted sum, ``backward``,
``step`` (the trainer's Adam, ``fused`` where torch has it, for every engine of ours).
Problems (manufactured exact solutions, Dirichlet data on all faces, ``source: auto``,
float32): ``poisson1d``, ``poisson2d``, ``poisson3d``, ``heat1d``, ``heat2d``; N = 4096
interior points (``--points``), 256 boundary points (``--boundary``; shared among the
faces, in 1D 128 copies of each end point) and, for heat, 256 initial points, Sobol, seed 0.

Architectures (about 30 k parameters each, like a 4 × 100 MLP): ``mlp`` (tanh, 4 × 100),
``mscale1`` (MscaleDNN-1, width 100, depth 4, s2ReLU, scales 1..32), ``mscale2``
(MscaleDNN-2, six subnetworks of 4 × 40, s2ReLU), ``fourier`` (50 frequencies, σ = 1, trunk
3 × 100), ``mff`` (σ = 1, 10), ``stmff`` (σ_x = 1, 10, σ_t = 1; heat only), ``siren``
(4 × 100, ω₀ = 30).

Engines:

- ``forward``: the forward-Laplacian engine (:mod:`mscalepde.calculus.jet`), eager;
- ``forward+compile``: the same with the loss function ``lambda: objective.terms(model)``
  wrapped in ``torch.compile`` as the trainer does (``mode="reduce-overhead"``, CUDA graphs,
  on CUDA). The compile time (the first step: forward and backward graphs) is reported in
  its own column and excluded from ms/step; the JSON also records the number of graphs and
  of graph breaks. By default the inductor cache is a fresh temporary folder, so that the
  first compile of a run is cold (later ones may reuse kernels compiled earlier in the same
  run); ``--keep-compile-cache`` uses the user's cache, which makes a second run compile
  much faster;
- ``autograd``: reverse mode, one backward pass with ``create_graph`` for ∇u and one per
  dimension for Δu (the classical PINN way, what DeepXDE does), eager;
- ``autograd+compile``: tried on the first configuration (``torch.compile`` does not
  support the double backward): ``fails`` with the error when it fails, as expected, and
  is not tried again in the run;
- ``deepxde``: when ``import deepxde`` works (PyTorch back end, run in a child process
  with ``DDE_BACKEND=pytorch`` since DeepXDE changes torch's default device on import),
  DeepXDE's own ``model.train`` loop on the same problem: ``FNN([D] + [100] * 4 + [1],
  "tanh", "Glorot normal")``, the same interior points as ``anchors`` with
  ``num_domain=0``, the same boundary (and initial) points and values as ``PointSetBC``,
  the source f as an auxiliary variable, Adam, lr 1e-3. Its per-step time is
  (T(train(1 + n)) − T(train(1))) / n, which cancels its start-up and the loss evaluations
  at the start and the end of ``train`` (``display_every`` is huge). DeepXDE evaluates the
  PDE residual at the boundary points too, as it always does. As a check that the problem
  is the same, DeepXDE's initial loss terms are compared with ours (autograd engine) for
  DeepXDE's own network (``check_rel_diff`` in the JSON; a note when above 1e-3). It is
  compared with the ``mlp`` rows (our MLP also maps its inputs to [−1, 1]: one elementwise
  affine map). DeepXDE is never a dependency of the package; without it the rows are
  skipped with a message.

Timing: the engines of one (problem, architecture) are set up side by side (each with its
own model, same initial weights), each runs ``--warmup`` steps, then ``--repeats`` rounds
in which every engine runs n steps (n ≥ ``--min-steps`` and long enough to last
``--min-seconds``), in an order rotated each round, so that a slow spell of a shared
machine hits every engine alike; ms/step is the median over the rounds
(``time.perf_counter``, with ``torch.cuda.synchronize()`` before every clock read on
CUDA). ``--threads`` calls ``torch.set_num_threads`` (and sets OMP_NUM_THREADS for the
compiled kernels and the DeepXDE child); default: torch's default. On a CPU that other
processes are using, more than one thread can be many times slower (OpenMP threads wait
for each other): the script warns when the load average was high. ``--quick``: poisson2d
and heat1d, mlp, N = 1024, 3 repeats of 3 steps, 1 thread unless ``--threads`` is given (a
smoke test of every engine, not a measurement). The table's "vs autograd" is the ratio of the
autograd row's ms/step (same problem and architecture) to the row's; "vs DeepXDE" is the
DeepXDE row's ms/step (same problem) to the row's, for ``mlp`` rows only.

Output: progress lines on stderr, the markdown table on stdout (``--markdown``: with a
header giving the machine and the command, ready for ``benchmarks/README.md``), and all
numbers with the machine description in ``--out FILE.json``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

PROBLEMS: dict[str, dict[str, Any]] = {
    "poisson1d": {
        "pde": "poisson",
        "domain": {"box": [[0, 1]]},
        "exact": "sin(2*pi*x) + 0.1*sin(20*pi*x)",
    },
    "poisson2d": {
        "pde": "poisson",
        "domain": {"box": [[0, 1], [0, 1]]},
        "exact": "sin(2*pi*x)*sin(2*pi*y) + 0.1*sin(10*pi*x)*sin(10*pi*y)",
    },
    "poisson3d": {
        "pde": "poisson",
        "domain": {"box": [[0, 1], [0, 1], [0, 1]]},
        "exact": "sin(pi*x)*sin(pi*y)*sin(pi*z)",
    },
    "heat1d": {
        "pde": "heat",
        "diffusivity": 0.10132118364233778,  # 1 / pi^2
        "domain": {"box": [[0, 1]], "time": [0, 1]},
        "exact": "exp(-t)*sin(pi*x)",
    },
    "heat2d": {
        "pde": "heat",
        "diffusivity": 0.05066059182116889,  # 1 / (2 pi^2)
        "domain": {"box": [[0, 1], [0, 1]], "time": [0, 1]},
        "exact": "exp(-t)*sin(pi*x)*sin(pi*y)",
    },
}

ARCHS: dict[str, dict[str, Any]] = {
    "mlp": {"arch": "mlp", "width": 100, "depth": 4, "activation": "tanh"},
    "mscale1": {"arch": "mscale", "variant": 1, "width": 100, "depth": 4},
    "mscale2": {"arch": "mscale", "variant": 2, "width": 40, "depth": 4},
    "fourier": {"arch": "fourier", "sigma": 1.0, "features": 50, "width": 100, "depth": 3},
    "mff": {"arch": "mff", "sigmas": [1.0, 10.0], "features": 50, "width": 100, "depth": 3},
    "stmff": {
        "arch": "stmff",
        "sigmas_x": [1.0, 10.0],
        "sigmas_t": [1.0],
        "features": 50,
        "width": 100,
        "depth": 3,
    },
    "siren": {"arch": "siren", "width": 100, "depth": 4},
}

ENGINES = ("forward", "forward+compile", "autograd", "autograd+compile", "deepxde")
QUICK = {
    "problems": "poisson2d,heat1d",
    "archs": "mlp",
    "threads": 1,  # a smoke run, gentle on a shared machine
    "points": 1024,
    "boundary": 128,
    "initial": 128,
    "warmup": 2,
    "repeats": 3,
    "min_steps": 3,
    "min_seconds": 0.0,
}


def _csv(text: str, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad:
        raise SystemExit(f"speed.py: unknown {what} {bad}; choose from {', '.join(allowed)}")
    return items


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Steps per second of a PINN training step: forward Laplacian (eager, "
        "compiled) vs autograd vs DeepXDE.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: poisson2d and heat1d, mlp, N = 1024, 2 warm-up steps, 3 x 3 steps, "
        "1 thread (unless --threads is given)",
    )
    ap.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated")
    ap.add_argument("--archs", default=",".join(ARCHS), help="comma-separated")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--points", type=int, default=4096, help="interior points N")
    ap.add_argument("--boundary", type=int, default=256, help="boundary points")
    ap.add_argument("--initial", type=int, default=256, help="initial points (heat)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    ap.add_argument("--min-steps", type=int, default=30, help="steps per repeat, at least")
    ap.add_argument("--min-seconds", type=float, default=3.0, help="seconds per repeat, at least")
    ap.add_argument("--max-steps", type=int, default=20000, help="steps per repeat, at most")
    ap.add_argument(
        "--keep-compile-cache",
        action="store_true",
        help="use the usual inductor cache (default: a fresh one, cold compiles)",
    )
    ap.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc's malloc thresholds alone (default: mscalepde.retain_freed_memory, "
        "as the CLI does, in every process, the DeepXDE worker included)",
    )
    ap.add_argument("--out", default=None, help="write all results to this JSON file")
    ap.add_argument(
        "--markdown",
        action="store_true",
        help="print a header (machine, command) above the markdown table",
    )
    args = ap.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == ap.get_default(key):  # explicit options win over --quick
                setattr(args, key, value)
    args.problems = _csv(args.problems, list(PROBLEMS), "problem")
    args.archs = _csv(args.archs, list(ARCHS), "architecture")
    args.engines = _csv(args.engines, ENGINES, "engine")
    return args


def _early_environment(args: argparse.Namespace) -> None:
    """Environment that must be set before torch is imported."""
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if not args.keep_compile_cache:
        cache = tempfile.mkdtemp(prefix="mscalepde-speed-inductor-")
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        os.environ["TRITON_CACHE_DIR"] = os.path.join(cache, "triton")


def _allocator(args: argparse.Namespace) -> str:
    """Keep freed memory in the process (as the CLI does) unless ``--system-malloc``."""
    from mscalepde.training.allocator import retain_freed_memory

    if getattr(args, "system_malloc", False):
        return "glibc defaults (--system-malloc)"
    return "freed memory retained (mallopt)" if retain_freed_memory() else "system default"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- problems
def problem_config(name: str, arch: str | None, args: argparse.Namespace) -> dict[str, Any]:
    data = json.loads(json.dumps(PROBLEMS[name]))
    data["name"] = f"speed_{name}"
    data["source"] = "auto"
    data["boundary"] = [{"faces": "all", "type": "dirichlet", "value": "exact"}]
    if data["pde"] == "heat":
        data["initial"] = "exact"
    data["model"] = dict(ARCHS[arch or "mlp"])
    data["train"] = {
        "seed": 0,
        "dtype": "float32",
        "lr": 1e-3,
        "sampler": "sobol",
        "points": {"interior": args.points, "boundary": args.boundary, "initial": args.initial},
    }
    return data


def make_objective(problem: Any, engine: str, device: Any) -> Any:
    import torch

    from mscalepde.equations import Objective

    return Objective.from_problem(problem, dtype=torch.float32, device=device, engine=engine)


# ---------------------------------------------------------------------------- timing
def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:240]


def _steps_per_repeat(estimate: float, args: argparse.Namespace) -> int:
    n = max(args.min_steps, math.ceil(args.min_seconds / max(estimate, 1e-6)))
    return max(1, min(n, args.max_steps))


def prepare_engine(
    problem: Any, engine: str, device: Any, args: argparse.Namespace
) -> tuple[dict[str, Any], Callable[[], Any] | None, dict[str, Any]]:
    """A fresh model (same seed for every engine: identical initial weights), objective and
    Adam for ``engine``; compiled engines are compiled here (the first step, timed as
    ``compile_s``). Returns (row, step or None when it fails, last-loss holder)."""
    import torch
    from torch._dynamo.utils import counters

    from mscalepde.run.pipeline import make_model
    from mscalepde.training.trainer import make_adam

    derivative_engine, compiled = engine.split("+")[0], engine.endswith("+compile")
    model = make_model(problem, torch.float32).to(device)
    objective = make_objective(problem, derivative_engine, device)
    weights = problem.train["weights"]
    opt = make_adam([p for p in model.parameters() if p.requires_grad], 1e-3)

    def eager() -> dict[str, Any]:
        return objective.terms(model)

    terms_fn: Callable[[], dict[str, Any]] = eager
    row: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    if compiled:
        counters.clear()
        mode = "reduce-overhead" if device.type == "cuda" else None
        terms_fn = torch.compile(eager, mode=mode)
        row["compile_mode"] = mode or "default"

    last: dict[str, Any] = {}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        terms = terms_fn()
        loss = sum(weights.get(k, 1.0) * v for k, v in terms.items())
        loss.backward()
        opt.step()
        last["loss"] = loss

    try:
        if compiled:
            _sync(device)
            t0 = time.perf_counter()
            step()  # compiles the forward and the backward graph
            _sync(device)
            row["compile_s"] = time.perf_counter() - t0
            row["graph_breaks"] = sum(counters["graph_break"].values())
            row["graphs"] = counters["stats"]["unique_graphs"]
        # warm-up: ``warmup`` steps in all (the compile step is one), the last one in
        # time_interleaved; every engine has taken the same steps at every point
        for _ in range(max(args.warmup - 1 - int(compiled), 0)):
            step()
    except Exception as exc:  # noqa: BLE001 - any failure is a result
        row.update(status="fails", note=f"{type(exc).__name__}: {_first_line(exc)}")
        return row, None, last
    return row, step, last


def time_interleaved(
    steps: dict[str, Callable[[], Any]], device: Any, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """ms/step of every engine, measured in interleaved rounds.

    One more warm-up step per engine sets its n (steps per repeat); then ``repeats`` rounds,
    each running n steps of every engine in an order rotated by one each round, so that a
    slow spell of a shared machine hits every engine alike. ms/step: median over rounds.
    """
    names = list(steps)
    n: dict[str, int] = {}
    for name in names:
        _sync(device)
        t0 = time.perf_counter()
        steps[name]()
        _sync(device)
        n[name] = _steps_per_repeat(time.perf_counter() - t0, args)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeats):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(n[name]):
                steps[name]()
            _sync(device)
            times[name].append((time.perf_counter() - t0) / n[name] * 1e3)
    return {
        name: {"ms": statistics.median(times[name]), "repeats_ms": times[name], "steps": n[name]}
        for name in names
    }


def run_group(
    problem: Any, engines: list[str], device: Any, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Prepare every engine of one (problem, architecture), then time them interleaved."""
    rows: dict[str, dict[str, Any]] = {}
    steps: dict[str, Callable[[], Any]] = {}
    lasts: dict[str, dict[str, Any]] = {}
    for engine in engines:
        row, step, last = prepare_engine(problem, engine, device, args)
        rows[engine] = row
        if step is not None:
            steps[engine], lasts[engine] = step, last
    try:
        timed = time_interleaved(steps, device, args)
    except Exception as exc:  # noqa: BLE001 - a failure mid-timing fails every engine
        for engine in steps:
            rows[engine].update(status="fails", note=f"{type(exc).__name__}: {_first_line(exc)}")
        return rows
    for engine, result in timed.items():
        row = rows[engine]
        row.update(result, status="ok")
        final = float(lasts[engine]["loss"].detach())
        row["final_loss"] = final
        if not math.isfinite(final):
            row["note"] = "non-finite loss during timing"
    return rows


# ---------------------------------------------------------------------------- DeepXDE
def deepxde_available() -> str | None:
    """None when ``deepxde`` can be imported (in a child), else the reason."""
    import importlib.util

    if importlib.util.find_spec("deepxde") is None:
        return "DeepXDE is not installed (pip install deepxde to compare with it)"
    return None


def run_deepxde(
    items: list[tuple[str, Any]], args: argparse.Namespace, workdir: Path
) -> list[dict[str, Any]]:
    """Time DeepXDE's loop on each (name, problem) in a child process (see module doc)."""
    out_path = workdir / "deepxde_out.json"
    spec = {
        "args": vars(args),
        "out": str(out_path),
        "items": [{"problem": name, "config": problem.config} for name, problem in items],
    }
    spec_path = workdir / "deepxde_spec.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, DDE_BACKEND="pytorch")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # DeepXDE would move everything to a GPU
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--deepxde-worker", str(spec_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in (proc.stdout or "").splitlines():
        if not line.startswith(("Using backend", "Other supported", "paddle supports")):
            log(line)  # progress lines and warnings of the child
    rows = json.loads(out_path.read_text()) if out_path.exists() else []
    done = {r["problem"] for r in rows}
    for name, _ in items:
        if name not in done:
            tail = (proc.stdout or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            rows.append({"problem": name, "status": "fails", "note": tail[0][:240]})
    return rows


def _deepxde_pde(dde: Any, space_dim: int, heat: bool, kappa: float) -> Callable[..., Any]:
    """The residual in DeepXDE's form. Exactly three arguments: DeepXDE passes the
    auxiliary variables (the source f) only to a function of three arguments, and silently
    drops the PDE loss for other signatures."""

    def pde(x: Any, y: Any, f: Any) -> Any:
        lap = sum(dde.grad.hessian(y, x, i=i, j=i) for i in range(space_dim))
        if heat:
            return dde.grad.jacobian(y, x, i=0, j=space_dim) - kappa * lap - f
        return -lap - f

    return pde


def _deepxde_one(dde: Any, problem: Any, args: argparse.Namespace, device: Any) -> dict:
    import numpy as np
    import torch

    from mscalepde.calculus.derivatives import derivatives
    from mscalepde.equations import expression_field, pde_residual, residual_operator

    # the same points and data as our rows: the Objective is deterministic (Sobol, seed 0)
    obj = make_objective(problem, "autograd", device)
    sd, heat = problem.domain.space_dim, problem.pde == "heat"
    exact = expression_field(problem.exact, problem.variables)

    def source(x: np.ndarray) -> np.ndarray:
        x64 = torch.as_tensor(x, dtype=torch.float64, device=device)
        op = residual_operator(problem)
        d = derivatives(exact, x64, space_dim=sd, create_graph=False, operator=op)
        return host(pde_residual(problem, d, torch.zeros_like(d.u)))[:, None]

    def host(t: Any) -> np.ndarray:
        return t.detach().cpu().numpy()

    box = problem.domain.box
    lo, hi = [b[0] for b in box], [b[1] for b in box]
    geom = dde.geometry.Interval(lo[0], hi[0]) if sd == 1 else dde.geometry.Hypercube(lo, hi)
    (bd,) = obj.dirichlet
    xb, gb = bd.x, bd.g
    bcs = [dde.icbc.PointSetBC(host(xb), host(gb)[:, None])]
    pde = _deepxde_pde(dde, sd, heat, problem.diffusivity)
    common = {"num_domain": 0, "num_boundary": 0, "anchors": host(obj.x_interior)}
    if heat:
        geom = dde.geometry.GeometryXTime(geom, dde.geometry.TimeDomain(*problem.domain.time))
        bcs.append(dde.icbc.PointSetBC(host(obj.x_initial), host(obj.u_initial)[:, None]))
        data = dde.data.TimePDE(
            geom, pde, bcs, num_initial=0, auxiliary_var_function=source, **common
        )
    else:
        data = dde.data.PDE(geom, pde, bcs, auxiliary_var_function=source, **common)
    dde.config.set_random_seed(0)
    net = dde.nn.FNN([sd + heat] + [100] * 4 + [1], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        with contextlib.redirect_stdout(devnull):
            model.compile("adam", lr=1e-3)
            model.train(iterations=0, verbose=0)  # DeepXDE's losses at the initial weights
        row: dict[str, Any] = {
            "params": sum(p.numel() for p in net.parameters()),
            "train_points": len(data.train_x),
        }
        # Same problem check: our loss terms (autograd engine) of DeepXDE's network
        theirs = [float(v) for v in model.train_state.loss_train]
        ours = [float(v.detach()) for v in obj.terms(net).values()]
        if len(theirs) != len(ours):
            raise RuntimeError(f"DeepXDE has {len(theirs)} loss terms, we have {len(ours)}")
        row["check_rel_diff"] = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(theirs, ours))

        def timed(k: int) -> float:
            _sync(device)
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(devnull):
                model.train(iterations=k, display_every=10**9, verbose=0)
            _sync(device)
            return time.perf_counter() - t0

        # each train(k) call: start-up, a loss evaluation, k steps, a loss evaluation
        timed(max(args.warmup, 1))
        n = args.min_steps
        if args.min_seconds > 0:
            estimate = max((timed(3) - timed(1)) / 2, 1e-6)
            n = max(n, math.ceil(args.min_seconds / estimate))
        n = max(1, min(n, args.max_steps))
        times = []
        for _ in range(args.repeats):
            base = timed(1)
            times.append(max(timed(1 + n) - base, 0.0) / n * 1e3)
        row.update(ms=statistics.median(times), repeats_ms=times, steps=n, status="ok")
        row["final_loss"] = float(np.sum(model.train_state.loss_train))
        if row["check_rel_diff"] > 1e-3:
            row["note"] = f"initial losses differ from ours by {row['check_rel_diff']:.1e}"
    finally:
        devnull.close()
    return row


def deepxde_worker(spec_path: str) -> None:
    """Child process: time DeepXDE's ``model.train`` on every item of the spec."""
    spec = json.loads(Path(spec_path).read_text())
    args = argparse.Namespace(**spec["args"])
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    import torch

    from mscalepde.problem.validate import problem_from_dict

    if args.threads:
        torch.set_num_threads(args.threads)
    _allocator(args)
    results: list[dict[str, Any]] = []
    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            import deepxde as dde  # prints its back end on import
    except Exception as exc:  # noqa: BLE001
        for item in spec["items"]:
            note = f"import deepxde failed: {_first_line(exc)}"
            results.append({"problem": item["problem"], "status": "skipped", "note": note})
        Path(spec["out"]).write_text(json.dumps(results))
        return
    device = torch.device(args.device)
    for item in spec["items"]:
        row: dict[str, Any] = {"problem": item["problem"], "deepxde": dde.__version__}
        try:
            row.update(_deepxde_one(dde, problem_from_dict(item["config"]), args, device))
        except Exception as exc:  # noqa: BLE001 - any failure is a result
            row.update(status="fails", note=f"{type(exc).__name__}: {_first_line(exc)}")
        results.append(row)
        log(_progress_line(item["problem"], "mlp", "deepxde", row))
        Path(spec["out"]).write_text(json.dumps(results))  # partial results survive a crash


# ---------------------------------------------------------------------------- output
def _torch_device(name: str) -> Any:
    import torch

    return torch.device(name)


def _progress_line(problem: str, arch: str, engine: str, row: dict[str, Any]) -> str:
    if row.get("status") != "ok":
        return f"{problem:10s} {arch:8s} {engine:17s} {row.get('status')}: {row.get('note', '')}"
    text = f"{problem:10s} {arch:8s} {engine:17s} {row['ms']:9.2f} ms/step"
    text += f"  ({row['steps']} steps x {len(row['repeats_ms'])})"
    if row.get("compile_s") is not None:
        text += f"  compile {row['compile_s']:.1f} s, {row.get('graphs')} graph(s)"
        text += f", {row.get('graph_breaks')} graph break(s)"
    if row.get("check_rel_diff") is not None:
        text += f"  initial losses vs ours: rel. diff {row['check_rel_diff']:.1e}"
    if row.get("note"):
        text += f"  [{row['note']}]"
    return text


def add_ratios(rows: list[dict[str, Any]]) -> None:
    ok = {(r["problem"], r["arch"], r["engine"]): r["ms"] for r in rows if r["status"] == "ok"}
    for r in rows:
        if r["status"] != "ok":
            continue
        ref = ok.get((r["problem"], r["arch"], "autograd"))
        r["vs_autograd"] = ref / r["ms"] if ref else None
        dde = ok.get((r["problem"], "mlp", "deepxde"))
        r["vs_deepxde"] = dde / r["ms"] if dde and r["arch"] == "mlp" else None


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| problem | arch | engine | ms/step | steps/s | vs autograd | vs DeepXDE | compile s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]

    def ratio(v: float | None) -> str:
        return f"{v:.2f}×" if v else "—"

    for r in rows:
        head = f"| {r['problem']} | {r['arch']} | {r['engine']} |"
        if r["status"] != "ok":
            lines.append(f"{head} {r['status']} | — | — | — | — |")
            continue
        comp = f"{r['compile_s']:.1f}" if r.get("compile_s") is not None else "—"
        lines.append(
            f"{head} {r['ms']:.2f} | {1e3 / r['ms']:.1f} | {ratio(r.get('vs_autograd'))} | "
            f"{ratio(r.get('vs_deepxde'))} | {comp} |"
        )
    return "\n".join(lines)


def machine_info(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python benchmarks/speed.py " + " ".join(argv),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "compile_cache": "user" if args.keep_compile_cache else "fresh (cold compiles)",
    }
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    with contextlib.suppress(OSError):
        info["loadavg_start"] = list(os.getloadavg())
    return info


def markdown_header(info: dict[str, Any]) -> str:
    load = info.get("loadavg_start"), info.get("loadavg_end")
    lines = [
        f"Measured {info['date']} with `{info['command']}`",
        "",
        f"- machine: {info['cpu']}, {info['cpu_count']} logical CPUs, {info['platform']}",
        f"- torch {info['torch']}, threads: {info['torch_threads']}, device {info['device']}"
        + (f" ({info['gpu']})" if info.get("gpu") else ""),
        f"- inductor cache: {info['compile_cache']}",
        f"- allocator: {info.get('allocator', 'glibc defaults')}",
    ]
    if info.get("deepxde"):
        lines.append(f"- DeepXDE {info['deepxde']} (PyTorch back end)")
    if load[0] is not None and load[1] is not None:
        lines.append(f"- load average (1 min) at start / end: {load[0][0]:.2f} / {load[1][0]:.2f}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- main
def main(argv: list[str]) -> int:
    if argv[:1] == ["--deepxde-worker"]:
        sys.path.insert(0, str(ROOT))
        deepxde_worker(argv[1])
        return 0
    args = parse_args(argv)
    _early_environment(args)
    sys.path.insert(0, str(ROOT))
    import torch

    from mscalepde.problem.validate import problem_from_dict

    if args.threads:
        torch.set_num_threads(args.threads)
    allocator = _allocator(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("speed.py: --device cuda but torch sees no CUDA device")
    device = torch.device(args.device)
    info = machine_info(args, argv)
    info["allocator"] = allocator
    log(
        f"speed.py: torch {info['torch']}, {info['torch_threads']} threads, {args.device}; "
        f"problems {args.problems}, archs {args.archs}, engines {args.engines}"
    )

    rows: list[dict[str, Any]] = []
    try_autograd_compile = "autograd+compile" in args.engines
    for pname in args.problems:
        heat = PROBLEMS[pname]["pde"] == "heat"
        for arch in args.archs:
            if arch == "stmff" and not heat:
                continue
            problem = problem_from_dict(problem_config(pname, arch, args))
            engines = [
                e
                for e in args.engines
                if e != "deepxde" and (e != "autograd+compile" or try_autograd_compile)
            ]
            group = run_group(problem, engines, device, args)
            torch._dynamo.reset()  # drop compiled graphs (and the models they hold)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            for engine, row in group.items():
                if engine == "autograd+compile" and row["status"] != "ok":
                    try_autograd_compile = False  # tried once: it fails, as expected
                rows.append({"problem": pname, "arch": arch, "engine": engine, **row})
                log(_progress_line(pname, arch, engine, rows[-1]))

    if "deepxde" in args.engines:
        reason = deepxde_available()
        if reason:
            log(f"speed.py: skipping DeepXDE: {reason}")
        else:
            with tempfile.TemporaryDirectory(prefix="mscalepde-speed-") as tmp:
                items = [
                    (p, problem_from_dict(problem_config(p, "mlp", args))) for p in args.problems
                ]
                for r in run_deepxde(items, args, Path(tmp)):
                    info.setdefault("deepxde", r.get("deepxde"))
                    rows.append({"arch": "mlp", "engine": "deepxde", **r})

    with contextlib.suppress(OSError):
        info["loadavg_end"] = list(os.getloadavg())
    rows.sort(
        key=lambda r: (
            args.problems.index(r["problem"]),
            args.archs.index(r["arch"]) if r["arch"] in args.archs else -1,
            ENGINES.index(r["engine"]),
        )
    )
    add_ratios(rows)
    if args.markdown:
        print(markdown_header(info))
    print(markdown_table(rows))
    notes = [r for r in rows if r["status"] != "ok" or r.get("note")]
    if notes:
        print()
        for r in notes:
            print(f"- {r['problem']} / {r['arch']} / {r['engine']}: {r.get('note', r['status'])}")
        if any(r["engine"] == "autograd+compile" and r["status"] != "ok" for r in rows):
            print("- autograd+compile is not tried again after it fails once.")
    if info.get("loadavg_start") and info.get("loadavg_end"):
        busy = max(info["loadavg_start"][0], info["loadavg_end"][0])
        if busy > 0.5 * (os.cpu_count() or 1):
            hint = " (with other processes on the cores, --threads 1 avoids OpenMP stalls)"
            log(
                f"speed.py: warning: load average {busy:.2f} on {os.cpu_count()} CPUs: "
                "the machine was busy, timings are noisy"
                + (hint if torch.get_num_threads() > 1 and args.device == "cpu" else "")
            )
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": info, "results": rows}, indent=1))
        log(f"speed.py: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
