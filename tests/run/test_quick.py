"""Quick runs and honest time: --no-baseline, --no-diagnostics, the command's wall time
and its parts in summary.json, and an early refusal of --device cuda without CUDA."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from mscalepde.cli import main
from mscalepde.run.clock import PARTS
from tests.helpers import POISSON1D


def _write(tmp_path, data, name="p.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_parts_add_up_to_the_wall_time(tmp_path, capsys):
    problem = _write(tmp_path, {**POISSON1D, "diagnostics": {"every": 10}})
    out = tmp_path / "run"
    assert main(["solve", str(problem), "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    parts = s["time_parts"]
    assert set(parts) <= {*PARTS, "other"} and "training" in parts
    assert sum(parts.values()) == pytest.approx(s["wall_seconds"], abs=0.01)
    assert s["wall_seconds"] >= s["train_seconds"] > 0
    assert parts["diagnostics"] > 0
    printed = capsys.readouterr().out
    assert f"wall time          {s['wall_seconds']:.1f} s (" in printed and "training " in printed


def test_no_baseline_and_no_diagnostics(tmp_path):
    problem = _write(tmp_path, {**POISSON1D, "diagnostics": {"every": 10}})
    out = tmp_path / "run"
    code = main(["solve", str(problem), "--out", str(out), "--quiet", "--no-baseline",
                 "--no-diagnostics"])
    assert code == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["classical_baseline"] == {"error": "skipped: --no-baseline"}
    assert "diagnostics" not in s and "frequencies" not in s
    assert not (out / "diagnostics.npz").exists()
    assert "diagnostics" not in s["time_parts"] and s["time_parts"].get("baseline", 0) < 0.05


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_fails_before_the_reference(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MSCALEPDE_CACHE", str(cache))
    no_exact = {k: v for k, v in POISSON1D.items() if k != "exact"}
    no_exact["source"] = "1"
    no_exact["boundary"] = [{"faces": "all", "type": "dirichlet", "value": 0}]
    problem = _write(tmp_path, no_exact)
    code = main(["solve", str(problem), "--out", str(tmp_path / "run"), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "no CUDA device is available" in err and len(err.splitlines()) == 1
    assert not cache.exists() or not any(cache.rglob("*.npz"))  # no reference was computed
    assert not (tmp_path / "run").exists()


def test_the_progress_bar_shows_the_current_loss(capsys):
    from mscalepde import problem_from_dict, solve

    data = {**POISSON1D, "train": {**POISSON1D["train"], "log_every": 1000}}
    solve(problem_from_dict(data), write=False, progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "phase=adam" in err and "30/30" in err


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    """Atomic writes go through a temporary file (0600 from mkstemp); the file put in
    place has the mode open() would give it, so a run folder is as readable as any file
    the user makes."""
    import os

    from mscalepde.io import atomic_write_text

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == mode
