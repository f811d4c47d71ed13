"""The package default, measured: each problem file with its ``model`` and ``train``
sections removed, solved as a newcomer solves it (one fresh ``mscalepde solve`` process per
file, one after the other), against the error and training time the file's own settings
reach.

    python benchmarks/default_study.py --out bench-default [--set KEY=VALUE ...] [FILE ...]

Without FILE arguments every file of ``problems/`` and ``problems/pinnacle/`` is run. The
stripped copy is written to ``--out`` with its data paths made absolute. ``--set`` is
passed to every run, to try a candidate default. Writes ``results.csv`` (file, rel_l2,
train_seconds, wall_seconds, network, exit code) to ``--out`` and prints one line per
file. The rows published in benchmarks/README.md §23 come from this script.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def library() -> list[Path]:
    return sorted((ROOT / "problems").glob("*.yaml")) + sorted(
        (ROOT / "problems" / "pinnacle").glob("*.yaml")
    )


def _absolute_files(node: object, base: Path) -> object:
    """Every ``file:`` value made absolute (relative ones are relative to the original)."""
    if isinstance(node, dict):
        return {
            k: str((base / v).resolve()) if k == "file" and isinstance(v, str)
            else _absolute_files(v, base)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolute_files(v, base) for v in node]
    return node


def stripped_copy(path: Path, where: Path) -> Path:
    """The file without ``model`` and ``train``, its data paths made absolute, in ``where``."""
    data = yaml.safe_load(path.read_text())
    data.pop("model", None)
    data.pop("train", None)
    out = where / path.name
    out.write_text(yaml.safe_dump(_absolute_files(data, path.parent), sort_keys=False))
    return out


def network(summary: dict) -> str:
    """The architecture, what ``auto`` chose, and the parameter count."""
    auto = summary.get("auto") or {}
    chosen = " ".join(f"{k}={v}" for k, v in (auto.get("chosen") or {}).items())
    return f"{summary.get('arch', '')} {chosen} ({summary.get('parameters', '?')} params)"


def run_one(path: Path, out: Path, sets: list[str], timeout: float) -> dict:
    copy = stripped_copy(path, out)
    run_dir = out / path.stem
    cmd = [
        sys.executable, "-m", "mscalepde", "solve", str(copy), "--out", str(run_dir),
        "--overwrite", "--quiet", "--no-baseline", "--no-diagnostics",
    ]
    for s in sets:
        cmd += ["--set", s]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        code, tail = proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:
        code, tail = 124, [f"stopped after {timeout:g} s"]
    row = {"file": str(path.relative_to(ROOT)), "rel_l2": "", "train_seconds": "",
           "wall_seconds": round(time.perf_counter() - started, 1), "network": "",
           "exit": code, "note": " | ".join(tail) if code else ""}
    summary_path = run_dir / "summary.json"
    if code == 0 and summary_path.exists():
        summary = json.loads(summary_path.read_text())
        row["rel_l2"] = summary.get("rel_l2", "")
        row["train_seconds"] = round(float(summary.get("train_seconds", 0.0)), 1)
        row["network"] = network(summary)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = [Path(f).resolve() for f in args.files] or library()
    os.environ.setdefault("MSCALEPDE_THREADS", "2")
    rows = []
    for f in files:
        row = run_one(f, out, args.set, args.timeout)
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(out / "results.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
