"""Common base of every architecture: input layout, input normalisation, option schema.

A network maps inputs X of shape (N, D) to u of shape (N, 1). The columns of X are the
spatial coordinates in the order x, y, z (as many as the problem has), followed by t for
time-dependent problems: D = space_dim + has_time.

Input normalisation (option ``normalize``): when on, each input column is mapped affinely
from its interval [lo, hi] to [−1, 1], X̃ = 2 (X − lo)/(hi − lo) − 1, before the first
layer. The map is linear, so it changes frequencies by the factor 2/(hi − lo): a Fourier
feature cos(2π b X̃) of a normalised input oscillates with angular wavenumber
2π b · 2/(hi − lo) in the physical variable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..activations import ACTIVATIONS
from ..jet import Jet, JetSpec
from ..schema import Option, bool_option, choice_option, int_option


class Architecture(nn.Module):
    """Base class: subclasses set ``name`` and ``options`` and implement ``forward``."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}

    def __init__(
        self,
        *,
        space_dim: int,
        has_time: bool,
        bounds: Sequence[tuple[float, float]],
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.space_dim = int(space_dim)
        self.has_time = bool(has_time)
        self.in_dim = self.space_dim + int(self.has_time)
        if len(bounds) != self.in_dim:
            raise ValueError(f"expected {self.in_dim} input intervals, got {len(bounds)}")
        lo = torch.tensor([b[0] for b in bounds], dtype=torch.float64)  # cast below
        hi = torch.tensor([b[1] for b in bounds], dtype=torch.float64)
        self.normalize = bool(normalize)
        if self.normalize:
            scale = 2.0 / (hi - lo)
            shift = -1.0 - lo * scale
        else:
            scale = torch.ones_like(lo)
            shift = torch.zeros_like(lo)
        # Buffers: saved with the model and moved with .to(dtype/device).
        dtype = torch.get_default_dtype()  # like the parameters; .to(dtype) moves both
        self.register_buffer("input_scale", scale.to(dtype))
        self.register_buffer("input_shift", shift.to(dtype))

    def scale_inputs(self, x: Tensor) -> Tensor:
        """X̃ = X·scale + shift (identity when ``normalize`` is off)."""
        if not self.normalize:
            return x
        return x * self.input_scale + self.input_shift

    def input_jet(self, x: Tensor, spec: JetSpec) -> Jet:
        """The forward-Laplacian jet (streams chosen by ``spec``) of the normalised inputs."""
        if not self.normalize:
            return Jet.input(x, spec)
        return Jet.input(x, spec, self.input_scale, self.input_shift)

    def parameter_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def common_options(normalize: bool = True, activation: str = "tanh") -> dict[str, Option]:
    """Options shared by the trunk-based architectures: width, depth, activation, normalize."""
    return {
        "width": Option(int_option(1, 100_000), 100, "neurons per hidden layer"),
        "depth": Option(int_option(1, 1000), 4, "hidden layers"),
        "activation": Option(choice_option(*ACTIVATIONS), activation, "hidden activation"),
        "normalize": Option(bool_option(), normalize, "map each input axis to [-1, 1]"),
    }

