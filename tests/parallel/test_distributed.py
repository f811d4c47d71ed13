"""One run on several processes (mscalepde.parallel): the shares of the points, the loss as
a sum over shards, two gloo ranks against one process holding their union (Adam, dense and
matrix-free Gauss–Newton, float64, to 1e-10), a SIGKILL of one rank leaving a checkpoint
that resumes on the same number of ranks and is refused on another, and the refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mscalepde import problem_from_dict, solve
from mscalepde.equations import Objective
from mscalepde.errors import MscaleError, ProblemError, ResumeError
from mscalepde.parallel.comm import Single
from mscalepde.parallel.launch import without_nproc
from mscalepde.parallel.shards import ShardedObjective, shard_seed, share
from mscalepde.run.checkpoint import load_checkpoint
from mscalepde.run.ranks import check_parallel
from mscalepde.training.gauss_newton import GaussNewton, GaussNewtonSettings
from tests.helpers import POISSON1D, ROOT

ENV = {**os.environ, "MSCALEPDE_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


class _Two(Single):
    """A stand-in for rank 0 of 2 where only the world size matters (no collective runs)."""

    world = 2


def test_shares_cover_the_count_and_seeds_are_distinct_streams():
    for n in (0, 1, 7, 100, 101):
        assert sum(share(n, 3, r) for r in range(3)) == n
        assert max(share(n, 3, r) for r in range(3)) - min(share(n, 3, r) for r in range(3)) <= 1
    assert shard_seed(5, 0, 1) == 5  # one process: the points of a run without shards
    seeds = {shard_seed(s, r, 4) for s in range(50) for r in range(4)}
    assert len(seeds) == 200


def _problem():
    return problem_from_dict({**POISSON1D, "train": {**POISSON1D["train"], "dtype": "float64",
                                                     "points": {"interior": 33, "boundary": 2}}})


def _make(problem):
    def make(counts, seed):
        return Objective.from_problem(problem, dtype=torch.float64, **counts, seed=seed)

    return make


def test_one_shard_is_the_plain_objective_and_two_shards_their_union():
    problem = _problem()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    model = model.double()
    plain = Objective.from_problem(problem, dtype=torch.float64)
    one = ShardedObjective(_make(problem), problem.train["points"], problem.train["seed"],
                           shards=[0], world=1, comm=Single())
    for k, v in plain.terms(model).items():
        assert torch.equal(v, one.terms(model)[k])
    two = ShardedObjective(_make(problem), problem.train["points"], 4, shards=[0, 1], world=2,
                           comm=Single())
    assert [len(p.x_interior) for p in two.parts] == [17, 16]
    residuals = [p.residuals(model) for p in two.parts]
    for k, v in two.terms(model).items():
        union = torch.cat([r[k] for r in residuals])
        value = float(v.detach())
        assert abs(value - float(union.detach().square().mean())) < 1e-14 * value
    two.resample(9)
    assert two.seed == 9
    assert not torch.equal(two.parts[0].x_interior, two.parts[1].x_interior[:17])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The worker's runs: two gloo ranks, and one process holding both shards."""
    out = tmp_path_factory.mktemp("parallel")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "tests.parallel.worker", str(out / "two.pt")]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    cmd = [sys.executable, "-m", "tests.parallel.worker", str(out / "one.pt"), "single"]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return torch.load(out / "two.pt"), torch.load(out / "one.pt")


@pytest.mark.parametrize("variant", ["dual", "primal", "cg"])
def test_two_ranks_take_the_steps_of_one_process_on_their_union(runs, variant):
    two, one = runs[0][variant], runs[1][variant]
    for phase in ("adam", "final"):
        for name, value in one[phase].items():
            assert float((two[phase][name] - value).abs().max()) <= 1e-10, (phase, name)
    assert len(one["loss"]) == len(two["loss"]) == 8  # the initial row, 4 Adam + 3 GN
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-10)
    assert one["loss"][-1] < 0.5 * one["loss"][0]  # it trains


def _problem_file(tmp_path: Path, steps: int) -> Path:
    data = {
        "name": "killed",
        "pde": "poisson",
        "source": "auto",
        "domain": {"box": [[0, 1], [0, 1]]},
        "exact": "sin(pi*x)*sin(pi*y)",
        "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
        "model": {"arch": "mlp", "width": 16, "depth": 2},
        "train": {"optimizer": [{"adam": {"steps": steps, "lr": 0.01}},
                                {"gauss-newton": {"steps": 30, "resample_every": 1,
                                                  "decrease": 0.1}}],
                  "points": {"interior": 200, "boundary": 80},
                  "checkpoint_every": 20, "log_every": 20, "resample_every": 10},
        "diagnostics": {"enabled": False},
    }
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _rank_pid(launcher: int, rank: int) -> int | None:
    for pid in _children(launcher):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return pid
    return None


@pytest.mark.slow
def test_a_killed_rank_ends_the_run_and_its_checkpoint_resumes_on_as_many(tmp_path):
    path = _problem_file(tmp_path, 300)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "mscalepde", "solve", str(path), "--nproc", "2", "--out",
           str(run_dir), "--quiet", "--no-baseline"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    victim = _rank_pid(proc.pid, 1)
    assert victim is not None and (run_dir / "checkpoint.pt").exists()
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "rank 1 of 2 was killed by SIGKILL" in err
    assert "Traceback" not in err
    step = load_checkpoint(run_dir).step
    assert 0 < step < 300

    with pytest.raises(ResumeError, match=r"written by a run on 2 process\(es\); resume it "
                       r"on 2 \(this run has 1\)"):
        solve(_problem_file(tmp_path, 300), resume=run_dir, progress=False)

    resume = [sys.executable, "-m", "mscalepde", "resume", str(run_dir), "--quiet",
              "--no-baseline", "--nproc", "2"]
    again = subprocess.run(resume, cwd=ROOT, env=ENV, capture_output=True, text=True,
                           timeout=300)
    if again.returncode != 0 and "terminate called without an active exception" in again.stderr:
        # A teardown race seen under load before `leave` passed a barrier (docs/parallel.md,
        # "A teardown race"): a rank aborted in C++ with no Python traceback. The checkpoint
        # is untouched by it; the property here is that it resumes on as many ranks, so
        # one retry is allowed and a second abort fails.
        again = subprocess.run(resume, cwd=ROOT, env=ENV, capture_output=True, text=True,
                               timeout=300)
    assert again.returncode == 0, again.stderr[-2000:] + again.stdout[-2000:]
    summary = yaml.safe_load((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["steps"] == 330
    assert summary["resumed_from_step"] == step
    assert summary["rel_l2"] < 1e-2  # 3.2e-3 measured (one process: 2.8e-3)


def test_what_cannot_be_split_is_refused_naming_the_key():
    problem = _problem()
    check_parallel(problem, Single())  # one process: anything goes
    ritz = problem_from_dict({**POISSON1D, "train": {**POISSON1D["train"], "loss": "ritz"}})
    with pytest.raises(ProblemError, match="train.loss: a run on 2 processes"):
        check_parallel(ritz, _Two())
    model = torch.nn.Linear(1, 1)
    model.jet = lambda *a: None  # type: ignore[attr-defined]
    objective = Objective.from_problem(ritz)
    with pytest.raises(MscaleError, match="no Ritz energy"):
        GaussNewton(model, objective, {}, GaussNewtonSettings(), comm=_Two())


def test_nproc_is_taken_out_of_the_command_and_checked(tmp_path):
    assert without_nproc(["solve", "f.yaml", "--nproc", "2", "--quiet"]) == [
        "solve", "f.yaml", "--quiet"]
    assert without_nproc(["solve", "--nproc=3", "f.yaml"]) == ["solve", "f.yaml"]
    path = _problem_file(tmp_path, 10)
    done = subprocess.run([sys.executable, "-m", "mscalepde", "solve", str(path), "--nproc", "0"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --nproc: expected an integer >= 1, got 0"
