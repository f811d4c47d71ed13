"""Time to accuracy on ``poisson3d`` and ``poisson2d_multiscale`` (issue 26).

Each variant is one ``mscalepde solve FILE --quiet`` in a fresh process (the runner of
``optimizers.py``); the curve is the history's (training time, rel L2) and the table gives
the first training time at which the error reached 1e-2, 1e-3, 1e-4 and 1e-5.

Variants (``--set`` overrides of the shipped file):

- ``shipped``: the file as it is now;
- ``session-6``: ``poisson3d`` as shipped before session 7 (3×48 MLP, 500 Adam + 55
  Levenberg–Marquardt iterations on new points each);
- ``matrix-free``: the shipped optimiser phases with ``solver: cg`` (Nyström-preconditioned
  CG instead of the Cholesky solve);
- ``adam``: the shipped network and points, Adam alone (first-order context);
- ``engd-fixed``: ``poisson2d_multiscale`` with the recipe that won on ``poisson3d`` (fewer
  parameters than rows, fixed points, the ENGD line search), with a budget.

    python benchmarks/time_to_accuracy.py --out benchmarks/results/time-to-accuracy-2026-12-07
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from optimizers import ROOT, figure, keep, run  # benchmarks/ is this script's own folder

LEVELS = (1e-2, 1e-3, 1e-4, 1e-5)
ENGD = "method: line-search, damping: 1.0e-8"

VARIANTS: dict[str, dict[str, list[str]]] = {
    "poisson3d": {
        "shipped": [],
        "session-6": [
            "model={arch: mlp, width: 48, depth: 3, activation: tanh}",
            "train.optimizer=[{adam: {steps: 500, lr: 2.0e-3}}, "
            "{gauss-newton: {steps: 55, resample_every: 1, decrease: 0.1}}]",
            "train.points={interior: 1000, boundary: 300}",
        ],
        "matrix-free": [
            "train.optimizer=[{adam: {steps: 200, lr: 1.0e-2}}, {gauss-newton: "
            f"{{steps: 60, resample_every: 0, {ENGD}, solver: cg}}}}]",
        ],
        "adam": ["train.optimizer=[{adam: {steps: 3000, lr: 1.0e-2, "
                 "decay: {every: 1000, factor: 0.5}}}]"],
    },
    "poisson2d_multiscale": {
        "shipped": [],
        "matrix-free": [
            "train.optimizer=[{gauss-newton: {steps: 45, resample_every: 1, decrease: 0.1, "
            "solver: cg}}]",
            "train.budget_seconds=240",
        ],
        "engd-fixed": [
            "model={arch: mff, sigmas: [1, 2], features: 16, width: 32, depth: 2}",
            "train.optimizer=[{adam: {steps: 300, lr: 1.0e-2}}, "
            f"{{gauss-newton: {{steps: 200, resample_every: 0, {ENGD}}}}}]",
            "train.points={interior: 4000, boundary: 800}",
            "train.budget_seconds=150",
        ],
    },
}


def first_time(curve: list[tuple[float, float]], level: float) -> float:
    """The first training time at which the error is at or below ``level`` (nan: never)."""
    return next((t for t, e in curve if e <= level), math.nan)


def table(records: list[dict]) -> str:
    head = " | ".join(f"to {lv:.0e}" for lv in LEVELS)
    lines = [f"| problem | variant | arch (params) | final rel L2 | train s | {head} |",
             "|---|---|---|---|---|" + "---|" * len(LEVELS)]
    for r in records:
        if "curve" not in r:
            lines.append(f"| {r['problem']} | {r['variant']} | failed: {r.get('error')} |")
            continue
        times = " | ".join(
            "—" if math.isnan(t := first_time(r["curve"], lv)) else f"{t:.1f}" for lv in LEVELS
        )
        lines.append(f"| {r['problem']} | {r['variant']} | {r['arch']} ({r['parameters']}) | "
                     f"{r['rel_l2']:.2e} | {r['train_seconds']:.1f} | {times} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*", default=[], help="problem names (default: both)")
    ap.add_argument("--variants", nargs="*", default=[], help="variant names (default: all)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    for name, variants in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        for variant, overrides in variants.items():
            if args.variants and variant not in args.variants:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                rec = run(ROOT / "problems" / f"{name}.yaml", overrides, Path(tmp) / "run")
            rec.update(problem=name, variant=variant)
            records = keep(records, rec, args.out)
    (args.out / "table.md").write_text(table(records))
    figure(records, args.out / "error_vs_time.png")


if __name__ == "__main__":
    main()
