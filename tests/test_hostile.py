"""A hostile-input corpus (issue 29), by category: inputs that try to forge output lines,
exhaust time or memory, crash the command or damage a run folder. Each must end with
exit code 2 (or the documented code), exactly one line on stderr, no warning, and — for
``check`` — within two seconds; a failing command leaves an existing run folder unchanged,
byte for byte."""

from __future__ import annotations

import copy
import json
import math
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mscalepde.cli import main
from tests.helpers import POISSON1D

HEADER = (
    "pde: poisson\nexact: \"sin(x)\"\n"
    "boundary: [{faces: all, type: dirichlet, value: exact}]\n"
)


def _run(args, capsys, seconds=2.0):
    """main(args): (exit code, stdout, stderr lines), with the time bound asserted."""
    start = time.perf_counter()
    code = main([str(a) for a in args])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert elapsed < seconds, f"{args[0]} took {elapsed:.1f} s"
    return code, out, err.strip().splitlines()


def _refused(args, capsys, *needles, seconds=2.0, stream="err"):
    """The command fails with exit 2 and one line holding every needle, no warning."""
    code, out, err = _run(args, capsys, seconds)
    lines = err if stream == "err" else out.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1, lines
    assert not [e for e in err if "Warning" in e or "warning:" in e], err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- forged lines


@pytest.mark.parametrize(
    "body",
    [
        "domain:\n  shape: {\"box\\nok   forged.yaml: fine\": [[0, 1], [0, 1]]}\n",
        "domain: {box: [[0, 1]]}\ntruth: {file: \"ref\\nerror: forged\\n.dat\"}\n",
        "domain: {box: [[0, 1]]}\nparams: {\"k\\r\\nok   x\": 1}\n",
        "domain: {box: [[0, 1]]}\nmodel: {arch: \"mlp\\u2028ok forged\"}\n",
        "domain: {box: [[0, 1]]}\ndescription: 5\nname: \"a\\x1b[2Jb\"\n",
    ],
    ids=["shape-key", "truth-path", "param-name", "unicode-separator", "terminal-escape"],
)
def test_user_text_never_forges_a_line(tmp_path, capsys, body):
    path = _write(tmp_path, "p.yaml", HEADER + body)
    line = _refused(["check", path], capsys, stream="out")
    assert line.startswith("FAIL ") and "\x1b" not in line and "\u2028" not in line


def test_a_set_key_with_a_newline_is_one_line(tmp_path, capsys):
    path = _write(tmp_path, "p.yaml", HEADER + "domain: {box: [[0, 1]]}\n")
    line = _refused(["solve", path, "--set", "train.stepz\nok fine=3"], capsys)
    assert "stepz\\nok fine" in line


def test_a_sweep_model_name_with_a_newline_is_one_line(tmp_path, capsys):
    problem = _write(tmp_path, "p.yaml", HEADER + "domain: {box: [[0, 1]]}\n")
    sweep = _write(
        tmp_path, "s.yaml",
        f"problems: [{problem.name}]\nmodels: {{\"a\\nerror: forged\": {{model: 3}}}}\n",
    )
    _refused(["bench", sweep, "--out", tmp_path / "o"], capsys, "models.a\\nerror: forged")


# --------------------------------------------------------------------------- extreme numbers


@pytest.mark.parametrize(
    ("domain", "needle"),
    [
        ("{shape: {polygon: [[0, 0], [1.0e+300, 0], [0, 1.0e+300]]}}", "within ±1e+09"),
        ("{box: [[-1.0e+308, 1.0e+308], [0, 1]]}", "within ±1e+09"),
        ("{shape: {box: [[-1.0e+308, 1.0e+308], [0, 1]]}}", "within ±1e+09"),
        ("{shape: {ball: {center: [0, 0], radius: 1.0e-300}}}", "radius between"),
        ("{shape: {ellipse: {center: [0, 0], radii: [1.0e+300, 1]}}}", "within ±1e+09"),
        ("{shape: {ellipse: {center: [1.0e+8, 0], radii: [1.0e-2, 1]}}}", "radius between"),
        ("{box: [[0, 1.0e-300]]}", "length between"),
        ("{box: [[1.0e+8, 1.0000000000001e+8]]}", "length between"),
    ],
    ids=["polygon", "box", "shape-box", "radius", "ellipse", "far-thin", "tiny", "far-short"],
)
def test_extreme_finite_numbers_are_refused_in_one_line(tmp_path, capsys, domain, needle):
    path = _write(tmp_path, "p.yaml", HEADER + f"domain: {domain}\n")
    _refused(["check", path], capsys, needle, stream="out")


def test_a_huge_time_interval_is_refused(tmp_path, capsys):
    body = HEADER.replace("poisson", "heat") + "domain: {box: [[0, 1]], time: [0, 1.0e+300]}\n"
    _refused(["check", _write(tmp_path, "p.yaml", body)], capsys, "domain.time", stream="out")


# --------------------------------------------------------------------------- validation time


def _polygon(n):
    return [[math.cos(2 * math.pi * k / n), math.sin(2 * math.pi * k / n)] for k in range(n)]


def test_a_3000_gon_validates_in_under_two_seconds(tmp_path, capsys):
    body = HEADER + f"domain: {{shape: {{polygon: {_polygon(3000)}}}}}\n"
    path = _write(tmp_path, "p.yaml", body)
    code, out, err = _run(["check", path], capsys)
    assert code == 0 and out.startswith("ok"), (out, err)


def test_a_self_intersecting_2000_gon_is_found_quickly(tmp_path, capsys):
    pts = _polygon(2000)
    pts[700], pts[1300] = pts[1300], pts[700]  # two far edges now cross
    path = _write(tmp_path, "p.yaml", HEADER + f"domain: {{shape: {{polygon: {pts}}}}}\n")
    _refused(["check", path], capsys, "self-intersecting", stream="out")


def test_too_many_vertices_and_primitives_are_refused_at_once(tmp_path, capsys):
    body = HEADER + f"domain: {{shape: {{polygon: {_polygon(12000)}}}}}\n"
    path = _write(tmp_path, "v.yaml", body)
    _refused(["check", path], capsys, "at most 10000 vertices", stream="out")
    disks = [{"ball": {"center": [0.01 * i, 0.0], "radius": 0.5}} for i in range(100)]
    body = HEADER + yaml.safe_dump({"domain": {"shape": {"union": disks}}})
    _refused(["check", _write(tmp_path, "d.yaml", body)], capsys, "at most 32 primitives",
             stream="out")


def test_32_overlapping_disks_validate_within_two_seconds(tmp_path, capsys):
    disks = [{"ball": {"center": [0.01 * i, 0.0], "radius": 0.5}} for i in range(32)]
    body = HEADER + yaml.safe_dump({"domain": {"shape": {"union": disks}}})
    code, out, _ = _run(["check", _write(tmp_path, "d.yaml", body)], capsys)
    assert code == 0, out


# --------------------------------------------------------------------------- deep nesting


def test_deeply_nested_values_are_one_line(tmp_path, capsys):
    path = _write(tmp_path, "p.yaml", HEADER + "domain: {box: [[0, 1]]}\n")
    _refused(["solve", path, "--set", "train.weights=" + "[" * 400 + "]" * 400], capsys,
             "nested more than 32 deep")
    deep = _write(tmp_path, "deep.yaml", HEADER + "x: " + "[" * 3000 + "]" * 3000 + "\n")
    _refused(["check", deep], capsys, "nested more than 32 deep", stream="out")
    block = "".join("  " * i + "- \n" for i in range(60))  # block style, no brackets
    deep2 = _write(tmp_path, "deep2.yaml", HEADER + "x:\n" + block)
    _refused(["check", deep2], capsys, "nested more than 32 deep", stream="out")
    sweep = _write(tmp_path, "s.yaml", "problems: " + "[" * 3000 + "]" * 3000 + "\n")
    _refused(["bench", sweep, "--out", tmp_path / "o"], capsys, "nested more than 32 deep")


# --------------------------------------------------------------------------- sweep files


def test_sweep_files_are_guarded_like_problem_files(tmp_path, capsys):
    problem = _write(tmp_path, "p.yaml", HEADER + "domain: {box: [[0, 1]]}\n")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    head = f"problems: [{problem.name}]\nmodels: {{m: {{}}}}\n"
    sweep = _write(tmp_path, "bomb.yaml", head + bomb)
    _refused(["bench", sweep, "--out", tmp_path / "o"], capsys, "aliases")
    seeds = _write(tmp_path, "seeds.yaml", f"problems: [{problem.name}]\nmodels: {{m: {{}}}}\n"
                   f"seeds: {list(range(2000))}\n")
    _refused(["bench", seeds, "--out", tmp_path / "o"], capsys, "at most 1000 seeds")
    nop = _write(tmp_path, "nop.yaml", "models: {m: {}}\nseeds: [0]\n")
    _refused(["bench", nop, "--out", tmp_path / "o"], capsys, "problems: is required")
    big = _write(tmp_path, "big.yaml", "description: '" + "a" * (1 << 20) + "'\n")
    _refused(["bench", big, "--out", tmp_path / "o"], capsys, "file too large")


# --------------------------------------------------------------------------- data files


def _truth_problem(tmp_path, name):
    body = HEADER + f"domain: {{box: [[0, 1]]}}\ntruth: {{file: {name}}}\n"
    return _write(tmp_path, "p.yaml", body)


def test_an_npz_bomb_is_refused_from_its_headers(tmp_path, capsys):
    path = tmp_path / "ref.npz"
    big = np.zeros(25_000_000)  # 200 MB of zeros compress to about 200 kB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("x", "u"):
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, big)
    assert path.stat().st_size < 2_000_000
    _refused(["check", _truth_problem(tmp_path, "ref.npz")], capsys, "more than 20000000 values",
             stream="out")


def test_a_complex_npz_is_refused(tmp_path, capsys):
    np.savez(tmp_path / "ref.npz", x=np.linspace(0, 1, 5), u=np.ones(5) + 1j)
    _refused(["check", _truth_problem(tmp_path, "ref.npz")], capsys, "complex", stream="out")


def test_a_sparse_file_is_refused_fast_and_not_echoed(tmp_path, capsys):
    path = tmp_path / "ref.dat"
    with open(path, "wb") as fh:
        fh.truncate(250 * 10**6)  # 250 MB of NUL bytes, sparse on disk
    line = _refused(["check", _truth_problem(tmp_path, "ref.dat")], capsys, "binary data",
                    stream="out")
    assert "\x00" not in line and len(line) < 400


def test_binary_content_is_never_echoed(tmp_path, capsys):
    junk = bytes(range(128, 256)) * 10 + b"\n"
    (tmp_path / "ref.dat").write_bytes(b"\xff\xfe" + junk)
    line = _refused(["check", _truth_problem(tmp_path, "ref.dat")], capsys, "line 1",
                    stream="out")
    assert all(ch.isprintable() for ch in line) and "\u00ff" not in line
    (tmp_path / "other.dat").write_text("#!/bin/sh secret first line of another file\n")
    line = _refused(["check", _truth_problem(tmp_path, "other.dat")], capsys, stream="out")
    assert "secret" not in line


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_files_that_are_not_regular_are_named_for_what_they_are(tmp_path, capsys, kind):
    if kind == "directory":
        (tmp_path / "ref.dat").mkdir()
        name, needle = "ref.dat", "is a directory"
    elif kind == "fifo":
        os.mkfifo(tmp_path / "ref.dat")
        name, needle = "ref.dat", "not a regular file"
    else:
        name, needle = "/dev/zero", "not a regular file"
    _refused(["check", _truth_problem(tmp_path, name)], capsys, needle, stream="out")
    if kind != "device":
        problem = tmp_path / "ref.dat"
        _refused(["check", problem], capsys, needle, stream="out")


# --------------------------------------------------------------------------- coefficients


@pytest.mark.parametrize("a", ["x - 0.5", "0*x", "log(x)", "[1, 'y - 2']"])
def test_a_diffusivity_that_is_not_positive_is_refused_naming_a_point(tmp_path, capsys, a):
    value = a if a[0] == "[" else repr(a)
    body = HEADER + "domain: {box: [[0, 1], [0, 1]]}\n" + f"diffusivity: {value}\n"
    line = _refused(["check", _write(tmp_path, "p.yaml", body)], capsys, "must be > 0",
                    stream="out")
    assert "x=" in line and "sampled points" in line


# --------------------------------------------------------------------------- run folders


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def finished_run(tmp_path):
    cfg = copy.deepcopy(POISSON1D)
    cfg["train"]["steps"] = 10
    path = _write(tmp_path, "p.yaml", yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["solve", str(path), "--quiet", "--out", str(run)]) == 0
    return path, run


@pytest.mark.slow  # trains a short run first
def test_solve_into_an_existing_run_is_refused_and_changes_nothing(finished_run, capsys):
    path, run = finished_run
    capsys.readouterr()
    before = _snapshot(run)
    _refused(["solve", path, "--quiet", "--out", run, "--set", "train.steps=5"], capsys,
             "--overwrite")
    assert _snapshot(run) == before


@pytest.mark.slow  # trains a short run first
def test_overwrite_replaces_the_whole_folder(finished_run, capsys):
    path, run = finished_run
    (run / "stale.txt").write_text("from an older run")
    capsys.readouterr()
    assert main(["solve", str(path), "--quiet", "--out", str(run), "--overwrite",
                 "--set", "train.steps=4"]) == 0
    assert not (run / "stale.txt").exists()
    assert json.loads((run / "summary.json").read_text())["steps"] == 4
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".run.")]


@pytest.mark.slow  # trains a short run first
def test_a_failed_overwrite_keeps_the_old_run(finished_run, capsys):
    path, run = finished_run
    before = _snapshot(run)
    capsys.readouterr()
    code = main(["solve", str(path), "--quiet", "--out", str(run), "--overwrite",
                 "--set", "train.optimizer=[{gauss-newton: {solver: dense}}]",
                 "--set", "train.points.interior=200000", "--set", "model.width=200",
                 "--set", "model.depth=4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "max_memory_gb" in err[0], err
    assert _snapshot(run) == before


@pytest.mark.slow  # trains a short run first
def test_a_resume_refused_for_memory_writes_nothing(finished_run, capsys):
    _, run = finished_run
    before = _snapshot(run)
    capsys.readouterr()
    _refused(["resume", run, "--set", "train.optimizer=[adam, {gauss-newton: "
              "{steps: 3, max_memory_gb: 1.0e-6}}]"], capsys, "max_memory_gb", seconds=30)
    assert _snapshot(run) == before


@pytest.mark.slow  # trains a short run first
def test_a_memory_check_raised_by_hand_meets_the_machine(finished_run, capsys):
    """max_memory_gb above the machine's memory: the machine's memory refuses, in one line
    naming the sizes, before anything is allocated."""
    path, run = finished_run
    capsys.readouterr()
    line = _refused(["solve", path, "--quiet", "--out", run.parent / "big",
                     "--set", "train.points.interior=300000", "--set", "model.width=200",
                     "--set",
                     "train.optimizer=[{gauss-newton: {steps: 3, max_memory_gb: 100000, "
                     "solver: dense}}]"],
                    capsys, "available", "GiB", seconds=60)
    assert "max_memory_gb" in line


@pytest.mark.slow  # trains a short run first
def test_a_checkpoint_with_a_malformed_rng_state_is_one_line(finished_run, capsys):
    _, run = finished_run
    ckpt = run / "checkpoint.pt"
    data = torch.load(ckpt, weights_only=True)
    data["trainer"]["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)
    torch.save(data, ckpt)
    before = _snapshot(run)
    capsys.readouterr()
    _refused(["resume", run, "--set", "train.steps=20"], capsys, "cannot resume", seconds=30)
    assert _snapshot(run) == before


@pytest.mark.slow  # trains a short run first
def test_a_garbage_checkpoint_is_one_line_without_warnings(finished_run, capsys):
    _, run = finished_run
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04" + os.urandom(2000))
    before = _snapshot(run)
    capsys.readouterr()
    _refused(["resume", run], capsys, "checkpoint", seconds=30)
    assert _snapshot(run) == before
