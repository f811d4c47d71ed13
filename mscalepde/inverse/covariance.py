"""How sure the recovered unknowns are: the linearised covariance of the estimator.

Model: the observations are y_i = u(x_i) + ε_i with independent ε_i ~ N(0, σ²). Scaling the
training loss L = Σ_k w_k mean(r_k²) so that its data part is ‖r_data‖² gives the rows
J̃ = √(w_k n_data / (n_k w_data)) ∂r_k/∂φ (data rows unscaled; φ = every trainable
parameter: the network's weights w and the unknowns' raw parameters s) and the Gauss–Newton
matrix A = J̃ᵀJ̃ + δI (δ = ``DAMPING`` · tr(J̃ᵀJ̃)/P, a weak Gaussian prior that keeps the
network's unobserved directions finite).

- **Laplace** (MacKay 1992; Bates & Watts 1988, §2.3): Σ = σ² A⁻¹. Its block on the
  unknowns is the inverse of the Schur complement of the network's block,
  Σ_ss = σ² (A_ss − A_sw A_ww⁻¹ A_ws)⁻¹: the network's parameters are marginalised. It
  treats the equation's residual rows as if they were noisy data too.
- **Sandwich** (the delta method for the estimator φ̂(y): a minimiser of ‖R̃(φ; y)‖² moves
  by dφ = −A⁻¹ J_dᵀ dy when the data move by dy, so Cov φ̂ = σ² A⁻¹ J_dᵀJ_d A⁻¹; Huber
  1967, White 1982): only the data are random, the equation is not. Σ ≤ σ² A⁻¹; the two
  agree when the equation's rows dominate A.

The intervals use the sandwich form, the one that measured as calibrated
(``benchmarks/README.md`` §19: the Laplace one over-covers at 100 % of 40 draws, its
standard deviation 18 % above the spread of the estimates); ``std_laplace`` is reported
beside it. A scalar θ = map(s) gets the standard deviation |dθ/ds| sd(s) (delta method) and
the 95 % interval map(ŝ ± 1.96 sd(s)) (inside its bounds). A field a(x) gets the pointwise
band 1.96 σ ‖J_d A⁻¹ g(x)‖, g(x) = ∂a(x)/∂φ.

σ is the file's ``observations.sigma``, or estimated as σ̂² = ‖r_data‖² / (n_data − p)
with p the number of scalar unknowns.

**Assumptions** (docs/inverse.md): Gaussian independent noise of one σ; the linearisation
holds over the interval (the loss is near-quadratic in φ there); the network and the
collocation points resolve the equation (the model error is below the noise); training
reached the minimum (the sandwich's derivation needs ∇L = 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mscalepde.calculus.jet import LinearTape
from mscalepde.inverse.model import InverseModel
from mscalepde.inverse.objective import InverseObjective
from mscalepde.inverse.unknowns import scalar_map, scalar_slope
from mscalepde.training.gauss_newton import Parameters, block_rows, point_jacobian

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
    _data_rows: Tensor | None = field(default=None, repr=False)

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
    data_rows: list[Tensor] = []
    for term, r, j in _rows(model, objective, params, weights):
        gram.addmm_(j.T, j)
        if term == "data":
            data_sq += float(r.square().sum())
            data_rows.append(j)
    jd = torch.cat(data_rows)
    n_data = len(jd)
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
    x = torch.cholesky_solve(e, factor)  # (J̃ᵀJ̃ + δI)⁻¹ E
    laplace = (e.T @ x) * sigma**2
    sandwich = (jd @ x).square().sum(0) * sigma**2  # σ² ‖J_d (J̃ᵀJ̃ + δI)⁻¹ e_k‖²
    scalars: dict[str, dict[str, float]] = {}
    for i, (name, u) in enumerate(spec.scalars.items()):
        s = float(unknowns.raw[name].detach())
        sd_s = math.sqrt(max(float(sandwich[i]), 0.0))
        sd_laplace = math.sqrt(max(float(laplace[i, i]), 0.0))
        value = float(scalar_map(u, torch.tensor(s, dtype=torch.float64)))
        ends = [float(scalar_map(u, torch.tensor(s + z * sd_s, dtype=torch.float64)))
                for z in (-1.959963984540054, 1.959963984540054)]
        scalars[name] = {
            "value": value,
            "std": abs(scalar_slope(u, s)) * sd_s,
            "std_laplace": abs(scalar_slope(u, s)) * sd_laplace,
            "lower95": min(ends),
            "upper95": max(ends),
        }
        if u.true is not None:
            scalars[name]["exact"] = u.true
            scalars[name]["covered"] = float(min(ends) <= u.true <= max(ends))
    return Uncertainty(sigma, source, scalars, params.count, n_data, factor, params, jd)


def field_band(unc: Uncertainty, model: InverseModel, name: str, x: np.ndarray) -> np.ndarray:
    """The pointwise standard deviation of field ``name`` at points x, σ‖J_d A⁻¹ g(x)‖
    (the sandwich form, module docstring), g(x) = ∂a(x)/∂φ from the recorded jet of the
    field's network."""
    assert unc._factor is not None and unc._params is not None
    params = unc._params
    unknowns = model.unknowns
    out = []
    for start in range(0, len(x), CHUNK):
        xt = torch.as_tensor(x[start : start + CHUNK], dtype=torch.float64)
        tape = LinearTape()
        with torch.enable_grad():
            a = unknowns.field(name, xt, False, tape)[0]
            g = point_jacobian(tape, a, params)
        sol = torch.cholesky_solve(g.T, unc._factor)
        assert unc._data_rows is not None
        var = (unc._data_rows @ sol).square().sum(0) * unc.sigma**2
        out.append(var.clamp_min(0).sqrt().detach().numpy())
    return np.concatenate(out)
