"""The matrix-free Gauss–Newton step: products with J and Jᵀ, never J itself.

The dense step (:mod:`.gauss_newton`) forms J (M × P) or JᵀJ (P × P) and factors an M × M
or P × P matrix: memory M·P or P², time M³ or P³. This module solves the same systems,

    primal:  (JᵀJ + ρ I) d = b,            b = JᵀR (or ½∇E for the Ritz energy),
    dual:    (J Jᵀ + ρ I) y = R,  d = Jᵀ y,

by preconditioned conjugate gradients, with ρ = λ · tr(JᵀJ)/M as in the dense step.

**The products.** The network's jet records every linear map z_s = W a_s + b it applies
(:class:`~mscalepde.calculus.jet.LinearTape`, one stream s per derivative carried). One
backward pass of Σ_n q_n gives G_s[n] = ∂q_n/∂z_s[n] for every map (each residual depends
on its own point only), so that ∂q_n/∂W = Σ_s G_s[n] a_s[n]ᵀ and ∂q_n/∂b = G_0[n]. Then

    (J v)_n = Σ_maps [ Σ_s G_s[n] · (V a_s[n]) + G_0[n] · v_b ],
    (Jᵀ w)_W = Σ_s Σ_n w_n G_s[n] a_s[n]ᵀ,   (Jᵀ w)_b = Σ_n w_n G_0[n],

with V, v_b the parts of v on W and b. The G_s and a_s are the network's own forward
quantities on the points (O(M · width · depth · streams) numbers, the size of the graph
of one training step); no M × P or P × P array exists. A weight computed from parameters
(Fourier features' 2πB) is chained through autograd. A periodic pair's row is the signed
sum of its two points' rows, and the gauge row the weighted sum over all points
(:class:`~mscalepde.equations.ResidualBlock`): the products combine the stacked points
the same way, and their adjoints spread a row's weight back over them.

**The trace** tr(JᵀJ) = Σ_rows ‖∂r_i/∂θ‖², needed for ρ, is exact without J: the row
gradient of a map is Σ_α G_α a_αᵀ over its streams (and signed point sets), whose squared
Frobenius norm is Σ_{α,β} (G_α·G_β)(a_α·a_β). A weight computed from parameters makes it an
estimate (Hutchinson, 16 Rademacher probes with a fixed seed).

**The preconditioner** (``preconditioner: nystrom``): a randomised Nyström approximation
H ≈ U Λ̂ Uᵀ of rank s of the system's Gram matrix H (JᵀJ or J Jᵀ) from s products,
in the numerically stable form of Frangella, Tropp & Udell 2023 ("Randomized Nyström
preconditioning", SIAM J. Matrix Anal. Appl. 44, Alg. 2.1): Ω orthonormal (n × s),
Y = H Ω, ν = √n · ε · ‖Y‖₂, Y_ν = Y + νΩ, C = chol(Ωᵀ Y_ν), B = Y_ν C⁻ᵀ = U Σ Vᵀ,
Λ̂ = max(Σ² − ν, 0), and for H + ρI

    P⁻¹ x = (λ̂_s + ρ) U (Λ̂ + ρ I)⁻¹ Uᵀ x + (x − U Uᵀ x).

It is built once per Gauss–Newton iteration (J changes with θ) and reused for every damping
the Levenberg–Marquardt control tries. NysNewton-CG (Rathore et al., ICML 2024) applies the
same preconditioner to the full Hessian with rank 60.
``preconditioner: kfac`` (:mod:`.kfac`) approximates JᵀJ block by block with Kronecker
factors instead; measured, it does not lower the CG count on these systems, whose
ill-conditioning lies in the coupling between layers (``benchmarks/README.md`` §18).

**Inexact Newton.** CG stops when ‖(H + ρI)x − rhs‖ ≤ η ‖rhs‖, with the forcing term
η = min(``forcing``, √(‖b‖/‖b₀‖)) (b₀: the phase's first right-hand side; an Eisenstat &
Walker 1996-type rule that tightens as the iteration converges; ``forcing`` 1e-3 by
default: 0.1 left the steps too far from Gauss–Newton's, benchmarks/README.md §18),
floored at ``cg_tol``, or after
``cg_max_iter`` iterations. Every CG iterate from 0 lowers the quadratic model, so an
inexact d is still a descent direction and the gain ratio of the step control uses the
model decrease of the d actually found (‖R‖² − ‖R − J d‖², from one more product).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mscalepde.calculus.jet import LinearTape
from mscalepde.equations import ResidualBlock
from mscalepde.parallel.comm import Communicator


@dataclass
class _Map:
    """One recorded linear map of one quantity: weight, bias, and per stream α (streams ×
    signed point sets) the inputs a_α (n, in) and output gradients G_α (n, out)."""

    weight: Tensor
    bias: Tensor | None
    a: Tensor  # (S, n, in), detached
    g: Tensor  # (S, n, out): already multiplied by the set's sign
    g0: Tensor | None  # (sets, n, out): the value stream of each set (for the bias)


@dataclass
class _Piece:
    """The rows of one quantity of one chunk of one block: ``offset`` into R, their
    count, the scale √(w/N), and the recorded maps (points regrouped per row)."""

    offset: int
    count: int
    scale: float
    maps: list[_Map]
    reduce: Tensor | None  # gauge weights of the chunk's points (one row), or None


def _regroup(t: Tensor, sets: int, signs: tuple[float, ...] | None) -> Tensor:
    """(N_stacked, k) → (sets, n, k), each set multiplied by its sign."""
    n = t.shape[0] // sets
    out = t.reshape(sets, n, *t.shape[1:])
    if signs is not None and any(s != 1.0 for s in signs):
        out = out * torch.tensor(signs, dtype=t.dtype, device=t.device).view(
            sets, *([1] * (out.dim() - 1))
        )
    return out


def record_piece(
    tape: LinearTape, q: Tensor, block: ResidualBlock, rows: slice, offset: int, scale: float
) -> _Piece:
    """The maps of quantity ``q`` (stacked over the block's point sets) from one backward
    pass through the recorded jet (module docstring)."""
    sets = len(block.points)
    signs = None if block.reduce is not None else block.signs
    maps = []
    for weight, bias, ins, g in tape.gradients(q):
        used = [(gs, a) for gs, a in zip(g, ins, strict=True) if gs is not None]
        if not used:
            continue
        with torch.no_grad():
            gg = torch.cat([_regroup(gs.detach(), sets, signs) for gs, _ in used])
            aa = torch.cat([_regroup(a.detach(), sets, None) for _, a in used])
            g0 = _regroup(g[0].detach(), sets, signs) if g[0] is not None else None
        maps.append(_Map(weight, bias, aa, gg, g0))
    reduce = None
    if block.reduce is not None:
        reduce = block.reduce[rows].to(q.dtype)
    count = 1 if reduce is not None else q.shape[0] // sets
    return _Piece(offset, count, scale, maps, reduce)


class Products:
    """J v, Jᵀ w and tr(JᵀJ) of the scaled residual rows of an objective's blocks at the
    current parameters (module docstring). ``residual`` is R (M,), detached."""

    def __init__(self, params: object, pieces: list[_Piece], residual: Tensor) -> None:
        self.params = params
        self.pieces = pieces
        self.residual = residual
        self.rows = residual.shape[0]
        self.count: int = params.count  # type: ignore[attr-defined]
        self.offset: dict[int, int] = params.offset  # type: ignore[attr-defined]
        self.derived = [
            m.weight for p in pieces for m in p.maps
            if m.weight.requires_grad and id(m.weight) not in self.offset
        ]

    # ---------------------------------------------------------------- parameter views
    def _part(self, v: Tensor, t: Tensor | None) -> Tensor | None:
        """The part of a flat vector v on tensor t (a parameter), or its directional
        derivative along v (a weight computed from parameters), or None (frozen)."""
        if t is None or not t.requires_grad:
            return None
        o = self.offset.get(id(t))
        if o is not None:
            return v[o : o + t.numel()].view_as(t)
        # d/dε t(θ + ε v) by the double-backward trick on t's own (small) graph
        ps = self.params.params  # type: ignore[attr-defined]
        u = torch.zeros_like(t, requires_grad=True)
        with torch.enable_grad():
            gs = torch.autograd.grad(t, ps, grad_outputs=u, create_graph=True, allow_unused=True)
            dot = sum((g * v[self.offset[id(p)] : self.offset[id(p)] + p.numel()].view_as(p)).sum()
                      for p, g in zip(ps, gs, strict=True) if g is not None)
            if not isinstance(dot, Tensor):
                return None
            (jv,) = torch.autograd.grad(dot, u)
        return jv.detach()

    def _add(self, out: Tensor, t: Tensor, grad: Tensor) -> None:
        """out[θ(t)] += grad, chained through autograd when t is computed from θ."""
        o = self.offset.get(id(t))
        if o is not None:
            out[o : o + t.numel()] += grad.reshape(-1)
            return
        ps = self.params.params  # type: ignore[attr-defined]
        with torch.enable_grad():
            gs = torch.autograd.grad(t, ps, grad_outputs=grad, retain_graph=True,
                                     allow_unused=True)
        for p, g in zip(ps, gs, strict=True):
            if g is not None:
                q = self.offset[id(p)]
                out[q : q + p.numel()] += g.reshape(-1)

    # ---------------------------------------------------------------- products
    def jv(self, v: Tensor) -> Tensor:
        """J v (M,)."""
        out = v.new_zeros(self.rows)
        parts: dict[int, Tensor | None] = {}
        for piece in self.pieces:
            q: Tensor | None = None
            for m in piece.maps:
                if id(m.weight) not in parts:
                    parts[id(m.weight)] = self._part(v, m.weight)
                dw = parts[id(m.weight)]
                term = None
                if dw is not None:  # Σ_α G_α · (V a_α), per set
                    term = (m.g * torch.matmul(m.a, dw.T)).sum(-1)  # (S·sets, n)
                    term = term.sum(0)
                if m.bias is not None and m.g0 is not None:
                    if id(m.bias) not in parts:
                        parts[id(m.bias)] = self._part(v, m.bias)
                    db = parts[id(m.bias)]
                    if db is not None:
                        tb = torch.matmul(m.g0, db).sum(0)
                        term = tb if term is None else term + tb
                if term is not None:
                    q = term if q is None else q + term
            if q is None:
                continue
            if piece.reduce is not None:
                q = (piece.reduce * q).sum().reshape(1)
            out[piece.offset : piece.offset + piece.count] += piece.scale * q
        return out

    def jtw(self, w: Tensor) -> Tensor:
        """Jᵀ w (P,)."""
        out = w.new_zeros(self.count)
        for piece in self.pieces:
            ws = w[piece.offset : piece.offset + piece.count] * piece.scale
            if piece.reduce is not None:
                ws = piece.reduce * ws[0]
            for m in piece.maps:
                if m.weight.requires_grad:
                    gw = torch.einsum("sno,n,sni->oi", m.g, ws, m.a)
                    self._add(out, m.weight, gw)
                if m.bias is not None and m.bias.requires_grad and m.g0 is not None:
                    self._add(out, m.bias, torch.einsum("sno,n->o", m.g0, ws))
        return out

    @staticmethod
    def joined(piece: _Piece) -> tuple[dict[int, tuple[Tensor, Tensor, Tensor]],
                                       dict[int, tuple[Tensor, Tensor]]]:
        """A piece's maps joined per trainable weight, ``{id: (W, G, a)}`` with the streams
        α of every map that uses W stacked (a weight used by several maps, as mff's shared
        layers, has one row gradient Σ_α G_α a_αᵀ), and per trainable bias,
        ``{id: (b, G_0)}`` with G_0 the value stream's output gradients summed over the
        point sets (the row gradient of b)."""
        weights: dict[int, tuple[Tensor, list[Tensor], list[Tensor]]] = {}
        biases: dict[int, tuple[Tensor, Tensor]] = {}
        for m in piece.maps:
            if m.weight.requires_grad:
                _, gs, as_ = weights.setdefault(id(m.weight), (m.weight, [], []))
                gs.append(m.g)
                as_.append(m.a)
            if m.bias is not None and m.bias.requires_grad and m.g0 is not None:
                g0 = m.g0.sum(0)
                if id(m.bias) in biases:
                    g0 = biases[id(m.bias)][1] + g0
                biases[id(m.bias)] = (m.bias, g0)
        joined = {k: (w, torch.cat(gs), torch.cat(as_)) for k, (w, gs, as_) in weights.items()}
        return joined, biases

    @staticmethod
    def row_norms(g: Tensor, a: Tensor) -> Tensor:
        """Σ_rows ‖Σ_α G_α a_αᵀ‖²_F of one weight, without forming the row gradients:
        Σ_{α,β} (G_α·G_β)(a_α·a_β) per row."""
        gg = torch.einsum("ano,bno->abn", g, g)
        aa = torch.einsum("ani,bni->abn", a, a)
        return (gg * aa).sum()

    def trace(self) -> float:
        """tr(JᵀJ) = Σ_rows ‖∂r_i/∂θ‖² (module docstring)."""
        if self.derived:
            return self._hutchinson()
        total = 0.0
        gauge_rows: set[int] = set()
        for piece in self.pieces:
            if piece.reduce is not None:  # one row over several pieces: below
                gauge_rows.add(piece.offset)
                continue
            s2 = piece.scale**2
            weights, biases = self.joined(piece)
            for _, g, a in weights.values():
                total += s2 * float(self.row_norms(g, a))
            for _, g0 in biases.values():
                total += s2 * float(g0.pow(2).sum())
        for row in gauge_rows:  # the gauge row's gradient itself
            e = self.residual.new_zeros(self.rows)
            e[row] = 1.0
            total += float(self.jtw(e).pow(2).sum())
        return total

    def _hutchinson(self, probes: int = 16) -> float:
        gen = torch.Generator(device="cpu").manual_seed(0)
        total = 0.0
        for _ in range(probes):
            z = torch.randint(0, 2, (self.count,), generator=gen).to(self.residual) * 2 - 1
            total += float(self.jv(z).pow(2).sum())
        return total / probes

    def gram(self, x: Tensor, dual: bool) -> Tensor:
        """JᵀJ x (primal) or J Jᵀ x (dual)."""
        return self.jv(self.jtw(x)) if dual else self.jtw(self.jv(x))

    def split(self, v: Tensor) -> list[Tensor]:
        """A vector of residual rows, as the parts whose sums are added in order (one)."""
        return [v]


class Summed:
    """The products of several groups of rows (the shards of points of this process) and
    of every rank: R and J v are this process's rows, the groups' in order; Jᵀ w and
    tr(JᵀJ) are sums over the groups in order, then over the ranks (``comm``), so every
    rank gets the same vectors in P. ``rows`` is M over every rank."""

    def __init__(self, parts: list[Products], comm: Communicator) -> None:
        self.parts = parts
        self.comm = comm
        self.sizes = [p.rows for p in parts]
        self.residual = torch.cat([p.residual for p in parts])
        self.rows = int(comm.sum_float(float(sum(self.sizes))))

    def split(self, v: Tensor) -> list[Tensor]:
        return list(v.split(self.sizes))

    def jv(self, v: Tensor) -> Tensor:
        return torch.cat([p.jv(v) for p in self.parts])

    def jtw(self, w: Tensor) -> Tensor:
        out = self.parts[0].jtw(w[: self.sizes[0]])
        for p, part in zip(self.parts[1:], self.split(w)[1:], strict=True):
            out = out + p.jtw(part)
        return self.comm.sum(out)

    def trace(self) -> float:
        return self.comm.sum_float(sum(p.trace() for p in self.parts))

    def gram(self, x: Tensor, dual: bool) -> Tensor:
        return self.jv(self.jtw(x)) if dual else self.jtw(self.jv(x))


def build_products(
    model: torch.nn.Module,
    blocks: list[tuple[ResidualBlock, float]],
    params: object,
    chunk: int,
) -> Products:
    """The residual R and the recorded maps of every scaled block (``blocks``: pairs of a
    block and its scale √(w/N)), chunk by chunk of points (the rows in the order of the
    dense step's ``_pieces``)."""
    from mscalepde.errors import TrainingError

    pieces: list[_Piece] = []
    parts: list[Tensor] = []
    offset = 0
    chunk = max(1, chunk)
    for block, scale in blocks:
        reduce = block.reduce is not None
        sums: list[Tensor | None] = [None] * len(block.data)
        for start in range(0, block.size, chunk):
            rows = slice(start, min(start + chunk, block.size))
            tape = LinearTape()
            with torch.enable_grad():
                qs = block.quantities(model, rows, tape=tape)
                for k, (q, g) in enumerate(zip(qs, block.data, strict=True)):
                    where = offset + k if reduce else offset
                    piece = record_piece(tape, q, block, rows, where, scale)
                    if not all(torch.isfinite(m.g).all() for m in piece.maps):
                        raise TrainingError(
                            f"gauss-newton: the Jacobian of the '{block.term}' term is not "
                            "finite"
                        )
                    pieces.append(piece)
                    value = block.combine(q.detach(), rows)
                    if reduce:
                        sums[k] = value if sums[k] is None else sums[k] + value
                    else:
                        parts.append((value - g[rows]) * scale)
                        offset += piece.count
            del tape, qs
        if reduce:
            for total, g in zip(sums, block.data, strict=True):
                assert total is not None
                parts.append((total - g) * scale)
            offset += len(block.data)
    residual = torch.cat(parts).detach()
    if not torch.isfinite(residual).all():
        raise TrainingError("gauss-newton: the residual is not finite")
    return Products(params, pieces, residual)


def tape_bytes_per_row(model: torch.nn.Module, block: ResidualBlock, rows: int = 8) -> float:
    """Bytes the recorded maps (inputs a_s and output gradients G_s of every stream) take
    per residual row of ``block``, measured on its first ``rows`` points (for the memory
    check before training)."""
    part = slice(0, min(rows, block.size))
    tape = LinearTape()
    with torch.enable_grad():
        qs = block.quantities(model, part, tape=tape)
    total = sum(
        t.numel() * t.element_size() for rec in tape.records for t in (*rec[2], *rec[3])
    )
    return total * len(qs) / max(1, part.stop - part.start)
