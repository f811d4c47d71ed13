"""Forward Laplacian: value, first derivatives and second-order operators in one forward pass.

Reference: Li, Ye, Wang, Wang et al. 2023, "Forward Laplacian: a new computational framework
for neural network-based variational Monte Carlo" (also known as collapsed Taylor mode).

Let X = (x_1, …, x_d[, t]) be the D input columns (space first, then t when the problem has
time). A :class:`Jet` of a hidden feature h(X) ∈ R^W at N points holds separate *streams*:

- the value h, shape (N, W);
- the spatial first derivatives ∂h/∂x_i, i = 1..d (carried when asked for, or when an
  operator below has a Laplacian part);
- for each requested linear operator L_m u = Σ_j a_{m,j} ∂u/∂X_j + Σ_i c_{m,i} ∂²u/∂x_i²
  (constant coefficients; c_{m,i} = c_m for all i is c_m Δu, Δ the spatial Laplacian) the
  stream L_m h. Examples: Δ (a = 0, c = 1), ∂_t (a = e_t, c = 0), the heat operator ∂_t − κΔ
  (a = e_t, c = −κ), an anisotropic −Σ_i κ_i ∂_ii (c = −κ), one second derivative ∂_ii
  (c = e_i).

Carrying the heat operator as *one* stream (instead of u_t and Δu separately) saves a
matmul per layer and per stream pass: for the 1D heat equation 3 streams (h, ∂_x h,
(∂_t − κΔ)h) instead of 4. Poisson carries h, ∇h and Δh: d + 2 streams.

Propagation rules (exact, no truncation; |∇z|² = Σ_{i ≤ d} (∂_i z)²):

- linear map z = W h + b: every stream is multiplied by Wᵀ; b is added to the value only;
- elementwise σ: (z, ∇z, L z) ↦ (σ(z), σ′(z) ∇z, σ′(z) L z + σ″(z) Σ_i c_i (∂_i z)²);
- product of two jets: (ab, a ∇b + b ∇a, a L b + b L a + 2 Σ_i c_i ∂_i a ∂_i b);
- sums, concatenations, fixed scalings act streamwise.

A stream may be a single row (1, W) that broadcasts over the points: the input columns'
derivatives are constants (∂X̃/∂x_i = s_i e_i), so the first linear layer maps them with a
(1, D)·(D, W) product instead of an (N, D)·(D, W) one; they become (N, W) at the first
nonlinearity.

The streams are kept apart (not stacked in one tensor): on CPU one (N, W)·(W, W) product
per stream runs at the BLAS peak, while an (S·N, W) stacked product falls out of cache
(measured in ``benchmarks/README.md``), and no concatenation copy is needed per layer. The
backward pass through a jet computation is an ordinary first-order backward, so the whole
loss is differentiable with respect to the parameters, and ``torch.compile`` traces it
(unlike double backward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mscalepde.calculus.activations import Activation


@dataclass(frozen=True)
class Operator:
    """L u = Σ_j first[j] ∂u/∂X_j + laplacian · Δu + Σ_i second[i] ∂²u/∂x_i² (constant
    coefficients).

    ``first`` has one coefficient per input column (space, then t); Δ is the spatial
    Laplacian; ``second`` (empty, or one weight per spatial axis) is a diagonal
    second-order part, for anisotropic operators and single second derivatives; an operator
    has a ``laplacian`` or a ``second`` part, not both. Hashable, so compiled code can
    specialise on it.
    """

    first: tuple[float, ...]
    laplacian: float = 0.0
    second: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.second and self.laplacian != 0.0:
            raise ValueError("an Operator has a laplacian or a second part, not both")

    @property
    def has_second_order(self) -> bool:
        """True when the operator has second derivatives (a Δ or a diagonal part)."""
        return self.laplacian != 0.0 or any(c != 0.0 for c in self.second)

    def weights(self, space_dim: int) -> tuple[float, ...]:
        """The per-axis second-order weights c_i (c_i = laplacian for a Δ part)."""
        return self.second if self.second else (self.laplacian,) * space_dim

    @classmethod
    def second_derivative(cls, in_dim: int, space_dim: int, axis: int) -> Operator:
        """∂²/∂x_axis²."""
        return cls((0.0,) * in_dim, 0.0, tuple(float(i == axis) for i in range(space_dim)))

    @classmethod
    def laplace(cls, in_dim: int, coefficient: float = 1.0) -> Operator:
        """c Δ."""
        return cls((0.0,) * in_dim, float(coefficient))

    @classmethod
    def partial(cls, in_dim: int, column: int) -> Operator:
        """∂/∂X_column."""
        first = [0.0] * in_dim
        first[column] = 1.0
        return cls(tuple(first), 0.0)


class LinearTape:
    """A record of every linear map z = W h + b applied to a jet, for per-point Jacobians.

    Each record holds the weight and bias tensors used, the input streams a_s (N, in) and
    the output streams z_s (N, out), all per point (broadcast rows are expanded). Because a
    quantity q_n computed from a jet depends on point n only, the gradient of Σ_n q_n with
    respect to z_s is, row by row, ∂q_n/∂z_s[n]; the per-point Jacobian of q with respect to
    W is then ∂q_n/∂W = Σ_s (∂q_n/∂z_s[n]) a_s[n]ᵀ and with respect to b is ∂q_n/∂z_0[n]
    (the value stream). This is the per-sample-gradient construction of Dangel, Kunstner,
    Hennig 2020 (BackPACK) applied to the forward-Laplacian streams, as the KFAC/ENGD
    experiments of Dangel, Müller, Zeinhofer 2024 do (see :mod:`mscalepde.training.gauss_newton`).
    """

    def __init__(self) -> None:
        self.records: list[tuple[Tensor, Tensor | None, list[Tensor], list[Tensor]]] = []

    def record(
        self, weight: Tensor, bias: Tensor | None, inputs: list[Tensor], outputs: list[Tensor]
    ) -> None:
        self.records.append((weight, bias, inputs, outputs))

    def gradients(
        self, q: Tensor
    ) -> list[tuple[Tensor, Tensor | None, list[Tensor], list[Tensor | None]]]:
        """Per record: (weight, bias, input streams a_s, ∂q_n/∂z_s[n] per output stream, or
        None where q does not depend on it), from one backward pass of Σ_n q_n (the graph
        is kept). The building block of per-point Jacobians and of their matrix-free
        products (:mod:`mscalepde.training.gauss_newton`, :mod:`mscalepde.training.matrix_free`)."""
        import torch

        outputs = [z for rec in self.records for z in rec[3]]
        live = [z for z in outputs if z.requires_grad]
        found = iter(torch.autograd.grad(q.sum(), live, retain_graph=True, allow_unused=True))
        grads = [next(found) if z.requires_grad else None for z in outputs]
        out = []
        k = 0
        for weight, bias, ins, outs in self.records:
            out.append((weight, bias, ins, grads[k : k + len(outs)]))
            k += len(outs)
        return out


@dataclass(frozen=True)
class JetSpec:
    """What a jet carries: ``space_dim`` spatial gradients (when ``grads``) and one stream
    per operator in ``operators``. ``tape`` (not part of equality or the hash, so compiled
    code never specialises on it) records the linear maps for per-point Jacobians."""

    space_dim: int
    grads: bool
    operators: tuple[Operator, ...]
    tape: LinearTape | None = field(default=None, compare=False, hash=False)

    @property
    def needs_grads(self) -> bool:
        """Spatial gradients are carried when asked for or when an operator has a Δ part."""
        return self.grads or any(op.has_second_order for op in self.operators)


def _grad_dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """∇a·∇b = Σ_i ∂_i a ∂_i b over the spatial gradient streams."""
    out = a[0] * b[0]
    for ga, gb in zip(a[1:], b[1:], strict=True):
        out = out + ga * gb
    return out


def _weighted_dot(a: Sequence[Tensor], b: Sequence[Tensor], w: Sequence[float]) -> Tensor:
    """Σ_i w_i ∂_i a ∂_i b (terms with w_i = 0 skipped; at least one w_i ≠ 0)."""
    out = None
    for ga, gb, c in zip(a, b, w, strict=True):
        if c == 0.0:
            continue
        term = ga * gb if c == 1.0 else c * (ga * gb)
        out = term if out is None else out + term
    assert out is not None
    return out


def _expand(t: Tensor, n: int) -> Tensor:
    return t if t.shape[0] == n else t.expand(n, t.shape[1])


class Jet:
    """Value, spatial gradient streams and operator streams of a feature (module docstring)."""

    __slots__ = ("value", "grads", "ops", "spec")

    def __init__(
        self, value: Tensor, grads: tuple[Tensor, ...], ops: tuple[Tensor, ...], spec: JetSpec
    ) -> None:
        self.value = value  # (N, W)
        self.grads = grads  # d tensors, (N, W) or (1, W); empty when not carried
        self.ops = ops  # one per spec.operators, (N, W) or (1, W)
        self.spec = spec

    # ---------------------------------------------------------------- construction
    @classmethod
    def input(
        cls, x: Tensor, spec: JetSpec, scale: Tensor | None = None, shift: Tensor | None = None
    ) -> Jet:
        """The jet of the (affinely scaled) input columns X̃ = X·scale + shift.

        ∂X̃/∂x_i = scale_i e_i and L X̃ = first ⊙ scale (ΔX̃ = 0): constant rows (1, D).
        """
        n, k = x.shape
        value = x if scale is None else x * scale + shift
        s = torch.ones(k, dtype=x.dtype, device=x.device) if scale is None else scale
        grads: tuple[Tensor, ...] = ()
        if spec.needs_grads:
            eye = torch.eye(k, dtype=x.dtype, device=x.device) * s
            grads = tuple(eye[i : i + 1] for i in range(spec.space_dim))
        ops = tuple(
            (torch.tensor(op.first, dtype=x.dtype, device=x.device) * s).reshape(1, k)
            for op in spec.operators
        )
        return cls(value, grads, ops, spec)

    def _with(self, value: Tensor, grads: Sequence[Tensor], ops: Sequence[Tensor]) -> Jet:
        return Jet(value, tuple(grads), tuple(ops), self.spec)

    @property
    def width(self) -> int:
        return self.value.shape[-1]

    def gradient(self) -> Tensor:
        """(N, d, W): the spatial gradient (expanded where it is a broadcast row)."""
        n = self.value.shape[0]
        return torch.stack([_expand(g, n) for g in self.grads], 1)

    def operator(self, m: int) -> Tensor:
        """(N, W): the stream of operator ``m``."""
        return _expand(self.ops[m], self.value.shape[0])

    # ---------------------------------------------------------------- operations
    def linear(self, weight: Tensor, bias: Tensor | None = None) -> Jet:
        """z = W h + b on every stream (bias on the value only)."""
        wt = weight.transpose(0, 1)
        tape = self.spec.tape
        if tape is not None:  # per-point streams in, per-point streams out, recorded
            n = self.value.shape[0]
            ins = [self.value, *(_expand(g, n) for g in self.grads)]
            ins += [_expand(o, n) for o in self.ops]
            outs = [self.value @ wt if bias is None else torch.addmm(bias, self.value, wt)]
            outs += [a @ wt for a in ins[1:]]
            tape.record(weight, bias, ins, outs)
            k = 1 + len(self.grads)
            return self._with(outs[0], outs[1:k], outs[k:])
        value = self.value @ wt if bias is None else torch.addmm(bias, self.value, wt)
        return self._with(value, [g @ wt for g in self.grads], [o @ wt for o in self.ops])

    def scale(self, factor: Tensor | float) -> Jet:
        """Multiply by a constant (scalar or per-feature vector)."""
        return self._with(
            self.value * factor, [g * factor for g in self.grads], [o * factor for o in self.ops]
        )

    def shift(self, offset: Tensor | float) -> Jet:
        """Add a constant to the value."""
        return self._with(self.value + offset, self.grads, self.ops)

    def _square_gradient(self) -> Tensor | None:
        """|∇h|² = Σ_i (∂_i h)², when an operator has a Δ part."""
        if not any(op.laplacian != 0.0 for op in self.spec.operators):
            return None
        return _grad_dot(self.grads, self.grads)

    def elementwise(self, value: Tensor, d1: Tensor, d2: Tensor) -> Jet:
        """Apply σ given σ(z), σ′(z), σ″(z) evaluated at the value."""
        sq = self._square_gradient()
        ops = []
        for op, o in zip(self.spec.operators, self.ops, strict=True):
            out = d1 * o
            if op.laplacian != 0.0:
                assert sq is not None
                c = op.laplacian
                out = out + (d2 * sq if c == 1.0 else (c * d2) * sq)
            elif op.has_second_order:  # Σ_i c_i (∂_i h)²
                out = out + d2 * _weighted_dot(self.grads, self.grads, op.second)
            ops.append(out)
        return self._with(value, [d1 * g for g in self.grads], ops)

    def activation(self, act: Activation) -> Jet:
        return self.elementwise(*act.derivatives(self.value))

    def sin(self) -> Jet:
        s, c = torch.sin(self.value), torch.cos(self.value)
        return self.elementwise(s, c, -s)

    def cos(self) -> Jet:
        s, c = torch.sin(self.value), torch.cos(self.value)
        return self.elementwise(c, -s, -c)

    def __add__(self, other: Jet) -> Jet:
        return self._with(
            self.value + other.value,
            [a + b for a, b in zip(self.grads, other.grads, strict=True)],
            [a + b for a, b in zip(self.ops, other.ops, strict=True)],
        )

    def __mul__(self, other: Jet) -> Jet:
        """Product rule (ab, a ∇b + b ∇a, a L b + b L a + 2 Σ_i c_i ∂_i a ∂_i b)."""
        va, vb = self.value, other.value
        grads = [va * gb + vb * ga for ga, gb in zip(self.grads, other.grads, strict=True)]
        cross = None
        ops = []
        for op, oa, ob in zip(self.spec.operators, self.ops, other.ops, strict=True):
            out = va * ob + vb * oa
            if op.laplacian != 0.0:
                if cross is None:
                    cross = _grad_dot(self.grads, other.grads)
                out = out + (2.0 * op.laplacian) * cross
            elif op.has_second_order:
                out = out + 2.0 * _weighted_dot(self.grads, other.grads, op.second)
            ops.append(out)
        return self._with(va * vb, grads, ops)

    def select(self, columns: slice) -> Jet:
        """A subset of the features (e.g. the spatial input columns)."""
        return self._with(
            self.value[:, columns],
            [g[:, columns] for g in self.grads],
            [o[:, columns] for o in self.ops],
        )

    @staticmethod
    def cat(jets: Sequence[Jet]) -> Jet:
        """Concatenate features (last axis)."""
        n = jets[0].value.shape[0]

        def join(streams: Sequence[Tensor]) -> Tensor:
            if all(s.shape[0] == 1 for s in streams):
                return torch.cat(list(streams), -1)
            return torch.cat([_expand(s, n) for s in streams], -1)

        first = jets[0]
        return first._with(
            torch.cat([j.value for j in jets], -1),
            [join([j.grads[i] for j in jets]) for i in range(len(first.grads))],
            [join([j.ops[m] for j in jets]) for m in range(len(first.ops))],
        )

    @staticmethod
    def sum(jets: Sequence[Jet]) -> Jet:
        out = jets[0]
        for j in jets[1:]:
            out = out + j
        return out
