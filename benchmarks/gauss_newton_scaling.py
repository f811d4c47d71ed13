"""Time and peak memory of one Gauss–Newton iteration: dense against matrix-free (CG, with
and without the Nyström preconditioner), over the number of residuals M and of parameters P.

Each case runs in a fresh process (peak memory is that process's maximum resident set,
``ru_maxrss``, minus the resident set before the step: the step's own memory), on a 2D
Poisson problem −Δu = f on the unit square with Dirichlet data, an MLP of the given width
and depth 3, float64, one thread. The damping is held at λ = 1e-8 (relative; the
line-search method, 4 trial step sizes): the ill-conditioned system of a run's late
iterations, where the Levenberg–Marquardt control has driven λ down, rather than the
heavily damped first ones. The iteration is timed twice after one warm-up iteration
(the second and third of the phase); the dense step's time includes forming J or JᵀJ and its
Cholesky factor, the matrix-free one's the recorded maps, the Nyström sketch and CG. Five
variants (``--variants``): ``dense``; ``inexact``, matrix-free as shipped (Nyström, inexact:
forcing 0.1); and three accurate matrix-free solves (relative residual 1e-6, no forcing):
``plain`` (no preconditioner), ``nystrom`` and ``kfac`` (Kronecker factors per layer).

    python benchmarks/gauss_newton_scaling.py \\
        --out benchmarks/results/gn-scaling-2026-12-07/results.json

A case that would need more than ``--max-gb`` is skipped and reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CASE = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from mscalepde import problem_from_dict
from mscalepde.equations import Objective
from mscalepde.run.model import make_model
from mscalepde.training.gauss_newton import GaussNewton, GaussNewtonSettings

m, width, solver, precond = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
forcing, cg_tol = float(sys.argv[6]), float(sys.argv[7])
boundary = max(4, m // 8)
p = problem_from_dict({
    "name": "scaling", "pde": "poisson", "domain": {"box": [[0, 1], [0, 1]]},
    "exact": "sin(pi*x)*sin(2*pi*y) + 0.1*sin(8*pi*x)*sin(8*pi*y)", "source": "auto",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
    "model": {"arch": "mlp", "width": width, "depth": 3},
    "train": {"points": {"interior": m - boundary, "boundary": boundary}},
})
torch.manual_seed(0)
model = make_model(p, torch.float64)
obj = Objective.from_problem(p, dtype=torch.float64)
gn = GaussNewton(model, obj, p.train["weights"], GaussNewtonSettings(
    solver=solver, preconditioner=precond, max_memory_gb=float(sys.argv[5]), chunk=1024,
    forcing=forcing, cg_tol=cg_tol, cg_max_iter=1000,
    method="line-search", damping=1e-8, halvings=3))
rows = sum(b.rows for b in obj.blocks())
gn.check_memory(rows, 8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
gn.iterate()
times, cg = [], []
for _ in range(2):
    t = time.perf_counter()
    it = gn.iterate()
    times.append(time.perf_counter() - t)
    cg.append(gn.last_cg[0])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"M": rows, "P": gn.params.count, "seconds": min(times), "cg": cg,
                  "step_mb": (peak - base) / 1024, "loss": None if it is None else it.loss}))
"""


VARIANTS = {
    "dense": ("dense", "none", 0.1, 1e-10),  # Cholesky: exact to rounding
    "inexact": ("cg", "nystrom", 0.1, 1e-10),  # inexact Newton (forcing 0.1)
    "plain": ("cg", "none", 0.0, 1e-6),  # an accurate solve, unpreconditioned
    "nystrom": ("cg", "nystrom", 0.0, 1e-6),  # an accurate solve, Nyström
    "kfac": ("cg", "kfac", 0.0, 1e-6),  # an accurate solve, Kronecker factors
}


def run(
    m: int, width: int, solver: str, precond: str, max_gb: float, forcing: float, tol: float
) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MSCALEPDE_THREADS": "1"}
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CASE, str(m), str(width), solver, precond, str(max_gb),
         str(forcing), str(tol)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    row = {"m_requested": m, "width": width, "solver": solver, "preconditioner": precond,
           "forcing": forcing, "cg_tol": tol, "wall": time.perf_counter() - t}
    if out.returncode != 0:
        row["error"] = (out.stderr.strip().splitlines() or ["?"])[-1][:300]
        return row
    row.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-gb", type=float, default=8.0)
    ap.add_argument("--m", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--plain-cg-up-to", type=int, default=16000,
                    help="run the unpreconditioned accurate solve only up to this M "
                    "(it takes ~1000 CG iterations: minutes per case beyond)")
    ap.add_argument("--append", action="store_true", help="add to the rows already in --out")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    path = Path(args.out)
    rows = json.loads(path.read_text()) if args.append and path.exists() else []
    for width in args.widths:
        for m in args.m:
            for solver, precond, forcing, tol in (VARIANTS[v] for v in args.variants):
                if solver == "cg" and precond == "none" and m > args.plain_cg_up_to:
                    continue
                row = run(m, width, solver, precond, args.max_gb, forcing, tol)
                rows.append(row)
                print(json.dumps(row), flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
