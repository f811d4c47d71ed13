"""Training speed on a shared machine: steps per second of one `mscalepde solve`, alone and
with a competing process, under OpenMP's default wait policy and under the package's
passive one (benchmarks/README.md §15).

    python benchmarks/threads_contention.py [--steps 300] [--out FILE.json]

Each case runs a fresh `mscalepde solve` of a 2D Poisson problem (a 4x64 tanh MLP, 2000
interior points, Adam only, diagnostics off) and reads steps / training seconds from its
summary.json. The competitor is a second identical solve with its own default threads
(another training job), started 3 s before and under the same policy. ``OMP_WAIT_POLICY=``
(empty) gives libgomp's default (spin up to ~3·10⁵ iterations, then sleep);
``GOMP_SPINCOUNT`` shortens the spin; ``PASSIVE`` sleeps at once, and is what the command
line chooses on a busy machine. Every case runs twice.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBLEM = """
name: contention
pde: poisson
domain: {box: [[0, 1], [0, 1]]}
exact: "sin(2*pi*x)*sin(2*pi*y)"
boundary: [{faces: all, type: dirichlet, value: exact}]
model: {arch: mlp, width: 64, depth: 4}
train:
  optimizer: [adam]
  points: {interior: 2000, boundary: 400}
  log_every: 100
  checkpoint_every: 0
  checkpoint_seconds: 0
  compile: off
diagnostics: {enabled: false}
"""


def solve_cmd(problem: Path, out: Path, steps: int, threads: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "mscalepde", "solve", str(problem), "--quiet",
           "--out", str(out), "--set", f"train.steps={steps}"]
    return cmd + (["--threads", str(threads)] if threads else [])


def run_case(problem: Path, tmp: Path, steps: int, env_extra: dict[str, str],
             threads: int | None, competitor: str) -> float:
    drop = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MSCALEPDE_THREADS", "OMP_WAIT_POLICY",
            "GOMP_SPINCOUNT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    tag = f"{time.time_ns()}"
    rival = None
    if competitor == "training":
        rival = subprocess.Popen(solve_cmd(problem, tmp / f"rival-{tag}", 100 * steps, None),
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if rival is not None:
            time.sleep(3.0)  # the competitor is running (and past its imports)
        out = tmp / f"run-{tag}"
        subprocess.run(solve_cmd(problem, out, steps, threads), env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summary = json.loads((out / "summary.json").read_text())
        return summary["steps"] / summary["train_seconds"]
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()


CASES = [  # (label, environment, threads)
    ("libgomp default", {"OMP_WAIT_POLICY": ""}, None),
    ("GOMP_SPINCOUNT=10000", {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "10000"}, None),
    ("GOMP_SPINCOUNT=100000", {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "100000"}, None),
    ("PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, None),
    ("libgomp default", {"OMP_WAIT_POLICY": ""}, 1),
    ("PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, 1),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        problem = tmp / "p.yaml"
        problem.write_text(PROBLEM)
        for label, extra, threads in CASES:
            for competitor in ("none", "training"):
                rates = [
                    round(run_case(problem, tmp, args.steps, extra, threads, competitor), 1)
                    for _ in range(2)
                ]
                row = {"policy": label, "threads": threads or "default (2)",
                       "competitor": competitor, "steps_per_second": rates}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
