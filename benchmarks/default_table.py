"""The package-default table of benchmarks/README.md §23, from a ``default_study.py`` output
folder: each file's own result (as published in README "The problem library", measured
with the same command on the same machine) beside the default's final result and the
default's error at twice the file's own training time (read from its history.csv).

    python benchmarks/default_table.py bench-default > table.md
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

#: each file's own settings as shipped: (final rel L2, training seconds), from the README's
#: problem-library table (benchmarks §7, §8, §12, §19, §21, §22); the inverse rows give the
#: error of u (scalar unknowns) or PINNacle's L2RE of (u, a) (an unknown field)
OWN: dict[str, tuple[float, float]] = {
    "fit1d_fprinciple": (1.8e-2, 3.0),
    "heat1d": (7.0e-5, 12.4),
    "heat1d_multiscale": (1.2e-2, 65.0),
    "heat2d": (7.0e-4, 15.3),
    "heat2d_anisotropic": (4.1e-4, 69.1),
    "heat2d_plate_holes": (3.3e-4, 44.1),
    "inverse_heat1d_kappa": (1.1e-3, 5.2),
    "inverse_heat2d_field": (5.2e-2, 107.3),
    "inverse_poisson2d_field": (1.12e-2, 65.8),
    "inverse_robin_alpha": (1.4e-3, 9.2),
    "layered2d_ritz": (4.7e-3, 70.3),
    "poisson1d_mscale_demo": (7.0e-5, 8.6),
    "poisson1d_mscale_demo_ritz": (0.27, 34.8),
    "poisson1d_multiscale": (2.7e-7, 8.9),
    "poisson1d_oscillatory": (7.6e-6, 9.1),
    "poisson1d_sin": (2.2e-5, 1.6),
    "poisson2d_anisotropic": (3.4e-5, 93.7),
    "poisson2d_annulus": (5.9e-4, 41.5),
    "poisson2d_holes": (6.4e-3, 122.2),
    "poisson2d_lshape": (4.4e-3, 35.1),
    "poisson2d_multiscale": (5.7e-5, 173.0),
    "poisson3d": (1.4e-3, 16.7),
    "poisson3d_box_balls": (2.9e-3, 17.7),
    "poisson_boltzmann2d": (3.3e-4, 24.3),
    "poisson_boltzmann2d_sinh": (3.4e-4, 22.5),
    "robin2d": (6.5e-4, 23.9),
    "heat2d_cg": (4.64e-2, 199.9),
    "heat2d_lt": (0.99, 141.0),
    "heat2d_vc": (0.274, 297.1),
    "heat5d": (1.06e-5, 170.7),
    "poisson2d_classic": (6.80e-4, 176.6),
    "poisson2d_ms": (9.87e-3, 264.2),
    "poisson3d_cg": (4.72e-2, 372.4),
    "poisson5d": (3.57e-5, 26.7),
}


def error_at(history: Path, seconds: float) -> float:
    """The last logged rel L2 at a training time ≤ ``seconds`` (nan if none)."""
    best = math.nan
    if not history.exists():
        return best
    with open(history) as fh:
        for row in csv.DictReader(fh):
            try:
                t, e = float(row["time"]), float(row["rel_l2"])
            except (KeyError, ValueError):
                continue
            if t <= seconds and math.isfinite(e):
                best = e
    return best


def field_error(summary: Path) -> float | None:
    """PINNacle's L2RE of (u, a) for an inverse problem with an unknown field, else None."""
    import json

    inverse = json.loads(summary.read_text()).get("inverse") or {}
    values = [f["pinnacle_l2re"] for f in (inverse.get("fields") or {}).values()
              if "pinnacle_l2re" in f]
    return max(values) if values else None


def main() -> None:
    out = Path(sys.argv[1])
    rows = list(csv.DictReader(open(out / "results.csv")))
    print("| file | own: rel L2 (train s) | default network | default: rel L2 (train s) "
          "| default at 2× own time | within 10× at ≤ 2× time? |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        stem = Path(r["file"]).stem
        own_err, own_s = OWN.get(stem, (math.nan, math.nan))
        if r["exit"] != "0" or not r["rel_l2"]:
            print(f"| `{r['file']}` | {own_err:.2g} ({own_s:g}) | — | failed: {r['note']} "
                  "| — | no |")
            continue
        err, sec = float(r["rel_l2"]), float(r["train_seconds"])
        at = error_at(out / stem / "history.csv", 2 * own_s)
        fields = field_error(out / stem / "summary.json")
        if fields is not None:  # an inverse field: PINNacle's L2RE of (u, a), as OWN has it
            err, at = fields, math.nan
        final_ok = err <= 10 * own_err and sec <= 2 * own_s
        early_ok = math.isfinite(at) and at <= 10 * own_err
        verdict = "yes" if final_ok else ("yes, stopped at 2× time" if early_ok else "**no**")
        at_text = f"{at:.2g}" if math.isfinite(at) else "—"
        print(f"| `{r['file']}` | {own_err:.2g} ({own_s:g}) | {r['network']} | "
              f"{err:.2g} ({sec:g}) | {at_text} | {verdict} |")


if __name__ == "__main__":
    main()
