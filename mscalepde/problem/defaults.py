"""The network a problem gets when its file has no ``model`` section (docs/design.md §9).

A file written as users write it names the equation, the domain and the data, and no
network. It gets ``model: {arch: auto}``: the network and its frequencies are chosen from
the solution's spectrum before training (:mod:`mscalepde.frequencies.select`; on a shape
from the windowed finite-element reference, :mod:`mscalepde.frequencies.shape_spectrum`).
A smooth solution then gets the small MLP :data:`~mscalepde.architectures.options.DEFAULT_MLP`,
an oscillating one a multiscale Fourier-feature network with σ at its bands. Measured over
the whole library against each file's own settings: benchmarks/README.md §23.

``auto`` cannot run where the spectrum of the solution is not available before training,
and there the default is :data:`DEFAULT_MLP` itself:

- inverse problems (``unknowns``): the forward problem's spectrum would use the true
  coefficients the run is meant to find;
- more than three space dimensions: no grid solve;
- time windows (``train.time_windows`` > 1): one network per window, not one spectrum.

"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mscalepde.architectures.options import AUTO, DEFAULT_MLP
from mscalepde.geometry import Domain
from mscalepde.problem.dimension import is_high_dimensional

__all__ = ["DEFAULT_MLP", "default_model"]


def default_model(data: Mapping[str, Any], domain: Domain | None) -> dict[str, Any]:
    """The model section of a problem whose file has none (module docstring). ``domain``
    may be None for an inverse problem, which is decided before its domain is validated
    (with its forward part)."""
    if data.get("unknowns") is not None or data.get("observations") is not None:
        return copy.deepcopy(DEFAULT_MLP)
    assert domain is not None, "a forward problem's default needs its domain"
    train = data.get("train")
    windows = train.get("time_windows", 1) if isinstance(train, Mapping) else 1
    if is_high_dimensional(domain) or windows not in (1, None):
        return copy.deepcopy(DEFAULT_MLP)
    return {"arch": AUTO}

