"""Settings of the frequency choice of ``arch: auto`` and ``sigmas: auto`` (torch-free):
:class:`AutoSettings` and the constants of the selection rules (docs/design.md §9).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: a solution whose selected modes stay within this many cycles per box length (every
#: axis; time excluded) is "smooth": ``arch: auto`` gives it a plain MLP
SMOOTH_CYCLES = 3.0


#: How σ of a band above the lowest follows its frequency ν (cycles per unit length).
#: A residual loss weighs a mode by (a|k|²)², so a random initial field of Fourier
#: features at the band's own frequency has a Laplacian of order (2πσ)² that the first
#: iterations spend removing; the tanh trunk builds the band from sums and harmonics of
#: lower features instead. The rule for an elliptic (Poisson) problem is the geometric
#: mean of the band and the lowest band, σ_a = (ν_a ν_low,a)^½ per axis: 5 for the 25-cycle
#: band of ``poisson1d_multiscale`` over a 1-cycle low band, 2.2 for the 5-cycle band of
#: ``poisson2d_multiscale`` — the σ that measured best by hand there (benchmarks/README.md
#: §11: 2.7e-7 with σ = 5 against 3.4e-6 with 3 and 1.4e-6 with 8). Heat whose diffusion
#: κ|k|² is of order 1/T (``heat1d_multiscale``) and a fit weigh the band like a
#: regression and get σ at the band itself (σ_x = 276 for 250 cycles in Wang et al.).
#: ``model.auto.sigma_factor: c`` replaces either rule by σ_a = c ν_a.
SIGMA_RULES = ("geometric", "band")


#: at most this many bands (the lowest-energy neighbours merge first)
MAX_BANDS = 4


#: uniform sampling grid per axis, by spatial dimension (points, excluding the faces)
GRID_CAP = {1: 8191, 2: 511, 3: 127}


TIME_CAP = 255


@dataclass(frozen=True)
class AutoSettings:
    """``model.auto``: δ, the floor, the band gap and the Poisson σ factor."""

    delta: float = 1e-4
    floor: float = 1e-3
    gap: float = 2.0
    sigma_factor: float | None = None  # None: by the equation (sigma_rule())
    max_bands: int = MAX_BANDS

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> AutoSettings:
        raw = dict(raw or {})
        return cls(**{k: v for k, v in raw.items() if v is not None})


#: grid for data without a classical solve (fit targets, the source fallback)
DATA_GRID = {1: 4095, 2: 255, 3: 63}
