"""Forward Laplacian: value, first derivatives and Laplacian carried in one forward pass.

Reference: Li, Ye, Wang, Wang et al. 2023, "Forward Laplacian: a new computational framework
for neural network-based variational Monte Carlo" (also known as collapsed Taylor mode).

A :class:`Jet` of a hidden feature h(X) ∈ R^W at N points holds, stacked in one tensor of
shape (K + 2, N, W):

- row block 0: the value h;
- row blocks 1..K: the first derivatives ∂h/∂X_k along the K input columns (spatial axes,
  then t when the problem has time);
- row block K + 1: the spatial Laplacian Δh = Σ_{i < d} ∂²h/∂x_i² (d = ``space_dim``; the
  time column has first derivatives only, which is all the heat equation needs).

Propagation rules (exact, no truncation):

- linear map z = W h + b: every block is multiplied by Wᵀ, and b is added to the value
  block only. Because the blocks are stacked, this is a *single* matmul over (K + 2)·N rows;
- elementwise σ: (z, ∂z, Δz) ↦ (σ(z), σ′(z) ∂z, σ′(z) Δz + σ″(z) Σ_{i<d} (∂_i z)²);
- product of two jets a·b: (ab, a ∂b + b ∂a, a Δb + b Δa + 2 Σ_{i<d} ∂_i a ∂_i b);
- sums, concatenations and fixed elementwise scalings act blockwise.

The backward pass through a jet computation is an ordinary first-order backward, so the
whole loss is differentiable with respect to the parameters, and `torch.compile` can trace
it (unlike double backward).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .activations import Activation


class Jet:
    """Stacked (value, ∂_1..∂_K, Δ) of a feature; see the module docstring."""

    __slots__ = ("data", "space_dim")

    def __init__(self, data: Tensor, space_dim: int) -> None:
        self.data = data  # (K + 2, N, W)
        self.space_dim = space_dim

    # ---------------------------------------------------------------- construction
    @classmethod
    def input(cls, x: Tensor, space_dim: int, scale: Tensor | None = None,
              shift: Tensor | None = None) -> Jet:
        """The jet of the (affinely scaled) input columns X̃ = X·scale + shift."""
        n, k = x.shape
        value = x if scale is None else x * scale + shift
        eye = torch.eye(k, dtype=x.dtype, device=x.device)
        if scale is not None:
            eye = eye * scale.reshape(1, k)
        grads = eye.reshape(k, 1, k).expand(k, n, k)
        lap = torch.zeros(1, n, k, dtype=x.dtype, device=x.device)
        return cls(torch.cat([value.unsqueeze(0), grads, lap], 0), space_dim)

    @property
    def value(self) -> Tensor:
        return self.data[0]

    @property
    def grads(self) -> Tensor:
        """(K, N, W): derivatives along every input column."""
        return self.data[1:-1]

    @property
    def laplacian(self) -> Tensor:
        return self.data[-1]

    def _with(self, data: Tensor) -> Jet:
        return Jet(data, self.space_dim)

    # ---------------------------------------------------------------- operations
    def linear(self, weight: Tensor, bias: Tensor | None = None) -> Jet:
        """z = W h + b on every block (bias on the value block only): one matmul."""
        out = self.data @ weight.transpose(0, 1)
        if bias is not None:
            out[0] += bias  # in place on the fresh matmul output (its backward keeps inputs)
        return self._with(out)

    def scale(self, factor: Tensor | float) -> Jet:
        """Multiply by a constant (scalar or per-feature vector): linear, blockwise."""
        return self._with(self.data * factor)

    def shift(self, offset: Tensor | float) -> Jet:
        """Add a constant to the value block."""
        return self._with(torch.cat([(self.data[0] + offset).unsqueeze(0), self.data[1:]], 0))

    def elementwise(self, value: Tensor, d1: Tensor, d2: Tensor) -> Jet:
        """Apply σ given σ(z), σ′(z), σ″(z) evaluated at the value block."""
        g = self.grads
        sd = self.space_dim
        sq = (g[:sd] * g[:sd]).sum(0)
        lap = d1 * self.laplacian + d2 * sq
        return self._with(torch.cat([value.unsqueeze(0), d1 * g, lap.unsqueeze(0)], 0))

    def activation(self, act: Activation) -> Jet:
        return self.elementwise(*act.derivatives(self.value))

    def sin(self) -> Jet:
        s, c = torch.sin(self.value), torch.cos(self.value)
        return self.elementwise(s, c, -s)

    def cos(self) -> Jet:
        s, c = torch.sin(self.value), torch.cos(self.value)
        return self.elementwise(c, -s, -c)

    def __add__(self, other: Jet) -> Jet:
        return self._with(self.data + other.data)

    def __mul__(self, other: Jet) -> Jet:
        """Product rule (a b, a ∂b + b ∂a, a Δb + b Δa + 2 ∇a·∇b)."""
        a, b = self.data, other.data
        va, vb = a[0], b[0]
        sd = self.space_dim
        grads = va * b[1:-1] + vb * a[1:-1]
        cross = 2.0 * (a[1 : 1 + sd] * b[1 : 1 + sd]).sum(0)
        lap = va * b[-1] + vb * a[-1] + cross
        return self._with(torch.cat([(va * vb).unsqueeze(0), grads, lap.unsqueeze(0)], 0))

    def select(self, columns: slice) -> Jet:
        """A subset of the features (e.g. the spatial input columns)."""
        return self._with(self.data[..., columns])

    @staticmethod
    def cat(jets: Sequence[Jet]) -> Jet:
        """Concatenate features (last axis)."""
        return Jet(torch.cat([j.data for j in jets], -1), jets[0].space_dim)

    @staticmethod
    def sum(jets: Sequence[Jet]) -> Jet:
        data = jets[0].data
        for j in jets[1:]:
            data = data + j.data
        return Jet(data, jets[0].space_dim)
