"""The test suite. Before anything imports torch, OpenMP's wait policy is chosen as the
command line chooses it: passive when the machine is already busy, so that the suite does
not spin against another job (mscalepde/training/threads.py)."""

import os

from mscalepde.training.threads import busy, thread_count

if "OMP_WAIT_POLICY" not in os.environ and busy(thread_count()[0])[0]:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
