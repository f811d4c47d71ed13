"""The Kronecker-factored preconditioner of the matrix-free Gauss–Newton step
(``preconditioner: kfac``).

The Gram matrix G = JᵀJ of the residual rows is approximated block-diagonally, one block
per parameter tensor, and each weight's block by a Kronecker product (KFAC; Martens &
Grosse 2015, for PINN losses Dangel, Müller & Zeinhofer 2024, "Kronecker-factored
approximate curvature for physics-informed neural networks", NeurIPS). The row gradient of
a weight W (out × in) is Σ_α G_α a_αᵀ, a sum over the streams α of the forward-Laplacian
jet (value, derivatives; and the point sets of a periodic pair), a weight shared across
streams. The "expand" approximation of that paper treats the streams as extra rows:

    G_W ≈ c_W · A_W ⊗ B_W,   A_W = Σ_rows Σ_α a_α a_αᵀ,   B_W = Σ_rows s² Σ_α G_α G_αᵀ,

with s the rows' scale √(w_k/N_k). The factors' own normalisation is a convention (the
paper divides A by the number of streams); here c_W is set so that the traces agree,
c_W = tr(G_W) / (tr A_W · tr B_W), with tr(G_W) exact (the row norms of
:meth:`~.matrix_free.Products.row_norms`), so the preconditioner has the scale of the
damping ρ it is paired with. A bias's block is exact: Σ_rows s² g₀ g₀ᵀ (out × out), g₀ its
row gradient. Parameters behind a weight computed from parameters (a trainable Fourier
matrix 2πB) get the scalar block tr(G)/P · I.

The preconditioner of G + ρI applies, per weight, the exact inverse of the damped
Kronecker product through the factors' eigendecompositions A = Q_A Λ_A Q_Aᵀ,
B = Q_B Λ_B Q_Bᵀ:

    (c A ⊗ B + ρ I)⁻¹ vec(X) = vec(Q_B [(Q_Bᵀ X Q_A) ⊘ (c λ_B λ_Aᵀ + ρ)] Q_Aᵀ),

which costs O(out · in · (out + in)) per layer, nothing next to one product J v. The
factors are sums over rows, so on several processes they are all-reduced once per
iteration (one collective of every factor flattened).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mscalepde.parallel.comm import Communicator, Single
from mscalepde.training.krylov import Operator


class Kfac:
    """KFAC of the Gram matrix of the rows in ``parts`` (:class:`~.matrix_free.Products`,
    one per group of rows), summed over the ranks by ``comm`` (module docstring)."""

    def __init__(self, parts: Sequence[Any], comm: Communicator | None = None) -> None:
        comm = comm if comm is not None else Single()
        first = parts[0]
        self.count: int = first.count
        offset: dict[int, int] = first.offset
        like = first.residual
        factors: dict[int, list[Tensor]] = {}  # weight id -> [A, B, tr G]; bias id -> [Gb]
        self.shapes: dict[int, tuple[int, ...]] = {}
        for prod in parts:
            for piece in prod.pieces:
                if piece.reduce is not None:  # the one gauge row: left to the scalar part
                    continue
                s2 = piece.scale**2
                weights, biases = prod.joined(piece)
                for key, (w, g, a) in weights.items():
                    if key not in offset:
                        continue  # a weight computed from parameters: the scalar block
                    self.shapes[key] = tuple(w.shape)
                    add = [torch.einsum("ani,anj->ij", a, a),
                           s2 * torch.einsum("ano,anp->op", g, g),
                           (s2 * prod.row_norms(g, a)).reshape(1)]
                    _accumulate(factors, key, add)
                for key, (b, g0) in biases.items():
                    if key in offset:
                        self.shapes[key] = tuple(b.shape)
                        _accumulate(factors, key, [s2 * g0.T @ g0])
        keys = sorted(factors, key=lambda k: offset[k])
        flat = torch.cat([t.reshape(-1) for k in keys for t in factors[k]]) if keys else like[:0]
        trace = comm.sum_float(sum(float(p.trace()) for p in parts))
        flat = comm.sum(flat)
        self.blocks: list[tuple[int, int, tuple[Tensor, ...]]] = []
        covered = 0
        start = 0
        for k in keys:
            sizes = [t.numel() for t in factors[k]]
            pieces = flat[start : start + sum(sizes)].split(sizes)
            start += sum(sizes)
            n = int(torch.tensor(self.shapes[k]).prod())
            covered += n
            if len(pieces) == 3:  # a weight: c A ⊗ B
                out, inn = self.shapes[k]
                a, b = pieces[0].view(inn, inn), pieces[1].view(out, out)
                la, qa = torch.linalg.eigh(a)
                lb, qb = torch.linalg.eigh(b)
                la, lb = la.clamp_min(0.0), lb.clamp_min(0.0)
                denom = float(la.sum()) * float(lb.sum())
                c = float(pieces[2][0]) / denom if denom > 0 else 0.0
                self.blocks.append((offset[k], n, (qa, qb, c * torch.outer(lb, la))))
            else:  # a bias: its exact block
                lg, qg = torch.linalg.eigh(pieces[0].view(n, n))
                self.blocks.append((offset[k], n, (qg, lg.clamp_min(0.0))))
        self.rest = covered < self.count  # parameters no block covers
        self.mean = trace / max(1, self.count)

    def inverse(self, rho: float) -> Operator:
        """x ↦ P⁻¹x for G + ρI (module docstring)."""
        blocks, rest, mean = self.blocks, self.rest, self.mean

        def apply(x: Tensor) -> Tensor:
            y = x / (mean + rho) if rest else torch.empty_like(x)
            for o, n, parts in blocks:
                v = x[o : o + n]
                if len(parts) == 3:
                    qa, qb, lam = parts
                    z = qb.T @ v.view(qb.shape[0], qa.shape[0]) @ qa
                    y[o : o + n] = (qb @ (z / (lam + rho)) @ qa.T).reshape(-1)
                else:
                    qg, lg = parts
                    y[o : o + n] = qg @ ((qg.T @ v) / (lg + rho))
            return y

        return apply


def _accumulate(factors: dict[int, list[Tensor]], key: int, add: list[Tensor]) -> None:
    if key in factors:
        factors[key] = [f + t for f, t in zip(factors[key], add, strict=True)]
    else:
        factors[key] = add
