"""Spread of the speed ratios over repeated runs of ``benchmarks/speed.py``.

One run's ratios move by ±15 % on a shared 2-core machine. This script reads the JSON files
of several runs (``speed.py --out runK.json``) and prints, for every (problem, arch,
engine), the ratio to the autograd way and to DeepXDE in each run, and their median.

Usage::

    for i in 1 2 3; do python benchmarks/speed.py --threads 2 ... --out run$i.json; done
    python benchmarks/speed_runs.py [--arch mlp] run1.json run2.json run3.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def load(paths: list[str]) -> list[list[dict]]:
    return [json.loads(Path(p).read_text())["results"] for p in paths]


def table(runs: list[list[dict]], engine: str = "forward+compile", arch: str | None = None) -> str:
    keys: list[tuple[str, str]] = []
    for rows in runs:
        for r in rows:
            k = (r["problem"], r["arch"])
            if r["engine"] == engine and k not in keys and arch in (None, r["arch"]):
                keys.append(k)
    head = " / ".join(f"run {i + 1}" for i in range(len(runs)))
    lines = [
        f"| problem | arch | {engine} ms/step ({head}) | vs autograd ({head}) | median "
        f"| vs DeepXDE ({head}) | median |",
        "|---|---|---|---|---:|---|---:|",
    ]

    def fmt(values: list[float | None], spec: str) -> tuple[str, str]:
        known = [v for v in values if v is not None]
        text = " / ".join("—" if v is None else format(v, spec) for v in values)
        med = format(statistics.median(known), spec) + "×" if known else "—"
        return text, med

    for problem, arch_name in keys:
        ms, va, vd = [], [], []
        for rows in runs:
            row = next(
                (
                    r
                    for r in rows
                    if (r["problem"], r["arch"], r["engine"]) == (problem, arch_name, engine)
                    and r.get("status") == "ok"
                ),
                None,
            )
            ms.append(row["ms"] if row else None)
            va.append(row.get("vs_autograd") if row else None)
            vd.append(row.get("vs_deepxde") if row else None)
        ms_text, _ = fmt(ms, ".1f")
        va_text, va_med = fmt(va, ".2f")
        vd_text, vd_med = fmt(vd, ".2f")
        lines.append(
            f"| {problem} | {arch_name} | {ms_text} | {va_text} | **{va_med}** | {vd_text} "
            f"| **{vd_med}** |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    arch = None
    if argv[:1] == ["--arch"] and len(argv) > 1:
        arch, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__)
        return 2
    print(table(load(argv), arch=arch))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
