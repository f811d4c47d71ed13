"""Architectures: shapes, scale grouping, frozen/trainable Fourier matrices, state-dict
round trips, option validation and second derivatives."""

from __future__ import annotations

import io
import math

import pytest
import torch

from mscalepde.architectures import ARCHITECTURES, build_model, validate_model_section
from mscalepde.architectures.mlp import MLP
from mscalepde.architectures.mscale import ScaledActivation
from mscalepde.calculus.activations import get_activation
from mscalepde.calculus.derivatives import derivatives
from mscalepde.errors import SchemaError

# Small versions of every architecture, so that the whole file runs in seconds.
SMALL = {
    "mlp": {"arch": "mlp", "width": 8, "depth": 2},
    "mscale1": {"arch": "mscale", "variant": 1, "width": 12, "depth": 2,
                "scales": {"kind": "pow2", "n": 3}},
    "mscale2": {"arch": "mscale", "variant": 2, "width": 6, "depth": 2,
                "scales": [1, 2, 4], "residual": True},
    "fourier": {"arch": "fourier", "features": 8, "width": 8, "depth": 2, "sigma": 2},
    "mff": {"arch": "mff", "sigmas": [1, 3, 5], "features": 8, "width": 8, "depth": 2},
    "stmff": {"arch": "stmff", "sigmas_x": [1, 4], "sigmas_t": [1, 2], "features": 8,
              "width": 8, "depth": 2},
    "siren": {"arch": "siren", "width": 8, "depth": 2},
}
FOURIER = ("fourier", "mff", "stmff")


def make(name_or_spec, space_dim=1, has_time=False, seed=0, dtype=torch.float64, **extra):
    spec = dict(SMALL[name_or_spec]) if isinstance(name_or_spec, str) else dict(name_or_spec)
    spec.update(extra)
    clean = validate_model_section(spec)
    torch.manual_seed(seed)
    bounds = [(0.0, 1.0 + i) for i in range(space_dim)] + ([(0.0, 2.0)] if has_time else [])
    model = build_model(clean, space_dim=space_dim, has_time=has_time, bounds=bounds)
    return model.to(dtype)


def points(n, dim, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, dim, generator=g, dtype=dtype)


def test_every_registered_architecture_is_covered():
    assert set(ARCHITECTURES) == {"mlp", "mscale", "fourier", "mff", "stmff", "siren"}
    for name, cls in ARCHITECTURES.items():
        assert cls.name == name
        assert "normalize" in cls.options
        assert cls.__doc__ and cls.__module__
        assert cls.options is ARCHITECTURES.options(name)


def test_schema_activation_names_match_the_implementations():
    from mscalepde.architectures.options import ACTIVATION_NAMES
    from mscalepde.calculus.activations import ACTIVATIONS

    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


SHAPE_CASES = [
    (name, space_dim, has_time)
    for name in SMALL
    for space_dim in (1, 2, 3)
    for has_time in (False, True)
    if has_time or name != "stmff"  # stmff needs time: refused below
]


@pytest.mark.parametrize(("name", "space_dim", "has_time"), SHAPE_CASES)
def test_output_shape(name, space_dim, has_time):
    model = make(name, space_dim, has_time)
    x = points(7, space_dim + has_time)
    u = model(x)
    assert u.shape == (7, 1)
    assert torch.isfinite(u).all()


def test_default_specs_build_and_run():
    for name in ARCHITECTURES:
        model = make({"arch": name}, space_dim=1, has_time=True, dtype=torch.float32)
        assert model(points(3, 2, dtype=torch.float32)).shape == (3, 1)


def test_stmff_refuses_problems_without_time():
    with pytest.raises(SchemaError) as err:
        make("stmff", space_dim=2, has_time=False)
    assert err.value.key == "model.arch"
    assert "time" in str(err.value)


def test_normalize_defaults():
    assert validate_model_section({"arch": "fourier"})["normalize"] is False
    assert validate_model_section({"arch": "mff"})["normalize"] is False
    assert validate_model_section({"arch": "stmff"})["normalize"] is False
    assert validate_model_section({"arch": "siren"})["normalize"] is True
    assert validate_model_section({"arch": "mscale"})["normalize"] is True


# ---------------------------------------------------------------- MscaleDNN


def test_scales_forms():
    pow2 = validate_model_section({"arch": "mscale", "scales": {"kind": "pow2", "n": 4}})
    lin = validate_model_section({"arch": "mscale", "scales": {"kind": "linear", "n": 4}})
    lst = validate_model_section({"arch": "mscale", "scales": [1, 3, 9.5]})
    assert pow2["scales"] == [1.0, 2.0, 4.0, 8.0]
    assert lin["scales"] == [1.0, 2.0, 3.0, 4.0]
    assert lst["scales"] == [1.0, 3.0, 9.5]
    assert validate_model_section({"arch": "mscale"})["scales"] == [1, 2, 4, 8, 16, 32]


def test_variant1_grouping_with_remainder_in_last_group():
    model = make({"arch": "mscale", "variant": 1, "width": 10, "depth": 2,
                  "scales": [1, 2, 4], "activation": "tanh"})
    expected = torch.tensor([1, 1, 1, 2, 2, 2, 4, 4, 4, 4], dtype=torch.float64)
    assert torch.equal(model.scale_vector, expected)
    assert model.group_sizes == [3, 3, 4]
    assert [(a, s.start, s.stop) for a, s in model.neuron_groups()] == [
        (1.0, 0, 3), (2.0, 3, 6), (4.0, 6, 10)]
    # the first hidden layer is σ(K ⊙ (W x + b)), neuron by neuron
    x = points(5, 1)
    z = model.first(model.scale_inputs(x))
    assert torch.allclose(model.first_activation(z), torch.tanh(expected * z))
    assert "first_activation.scale" in model.state_dict()


def test_variant1_even_split():
    model = make({"arch": "mscale", "variant": 1, "width": 12,
                  "scales": {"kind": "linear", "n": 4}})
    assert model.group_sizes == [3, 3, 3, 3]
    assert model.scale_vector.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def test_variant1_refuses_fewer_neurons_than_scales():
    with pytest.raises(SchemaError) as err:
        make({"arch": "mscale", "variant": 1, "width": 3, "scales": [1, 2, 4, 8]})
    assert err.value.key == "model.width"


def test_variant1_with_unit_scales_is_an_mlp():
    spec = {"arch": "mscale", "variant": 1, "width": 12, "depth": 3,
            "scales": [1, 1, 1], "activation": "tanh"}
    ms = make(spec, space_dim=2, has_time=True)
    torch.manual_seed(5)
    mlp = MLP(space_dim=2, has_time=True, bounds=[(0.0, 1.0), (0.0, 2.0), (0.0, 2.0)],
              width=12, depth=3, activation="tanh").to(torch.float64)
    with torch.no_grad():
        pairs = [(mlp.trunk.linears[0], ms.first)]
        pairs += list(zip(mlp.trunk.linears[1:], ms.trunk.linears, strict=True))
        pairs += [(mlp.head, ms.head)]
        for dst, src in pairs:
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    x = points(20, 3)
    assert torch.equal(ms(x), mlp(x))


def test_variant2_grouping_and_scaled_inputs():
    model = make({"arch": "mscale", "variant": 2, "width": 5, "depth": 2,
                  "scales": [1, 2, 8], "activation": "sin"})
    assert model.scale_vector.tolist() == [1] * 5 + [2] * 5 + [8] * 5
    assert [(a, s.start, s.stop) for a, s in model.neuron_groups()] == [
        (1.0, 0, 5), (2.0, 5, 10), (8.0, 10, 15)]
    assert len(model.subnets) == 3
    assert all(t.linears[0].out_features == 5 for t in model.subnets)  # width per subnetwork
    x = points(9, 1)
    xs = model.scale_inputs(x)
    parts = [head(trunk(a * xs)) for a, trunk, head in
             zip([1.0, 2.0, 8.0], model.subnets, model.heads, strict=True)]
    assert torch.allclose(model(x), sum(parts))
    # subnetwork i sees a_i x̃: the scale-8 subnetwork at x̃ is the unit one at 8 x̃
    one = make({"arch": "mscale", "variant": 2, "width": 5, "depth": 2, "scales": [1],
                "activation": "sin", "normalize": False})
    eight = make({"arch": "mscale", "variant": 2, "width": 5, "depth": 2, "scales": [8],
                  "activation": "sin", "normalize": False})
    eight.load_state_dict({**one.state_dict(), "scales": eight.scales})
    assert torch.allclose(eight(x), one(8 * x))


def test_scaled_activation_derivatives_match_autograd():
    k = torch.tensor([1.0, 2.0, 32.0], dtype=torch.float64)
    for name in ("tanh", "sin", "s2relu"):
        act = ScaledActivation(get_activation(name), k).to(torch.float64)
        z = (torch.rand(50, 3, dtype=torch.float64) * 0.06).requires_grad_(True)
        s, d1, d2 = act.derivatives(z)
        (g,) = torch.autograd.grad(act(z).sum(), z, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), z)
        assert torch.allclose(s, act(z))
        assert torch.allclose(d1, g)
        assert torch.allclose(d2, h)


# ---------------------------------------------------------------- Fourier features


def fourier_buffers(model):
    return {k: v for k, v in model.state_dict().items() if k.endswith(".B")}


def train_a_few_steps(model, dim, steps=3):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = points(16, dim)
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - 1.0).pow(2).mean()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name", FOURIER)
def test_frozen_fourier_matrices(name):
    model = make(name, space_dim=2, has_time=True)
    buffers = fourier_buffers(model)
    n_emb = {"fourier": 1, "mff": 3, "stmff": 4}[name]
    assert len(buffers) == n_emb
    assert not any(n.endswith(".B") for n, _ in model.named_parameters())
    before = {k: v.clone() for k, v in buffers.items()}
    head_before = model.head.weight.detach().clone()
    train_a_few_steps(model, 3)
    after = fourier_buffers(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head_before, model.head.weight)
    # restored by load_state_dict into a model drawn with another seed
    other = make(name, space_dim=2, has_time=True, seed=123)
    assert not all(torch.equal(before[k], fourier_buffers(other)[k]) for k in before)
    other.load_state_dict(model.state_dict())
    assert all(torch.equal(after[k], fourier_buffers(other)[k]) for k in before)
    x = points(11, 3)
    assert torch.equal(model(x), other(x))


@pytest.mark.parametrize("name", FOURIER)
def test_trainable_fourier_matrices_change(name):
    model = make(name, space_dim=1, has_time=True, trainable=True)
    params = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith(".B")}
    assert len(params) == {"fourier": 1, "mff": 3, "stmff": 4}[name]
    train_a_few_steps(model, 2)
    now = dict(model.named_parameters())
    assert all(not torch.equal(params[n], now[n]) for n in params)
    assert all(n in model.state_dict() for n in params)


def test_fourier_embedding_convention():
    model = make({"arch": "fourier", "features": 1, "sigma": 3.0, "width": 4, "depth": 1})
    b = float(model.embedding.B[0, 0])
    x = points(13, 1)
    feats = model.embedding(model.scale_inputs(x))
    assert torch.allclose(feats[:, 0], torch.cos(2 * math.pi * b * x[:, 0]))
    assert torch.allclose(feats[:, 1], torch.sin(2 * math.pi * b * x[:, 0]))
    big = make({"arch": "fourier", "features": 20000, "sigma": 7.0, "width": 2, "depth": 1})
    assert abs(float(big.embedding.B.std()) - 7.0) < 0.3


def test_mff_shares_one_trunk_and_stmff_merges_by_product():
    mff = make("mff", space_dim=2)
    assert mff.head.in_features == 3 * 8
    x = points(6, 2)
    xs = mff.scale_inputs(x)
    h = torch.cat([mff.trunk(e(xs)) for e in mff.embeddings], dim=-1)
    assert torch.allclose(mff(x), mff.head(h))
    st = make("stmff", space_dim=2, has_time=True)
    assert st.space_embeddings[0].B.shape == (8, 2)
    assert st.time_embeddings[0].B.shape == (8, 1)
    assert st.head.in_features == 2 * 2 * 8
    x = points(6, 3)
    hx = [st.trunk(e(x[:, :2])) for e in st.space_embeddings]
    ht = [st.trunk(e(x[:, 2:])) for e in st.time_embeddings]
    merged = torch.cat([a * b for a in hx for b in ht], dim=-1)
    assert torch.allclose(st(x), st.head(merged))


# ---------------------------------------------------------------- SIREN


def test_siren_initialisation():
    model = make({"arch": "siren", "width": 64, "depth": 3, "omega0": 30, "omega0_hidden": 20},
                 space_dim=2)
    first, hidden = model.linears[0].weight.detach(), model.linears[1].weight.detach()
    head = model.head.weight.detach()
    assert float(first.abs().max()) <= 1 / 2
    assert float(first.abs().max()) > 0.4  # uniform over the whole interval
    bound = math.sqrt(6 / 64) / 20
    assert float(hidden.abs().max()) <= bound
    assert float(hidden.abs().max()) > 0.8 * bound
    assert float(head.abs().max()) <= bound
    assert float(model.activations[0].scale) == 30.0
    assert float(model.activations[1].scale) == 20.0
    x = points(5, 2)
    z = model.linears[0](model.scale_inputs(x))
    assert torch.allclose(model.activations[0](z), torch.sin(30 * z))


# ---------------------------------------------------------------- all architectures


@pytest.mark.parametrize("name", list(SMALL))
def test_state_dict_round_trip_is_bit_identical(name):
    model = make(name, space_dim=2, has_time=True, dtype=torch.float32)
    train_a_few_steps(model.double(), 3)
    model = model.float()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = make(name, space_dim=2, has_time=True, seed=99, dtype=torch.float32)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    x = points(17, 3, dtype=torch.float32)
    assert torch.equal(model(x), fresh(x))


@pytest.mark.parametrize("name", list(SMALL))
def test_laplacian_exists(name):
    has_time = name == "stmff"
    model = make(name, space_dim=2, has_time=has_time)
    x = points(32, 2 + has_time)
    d = derivatives(model, x, space_dim=2, grad=True, lap=True, ut=has_time,
                    create_graph=False)
    assert d.lap is not None and d.lap.shape == (32,)
    assert torch.isfinite(d.lap).all() and torch.isfinite(d.grad).all()
    assert float(d.lap.abs().max()) > 0


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"arch": "mscale", "scales": {"kind": "cube", "n": 3}}, "model.scales.kind"),
        ({"arch": "mscale", "scales": {"kind": "pow2"}}, "model.scales.n"),
        ({"arch": "mscale", "scales": {"kind": "pow2", "n": 0}}, "model.scales.n"),
        ({"arch": "mscale", "scales": {"kind": "pow2", "n": 3, "base": 3}}, "model.scales.base"),
        ({"arch": "mscale", "scales": []}, "model.scales"),
        ({"arch": "mscale", "scales": "pow2"}, "model.scales"),
        ({"arch": "mscale", "scales": [1, -2]}, "model.scales[1]"),
        ({"arch": "mscale", "variant": 3}, "model.variant"),
        ({"arch": "mscale", "variant": True}, "model.variant"),
        ({"arch": "mscale", "residual": "yes"}, "model.residual"),
        ({"arch": "mscale", "activation": "swish"}, "model.activation"),
        ({"arch": "fourier", "sigma": 0}, "model.sigma"),
        ({"arch": "fourier", "features": 0}, "model.features"),
        ({"arch": "fourier", "trainable": 1}, "model.trainable"),
        ({"arch": "fourier", "sigmas": [1, 10]}, "model.sigmas"),
        ({"arch": "mff", "sigmas": []}, "model.sigmas"),
        ({"arch": "mff", "sigmas": [1, "x"]}, "model.sigmas[1]"),
        ({"arch": "mff", "sigma": 10}, "model.sigma"),
        ({"arch": "stmff", "sigmas_t": []}, "model.sigmas_t"),
        ({"arch": "stmff", "sigmas_x": [0]}, "model.sigmas_x[0]"),
        ({"arch": "siren", "omega0": -30}, "model.omega0"),
        ({"arch": "siren", "activation": "tanh"}, "model.activation"),
    ],
)
def test_validation_errors_name_the_option(spec, key):
    with pytest.raises(SchemaError) as err:
        validate_model_section(spec)
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}: ")


def test_the_registry_says_which_architectures_can_grow_as_their_classes_do():
    """One declaration: an architecture grows (model.adapt) iff it is a Growable."""
    from mscalepde.architectures import ADAPTIVE, ARCHITECTURES
    from mscalepde.architectures.growable import Growable, growth_of

    for name in ARCHITECTURES:
        assert issubclass(ARCHITECTURES[name], Growable) == (name in ADAPTIVE), name
    assert set(ADAPTIVE) == {"mff", "stmff", "mscale"}
    spec = validate_model_section({"arch": "mlp", "width": 4, "depth": 1})
    mlp = build_model(spec, space_dim=1, has_time=False, bounds=[(0.0, 1.0)])
    assert growth_of(mlp) == [] and not hasattr(mlp, "grow")


def test_a_growable_without_its_methods_cannot_be_built():
    from mscalepde.architectures.growable import Growable

    class Half(Growable):
        name = "half"

        def band_values(self):
            return []

    with pytest.raises(TypeError, match="_add_band"):
        Half(space_dim=1, has_time=False, bounds=[(0.0, 1.0)])
