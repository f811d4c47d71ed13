"""Classical reference solutions: the truth a network is measured against when a problem
has no ``exact``, and the classical baseline printed after a solve.

- :mod:`.api` — the public entry: settings, the choice of method, the refinement error
  estimate, the on-disk cache (:func:`get_reference`, :func:`compute_reference`, …);
- :mod:`.fd` — finite differences on boxes (and the axis building blocks);
- :mod:`.flux` — the flux-form finite-volume solver for variable coefficients;
- :mod:`.spectral` — Chebyshev/Fourier collocation on boxes;
- :mod:`.nodes` — Chebyshev nodes and differentiation (shared by fd and spectral);
- :mod:`.fem` — finite elements (scikit-fem) on domains that are not boxes;
- :mod:`.datafile` — truth read from a data file (``truth: {file: ...}``).

See ``docs/reference.md``.
"""

from mscalepde.reference.api import (
    Reference,
    ReferenceError,
    baseline_line,
    cache_dir,
    cache_path,
    classical_baseline,
    compute_reference,
    describe_reference,
    get_reference,
    reference_settings,
    reference_truth,
    reference_values,
    truth_info,
)

__all__ = [
    "Reference",
    "ReferenceError",
    "baseline_line",
    "cache_dir",
    "cache_path",
    "classical_baseline",
    "compute_reference",
    "describe_reference",
    "get_reference",
    "reference_settings",
    "reference_truth",
    "reference_values",
    "truth_info",
]
