"""Checkpoints, resume, graceful stops, kills and rollbacks (issue 16).

The central property: a run stopped at any step boundary and resumed from its checkpoint
ends with the same network, bit for bit (float64, CPU, compile off), as the run that was
never stopped — in the Adam phase (with resampling and a learning-rate decay), the L-BFGS
phase (its curvature pairs) and the Gauss–Newton phase (its damping).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mscalepde import TrainingError, problem_from_dict, solve
from mscalepde.cli import main
from mscalepde.errors import Stopped
from mscalepde.run.checkpoint import CHECKPOINT_FILE, load_checkpoint
from mscalepde.run.pipeline import resume_run
from mscalepde.training.callbacks import Callback
from mscalepde.training.settings import TrainSettings
from mscalepde.training.signals import StopRequest
from mscalepde.training.trainer import Trainer
from tests.helpers import POISSON1D, PROBLEMS, StopAt

PHASES = [
    {"adam": {"steps": 20, "resample_every": 5, "decay": {"every": 7, "factor": 0.5}}},
    {"lbfgs": {"steps": 10}},
    {"gauss-newton": {"steps": 5, "resample_every": 1}},
]


def _problem(gn_steps: int = 5, **train):
    cfg = copy.deepcopy(POISSON1D)
    phases = copy.deepcopy(PHASES)
    phases[2]["gauss-newton"]["steps"] = gn_steps
    cfg["train"].update({"dtype": "float64", "compile": "off", "device": "cpu",
                         "checkpoint_every": 0, "log_every": 3, "optimizer": phases, **train})
    cfg["diagnostics"] = {"every": 4}
    return problem_from_dict(cfg)


def _same_parameters(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return solve(_problem(), out=tmp_path_factory.mktemp("full") / "run")


@pytest.mark.slow
@pytest.mark.parametrize("stop_at, phase", [(7, "adam"), (25, "lbfgs"), (33, "gauss-newton")])
def test_resumed_equals_uninterrupted_bit_for_bit(tmp_path, uninterrupted, stop_at, phase):
    run = tmp_path / "run"
    request = StopRequest()
    with pytest.raises(Stopped) as info:
        solve(_problem(), out=run, callbacks=[StopAt(stop_at, request)], stop=request)
    assert info.value.step == stop_at and info.value.run_dir == run
    stopped = json.loads((run / "summary.json").read_text())
    assert stopped["status"] == "interrupted" and "SIGTERM" in stopped["message"]
    saved = load_checkpoint(run)
    assert saved.step == stop_at and saved.trainer["phase_name"] == phase

    resumed = solve(_problem(), resume=run)
    assert _same_parameters(resumed.model, uninterrupted.model)
    assert resumed.rel_l2 == uninterrupted.rel_l2
    assert resumed.summary["steps"] == 35 and resumed.summary["resumed_from_step"] == stop_at
    assert [p["steps"] for p in resumed.summary["phases"]] == [20, 10, 5]
    # the history goes on: the same losses at every step both logged
    full = {r["step"]: r["loss"] for r in uninterrupted.history}
    again = {r["step"]: r["loss"] for r in resumed.history}
    assert all(again[s] == full[s] for s in full)
    # and so does the spectral history (step 0 through the end, no step twice)
    spec_full = np.load(uninterrupted.run_dir / "diagnostics.npz")
    spec_resumed = np.load(run / "diagnostics.npz")
    steps = spec_resumed["steps"]
    assert np.array_equal(steps, np.unique(steps)) and steps[0] == 0 and steps[-1] == 35
    assert set(spec_full["steps"]) <= set(steps)


@pytest.mark.slow
def test_keep_best_resumes_bit_for_bit(tmp_path):
    """The kept iterate and its validation loss are in the checkpoint: a run stopped inside
    a ``keep_best`` phase and resumed ends on the same parameters as an unbroken one."""
    def problem():
        cfg = copy.deepcopy(POISSON1D)
        cfg["train"].update({"dtype": "float64", "compile": "off", "device": "cpu",
                             "checkpoint_every": 0, "points": {"interior": 12, "boundary": 2},
                             "optimizer": [{"adam": {"steps": 10}}, {"gauss-newton": {
                                 "steps": 8, "resample_every": 1, "keep_best": True}}]})
        cfg["diagnostics"] = {"every": 0}
        return problem_from_dict(cfg)

    full = solve(problem(), out=tmp_path / "full")
    run, request = tmp_path / "run", StopRequest()
    with pytest.raises(Stopped):
        solve(problem(), out=run, callbacks=[StopAt(15, request)], stop=request)
    assert load_checkpoint(run).trainer["optimizer"]["best"][2].numel() > 0
    resumed = solve(problem(), resume=run)
    assert _same_parameters(resumed.model, full.model)
    assert resumed.rel_l2 == full.rel_l2


@pytest.mark.slow
def test_a_finished_run_extends_with_more_steps(tmp_path, uninterrupted):
    """`resume --set` with more Gauss–Newton iterations equals a longer run from scratch."""
    run = tmp_path / "run"
    solve(_problem(gn_steps=5), out=run)
    longer = solve(_problem(gn_steps=8), write=False)
    extended = resume_run(run, ["train.optimizer[2].gauss-newton.steps=8"])
    assert extended.summary["steps"] == 38
    assert _same_parameters(extended.model, longer.model)


@pytest.mark.slow
def test_cli_resume_refuses_meaningless_continuations(tmp_path, capsys, poisson1d):
    path = tmp_path / "p.yaml"
    import yaml

    path.write_text(yaml.safe_dump(poisson1d))
    run = tmp_path / "run"
    assert main(["solve", str(path), "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()

    def refused(argv, *expected):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        for text in expected:
            assert text in err, err

    empty = tmp_path / "empty"
    empty.mkdir()
    refused(["resume", str(empty)], "no checkpoint.pt")
    refused(["solve", str(path), "--resume", str(empty)], "no checkpoint.pt")
    refused(["solve", str(PROBLEMS / "poisson1d_sin.yaml"), "--resume", str(run)],
            "holds a run of problem 'p1'")
    refused(["resume", str(run), "--set", "model.width=32"], "model.width differs")
    refused(["resume", str(run), "--set", "train.lr=0.1"], "train.lr differs")
    refused(["resume", str(run), "--set", "train.steps=20"], "train.steps", "already run 30")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    refused(["resume", str(tmp_path / "bad")], "cannot read the checkpoint")
    # allowed: more steps, other logging
    assert main(["resume", str(run), "--quiet", "--set", "train.steps=40",
                 "--set", "train.log_every=5"]) == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 40


def _solve_command(out, steps: int, every: int) -> list[str]:
    return [
        sys.executable, "-m", "mscalepde", "solve", str(PROBLEMS / "poisson1d_sin.yaml"),
        "--out", str(out), "--quiet", "--set", f"train.steps={steps}",
        "--set", "train.optimizer=[adam]", "--set", "train.compile=off",
        "--set", f"train.checkpoint_every={every}", "--set", "diagnostics.every=500",
    ]


@pytest.mark.slow
def test_sigkill_leaves_a_valid_checkpoint_that_resumes_and_finishes(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_solve_command(out, 100_000, 50), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not (out / CHECKPOINT_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.7)  # several more checkpoints: the kill lands at an arbitrary instant
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    saved = load_checkpoint(out)  # whole: atomic writes never leave a torn file
    assert saved.step > 0 and saved.step % 50 == 0
    # a kill between an atomic write's write and rename may leave its temporary file
    # (SIGKILL runs no cleanup); the resume removes it
    done = subprocess.run(
        [sys.executable, "-m", "mscalepde", "resume", str(out), "--quiet",
         "--set", f"train.steps={saved.step + 100}"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["steps"] == saved.step + 100
    assert summary["resumed_from_step"] == saved.step
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_resume_removes_what_a_killed_writer_left(tmp_path):
    """The temporary file of an atomic write cut short by SIGKILL is deleted on resume;
    other files stay."""
    from mscalepde.io import remove_stale_temporaries

    (tmp_path / ".checkpoint.pt.m4f9rizj.tmp").write_bytes(b"torn")
    (tmp_path / ".hidden.tmp").write_bytes(b"not ours")
    (tmp_path / "checkpoint.pt").write_bytes(b"whole")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".checkpoint.pt.m4f9rizj.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden.tmp", "checkpoint.pt"]


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_stop_at_a_step_boundary_and_say_how_to_resume(tmp_path, sig, code):
    """SIGTERM (a batch system's time limit) and SIGINT stop at the next step boundary:
    exit 128 + signal, one stderr line naming the resume command, a checkpoint of that
    step, the summary and figures so far; the resume then finishes the run."""
    out = tmp_path / "run"
    log = tmp_path / "stdout"
    with log.open("w") as stdout:
        proc = subprocess.Popen(_solve_command(out, 1_000_000, 0), stdout=stdout,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while "training" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # some steps
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"mscalepde resume {out}" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] > 0
    assert (out / "model.pt").exists() and (out / "history.csv").exists()
    assert (out / "figures" / "history.png").exists()
    saved = load_checkpoint(out)
    assert saved.step == summary["steps"]  # the checkpoint is of the stopping step
    assert main(["resume", str(out), "--quiet", "--set",
                 f"train.steps={saved.step + 20}"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == saved.step + 20


class Poison(Callback):
    """Puts a NaN into the first weight after step ``at`` (once): the next loss is NaN."""

    def __init__(self, at: int) -> None:
        self.at, self.done = at, False

    def on_step(self, trainer, step):
        if step == self.at and not self.done:
            self.done = True
            with torch.no_grad():
                next(trainer.model.parameters()).view(-1)[0] = float("nan")


@pytest.mark.slow
def test_on_nan_rollback_reloads_the_last_checkpoint_and_halves_the_learning_rate(tmp_path):
    cfg = copy.deepcopy(POISSON1D)
    cfg["train"].update({"on_nan": "rollback", "optimizer": ["adam"], "compile": "off"})
    result = solve(problem_from_dict(cfg), out=tmp_path / "run", callbacks=[Poison(15)])
    s = result.summary
    assert s["status"] == "ok" and s["steps"] == 30
    assert any("rolled back to step 10" in n and "x0.5" in n for n in s["notes"]), s["notes"]
    lrs = {r["step"]: r["lr"] for r in result.history}
    assert lrs[10] == pytest.approx(1e-2) and lrs[20] == pytest.approx(5e-3)
    assert [r["step"] for r in result.history] == [0, 10, 20, 30]


@pytest.mark.slow
def test_rollbacks_are_bounded(tmp_path):
    class AlwaysPoison(Poison):
        def on_step(self, trainer, step):
            if step % 10 == 5:
                with torch.no_grad():
                    next(trainer.model.parameters()).view(-1)[0] = float("nan")

    cfg = copy.deepcopy(POISSON1D)
    cfg["train"].update({"on_nan": "rollback", "rollbacks": 2, "optimizer": ["adam"]})
    with pytest.raises(TrainingError, match=r"after 2 rollback\(s\)"):
        solve(problem_from_dict(cfg), out=tmp_path / "run", callbacks=[AlwaysPoison(0)])


def test_a_non_finite_gradient_names_its_loss_term():
    """A finite loss whose gradient is not (sqrt at 0) stops and names that term."""
    w = torch.nn.Linear(1, 1)

    class Objective:
        seed = 0

        def terms(self, model):
            p = next(model.parameters())
            return {"pde": (p**2).sum(), "boundary": torch.sqrt((p - p.detach()).abs().sum())}

        def resample(self, seed):
            self.seed = seed

    trainer = Trainer(w, Objective(), TrainSettings(steps=3, optimizer=None, log_every=1))
    with pytest.raises(TrainingError, match=r"gradient became non-finite at adam step 1 "
                                            r"\(term: boundary\)"):
        trainer.run()


def test_checkpoint_seconds_checkpoints_by_training_time(tmp_path):
    """A phase of few, slow steps (Gauss–Newton) is checkpointed by time as well."""

    class Count(Callback):
        def __init__(self) -> None:
            self.steps: list[int] = []

        def on_checkpoint(self, trainer, step):
            self.steps.append(step)

    counter = Count()
    problem = _problem(checkpoint_seconds=1e-9, checkpoint_every=0)
    solve(problem, write=False, callbacks=[counter])
    assert counter.steps == list(range(1, 35))  # every step but the last (the end writes it)


def test_repeated_rollbacks_halve_the_learning_rate_each_time(tmp_path):
    class TwicePoison(Callback):
        def __init__(self) -> None:
            self.left = 2

        def on_step(self, trainer, step):
            if step == 15 and self.left:
                self.left -= 1
                with torch.no_grad():
                    next(trainer.model.parameters()).view(-1)[0] = float("nan")

    cfg = copy.deepcopy(POISSON1D)
    cfg["train"].update({"on_nan": "rollback", "optimizer": ["adam"], "compile": "off"})
    result = solve(problem_from_dict(cfg), write=False, callbacks=[TwicePoison()])
    lrs = {r["step"]: r["lr"] for r in result.history}
    assert result.summary["status"] == "ok" and lrs[20] == pytest.approx(2.5e-3)
    assert sum("rolled back" in n for n in result.summary["notes"]) == 2


@pytest.mark.slow
def test_rollback_works_from_a_first_lbfgs_phase_and_after_a_resume(tmp_path):
    cfg = copy.deepcopy(POISSON1D)
    cfg["train"].update({"on_nan": "rollback", "optimizer": [{"lbfgs": {"steps": 6}}],
                         "checkpoint_every": 0, "log_every": 1})
    r = solve(problem_from_dict(cfg), write=False, callbacks=[Poison(2)])
    assert r.summary["status"] == "ok" and r.history.rows[0]["phase"] == 1.0
    assert any("rolled back to step 0" in n for n in r.summary["notes"])
    # a resumed run can roll back to the checkpoint it resumed from
    cfg["train"].update({"on_nan": "stop", "optimizer": ["adam"], "steps": 10})
    run = tmp_path / "run"
    solve(problem_from_dict(cfg), out=run)
    again = resume_run(run, ["train.steps=20", "train.on_nan=rollback"], callbacks=[Poison(12)])
    assert any("rolled back to step 10" in n for n in again.summary["notes"])


def test_a_signal_before_training_stops_at_once_and_a_second_one_too():
    from mscalepde.errors import Terminated
    from mscalepde.training.signals import graceful_stop

    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a nohup job
    with graceful_stop(StopRequest()) as request:
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert request.reason == "SIGTERM"
    with graceful_stop(StopRequest()) as request:
        request.deferred = True  # training: the first signal waits for a step boundary
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        assert request.reason == "SIGINT"
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are restored


@pytest.mark.slow
def test_budget_seconds_stops_within_one_step_of_its_budget():
    cfg = copy.deepcopy(POISSON1D)
    cfg["train"].update({"steps": 10**6, "optimizer": ["adam", "lbfgs"], "log_every": 1,
                         "budget_seconds": 0.5, "compile": "off", "checkpoint_every": 0})
    r = solve(problem_from_dict(cfg), write=False)
    times = [row["time"] for row in r.history]
    assert times[-2] < 0.5 <= times[-1]  # the step before had not spent it; this one did
    assert r.summary["status"] == "ok" and r.summary["train_seconds"] >= 0.5
    assert any("budget of 0.5 s of training spent at adam step" in n for n in r.summary["notes"])
    cfg["train"].update({"budget_seconds": 0, "budget_steps": 7})
    r = solve(problem_from_dict(cfg), write=False)
    assert r.summary["steps"] == 7 and r.history.rows[-1]["step"] == 7
