"""How sure the recovered unknowns are: the linearised (Laplace) covariance.

Model: the observations are y_i = u(x_i) + ε_i with independent ε_i ~ N(0, σ²); the
equation's residual rows enter as the training loss weighs them. Scaling the loss
L = Σ_k w_k mean(r_k²) so that its data part is the negative log-likelihood
‖r_data‖² / 2σ² gives the rows J̃ = √(w_k n_data / (n_k w_data)) ∂r_k/∂φ (data rows
unscaled) over all trainable parameters φ = (network weights w, raw unknowns s), and the
Gauss–Newton (Laplace) covariance at the trained φ̂ (MacKay 1992; Bates & Watts 1988, §2.3)

    Σ = σ² (J̃ᵀJ̃ + δ I)⁻¹,

the posterior covariance of a Gaussian linearisation with a weak prior N(0, σ²/δ) on every
parameter (δ = ``DAMPING`` · tr(J̃ᵀJ̃)/P keeps the network's unobserved directions
finite). The covariance of the unknowns is the block of Σ on their parameters, i.e. the
inverse of the Schur complement of the network's block,
Σ_ss = σ² (G_ss − G_sw (G_ww + δI)⁻¹ G_ws)⁻¹: the network's parameters are marginalised.
A scalar θ = map(s) gets the standard deviation |dθ/ds| √Σ_ss (delta method) and the 95 %
interval map(ŝ ± 1.96 √Σ_ss) (inside its bounds). A field a(x) gets the pointwise band
√(g(x)ᵀ Σ_aa g(x)), g(x) = ∂a(x)/∂φ_a.

σ is the file's ``observations.sigma``, or estimated as σ̂² = ‖r_data‖² / (n_data − p)
with p the number of scalar unknowns.

**Assumptions** (docs/inverse.md): Gaussian independent noise of one σ; the linearisation
holds over the interval (the loss is near-quadratic in φ there); the network and the
collocation points resolve the equation (the model error is below the noise); the
training reached the minimum. The calibration measured in ``benchmarks/README.md`` §19
checks them on ``inverse_heat1d_kappa``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mscalepde.inverse.model import InverseModel
from mscalepde.inverse.objective import InverseObjective
from mscalepde.inverse.unknowns import scalar_map, scalar_slope
from mscalepde.training.gauss_newton import Parameters, block_rows

DAMPING = 1e-10  # δ relative to the mean diagonal of J̃ᵀJ̃
MAX_PARAMETERS = 20_000  # the P × P Gram matrix in float64: 3.2 GB at this size
CHUNK = 512


@dataclass
class Uncertainty:
    """The covariance's results: per scalar (value, std, lower, upper), σ and how it was
    obtained, and the Gram matrix's factor for pointwise field bands."""

    sigma: float
    sigma_source: str  # "given" or "estimated"
    scalars: dict[str, dict[str, float]]
    parameters: int
    observations: int
    _factor: Tensor | None = field(default=None, repr=False)
    _params: Parameters | None = field(default=None, repr=False)

    def summary(self) -> dict[str, object]:
        return {
            "sigma": self.sigma,
            "sigma_source": self.sigma_source,
            "observations": self.observations,
            "parameters": self.parameters,
            "method": "Gauss-Newton (Laplace) covariance, Schur complement over the network",
        }


def _rows(model: InverseModel, objective: InverseObjective, params: Parameters, weights):  # type: ignore[no-untyped-def]
    """(scaled residual rows, scaled Jacobian rows) chunk by chunk (module docstring)."""
    blocks = objective.blocks()
    counts: dict[str, int] = {}
    for b in blocks:
        counts[b.term] = counts.get(b.term, 0) + b.rows
    n_data = counts.get("data", 0)
    w_data = weights.get("data", 1.0)
    for b in blocks:
        scale = 1.0 if b.term == "data" else math.sqrt(
            weights.get(b.term, 1.0) * n_data / (counts[b.term] * w_data)
        )
        for start in range(0, b.size, CHUNK):
            rows = slice(start, min(start + CHUNK, b.size))
            res, jacs = block_rows(model, b, rows, params)
            for r, j in zip(res, jacs, strict=True):
                yield b.term, r * scale, j * scale


def uncertainty(
    model: InverseModel,
    objective: InverseObjective,
    weights: dict[str, float],
    sigma: float | None = None,
) -> Uncertainty:
    """The covariance of the scalar unknowns at the model's current parameters, computed in
    float64 (module docstring). ``sigma`` None: estimated from the data residual."""
    spec = objective.spec
    if spec.observations is None:
        raise ValueError("the uncertainty needs observations")
    if objective.dtype != torch.float64 or next(model.parameters()).dtype != torch.float64:
        model.to(torch.float64)
        objective.set_dtype(torch.float64)
    params = Parameters(model)
    if params.count > MAX_PARAMETERS:
        raise ValueError(
            f"the covariance needs the {params.count} x {params.count} Gram matrix; at most "
            f"{MAX_PARAMETERS} parameters (use a smaller network)"
        )
    gram = torch.zeros(params.count, params.count, dtype=torch.float64)
    data_sq = 0.0
    n_data = 0
    for term, r, j in _rows(model, objective, params, weights):
        gram.addmm_(j.T, j)
        if term == "data":
            data_sq += float(r.square().sum())
            n_data += len(r)
    p = len(spec.scalars)
    source = "given"
    if sigma is None:
        sigma = math.sqrt(data_sq / max(n_data - p, 1))
        source = "estimated"
    delta = DAMPING * float(gram.diagonal().mean())
    gram.diagonal().add_(delta)
    factor, info = torch.linalg.cholesky_ex(gram)
    if int(info) != 0:
        raise ValueError("the Gram matrix is not positive definite (raise the damping)")
    unknowns = model.unknowns
    cols = [params.offset[id(unknowns.raw[n])] for n in spec.scalars]
    e = torch.zeros(params.count, len(cols), dtype=torch.float64)
    for i, c in enumerate(cols):
        e[c, i] = 1.0
    cov_s = (e.T @ torch.cholesky_solve(e, factor)) * sigma**2
    scalars: dict[str, dict[str, float]] = {}
    for i, (name, u) in enumerate(spec.scalars.items()):
        s = float(unknowns.raw[name].detach())
        sd_s = math.sqrt(max(float(cov_s[i, i]), 0.0))
        value = float(scalar_map(u, torch.tensor(s, dtype=torch.float64)))
        ends = [float(scalar_map(u, torch.tensor(s + z * sd_s, dtype=torch.float64)))
                for z in (-1.959963984540054, 1.959963984540054)]
        scalars[name] = {
            "value": value,
            "std": abs(scalar_slope(u, s)) * sd_s,
            "lower95": min(ends),
            "upper95": max(ends),
        }
        if u.true is not None:
            scalars[name]["exact"] = u.true
            scalars[name]["covered"] = float(min(ends) <= u.true <= max(ends))
    return Uncertainty(sigma, source, scalars, params.count, n_data, factor * 1.0, params)


def field_band(unc: Uncertainty, model: InverseModel, name: str, x: np.ndarray) -> np.ndarray:
    """The pointwise standard deviation √(g(x)ᵀ Σ_aa g(x)) of field ``name`` at points x
    (module docstring), with the factor of :func:`uncertainty`."""
    assert unc._factor is not None and unc._params is not None
    params = unc._params
    out = []
    for start in range(0, len(x), CHUNK):
        xt = torch.as_tensor(x[start : start + CHUNK], dtype=torch.float64)
        with torch.enable_grad():
            a = model.unknowns.field(name, xt, False, None)[0]
            rows = []
            for i in range(len(a)):
                grads = torch.autograd.grad(a[i], params.params, retain_graph=True,
                                            allow_unused=True)
                rows.append(torch.cat([
                    (g if g is not None else torch.zeros_like(p)).reshape(-1)
                    for g, p in zip(grads, params.params, strict=True)
                ]))
        g = torch.stack(rows)
        sol = torch.cholesky_solve(g.T, unc._factor)
        out.append(((g.T * sol).sum(0) * unc.sigma**2).clamp_min(0).sqrt().detach().numpy())
    return np.concatenate(out)
