"""The matrix-product floor of a forward-Laplacian training step.

An exact forward-Laplacian step of an MLP with hidden width W on N points carries S streams
(value, the d first derivatives, the operator), and every hidden W×W layer costs, per
stream, one forward product (N, W)·(W, W), one input-gradient product (N, W)·(W, W) and one
weight-gradient product (W, N)·(N, W). This script times the three products alone (median
of ``--repeats`` loops of ``--loops`` products, after warm-up) and prints the floor
S · layers · (t_fwd + t_in + t_w) that no exact step built on these products can beat.

    python benchmarks/matmul_floor.py --threads 2              # 1D Poisson, 4x100 MLP
    python benchmarks/matmul_floor.py --threads 2 --streams 4  # 2D Poisson
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=4096)
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--layers", type=int, default=3, help="hidden W x W layers")
    ap.add_argument("--streams", type=int, default=3, help="1D Poisson: u, u', L u")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--loops", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    n, w = args.points, args.width
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(n, w, generator=gen)
    g = torch.randn(n, w, generator=gen)
    weight = torch.randn(w, w, generator=gen)
    products = {
        "forward (N,W)·(W,W)": lambda: h @ weight.t(),
        "input gradient (N,W)·(W,W)": lambda: g @ weight,
        "weight gradient (W,N)·(N,W)": lambda: g.t() @ h,
    }
    flop = 2.0 * n * w * w
    total = 0.0
    print(f"N = {n}, W = {w}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    for name, fn in products.items():
        for _ in range(20):
            fn()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.loops):
                fn()
            times.append((time.perf_counter() - t0) / args.loops)
        t = statistics.median(times)
        total += t
        print(f"{name:30s} {t * 1e3:7.3f} ms  {flop / t / 1e9:6.1f} GFLOP/s")
    count = args.streams * args.layers
    print(
        f"floor: {count} x 3 products = {count * total * 1e3:.2f} ms per step "
        f"({args.streams} streams, {args.layers} hidden layers)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
