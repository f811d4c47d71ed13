"""Frequencies chosen from the solution's spectrum (``arch: auto``, ``sigmas: auto``) and
adapted during training (``model.adapt``); docs/design.md §9.

- :mod:`.options` — the settings of the choice (torch-free);
- :mod:`.spectrum` — the solution's spectrum;
- :mod:`.select` — bands, σ and scales from the spectrum, and the resolved model section;
- :mod:`.adapt` — re-estimating the frequencies in training.
"""
