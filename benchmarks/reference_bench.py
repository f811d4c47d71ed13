"""Reference-solver benchmark: times and errors on the problems of ``problems/`` and a
3D finite-difference solve at 128³.

Usage::

    python benchmarks/reference_bench.py            # everything (about a minute on 2 cores)
    python benchmarks/reference_bench.py --quick    # skip the 128^3 solves
    python benchmarks/reference_bench.py --threads 1 --json out.json

For every Poisson/heat problem it reports the automatic choice (``method: auto``: grid,
error against ``exact`` on a uniform check grid, the refinement estimate, wall time,
nothing cached) and the second-order FD solver at its default grid. The 3D rows solve
``problems/poisson3d.yaml`` at n = 129 points per axis (127 × 127 × 128 unknowns; the
z+ face is Neumann) with the fast-diagonalisation and the CG solvers, each in a fresh
process so that its peak resident memory (``ru_maxrss``) is its own; the time is split
into data (the source by autograd on 2.1 M points), solve, and the rest.
``--threads`` sets OMP/OpenBLAS threads before numpy is imported (a shared, loaded
machine runs BLAS much faster with 1 thread).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _set_threads(argv: list[str]) -> None:
    if "--threads" in argv:
        n = argv[argv.index("--threads") + 1]
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = n


_set_threads(sys.argv)

import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT))
from mscalepde.problem.validate import load_problem  # noqa: E402
from mscalepde.reference.solve import compute_reference  # noqa: E402


def problem_rows() -> list[dict]:
    rows = []
    for path in sorted((ROOT / "problems").glob("*.yaml")):
        p = load_problem(path)
        if p.pde == "fit":
            continue
        for method in ("auto", "fd"):
            r = compute_reference(p, method=method)
            rows.append(
                {
                    "problem": p.name,
                    "setting": method,
                    "method": r.method,
                    "n": r.n,
                    "nt": r.nt,
                    "time_method": r.time_method,
                    "exact_error": r.exact_error,
                    "estimated_error": r.estimated_error,
                    "seconds": r.seconds,
                }
            )
            print(_row_text(rows[-1]), flush=True)
    return rows


def _row_text(r: dict) -> str:
    grid = "x".join(str(v) for v in r["n"]) + (f", nt {r['nt']}" if r["nt"] else "")
    return (
        f"| {r['problem']} | {r['setting']} | {r['method']} {r['time_method']} | {grid} | "
        f"{r['exact_error']:.1e} | {r['estimated_error']:.1e} | {r['seconds']:.2f} |"
    )


def fd3d_child(solver: str, n: int) -> dict:
    """One 3D FD solve, timed by phase (run in a child process)."""
    import resource
    import time

    import mscalepde.reference.fd as F

    timings = {"solve": 0.0}
    original = F.LinearSolver.solve

    def timed(self, rhs, x0=None):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = original(self, rhs, x0)
        timings["solve"] += time.perf_counter() - t
        timings["iterations"] = self.iterations
        return out

    F.LinearSolver.solve = timed  # type: ignore[method-assign]
    p = load_problem(ROOT / "problems" / "poisson3d.yaml")
    data_t = {"data": 0.0}
    original_source = F.SpaceProblem.source

    def timed_source(self, ts=None):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = original_source(self, ts)
        data_t["data"] += time.perf_counter() - t
        return out

    F.SpaceProblem.source = timed_source  # type: ignore[method-assign]
    t0 = time.perf_counter()
    r = compute_reference(p, method="fd", n=n, solver=solver, estimate=False)
    total = time.perf_counter() - t0
    return {
        "solver": solver,
        "n": n,
        "unknowns": int((n - 2) * (n - 2) * (n - 1)),
        "seconds": total,
        "data_seconds": data_t["data"],
        "solve_seconds": timings["solve"],
        "cg_iterations": timings.get("iterations", 0),
        "exact_error": r.exact_error,
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def fd3d_rows(n: int, threads: str | None) -> list[dict]:
    rows = []
    for solver in ("fast", "cg"):
        cmd = [sys.executable, __file__, "--child", solver, "--n", str(n)]
        if threads:
            cmd += ["--threads", threads]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"| 3D FD {n}^3 | {solver} ({row['cg_iterations']} it) | {row['unknowns']:,} | "
            f"{row['seconds']:.1f} "
            f"(data {row['data_seconds']:.1f}, solve {row['solve_seconds']:.1f}) | "
            f"{row['exact_error']:.1e} | {row['max_rss_gb']:.2f} GB |",
            flush=True,
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the 128^3 solves")
    ap.add_argument("--threads", help="OMP/OpenBLAS threads (set before numpy loads)")
    ap.add_argument("--n", type=int, default=129, help="points per axis of the 3D FD solve")
    ap.add_argument("--json", help="write the rows to this JSON file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(fd3d_child(args.child, args.n)))
        return 0
    print(f"numpy {np.__version__}, threads {args.threads or 'default'}")
    print("| problem | setting | method | grid | error vs exact | estimated | seconds |")
    print("|---|---|---|---|---|---|---|")
    rows = {"problems": problem_rows()}
    if not args.quick:
        print("\n| case | solver | unknowns | seconds | error vs exact | peak memory |")
        print("|---|---|---|---|---|---|")
        rows["fd3d"] = fd3d_rows(args.n, args.threads)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
