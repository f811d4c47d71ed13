"""Coverage of the 95 % interval of inverse_heat1d_kappa over noise draws (benchmarks §19).

    MSCALEPDE_THREADS=1 python benchmarks/inverse_calibration.py --draws 40 \
        --out benchmarks/results/inverse-calibration-2026-12-07

For each noise level σ (0.01 as shipped, and 10x) and each draw (observations.seed), the
problem is solved as shipped; the estimate, its standard deviation and whether the 95 %
interval covers the exact kappa are recorded in ``draws.csv``, the coverage and the mean
width per level in ``summary.json``, and ``calibration.png`` shows the intervals.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

import mscalepde

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "inverse_heat1d_kappa.yaml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=40)
    ap.add_argument("--levels", type=float, nargs="+", default=[0.01, 0.1])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for noise in args.levels:
        for seed in range(args.draws):
            run = mscalepde.solve(
                PROBLEM, write=False, baseline=False,
                overrides=[f"observations.seed={100 + seed}", f"observations.noise={noise}",
                           "diagnostics.enabled=false"],
            )
            k = run.summary["inverse"]["scalars"]["kappa"]
            rows.append({"noise": noise, "seed": 100 + seed, "value": k["value"],
                         "std": k["std"], "std_laplace": k["std_laplace"],
                         "lower95": k["lower95"], "upper95": k["upper95"],
                         "covered": k["covered"],
                         "sigma_hat": run.summary["inverse"]["uncertainty"]["sigma"],
                         "train_seconds": run.summary["train_seconds"]})
            print(json.dumps(rows[-1]), flush=True)
    with open(args.out / "draws.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary = {}
    for noise in args.levels:
        sel = [r for r in rows if r["noise"] == noise]
        summary[str(noise)] = {
            "draws": len(sel),
            "coverage": float(np.mean([r["covered"] for r in sel])),
            "mean_std": float(np.mean([r["std"] for r in sel])),
            "mean_std_laplace": float(np.mean([r["std_laplace"] for r in sel])),
            "laplace_coverage": float(np.mean([
                abs(r["value"] - 0.3) <= 1.959963984540054 * r["std_laplace"] for r in sel
            ])),
            "empirical_std": float(np.std([r["value"] for r in sel], ddof=1)),
            "mean_width": float(np.mean([r["upper95"] - r["lower95"] for r in sel])),
            "mean_train_seconds": float(np.mean([r["train_seconds"] for r in sel])),
        }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    figure(rows, args.levels, args.out / "calibration.png")
    print(json.dumps(summary, indent=2))


def figure(rows: list[dict], levels: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(levels), figsize=(5.5 * len(levels), 3.6), squeeze=False)
    for ax, noise in zip(axes[0], levels, strict=True):
        sel = [r for r in rows if r["noise"] == noise]
        for i, r in enumerate(sel):
            color = "C0" if r["covered"] else "C3"
            ax.plot([i, i], [r["lower95"], r["upper95"]], color=color, lw=2)
            ax.plot(i, r["value"], "o", color=color, ms=3)
        ax.axhline(0.3, color="k", ls="--", lw=1, label="exact kappa = 0.3")
        hits = int(sum(r["covered"] for r in sel))
        ax.set_title(f"noise sigma = {noise:g}: {hits} of {len(sel)} 95 % intervals cover")
        ax.set_xlabel("noise draw")
        ax.set_ylabel("kappa, 95 % interval")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
