"""Gauss–Newton at the size the dense step cannot reach: ≥ 10⁵ collocation points per
iteration and a network of ≥ 10⁵ parameters, matrix-free, within 8 GB.

`problems/poisson3d.yaml` (−Δu = f on the unit cube, Dirichlet and a Neumann face) with a
2 × 316 tanh MLP (101 753 parameters) on 100 000 interior + 20 000 boundary points, drawn
anew every iteration. The Gauss–Newton phase starts from the initialisation (no Adam: an
Adam step on these sizes costs as much as a CG iteration), with the matrix-free step
(Nyström rank ``--rank``, inexact CG with at most ``--cg-max-iter`` iterations; one product
J v or Jᵀ w takes 1.0–1.5 s here on 2 threads, so an iteration costs about
2 × (rank + CG iterations) of them). After
every iteration: its time, its CG iterations, the loss, the relative L2 error against the
exact solution, and the process's peak resident memory (``ru_maxrss``: everything the
process ever held, the network's graph and the recorded maps included). The dense step's
memory for the same sizes is printed for comparison (what `check_memory` would need).

    python benchmarks/large_gauss_newton.py --iterations 3 \\
        --out benchmarks/results/gn-large-2026-12-07/results.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from mscalepde.diagnostics.evaluation import Evaluator
from mscalepde.equations import Objective
from mscalepde.problem.validate import load_problem
from mscalepde.run.model import make_model
from mscalepde.training.gauss_newton import (
    GIB,
    GaussNewton,
    GaussNewtonSettings,
    weighted_loss,
)

ROOT = Path(__file__).resolve().parents[1]


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB


def adam_warm_up(problem, model, dtype, args) -> dict:
    """``--adam-steps`` Adam steps on ``--adam-points`` interior points (and a fifth as many
    on the boundary), new every step: the warm-up of the library's runs, at a size where a
    step costs milliseconds. Returns its time and final loss."""
    small = load_problem(ROOT / "problems" / "poisson3d.yaml", [
        f"model={{arch: mlp, width: {args.width}, depth: 2, activation: tanh}}",
        f"train.points.interior={args.adam_points}",
        f"train.points.boundary={max(args.adam_points // 5, 1)}",
    ])
    objective = Objective.from_problem(small, dtype=dtype)
    weights = small.train["weights"]
    opt = torch.optim.Adam(model.parameters(), lr=args.adam_lr)
    t = time.perf_counter()
    loss = float("nan")
    for step in range(args.adam_steps):
        objective.resample(small.train["seed"] + 1_000_000 + step)
        opt.zero_grad()
        value = weighted_loss(objective.terms(model), weights)
        value.backward()
        opt.step()
        loss = float(value.detach())
    return {"steps": args.adam_steps, "points": args.adam_points, "lr": args.adam_lr,
            "seconds": time.perf_counter() - t, "final_loss": loss}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--interior", type=int, default=100_000)
    ap.add_argument("--boundary", type=int, default=20_000)
    ap.add_argument("--width", type=int, default=316)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--rank", type=int, default=20)
    ap.add_argument("--cg-max-iter", type=int, default=20)
    ap.add_argument("--damping", type=float, default=1e-2,
                    help="initial relative λ (from the initialisation, 1e-6 had every early "
                    "step rejected: each rejection costs a CG solve, ~50 s here)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adam-steps", type=int, default=0,
                    help="Adam steps before Gauss-Newton, on --adam-points new points each "
                    "step (cheap: the warm-up the library's runs take)")
    ap.add_argument("--adam-points", type=int, default=4000)
    ap.add_argument("--adam-lr", type=float, default=1e-3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    problem = load_problem(ROOT / "problems" / "poisson3d.yaml", [
        f"model={{arch: mlp, width: {args.width}, depth: 2, activation: tanh}}",
        f"train.points.interior={args.interior}", f"train.points.boundary={args.boundary}",
    ])
    model = make_model(problem, dtype)
    evaluator = Evaluator(problem, dtype=dtype, device=torch.device("cpu"))
    warm = adam_warm_up(problem, model, dtype, args) if args.adam_steps else None
    objective = Objective.from_problem(problem, dtype=dtype)
    settings = GaussNewtonSettings(solver="cg", dtype=args.dtype, rank=args.rank,
                                   cg_max_iter=args.cg_max_iter, forcing=0.01, decrease=0.1,
                                   max_memory_gb=8.0, damping=args.damping)
    gn = GaussNewton(model, objective, problem.train["weights"], settings)
    rows = sum(b.rows for b in objective.blocks())
    dense, held = gn._dense_need(rows, dtype.itemsize)
    free, what = gn._cg_need(rows, dtype.itemsize)
    out = {"rows": rows, "parameters": gn.params.count, "dtype": args.dtype,
           "threads": args.threads, "rank": args.rank,
           "dense_step_gib": dense / GIB, "dense_holds": held,
           "matrix_free_estimate_gib": free / GIB, "start_peak_gib": peak_gib(),
           "start_rel_l2": evaluator(model)["rel_l2"], "adam": warm, "iterations": []}
    print(json.dumps({k: v for k, v in out.items() if k != "iterations"}), flush=True)
    gn.check_memory(rows, dtype.itemsize)
    gn.damping = settings.damping
    for k in range(1, args.iterations + 1):
        if k > 1:
            objective.resample(problem.train["seed"] + k)
        t = time.perf_counter()
        it = gn.iterate()
        row = {"iteration": k, "seconds": time.perf_counter() - t,
               "accepted": it is not None, "peak_gib": peak_gib()}
        if it is not None:
            row.update(loss=it.loss, damping=it.damping, cg_iterations=it.cg_iterations,
                       cg_residual=it.cg_residual, rel_l2=evaluator(model)["rel_l2"])
        out["iterations"].append(row)
        print(json.dumps(row), flush=True)
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
