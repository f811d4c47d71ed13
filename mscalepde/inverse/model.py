"""u's network and the unknowns as one module: what the optimisers train jointly.

``forward``/``jet`` are u's, so every evaluation, figure and diagnostic of u works
unchanged; the unknowns' parameters follow u's in ``parameters()`` (and in the
Gauss–Newton Jacobian's columns)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mscalepde.inverse.unknowns import Unknowns


class InverseModel(nn.Module):
    """``u`` (an :class:`~mscalepde.architectures.base.Architecture`) and ``unknowns``."""

    def __init__(self, u: nn.Module, unknowns: Unknowns) -> None:
        super().__init__()
        self.u = u
        self.unknowns = unknowns

    def forward(self, x: Tensor) -> Tensor:
        return self.u(x)

    def jet(self, x: Tensor, spec: Any) -> Any:
        return self.u.jet(x, spec)

    def parameter_count(self) -> int:
        """Trainable parameters of u and of the unknowns together."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def __getattr__(self, name: str) -> Any:
        """Anything else (``space_dim``, ``in_dim``, an architecture's attributes) is u's."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["u"], name)
