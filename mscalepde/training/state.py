"""Checks of a saved training state (a checkpoint's ``trainer`` part) before it is used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def check_position(state: Mapping[str, Any]) -> None:
    """Check the parts of a checkpoint that :meth:`Trainer._restore_position` applies when
    training starts (the RNG state, the points' seed, the phase clock and counters), so that
    a malformed checkpoint is refused while it is loaded, as one ``ValueError`` or
    ``TypeError`` line, rather than failing later outside the caller's guard."""
    rng = state["rng"]
    if not isinstance(rng, Mapping) or not isinstance(rng.get("torch"), torch.Tensor):
        raise TypeError("the checkpoint's RNG state is not a tensor")
    torch.Generator().set_state(rng["torch"])  # raises on a state of the wrong size or type
    for cuda_state in rng.get("cuda", []):
        if not isinstance(cuda_state, torch.Tensor) or cuda_state.dtype != torch.uint8:
            raise TypeError("the checkpoint's CUDA RNG state is not a byte tensor")
    int(state["points_seed"]), float(state["phase_t0"]), int(state["phase_k"])
    bool(state["phase_ended"]), getattr(torch, str(state["dtype"]))
    best, since = state["lbfgs_counter"]
    float(best), int(since)
