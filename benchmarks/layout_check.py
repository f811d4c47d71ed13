"""Behaviour check for refactors: every shipped problem on a short schedule, float64, seed 0.

Runs ``mscalepde solve`` in a fresh process for each file in ``problems/`` (and
``problems/*/`` when present), with each file's own optimiser phases cut to 20 Adam/L-BFGS
steps and 2 Gauss–Newton iterations (the same cut as the test suite's short-schedule test),
``train.dtype=float64``, ``--seed 0`` and a coarse FEM truth for shapes without ``exact``.
It records each run's final relative L2 error with full precision.

    python benchmarks/layout_check.py --save benchmarks/results/layout-2026-12-07/before.json
    python benchmarks/layout_check.py --compare benchmarks/results/layout-2026-12-07/before.json

``--compare`` fails (exit 1) unless every problem agrees with the saved value to ``--tol``
(1e-12 relative by default). The check goes through the command line only, so it runs
unchanged on both sides of a reorganisation of the package's modules.
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

import yaml

ROOT = Path(__file__).resolve().parents[1]


def short_overrides(path: Path) -> list[str]:
    """``--set`` values: the file's own phases, cut short; float64; a coarse FEM truth."""
    data = yaml.safe_load(path.read_text())
    phases = (data.get("train") or {}).get("optimizer")
    if phases is None:
        sets = ["train.steps=20", "train.lbfgs_steps=2"]
    else:
        short = []
        for entry in phases if isinstance(phases, list) else [phases]:
            name, settings = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            short.append({name: {**(settings or {}), "steps": 2 if name == "gauss-newton" else 20}})
        sets = [f"train.optimizer={json.dumps(short)}"]
    sets += ["train.dtype=float64"]
    if "shape" in (data.get("domain") or {}) and "exact" not in data:
        sets.append("reference.fem_tol=1e-3")
    return sets


def run_one(path: Path, cache: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "mscalepde", "solve", str(path), "--quiet", "--seed", "0"]
    for s in short_overrides(path):
        cmd += ["--set", s]
    cmd += ["--out", str(out)]
    env = {**os.environ, "MSCALEPDE_CACHE": str(cache), "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:], "seconds": seconds}
    summary = json.loads((out / "summary.json").read_text())
    return {"rel_l2": summary["rel_l2"], "steps": summary["steps"], "seconds": round(seconds, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", type=Path)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--tol", type=float, default=1e-12)
    ap.add_argument("files", nargs="*", type=Path)
    args = ap.parse_args()
    files = args.files or sorted(ROOT.glob("problems/**/*.yaml"))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(files):
            key = str(path.resolve().relative_to(ROOT))
            results[key] = run_one(path, Path(tmp) / "cache", Path(tmp) / f"run{i}")
            print(key, results[key], flush=True)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(results, indent=1) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        bad = 0
        print("\n| problem | before | after | relative difference |\n|---|---|---|---|")
        for key, old in before.items():
            new = results.get(key, {})
            if "rel_l2" not in old or "rel_l2" not in new:
                print(f"| {key} | {old.get('rel_l2', old)} | {new.get('rel_l2', new)} | missing |")
                bad += 1
                continue
            d = abs(new["rel_l2"] - old["rel_l2"]) / max(abs(old["rel_l2"]), 1e-300)
            bad += d > args.tol
            print(f"| {key} | {old['rel_l2']:.15e} | {new['rel_l2']:.15e} | {d:.1e} |")
        print(f"\n{len(before) - bad} of {len(before)} agree to {args.tol:g}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
