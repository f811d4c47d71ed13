"""Time windows (``train.time_windows``): which problems may march in time, and where.

A heat problem on [t0, t1] with ``time_windows: K`` is trained as K problems on the equal
windows [t_k, t_{k+1}], t_k = t0 + k (t1 − t0)/K, one after the other: window k's
initial condition is window k − 1's network at t_k (window 0's is the problem's own), and
its network starts from window k − 1's weights. This is the time-marching strategy of
causal PINN training (Wang, Sankaran & Perdikaris 2024, "Respecting causality for training
physics-informed neural networks", CMAME 421; the jaxpi examples): one network cannot
follow a long horizon (PINNacle's Heat 2d-LT, 100 time units, defeats every method
published there), K short ones can. The training side is :mod:`mscalepde.run.windows`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mscalepde.architectures import is_auto
from mscalepde.errors import SchemaError
from mscalepde.geometry.box import Domain


def window_edges(time: tuple[float, float], count: int) -> list[float]:
    """t_0 < t_1 < … < t_K: K equal windows of [t0, t1] (the ends exact)."""
    t0, t1 = time
    return [t0] + [t0 + (t1 - t0) * k / count for k in range(1, count)] + [t1]


def check_time_windows(
    pde: str, domain: Domain, model: Mapping[str, Any], train: dict[str, Any]
) -> None:
    """Refuse (one line) what cannot march in time; a ``{length: L}`` becomes its count
    K = (t1 − t0)/L in ``train`` (L must divide the span)."""
    key = "train.time_windows"
    windows = train["time_windows"]
    if isinstance(windows, Mapping):
        if pde != "heat" or domain.time is None:
            raise SchemaError(key, f"march in time: only heat problems have windows, not {pde}")
        span, length = domain.time[1] - domain.time[0], float(windows["length"])
        count = round(span / length)
        if count < 1 or abs(count * length - span) > 1e-9 * span or count > 1000:
            raise SchemaError(
                f"{key}.length", f"{length:g} does not divide the time span {span:g} into 1 to "
                f"1000 equal windows ({span / length:.4g} of them)"
            )
        train["time_windows"] = windows = count  # type: ignore[index]
    if int(windows) <= 1:
        return
    if pde != "heat" or domain.time is None:
        raise SchemaError(key, f"march in time: only heat problems have windows, not {pde}")
    if is_auto(model) or model.get("adapt"):
        raise SchemaError(
            key, "not with model auto or adapt (they choose frequencies for one network over "
            "the whole horizon); give the network's frequencies"
        )
    if train.get("loss") == "ritz":
        raise SchemaError(key, "not with loss: ritz (an energy has no time direction)")
