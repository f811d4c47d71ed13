"""Frequency-by-frequency diagnostics of a run (the Frequency Principle; docs/design.md §2).

- :mod:`.options` — the ``diagnostics`` section's schema (torch-free);
- :mod:`.settings` — the resolved settings of one run;
- :mod:`.transforms` — grids, FFT/DST/DCT and wavenumbers (the one transform module);
- :mod:`.fprinciple` — per-frequency errors, peaks, bands and the Gaussian filter;
- :mod:`.history` — the F-principle history over training and its file;
- :mod:`.grid` — the diagnostic grid and slices;
- :mod:`.evaluation` — errors of a network on the evaluation grid;
- :mod:`.monitor` — the training callback that records the diagnostics;
- :mod:`.store` — the run folder's diagnostics file (``diagnostics.npz``);
- :mod:`.report` — the text tables;
- :mod:`.figures`, :mod:`.plots` — drawing the figures, and writing them into a run folder.

``mscalepde diagnose`` (recomputing these from a saved run) is in :mod:`mscalepde.run.diagnose`,
since it reloads the run's network.
"""
