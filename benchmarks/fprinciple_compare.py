"""Side-by-side F-Principle heat maps (Δ_F per solution frequency against the step) of
several run folders, e.g. a vanilla MLP and a multiscale network on the same problem.

    python benchmarks/fprinciple_compare.py RUN_A RUN_B [...] --out figure.png
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mscalepde.diagnostics.figures import draw_fprinciple_heatmap
from mscalepde.diagnostics.history import SpectralHistory
from mscalepde.io import atomic_write_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--labels", nargs="*")
    args = ap.parse_args()
    n = len(args.runs)
    fig, axes = plt.subplots(n, 1, figsize=(8.5, 0.6 + 2.1 * n), squeeze=False)
    fig.subplots_adjust(hspace=0.75)
    mesh = None
    for i, (run, ax) in enumerate(zip(args.runs, axes[:, 0], strict=True)):
        hist = SpectralHistory.from_npz(run / "diagnostics.npz")
        s = json.loads((run / "summary.json").read_text())
        label = args.labels[i] if args.labels else s["arch"]
        title = f"{label}: final relative L2 {s['rel_l2']:.2e}"
        mesh = draw_fprinciple_heatmap(fig, ax, hist, title=title, colorbar=False) or mesh
        ax.set_ylabel("frequency")
        if i < n - 1:
            ax.set_xlabel("")
    if mesh is not None:
        cbar = fig.colorbar(mesh, ax=axes[:, 0].tolist(), extend="both", shrink=0.9)
        cbar.set_label("Δ_F = |ĥ(k) − û(k)| / |û(k)|  (threshold 0.05)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
