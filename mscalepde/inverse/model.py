"""u's network and the unknowns as one module: what the optimisers train jointly.

``forward``/``jet`` are u's, so every evaluation, figure and diagnostic of u works
unchanged; the unknowns' parameters follow u's in ``parameters()`` (and in the
Gauss–Newton Jacobian's columns)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mscalepde.architectures.base import Composite
from mscalepde.inverse.unknowns import Unknowns


class InverseModel(Composite):
    """``u`` (an :class:`~mscalepde.architectures.base.Architecture`) and ``unknowns``."""

    def __init__(self, u: nn.Module, unknowns: Unknowns) -> None:
        super().__init__()
        self.u = u
        self.unknowns = unknowns

    def forward(self, x: Tensor) -> Tensor:
        return self.u(x)

    def jet(self, x: Tensor, spec: Any) -> Any:
        return self.u.jet(x, spec)

    def primary(self) -> nn.Module:
        """u's network: ``space_dim``, ``in_dim`` and the rest are its."""
        return self._modules["u"]  # type: ignore[return-value]
