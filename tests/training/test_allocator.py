"""retain_freed_memory: a step that allocates and frees the same buffers stops page-faulting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import resource, torch
from mscalepde.training.allocator import retain_freed_memory

print(retain_freed_memory())

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def step():  # buffers like one training step's activations: 1.6-8 MB, freed each step
    sizes = (409600, 409600, 409600, 819200, 409600, 2_000_000, 409600)
    keep = [torch.empty(n).fill_(1.0) for n in sizes]
    doubled = [k * 2 for k in keep]
    del keep
    return sum(float(k[0]) for k in doubled)

for _ in range(10):
    step()
f0 = faults()
for _ in range(40):
    step()
print((faults() - f0) / 40)
"""


def _faults_per_step(retain: bool) -> tuple[bool, float]:
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = dict(os.environ, PYTHONPATH=path, MSCALEPDE_RETAIN_FREED_MEMORY="1" if retain else "0")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", float(out[1])


PAGES_PER_STEP = 2 * 4 * (5 * 409600 + 819200 + 2_000_000) / 4096  # ~9500 pages of 4 KiB


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt (Linux)")
def test_retained_memory_removes_page_faults_per_step():
    applied, retained = _faults_per_step(True)
    if not applied:
        pytest.skip("not glibc: retain_freed_memory does nothing here")
    # glibc's defaults fault every page of such a step in again (9475 per step) in some
    # processes and none in others, depending on its adaptive mmap threshold's history;
    # retained, a step re-uses its memory
    assert retained < 0.01 * PAGES_PER_STEP, retained
    not_applied, _ = _faults_per_step(False)
    assert not not_applied  # MSCALEPDE_RETAIN_FREED_MEMORY=0 turns it off
