"""Preconditioned conjugate gradients and the randomised Nyström preconditioner of the
matrix-free Gauss–Newton step (:mod:`.matrix_free`, whose docstring states the algorithms
and their sources)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Operator = Callable[[Tensor], Tensor]


@dataclass
class CGResult:
    """x, the iterations spent and the final relative residual ‖A x − b‖ / ‖b‖."""

    x: Tensor
    iterations: int
    residual: float


def pcg(
    apply: Operator,
    rhs: Tensor,
    *,
    tol: float,
    max_iter: int,
    precond: Operator | None = None,
) -> CGResult:
    """Solve A x = rhs for a symmetric positive definite A given as ``apply`` (Hestenes &
    Stiefel 1952; M⁻¹ = ``precond``), from x = 0, until ‖r‖ ≤ tol ‖rhs‖ or ``max_iter``
    iterations. The residual is the recurrence's, recomputed from A x once at the end."""
    x = torch.zeros_like(rhs)
    norm_b = float(rhs.norm())
    if norm_b == 0.0 or not math.isfinite(norm_b):
        return CGResult(x, 0, 0.0 if norm_b == 0.0 else math.nan)
    r = rhs.clone()
    z = precond(r) if precond is not None else r
    p = z.clone()
    rz = float(r @ z)
    k = 0
    for k in range(1, max_iter + 1):
        ap = apply(p)
        pap = float(p @ ap)
        if not pap > 0.0:  # A is not positive definite along p (rounding): stop here
            k -= 1
            break
        alpha = rz / pap
        x.add_(p, alpha=alpha)
        r.sub_(ap, alpha=alpha)
        if float(r.norm()) <= tol * norm_b:
            break
        z = precond(r) if precond is not None else r
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    true = float((rhs - apply(x)).norm()) / norm_b
    return CGResult(x, k, true)


class Nystrom:
    """A rank-``rank`` randomised Nyström approximation H ≈ U diag(λ̂) Uᵀ of a symmetric
    positive semidefinite H of size ``n`` (given as products), in the stable form of
    Frangella, Tropp & Udell 2023, Alg. 2.1; :meth:`inverse` gives the preconditioner of
    H + ρI. The sketch is drawn from a generator with a fixed ``seed``."""

    def __init__(
        self, gram: Operator, n: int, rank: int, like: Tensor, seed: int = 0
    ) -> None:
        rank = max(1, min(rank, n))
        gen = torch.Generator(device="cpu").manual_seed(seed)
        omega = torch.randn(n, rank, generator=gen, dtype=torch.float64).to(like)
        omega, _ = torch.linalg.qr(omega)
        y = torch.stack([gram(omega[:, j]) for j in range(rank)], dim=1)
        eps = torch.finfo(like.dtype).eps
        nu = math.sqrt(n) * eps * float(torch.linalg.matrix_norm(y, ord=2))
        y_nu = y + nu * omega
        c, info = torch.linalg.cholesky_ex(omega.T @ y_nu)
        if int(info) != 0:  # not positive definite to rounding: shift by the spectrum's floor
            w = torch.linalg.eigvalsh(omega.T @ y_nu)
            shift = abs(float(w[0])) + nu
            y_nu = y_nu + shift * omega
            nu += shift
            c = torch.linalg.cholesky(omega.T @ y_nu)
        b = torch.linalg.solve_triangular(c, y_nu.T, upper=False).T  # Y_ν C⁻ᵀ
        u, sigma, _ = torch.linalg.svd(b, full_matrices=False)
        self.u = u
        self.lam = torch.clamp(sigma**2 - nu, min=0.0)
        self.rank = rank

    def inverse(self, rho: float) -> Operator:
        """x ↦ P⁻¹x for H + ρI (module docstring of :mod:`.matrix_free`)."""
        u, lam = self.u, self.lam
        smallest = float(lam[-1]) + rho
        scale = smallest / (lam + rho)

        def apply(x: Tensor) -> Tensor:
            ux = u.T @ x
            return u @ (scale * ux) + (x - u @ ux)

        return apply
