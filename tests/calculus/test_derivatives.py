"""The forward-Laplacian engine agrees with the autograd reference (float64).

For every registered architecture, activation, dimension, with and without time: value,
gradient, u_t, Laplacian and the parameter gradients of a loss built from them agree to a
relative 1e-10.
"""

from __future__ import annotations

import pytest
import torch

from mscalepde.architectures import ARCHITECTURES
from mscalepde.calculus.activations import ACTIVATIONS
from mscalepde.calculus.derivatives import derivatives, engine_for
from mscalepde.calculus.jet import JetSpec, Operator
from tests.helpers import DIMS, compare_engines, small_model


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("dims", DIMS, ids=lambda d: f"{d[0]}d{'t' if d[1] else ''}")
def test_forward_laplacian_matches_autograd(arch, dims):
    space_dim, has_time = dims
    if arch == "stmff" and not has_time:
        pytest.skip("stmff needs time")
    model = small_model(arch, space_dim, has_time)
    assert engine_for(model) == "forward", f"{arch} has no jet: the engine would fall back"
    compare_engines(model, space_dim, has_time)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_in_the_jet(activation):
    for space_dim, has_time in [(2, False), (1, True)]:
        compare_engines(small_model("mlp", space_dim, has_time, activation=activation), space_dim,
        has_time)


def test_unnormalised_inputs_and_residual_connections():
    compare_engines(small_model("mlp", 2, False, normalize=False), 2, False)
    if "residual" in ARCHITECTURES["mscale"].options:
        compare_engines(small_model("mscale", 2, True, residual=True), 2, True)


def test_plain_callables_fall_back_to_autograd():
    def field(x):
        return torch.sin(x).sum(1)

    assert engine_for(field) == "autograd"
    with pytest.raises(ValueError, match="no forward-Laplacian jet"):
        engine_for(field, "forward")
    x = torch.rand(5, 2, dtype=torch.float64)
    d = derivatives(field, x, space_dim=2, lap=True)
    torch.testing.assert_close(d.lap, -torch.sin(x).sum(1))


def _compare_operator(model, space_dim, has_time, operator, tol=1e-10):
    """L u (one forward stream) against the autograd reference, value and parameter grads."""
    torch.manual_seed(2)
    x = torch.rand(30, space_dim + has_time, dtype=torch.float64) + 0.1
    kw = dict(space_dim=space_dim, operator=operator)
    ref = derivatives(model, x, engine="autograd", **kw)
    fwd = derivatives(model, x, engine="forward", **kw)
    scale = ref.op.detach().abs().max()
    assert float((ref.op - fwd.op).abs().max().detach() / scale) < tol
    params = [p for p in model.parameters() if p.requires_grad]
    ga = torch.autograd.grad(ref.op.square().mean(), params, allow_unused=True)
    gb = torch.autograd.grad(fwd.op.square().mean(), params, allow_unused=True)
    for a, b in zip(ga, gb):
        if a is None or b is None:
            continue
        assert float(((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).detach()) < tol


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_heat_and_advection_operators_as_one_stream(arch):
    # heat: ∂_t − κΔ; advection–diffusion: 0.3 ∂_x − 1.7 ∂_y + 2 ∂_t + 0.5 Δ
    model = small_model(arch, 2, True)
    _compare_operator(model, 2, True, Operator((0.0, 0.0, 1.0), -0.25))
    _compare_operator(model, 2, True, Operator((0.3, -1.7, 2.0), 0.5))
    if arch != "stmff":
        model = small_model(arch, 3, False)
        _compare_operator(model, 3, False, Operator((0.0, 2.0, 0.0), -1.0))


def test_the_jet_carries_only_the_streams_asked_for():
    model = small_model("mlp", 2, True)
    x = torch.rand(7, 3, dtype=torch.float64)
    ut_only = model.jet(x, JetSpec(2, False, (Operator.partial(3, 2),)))
    assert ut_only.grads == () and len(ut_only.ops) == 1
    ref = derivatives(model, x, space_dim=2, ut=True, engine="autograd")
    torch.testing.assert_close(ut_only.operator(0)[:, 0], ref.ut)
    heat = JetSpec(2, False, (Operator((0.0, 0.0, 1.0), -0.5),))
    assert heat.needs_grads and len(model.jet(x, heat).grads) == 2
    # the heat operator is one stream: value, ∂_x, ∂_y, L  (4, not value, ∂x, ∂y, ∂t, Δ)
    d = derivatives(model, x, space_dim=2, operator=heat.operators[0], engine="forward")
    assert d.grad is None and d.ut is None and d.lap is None and d.op is not None


def test_bad_derivative_requests_are_refused():
    model = small_model("mlp", 2, False)
    x = torch.rand(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="no time column"):
        derivatives(model, x, space_dim=2, ut=True)
    with pytest.raises(ValueError, match="coefficients"):
        derivatives(model, x, space_dim=2, operator=Operator((1.0,), 0.0))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_anisotropic_operator_and_second_derivative_streams(arch):
    """A diagonal second-order part (−Σ_i κ_i ∂_ii, one stream) and the per-axis ∂_ii
    streams agree with autograd, values and parameter gradients."""
    for space_dim, has_time in [(2, False), (3, False), (2, True)]:
        if arch == "stmff" and not has_time:
            continue
        model = small_model(arch, space_dim, has_time)
        first = (0.0,) * space_dim + ((1.0,) if has_time else ())
        weights = tuple(-(10.0**-i) for i in range(space_dim))  # 1, 0.1, 0.01 apart
        _compare_operator(model, space_dim, has_time, Operator(first, 0.0, weights))
        torch.manual_seed(4)
        x = torch.rand(25, space_dim + has_time, dtype=torch.float64)
        kw = dict(space_dim=space_dim, grad=True, second=True, lap=True, ut=has_time)
        ref = derivatives(model, x, engine="autograd", **kw)
        fwd = derivatives(model, x, engine="forward", **kw)
        assert fwd.second.shape == (25, space_dim)
        for a, b in ((ref.second, fwd.second), (ref.lap, fwd.lap)):
            assert float(((a - b).abs().max() / a.abs().max()).detach()) < 1e-10
        torch.testing.assert_close(fwd.second.sum(1), fwd.lap, rtol=1e-10, atol=1e-12)
        params = [p for p in model.parameters() if p.requires_grad]
        ga = torch.autograd.grad(ref.second.square().sum(), params, allow_unused=True)
        gb = torch.autograd.grad(fwd.second.square().sum(), params, allow_unused=True)
        for a, b in zip(ga, gb):
            if a is not None and b is not None:
                ratio = (a - b).abs().max() / a.abs().max().clamp_min(1e-12)
                assert float(ratio.detach()) < 1e-10


def test_operator_rejects_both_laplacian_and_diagonal():
    with pytest.raises(ValueError, match="not both"):
        Operator((0.0,), 1.0, (1.0,))
    with pytest.raises(ValueError, match="second-order weights"):
        derivatives(
            torch.sin, torch.rand(3, 2), space_dim=2, operator=Operator((0.0, 0.0), 0.0, (1.0,))
        )


def test_constant_coefficient_stream_counts_are_unchanged():
    """Poisson −Δ and heat ∂_t − κΔ (constant a, no reaction) stay one operator stream; an
    anisotropic constant a is also one stream; only a variable a adds streams."""
    from mscalepde import problem_from_dict

    def plan(**extra):
        data = {
            "pde": "poisson",
            "domain": {"box": [[0, 1], [0, 1]]},
            "exact": "x*y",
            "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
            **extra,
        }
        return problem_from_dict(data).operator.plan()

    assert plan() == (False, False, False, False, Operator((0.0, 0.0), -1.0))
    assert plan(diffusivity=[1, 0.01]).operator == Operator((0.0, 0.0), 0.0, (-1.0, -0.01))
    assert plan(reaction="u**3").operator == Operator((0.0, 0.0), -1.0)
    p = plan(diffusivity="1 + x")
    assert p.operator is None and p.grad and p.lap and not p.second
    p = plan(diffusivity=["1 + x", 2])
    assert p.operator is None and p.grad and p.second and not p.lap


LEVEL_SETS = {1: ["x - 0.7"], 2: ["x**2 + y - 1.2", "sin(3*x)*y - 0.1"], 3: ["x*y*z - 0.3"]}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_interface_features_in_the_jet(arch):
    """Cusp-capturing inputs |φ_j(x)| (model.interface): the forward engine (∇|φ| =
    sign φ ∇φ, L|φ| = sign φ Lφ from autograd on the level set) agrees with autograd through
    the network, for the value, ∇, Δ, u_t, operator streams, per-axis ∂_ii and the
    parameter gradients."""
    for space_dim, has_time in [(1, False), (2, False), (3, False), (2, True)]:
        if arch == "stmff" and not has_time:
            continue
        model = small_model(arch, space_dim, has_time, interface=LEVEL_SETS[space_dim])
        assert model.feature_dim == space_dim + has_time + len(LEVEL_SETS[space_dim])
        compare_engines(model, space_dim, has_time)
        first = (0.0,) * space_dim + ((1.0,) if has_time else ())
        weights = tuple(-(10.0**-i) for i in range(space_dim))
        _compare_operator(model, space_dim, has_time, Operator(first, 0.0, weights))
        _compare_operator(model, space_dim, has_time, Operator(first, -0.5))
        x = torch.rand(20, space_dim + has_time, dtype=torch.float64)
        kw = dict(space_dim=space_dim, second=True)
        ref = derivatives(model, x, engine="autograd", **kw).second
        fwd = derivatives(model, x, engine="forward", **kw).second
    assert float(((ref - fwd).abs().max() / ref.abs().max()).detach()) < 1e-10


def test_interface_features_carry_the_kink():
    """With φ = x − 0.5 the network's x-derivative jumps across x = 0.5 (one-sided
    differences differ at O(1)); without the feature it is continuous (they agree to O(h))."""
    h = 1e-6
    x = torch.tensor([[0.5 - h, 0.3], [0.5, 0.3], [0.5 + h, 0.3]], dtype=torch.float64)
    jumps = {}
    for interface in ([], ["x - 0.5"]):
        model = small_model("mlp", 2, False, interface=interface, activation="tanh")
        with torch.no_grad():
            u = model(x)[:, 0]
        left, right = (u[1] - u[0]) / h, (u[2] - u[1]) / h
        jumps[bool(interface)] = float((right - left).abs())
    assert jumps[False] < 1e-4
    assert jumps[True] > 1e-2
