"""DeepXDE's plain PINN on ``poisson1d_multiscale``: the outside anchor of §7 (issue 11).

Trains DeepXDE's own model (PyTorch back end) on exactly our collocation points and data
(1024 Sobol interior points, the two boundary points, f = −u*'' from the file's ``exact``),
with the boundary weight of the file (1e5), and reports the final relative L2 error on the
2001-point evaluation grid of ``mscalepde`` and the wall time of ``model.train`` calls:

- ``fnn``: FNN [1, 100, 100, 100, 1], tanh, Glorot normal (DeepXDE's Poisson examples),
  Adam lr 1e-3 for ``--adam`` iterations, then L-BFGS (DeepXDE's defaults, ``--lbfgs``
  iterations at most).

Run it back to back with ``mscalepde solve problems/poisson1d_multiscale.yaml`` on an idle
machine (``pip install deepxde``; DDE_BACKEND=pytorch is set here):

    python benchmarks/deepxde_anchor.py --out benchmarks/results/optimizers-2026-11-30
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
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--adam", type=int, default=5000)
    ap.add_argument("--lbfgs", type=int, default=5000)
    args = ap.parse_args()

    import numpy as np
    import torch

    from mscalepde.calculus.derivatives import derivatives
    from mscalepde.diagnostics.evaluation import Evaluator
    from mscalepde.equations import Objective, expression_field, residual_operator
    from mscalepde.problem.validate import load_problem

    with contextlib.redirect_stdout(sys.stderr):
        import deepxde as dde

    problem = load_problem(ROOT / "problems" / "poisson1d_multiscale.yaml")
    obj = Objective.from_problem(problem, dtype=torch.float32)
    exact = expression_field(problem.exact, problem.variables)

    def source(x: np.ndarray) -> np.ndarray:
        x64 = torch.as_tensor(x, dtype=torch.float64)
        op = residual_operator(problem)
        d = derivatives(exact, x64, space_dim=1, create_graph=False, operator=op)
        return d.op.numpy()[:, None]  # −u*''

    def pde(x, y, f):  # three arguments: DeepXDE then passes f (see speed.py)
        return -dde.grad.hessian(y, x, i=0, j=0) - f

    (bd,) = obj.dirichlet
    xb, gb = bd.x, bd.g
    bcs = [dde.icbc.PointSetBC(xb.numpy(), gb.numpy()[:, None])]
    geom = dde.geometry.Interval(0.0, 1.0)
    data = dde.data.PDE(
        geom, pde, bcs, num_domain=0, num_boundary=0, anchors=obj.x_interior.numpy(),
        auxiliary_var_function=source,
    )
    dde.config.set_random_seed(0)
    net = dde.nn.FNN([1, 100, 100, 100, 1], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    weights = [problem.train["weights"]["pde"], problem.train["weights"]["boundary"]]
    evaluator = Evaluator(problem, dtype=torch.float32, device="cpu")

    def rel_l2() -> float:
        return float(evaluator(net)["rel_l2"])

    seconds = 0.0
    with contextlib.redirect_stdout(sys.stderr):
        model.compile("adam", lr=1e-3, loss_weights=weights)
        t0 = time.perf_counter()
        model.train(iterations=args.adam, display_every=10**9, verbose=0)
        seconds += time.perf_counter() - t0
        after_adam = rel_l2()
        dde.optimizers.config.set_LBFGS_options(maxiter=args.lbfgs)
        model.compile("L-BFGS", loss_weights=weights)
        t0 = time.perf_counter()
        model.train(display_every=10**9, verbose=0)
        seconds += time.perf_counter() - t0
    row = {
        "tool": f"DeepXDE {dde.__version__} (PyTorch back end)",
        "network": "FNN [1, 100, 100, 100, 1] tanh",
        "parameters": sum(p.numel() for p in net.parameters()),
        "schedule": f"Adam {args.adam} (lr 1e-3) + L-BFGS (at most {args.lbfgs})",
        "rel_l2_after_adam": after_adam,
        "rel_l2": rel_l2(),
        "train_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "deepxde_anchor.json").write_text(json.dumps(row, indent=1))
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
