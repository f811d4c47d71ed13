"""Training threads: how many (the documented order of sources), the busy-machine warning,
and OpenMP's wait policy set before torch starts (mscalepde/training/threads.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_thread_count_follows_the_documented_order(monkeypatch):
    from mscalepde.training.threads import available_cpus, load_warning, thread_count

    for name in ("MSCALEPDE_THREADS", "OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(name, raising=False)
    assert thread_count() == (available_cpus(), "CPU affinity")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert thread_count() == (3, "SLURM_CPUS_PER_TASK")
    monkeypatch.setenv("OMP_NUM_THREADS", "5,2")  # nested levels: the first counts
    assert thread_count() == (5, "OMP_NUM_THREADS")
    monkeypatch.setenv("MSCALEPDE_THREADS", "1")
    assert thread_count() == (1, "MSCALEPDE_THREADS")
    assert thread_count(4) == (4, "--threads")
    with pytest.raises(ValueError):
        thread_count(0)
    monkeypatch.setattr("os.getloadavg", lambda: (2.0 * available_cpus(), 0.0, 0.0))
    line = load_warning(1)
    assert line is not None and "--threads 1" in line and "\n" not in line
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))
    assert load_warning(available_cpus()) is None


@pytest.mark.parametrize(
    ("load", "preset", "policy"),
    [(99.0, None, "PASSIVE"), (0.0, None, "unset"), (99.0, "ACTIVE", "ACTIVE")],
    ids=["busy", "idle", "user-choice"],
)
def test_the_wait_policy_is_chosen_before_torch_starts(load, preset, policy):
    """Busy machine: torch starts with OpenMP's passive wait policy and the chosen threads;
    idle: libgomp's default; a policy the user set is kept."""
    code = (
        "import os\n"
        f"os.getloadavg = lambda: ({load}, 0.0, 0.0)\n"
        "from mscalepde.training.threads import configure_threads\n"
        "print(configure_threads(1))\n"
        "import torch\n"
        "print(os.environ.get('OMP_WAIT_POLICY', 'unset'), torch.get_num_threads())\n"
    )
    drop = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split("\n")
    assert out[0] == "(1, '--threads')" and out[1] == f"{policy} 1", out
