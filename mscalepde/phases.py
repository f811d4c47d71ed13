"""The optimiser phases of ``train.optimizer``: their names and the Gauss–Newton phase's
settings.

Torch-free, so that loading and checking a problem file does not import torch; the
trainer (:mod:`mscalepde.trainer`) and the Gauss–Newton step (:mod:`mscalepde.gauss_newton`)
read the same settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OPTIMIZERS = ("adam", "lbfgs", "gauss-newton")


@dataclass
class GaussNewtonSettings:
    """Settings of one ``gauss-newton`` phase (``train.optimizer``)."""

    steps: int = 30
    method: str = "lm"  # lm | line-search
    damping: float = 1e-6  # relative λ: initial (lm) or fixed (line-search)
    min_damping: float = 1e-12
    decrease: float = 1.0 / 3.0  # lm: smallest factor on λ after an accepted step
    max_damping: float = 1e6
    max_tries: int = 12  # lm: solves per iteration before giving up
    halvings: int = 10  # line-search: α = 1, 1/2, …, 2^-halvings
    form: str = "auto"  # auto | dual | primal
    chunk: int = 1024  # points per Jacobian pass
    max_memory_gb: float = 4.0
    dtype: str = "float64"
    resample_every: int = 0


def settings_from_mapping(m: Mapping[str, object]) -> GaussNewtonSettings:
    names = GaussNewtonSettings.__dataclass_fields__
    return GaussNewtonSettings(**{k: v for k, v in m.items() if k in names})  # type: ignore[arg-type]
