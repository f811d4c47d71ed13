"""The forward-Laplacian engine agrees with the autograd reference (float64).

For every registered architecture, activation, dimension, with and without time: value,
gradient, u_t, Laplacian and the parameter gradients of a loss built from them agree to a
relative 1e-10.
"""

from __future__ import annotations

import pytest
import torch

from mscalepde.activations import ACTIVATIONS
from mscalepde.architectures import ARCHITECTURES, build_model, validate_model_section
from mscalepde.derivatives import derivatives, engine_for

SMALL = {
    "mlp": {"width": 12, "depth": 3},
    "mscale": {"width": 12, "depth": 2, "scales": [1, 2, 4]},
    "fourier": {"width": 12, "depth": 2, "features": 6, "sigma": 2.0},
    "mff": {"width": 12, "depth": 2, "features": 6, "sigmas": [1.0, 3.0]},
    "stmff": {"width": 12, "depth": 2, "features": 6, "sigmas_x": [1.0, 3.0], "sigmas_t": [1.0]},
    "siren": {"width": 12, "depth": 2},
}
DIMS = [(1, False), (2, False), (3, False), (1, True), (2, True)]


def _model(arch, space_dim, has_time, **extra):
    spec = validate_model_section({"arch": arch, **SMALL.get(arch, {}), **extra})
    bounds = [(-1.0, 2.0), (0.0, 1.0), (0.5, 1.5)][:space_dim] + ([(0.0, 2.0)] if has_time else [])
    torch.manual_seed(0)
    return build_model(spec, space_dim=space_dim, has_time=has_time, bounds=bounds).double()


def _compare(model, space_dim, has_time, tol=1e-10):
    torch.manual_seed(1)
    x = torch.rand(40, space_dim + has_time, dtype=torch.float64) + 0.1
    kw = dict(space_dim=space_dim, grad=True, ut=has_time, lap=True)
    ref = derivatives(model, x, engine="autograd", **kw)
    fwd = derivatives(model, x, engine="forward", **kw)
    for name in ("u", "grad", "ut", "lap"):
        a, b = getattr(ref, name), getattr(fwd, name)
        if a is None:
            assert b is None
            continue
        scale = a.abs().max().clamp_min(1e-12)
        assert float((a - b).abs().max().detach() / scale) < tol, name
    params = [p for p in model.parameters() if p.requires_grad]
    loss_a = ref.lap.square().mean() + ref.grad.square().mean() + ref.u.square().mean()
    loss_b = fwd.lap.square().mean() + fwd.grad.square().mean() + fwd.u.square().mean()
    ga = torch.autograd.grad(loss_a, params, allow_unused=True)
    gb = torch.autograd.grad(loss_b, params, allow_unused=True)
    for p, a, b in zip(params, ga, gb):
        if a is None or b is None:
            assert (a is None or a.abs().max() == 0) and (b is None or b.abs().max() == 0)
            continue
        scale = a.abs().max().clamp_min(1e-12)
        assert float((a - b).abs().max() / scale) < tol, p.shape


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("dims", DIMS, ids=lambda d: f"{d[0]}d{'t' if d[1] else ''}")
def test_forward_laplacian_matches_autograd(arch, dims):
    space_dim, has_time = dims
    if arch == "stmff" and not has_time:
        pytest.skip("stmff needs time")
    model = _model(arch, space_dim, has_time)
    assert engine_for(model) == "forward", f"{arch} has no jet: the engine would fall back"
    _compare(model, space_dim, has_time)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_in_the_jet(activation):
    for space_dim, has_time in [(2, False), (1, True)]:
        _compare(_model("mlp", space_dim, has_time, activation=activation), space_dim, has_time)


def test_unnormalised_inputs_and_residual_connections():
    _compare(_model("mlp", 2, False, normalize=False), 2, False)
    if "residual" in ARCHITECTURES["mscale"].options:
        _compare(_model("mscale", 2, True, residual=True), 2, True)


def test_plain_callables_fall_back_to_autograd():
    def field(x):
        return torch.sin(x).sum(1)

    assert engine_for(field) == "autograd"
    with pytest.raises(ValueError, match="no forward-Laplacian jet"):
        engine_for(field, "forward")
    x = torch.rand(5, 2, dtype=torch.float64)
    d = derivatives(field, x, space_dim=2, lap=True)
    torch.testing.assert_close(d.lap, -torch.sin(x).sum(1))
