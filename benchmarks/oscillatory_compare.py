"""Architectures on the oscillatory-coefficient problem (``problems/poisson1d_oscillatory.yaml``).

-(a(x/eps) u')' = 1 on [0, 1], a = 2 + sin(2 pi x / eps), eps = 1/16, u(0) = u(1) = 0,
against the flux-form FD reference. Each run is ``mscalepde solve FILE --quiet --runs-dir
TMP --set train.seed=S [--set model=...] [--set train...]`` in a fresh process; the run
folder is the one the last output line names ("run folder ..."), and ``rel_l2``,
``train_seconds`` (compile time included), the parameter count and the resolved-frequency
table are read from its ``summary.json``. Variants (``VARIANTS`` below): ``mff`` (the file's
default network), ``mlp``, ``mscale``, ``fourier`` with the file's optimiser (25
Gauss-Newton iterations), and ``mlp+adam``, ``mscale+adam`` with 2000 Adam steps (lr 2e-3)
before the 25 Gauss-Newton iterations.

It writes ``results.json`` (one record per run) and ``table.md`` (per-seed rel L2 and train
seconds, the median per variant, and whether the eps-scale peaks of the truth's spectrum,
|k| near 2 pi / eps ~ 100, are resolved) to ``--out``.

    python benchmarks/oscillatory_compare.py --out benchmarks/results/oscillatory-2026-11-30
    python benchmarks/oscillatory_compare.py --variants mlp+adam --append
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = ROOT / "problems" / "poisson1d_oscillatory.yaml"
ADAM_GN = ["train.optimizer=[{adam: {steps: 2000}}, {gauss-newton: {steps: 25}}]", "train.lr=2e-3"]
MLP = "model={arch: mlp, width: 64, depth: 3, activation: tanh}"
MSCALE = ("model={arch: mscale, variant: 2, scales: [1, 2, 4, 8, 16, 32], width: 30, depth: 3, "
          "activation: sin}")
VARIANTS: dict[str, list[str]] = {
    "mff": [],
    "mlp": [MLP],
    "mscale": [MSCALE],
    "fourier": ["model={arch: fourier, sigma: 8, features: 64, width: 64, depth: 2}"],
    "mlp+adam": [MLP, *ADAM_GN],
    "mscale+adam": [MSCALE, *ADAM_GN],
}
EPS_BAND = (80.0, 120.0)  # |k| band of the eps-scale peaks (2 pi / eps = 100.5)


def run(overrides: list[str], seed: int, runs_dir: Path) -> dict:
    cmd = ["mscalepde", "solve", str(PROBLEM.relative_to(ROOT)), "--quiet",
           "--runs-dir", str(runs_dir), "--set", f"train.seed={seed}"]
    for o in overrides:
        cmd += ["--set", o]
    load = os.getloadavg()[0]  # the machine may be shared: train_seconds depends on it
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    rec: dict = {"command": " ".join(cmd), "exit": proc.returncode, "seed": seed,
                 "load1_before_after": [load, os.getloadavg()[0]]}
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("run folder ")]
    summary = Path(last[-1][len("run folder "):].strip()) / "summary.json" if last else None
    if summary is None or not summary.exists():
        rec["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return rec
    s = json.loads(summary.read_text())
    rec.update({k: s.get(k) for k in ("rel_l2", "max_error", "train_seconds", "phases",
                                      "parameters", "arch", "status", "loss", "frequencies")})
    rec["frequency_table"] = (s.get("diagnostics") or {}).get("table")
    return rec


def eps_peaks(rec: dict) -> list[dict]:
    return [f for f in rec.get("frequencies") or [] if EPS_BAND[0] <= f["k_norm"] <= EPS_BAND[1]]


def table(records: list[dict], seeds: list[int]) -> str:
    head = "| variant | arch (params) | " + " | ".join(f"seed {s}: rel L2 / train s" for s in seeds)
    lines = [head + " | median rel L2 | median train s |",
             "|---|---|" + "---|" * len(seeds) + "---|---|"]
    names = list(dict.fromkeys(r["variant"] for r in records))
    for v in names:
        rs = {r["seed"]: r for r in records if r["variant"] == v}
        ok = [r for r in rs.values() if "rel_l2" in r]
        arch = f"{ok[0]['arch']} ({ok[0]['parameters']})" if ok else ""
        cells = []
        for s in seeds:
            r = rs.get(s)
            cells.append("" if r is None else f"failed: {r.get('error')}" if "rel_l2" not in r
                         else f"{r['rel_l2']:.2e} / {r['train_seconds']:.1f}")
        med = (f"{statistics.median(r['rel_l2'] for r in ok):.2e} | "
               f"{statistics.median(r['train_seconds'] for r in ok):.1f}") if ok else " | "
        lines.append(f"| {v} | {arch} | " + " | ".join(cells) + f" | {med} |")
    lines += ["", f"eps-scale peaks of the truth (|k| in [{EPS_BAND[0]:g}, {EPS_BAND[1]:g}]; "
              "2 pi/eps = 100.5): final Delta_F per run (resolved when below the threshold "
              "0.05), 'first' = first diagnostics record below it", "",
              "| variant | seed | " + " | ".join(["peak |k|: Delta_F (resolved, first)"]) + " |",
              "|---|---|---|"]
    for r in records:
        if "rel_l2" not in r:
            continue
        cells = ", ".join(f"{f['k_norm']:.1f}: {f['final_delta_f']:.2e} "
                          f"({'yes' if f['resolved'] else 'no'}, {f['first_resolved']})"
                          for f in eps_peaks(r)) or "no peak in the band listed"
        lines.append(f"| {r['variant']} | {r['seed']} | {cells} |")
    lines += ["", "Resolved-frequency tables (as printed by `mscalepde solve`), seed "
              f"{seeds[0]}:", ""]
    for r in records:
        if r["seed"] == seeds[0] and r.get("frequency_table"):
            lines += [f"{r['variant']}:", "", "```", r["frequency_table"], "```", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/oscillatory-2026-11-30")
    ap.add_argument("--variants", nargs="*", default=["mff", "mlp", "mscale", "fourier"],
                    choices=list(VARIANTS))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--append", action="store_true", help="add to an existing results.json")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    records = json.loads(path.read_text()) if args.append and path.exists() else []
    for v in args.variants:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                rec = run(VARIANTS[v], seed, Path(tmp))
            rec["variant"] = v
            records = [r for r in records if (r["variant"], r["seed"]) != (v, seed)]
            records.append(rec)  # a rerun replaces the earlier record
            print(f"{v:12s} seed {seed} rel_l2={rec.get('rel_l2', float('nan')):.3e} "
                  f"train_s={rec.get('train_seconds', float('nan')):.1f} {rec.get('error', '')}",
                  flush=True)
            path.write_text(json.dumps(records, indent=1))
    order = list(VARIANTS)
    records.sort(key=lambda r: (order.index(r["variant"]), r["seed"]))
    path.write_text(json.dumps(records, indent=1))
    seeds = sorted({r["seed"] for r in records})
    (args.out / "table.md").write_text(table(records, seeds))


if __name__ == "__main__":
    sys.exit(main())
