"""Time and peak memory of one Gauss–Newton iteration: dense against matrix-free (CG, with
and without the Nyström preconditioner), over the number of residuals M and of parameters P.

Each case runs in a fresh process (peak memory is that process's maximum resident set,
``ru_maxrss``, minus the resident set before the step: the step's own memory), on a 2D
Poisson problem −Δu = f on the unit square with Dirichlet data, an MLP of the given width
and depth 3, float64, one thread. The iteration is timed twice after one warm-up iteration
(the second and third of the phase); the dense step's time includes forming J or JᵀJ and its
Cholesky factor, the matrix-free one's the recorded maps, the Nyström sketch and CG.

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
    solver=solver, preconditioner=precond, max_memory_gb=float(sys.argv[5]), chunk=1024))
rows = sum(b.rows for b in obj.blocks())
gn.check_memory(rows, 8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
gn.iterate()
times, cg = [], []
for _ in range(2):
    t = time.perf_counter()
    it = gn.iterate()
    times.append(time.perf_counter() - t)
    cg.append(0 if it is None else it.cg_iterations)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"M": rows, "P": gn.params.count, "seconds": min(times), "cg": cg,
                  "step_mb": (peak - base) / 1024, "loss": None if it is None else it.loss}))
"""


def run(m: int, width: int, solver: str, precond: str, max_gb: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MSCALEPDE_THREADS": "1"}
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CASE, str(m), str(width), solver, precond, str(max_gb)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    row = {"m_requested": m, "width": width, "solver": solver, "preconditioner": precond,
           "wall": time.perf_counter() - t}
    if out.returncode != 0:
        row["error"] = (out.stderr.strip().splitlines() or ["?"])[-1][:300]
        return row
    row.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-gb", type=float, default=8.0)
    ap.add_argument("--m", type=int, nargs="+", default=[1000, 4000, 16000, 64000])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    args = ap.parse_args()
    rows = []
    for width in args.widths:
        for m in args.m:
            for solver, precond in (("dense", "none"), ("cg", "none"), ("cg", "nystrom")):
                row = run(m, width, solver, precond, args.max_gb)
                rows.append(row)
                print(json.dumps(row), flush=True)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
