"""Smoke test of ``benchmarks/speed.py`` (issue 6): every in-process engine runs, the
autograd engine fails under ``torch.compile`` as documented, the compiled forward-Laplacian
loss is one graph without graph breaks, and every engine starts from the same loss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_speed_script_quick_run(tmp_path):
    out = tmp_path / "speed.json"
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--quick",
        "--problems", "heat1d", "--points", "256", "--boundary", "32", "--initial", "32",
        "--engines", "forward,forward+compile,autograd", "--out", str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["engine"]: r for r in json.loads(out.read_text())["results"]}
    # (autograd+compile, which torch cannot compile, costs 17 s to fail: benchmarks §4 records it)
    assert set(rows) == {"forward", "forward+compile", "autograd"}
    for engine in ("forward", "forward+compile", "autograd"):
        assert rows[engine]["status"] == "ok", rows[engine]
        assert rows[engine]["ms"] > 0 and len(rows[engine]["repeats_ms"]) == 3
    assert rows["forward+compile"]["graphs"] == 1
    assert rows["forward+compile"]["graph_breaks"] == 0
    assert rows["autograd"]["vs_autograd"] == pytest.approx(1.0)
    # same network, points and Adam: after the same number of steps the losses agree
    losses = [rows[e]["final_loss"] for e in ("forward", "forward+compile", "autograd")]
    steps = {rows[e]["steps"] for e in ("forward", "forward+compile", "autograd")}
    if len(steps) == 1:
        assert max(losses) / min(losses) < 1.01
    assert "| heat1d | mlp | forward+compile |" in proc.stdout
