"""Writes the before/after table from before-{1,2}.json and after-{1,2}.json (written by
commands.sh) to stdout: python summarize.py > summary.md"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
runs = ["before-1", "after-1", "before-2", "after-2"]
js = {r: json.loads((HERE / f"{r}.json").read_text()) for r in runs}
data = {r: {(x["problem"], x["arch"]): x for x in js[r]["results"]} for r in runs}
print("Forward engine (eager), one Adam step, N = 4096, float32, CPU, --threads 2; ms/step = "
      "median of 5 rounds.")
print("Order run: before-1, after-1, before-2, after-2. BEFORE = 90d22b6, AFTER = working tree "
      "on 9ab5b30 (+ uncommitted edits).")
print("after/before = mean(after-1, after-2) / mean(before-1, before-2); spread = (max - min) / "
      "min over the 4 runs' 20 rounds.\n")
print("| problem | arch | before-1 | before-2 | after-1 | after-2 | after/before | round spread |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for key in data["before-1"]:
    v = {r: data[r][key]["ms"] for r in runs}
    rounds = [m for r in runs for m in data[r][key]["repeats_ms"]]
    ratio = (v["after-1"] + v["after-2"]) / (v["before-1"] + v["before-2"])
    print(f"| {key[0]} | {key[1]} | {v['before-1']:.2f} | {v['before-2']:.2f} | "
          f"{v['after-1']:.2f} | {v['after-2']:.2f} | {ratio:.3f} | "
          f"{(max(rounds) - min(rounds)) / min(rounds) * 100:.0f}% |")
print("\nload average (1 min) start/end: " + ", ".join(
    f"{r} {js[r]['machine']['loadavg_start'][0]:.2f}/{js[r]['machine']['loadavg_end'][0]:.2f}"
    for r in runs))
