"""Helpers shared by the test modules: the problem library's path, a small 1D problem, and
small networks with the forward-engine/autograd comparison. Test modules import from here,
never from each other."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from mscalepde.architectures import build_model, validate_model_section
from mscalepde.calculus.derivatives import derivatives
from mscalepde.training.callbacks import Callback
from mscalepde.training.signals import StopRequest

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "problems"

POISSON1D = {
    "name": "p1",
    "pde": "poisson",
    "domain": {"box": [[0, 1]]},
    "exact": "sin(pi*x)",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
    "model": {"arch": "mlp", "width": 16, "depth": 2},
    "train": {
        "steps": 30,
        "lr": 1e-2,
        "points": {"interior": 64, "boundary": 2},
        "log_every": 10,
        "checkpoint_every": 10,
    },
    "diagnostics": {"every": 0},
}

DIMS = [(1, False), (2, False), (3, False), (1, True), (2, True)]

SMALL = {
    "mlp": {"width": 12, "depth": 3},
    "mscale": {"width": 12, "depth": 2, "scales": [1, 2, 4]},
    "fourier": {"width": 12, "depth": 2, "features": 6, "sigma": 2.0},
    "mff": {"width": 12, "depth": 2, "features": 6, "sigmas": [1.0, 3.0]},
    "stmff": {"width": 12, "depth": 2, "features": 6, "sigmas_x": [1.0, 3.0], "sigmas_t": [1.0]},
    "siren": {"width": 12, "depth": 2},
}


def small_model(arch, space_dim, has_time, **extra):
    spec = validate_model_section({"arch": arch, **SMALL.get(arch, {}), **extra})
    bounds = [(-1.0, 2.0), (0.0, 1.0), (0.5, 1.5)][:space_dim] + ([(0.0, 2.0)] if has_time else [])
    torch.manual_seed(0)
    return build_model(spec, space_dim=space_dim, has_time=has_time, bounds=bounds).double()


def compare_engines(model, space_dim, has_time, tol=1e-10, *, on=None, n=40):
    """Forward engine against autograd, value, derivatives and parameter gradients.

    With ``on`` (a device) the forward engine runs on a copy of the model there, and its
    results are compared with autograd on the model's own device."""
    test = model if on is None else copy.deepcopy(model).to(on)
    torch.manual_seed(1)
    x = torch.rand(n, space_dim + has_time, dtype=torch.float64) + 0.1
    kw = dict(space_dim=space_dim, grad=True, ut=has_time, lap=True)
    ref = derivatives(model, x, engine="autograd", **kw)
    fwd = derivatives(test, x if on is None else x.to(on), engine="forward", **kw)
    for name in ("u", "grad", "ut", "lap"):
        a, b = getattr(ref, name), getattr(fwd, name)
        if a is None:
            assert b is None
            continue
        if on is not None:
            assert b.device.type == torch.device(on).type
        a, b = a.detach(), b.detach().to(a.device)
        assert float((a - b).abs().max() / a.abs().max().clamp_min(1e-12)) < tol, name
    params = [p for p in model.parameters() if p.requires_grad]
    params_b = [p for p in test.parameters() if p.requires_grad]
    loss_a = ref.lap.square().mean() + ref.grad.square().mean() + ref.u.square().mean()
    loss_b = fwd.lap.square().mean() + fwd.grad.square().mean() + fwd.u.square().mean()
    ga = torch.autograd.grad(loss_a, params, allow_unused=True)
    gb = torch.autograd.grad(loss_b, params_b, allow_unused=True)
    for p, a, b in zip(params, ga, gb):
        if a is None or b is None:
            assert (a is None or a.abs().max() == 0) and (b is None or b.abs().max() == 0)
            continue
        scale = a.abs().max().clamp_min(1e-12)
        assert float((a - b.to(a.device)).abs().max() / scale) < tol, p.shape


class StopAt(Callback):
    """Sets the stop request after step ``at`` (as a signal handler would): the way tests
    interrupt a run to resume it."""

    def __init__(self, at: int, request: StopRequest) -> None:
        self.at, self.request = at, request

    def on_step(self, trainer, step):
        if step == self.at:
            self.request.set("SIGTERM")
