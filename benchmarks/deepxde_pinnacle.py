"""DeepXDE's plain PINN on PINNacle's Poisson 2d-C: the outside anchor of the time axis in
benchmarks/README.md §22–23 (issue 25).

PINNacle's own code is built on DeepXDE, so this is the published vanilla baseline run on
this machine: the square [−0.5, 0.5]² minus four discs of radius 0.1 at (±0.3, ±0.3),
−Δu = 0, u = 1 on the square's edge and 0 on the discs; FNN [2, 100, 100, 100, 100, 100,
1] tanh (PINNacle's 5×100), Glorot normal, Adam lr 1e-3, 8 192 domain and 2 048 boundary
points (PINNacle's counts), float32. The error is PINNacle's L2RE at the 1 246 nodes of its
COMSOL file (``problems/data/pinnacle/poisson1_cg_data.dat``), logged every ``--every``
steps with the training time so far (evaluation excluded).

PINNacle trains 20 000 Adam steps; on 2 CPU cores that is tens of minutes, so ``--adam``
sets the count and the table gives the error and time per step measured.

    pip install deepxde   # 1.15: PyTorch back end, set here
    python benchmarks/deepxde_pinnacle.py --out benchmarks/results/pinnacle-anchor-2026-12-07
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DDE_BACKEND", "pytorch")
ROOT = Path(__file__).resolve().parents[1]
TRUTH = ROOT / "problems" / "data" / "pinnacle" / "poisson1_cg_data.dat"
CENTRES = ((0.3, 0.3), (-0.3, 0.3), (0.3, -0.3), (-0.3, -0.3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--adam", type=int, default=5000)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    with contextlib.redirect_stdout(sys.stderr):
        import deepxde as dde

    nodes = np.loadtxt(TRUTH, comments="%")
    x_ref, u_ref = nodes[:, :2].astype(np.float32), nodes[:, 2]

    square = dde.geometry.Rectangle([-0.5, -0.5], [0.5, 0.5])
    geom = square
    for c in CENTRES:
        geom = dde.geometry.CSGDifference(geom, dde.geometry.Disk(c, 0.1))

    def on_square(x, on_boundary):
        return on_boundary and np.isclose(np.abs(x).max(), 0.5)

    def on_discs(x, on_boundary):
        return on_boundary and not np.isclose(np.abs(x).max(), 0.5)

    def pde(x, y):
        return -dde.grad.hessian(y, x, i=0, j=0) - dde.grad.hessian(y, x, i=1, j=1)

    bcs = [
        dde.icbc.DirichletBC(geom, lambda x: np.ones((len(x), 1)), on_square),
        dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1)), on_discs),
    ]
    dde.config.set_random_seed(0)
    data = dde.data.PDE(geom, pde, bcs, num_domain=8192, num_boundary=2048)
    net = dde.nn.FNN([2] + [100] * 5 + [1], "tanh", "Glorot normal")
    model = dde.Model(data, net)

    def l2re() -> float:
        u = model.predict(x_ref)[:, 0].astype(np.float64)
        return float(np.linalg.norm(u - u_ref) / np.linalg.norm(u_ref))

    rows = []
    seconds = 0.0
    with contextlib.redirect_stdout(sys.stderr):
        model.compile("adam", lr=1e-3)
        done = 0
        while done < args.adam:
            n = min(args.every, args.adam - done)
            t0 = time.perf_counter()
            model.train(iterations=n, display_every=10**9, verbose=0)
            seconds += time.perf_counter() - t0
            done += n
            rows.append({"step": done, "train_seconds": seconds, "l2re": l2re()})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    out = {
        "tool": f"DeepXDE {dde.__version__} (PyTorch {torch.__version__} back end)",
        "network": "FNN [2, 100×5, 1] tanh, Glorot normal",
        "parameters": sum(p.numel() for p in net.parameters()),
        "points": "8192 domain + 2048 boundary (PINNacle's)",
        "schedule": f"Adam lr 1e-3, {args.adam} steps",
        "threads": torch.get_num_threads(),
        "seconds_per_step": seconds / max(1, args.adam),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "deepxde_poisson2d_classic.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
