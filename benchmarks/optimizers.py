"""Optimisers on every library problem, as a newcomer sees them (issue 11).

Each run is ``mscalepde solve FILE --quiet --out DIR [--set ...]`` in a fresh process, so
the numbers are the final relative L2 error and the ``train_seconds`` that command prints
(compile time included). For every problem in ``problems/`` it runs named variants:

- ``default``: the file as shipped (its optimiser phases);
- ``adam+lbfgs``: the same network and points with the Adam + L-BFGS schedule the file had
  before the Gauss–Newton optimiser (``PREVIOUS`` below, from git history);
- ``previous-default``: the file exactly as shipped before issue 11 (git ``65a18a0``);
- ``package-default``: the file without its ``model`` and ``train`` sections, i.e. what a
  user's own file gets from the package's defaults;
- ``previous-package-default``: the same stripped file with the defaults before issue 11
  (5000 Adam steps, no L-BFGS).

It writes ``results.json`` (one record per run, with the history's (time, rel_l2) curve),
``table.md`` and ``error_vs_time.png`` (one panel per problem) to ``--out``.

    python benchmarks/optimizers.py --out benchmarks/results/optimizers-2026-11-30
    python benchmarks/optimizers.py --only poisson1d_multiscale --variants default
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The Adam + L-BFGS schedules of the files before issue 11 (commit 65a18a0), applied to
# each file's current network and points.
PREVIOUS: dict[str, list[str]] = {
    "poisson1d_multiscale": ["train.optimizer=[{adam: {steps: 200, lr: 2.0e-3}}, "
                             "{lbfgs: {steps: 1500}}]"],
    "poisson1d_sin": ["train.optimizer=[{adam: {steps: 1000, lr: 5.0e-3, "
                      "decay: {every: 500, factor: 0.5}}}, {lbfgs: {steps: 100}}]"],
    "poisson2d_multiscale": ["train.optimizer=[{adam: {steps: 3000, lr: 1.0e-3, "
                             "decay: {every: 1000, factor: 0.9}}}]"],
    "poisson3d": ["train.optimizer=[{adam: {steps: 2000, lr: 2.0e-3, "
                  "decay: {every: 500, factor: 0.7}}}, {lbfgs: {steps: 300}}]"],
    "heat1d": ["train.optimizer=[{adam: {steps: 1500, lr: 5.0e-3, "
               "decay: {every: 500, factor: 0.5}}}, {lbfgs: {steps: 100}}]"],
    "heat1d_multiscale": ["train.optimizer=[{adam: {steps: 3000, lr: 1.0e-3, "
                          "decay: {every: 1000, factor: 0.9}}}]"],
    "heat2d": ["train.optimizer=[{adam: {steps: 2000, lr: 2.0e-3, "
               "decay: {every: 500, factor: 0.7}}}, {lbfgs: {steps: 300}}]"],
    "poisson1d_mscale_demo": ["train.optimizer=[{adam: {steps: 5000, lr: 1.0e-3}}]",
                              "model={arch: mlp, width: 180, depth: 3, activation: sin}"],
}

def variants(name: str, wanted: list[str]) -> dict[str, list[str]]:
    """``default``: the file as shipped; ``adam+lbfgs``: its schedule before issue 11;
    ``previous-default``: the file as shipped before issue 11 (``PREVIOUS_COMMIT``);
    ``package-default``: the file without its model and train sections (the package's
    defaults, what a user's own file gets)."""
    out: dict[str, list[str]] = {"default": []}
    if name in PREVIOUS:
        out["adam+lbfgs"] = PREVIOUS[name]
    out["previous-default"] = []
    out["package-default"] = []
    # what a file without model/train sections got before issue 11: 5000 Adam steps
    out["previous-package-default"] = ["train.optimizer=[{adam: {steps: 5000}}]"]
    return {k: v for k, v in out.items() if not wanted or k in wanted}


PREVIOUS_COMMIT = "65a18a0"


def previous(problem: Path, folder: Path) -> Path:
    """The problem file as it was at ``PREVIOUS_COMMIT`` (from git)."""
    rel = problem.relative_to(ROOT).as_posix()
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{PREVIOUS_COMMIT}:{rel}"],
        capture_output=True, text=True, check=True,
    ).stdout
    path = folder / problem.name
    path.write_text(text)
    return path


def stripped(problem: Path, folder: Path) -> Path:
    """A copy of the problem file without its ``model`` and ``train`` sections."""
    from default_study import stripped_copy  # benchmarks/ is this script's own folder

    return stripped_copy(problem, folder)


def run(problem: Path, overrides: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "mscalepde", "solve", str(problem), "--quiet", "--out", str(out)]
    for o in overrides:
        cmd += ["--set", o]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rec: dict = {"command": "mscalepde solve " + " ".join(cmd[4:]), "exit": proc.returncode}
    summary = out / "summary.json"
    if not summary.exists():
        rec["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        return rec
    s = json.loads(summary.read_text())
    rec.update(
        rel_l2=s["rel_l2"],
        train_seconds=s["train_seconds"],
        phases=s.get("phases"),
        parameters=s.get("parameters"),
        arch=s.get("arch"),
        status=s.get("status"),
    )
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    rec["curve"] = [
        (float(r["time"]), float(r["rel_l2"])) for r in rows if r.get("rel_l2") not in (None, "")
    ]
    return rec


def table(records: list[dict]) -> str:
    lines = [
        "| problem | variant | arch (params) | phases | final rel L2 | train s |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        if "rel_l2" not in r:
            lines.append(f"| {r['problem']} | {r['variant']} | | | failed: {r.get('error')} | |")
            continue
        phases = " + ".join(f"{p['steps']} {p['name']}" for p in r.get("phases") or [])
        lines.append(
            f"| {r['problem']} | {r['variant']} | {r['arch']} ({r['parameters']}) | {phases} "
            f"| {r['rel_l2']:.2e} | {r['train_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def figure(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = sorted({r["problem"] for r in records if "curve" in r})
    cols = 3
    rows = max(1, math.ceil(len(problems) / cols))
    fig, axs = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axs.flat, problems):
        for r in records:
            if r["problem"] == name and r.get("curve"):
                t, e = zip(*r["curve"])
                ax.loglog(
                    [max(x, 1e-2) for x in t], e, marker=".", ms=3,
                    label=f"{r['variant']} ({r['rel_l2']:.1e})",
                )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training time [s]")
        ax.set_ylabel("relative L2")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axs.flat)[len(problems):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def keep(records: list[dict], rec: dict, out: Path) -> list[dict]:
    """``records`` with ``rec`` added (a rerun replaces the earlier record of its problem
    and variant), printed as one line and saved to ``out/results.json``."""
    key = (rec["problem"], rec["variant"])
    records = [r for r in records if (r["problem"], r["variant"]) != key] + [rec]
    print(f"{key[0]:24s} {key[1]:12s} rel_l2={rec.get('rel_l2', math.nan):.3e} "
          f"train_s={rec.get('train_seconds', math.nan):.1f}", flush=True)
    (out / "results.json").write_text(json.dumps(records, indent=1))
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*", default=[], help="problem names (default: all)")
    ap.add_argument("--variants", nargs="*", default=[], help="variant names (default: all)")
    ap.add_argument("--append", action="store_true", help="add to an existing results.json")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.json"
    records = json.loads(results.read_text()) if args.append and results.exists() else []
    files = sorted((ROOT / "problems").glob("*.yaml"))
    for f in files:
        if args.only and f.stem not in args.only:
            continue
        for variant, overrides in variants(f.stem, args.variants).items():
            with tempfile.TemporaryDirectory() as tmp:
                src = f
                if variant in ("package-default", "previous-package-default"):
                    src = stripped(f, Path(tmp))
                elif variant == "previous-default":
                    src = previous(f, Path(tmp))
                rec = run(src, overrides, Path(tmp) / "run")
            rec.update(problem=f.stem, variant=variant)
            records = keep(records, rec, args.out)
    (args.out / "table.md").write_text(table(records))
    figure(records, args.out / "error_vs_time.png")


if __name__ == "__main__":
    main()
