"""The Gauss–Newton phase: energy natural gradient descent on the residual vector.

Let R(θ) ∈ R^M stack every loss term's residual rows (interior, each boundary kind,
initial, ``fit``, and the one gauge row Σ w_i u_θ(x_i) − ū of a problem known up to a
constant, whose Jacobian row :func:`reduced_rows` sums chunk by chunk), the rows of
term k scaled by √(w_k / N_k) (w_k its weight, N_k its number of rows), so that ‖R‖² is
exactly the weighted loss L(θ) = Σ_k w_k mean(r_k²). With the Jacobian J = ∂R/∂θ (M × P)
one iteration is

    θ ← θ − α d,   d = (JᵀJ + λ I)⁻¹ JᵀR = Jᵀ (J Jᵀ + λ I)⁻¹ R,

the primal form when M ≥ P and the dual ("Woodbury", kernel) form when M < P; the two give
the same d. For a linear PDE operator this is energy natural gradient descent (Müller,
Zeinhofer, ICML 2023): JᵀJ is the Gram matrix of the PDE's energy inner product on the
tangent space of the network, so the step preconditions away the k⁴ weight that the
residual loss puts on an error mode of wavenumber k (why Adam and L-BFGS stall near 1e-3
on multiscale problems while this reaches 1e-6 and below). The dual form is the one of
Guzmán-Cordero, Dangel, Goldshlager, Zeinhofer 2025 ("Improving energy natural gradient
descent through Woodbury, momentum, and randomization"); ENGD itself uses a grid line
search over α with a tiny fixed λ.

With ``train.loss: ritz`` there is no residual vector: the loss is the Ritz energy E(θ).
Its Gauss–Newton matrix is built from rows whose Gram matrix is half the Hessian of E with
respect to the network's outputs (√(|Ω| a/2N) ∂_i u at the interior points, √w u on the
Dirichlet penalty points, …: ``Objective.curvature_blocks``), the gradient ∇E comes from
autograd, and d = (½H + λ I)⁻¹ ½∇E in the primal form (∇E is not in the range of Jᵀ: the
source term f u has no curvature, so the dual form does not apply). For a quadratic energy
(no reaction) H is exact: this is energy natural gradient descent for the Deep Ritz loss
(Müller & Zeinhofer 2023). Resample the points every iteration: on fixed points the
quadrature energy is unbounded below (the network exploits the gaps between the points;
measured in ``benchmarks/README.md`` §8).

Step control (``method``):

- ``lm`` (default): Levenberg–Marquardt with Nielsen's update (Madsen, Nielsen, Tingleff
  2004, "Methods for non-linear least squares problems", §3.2): α = 1, the gain ratio
  ρ = (L(θ) − L(θ − d)) / (‖R‖² − ‖R − J d‖²) accepts a step when ρ > 0 and then sets
  λ ← λ · max(c, 1 − (2ρ − 1)³), ν ← 2 (c = ``decrease``, 1/3 in the book); a rejected
  step sets λ ← λ ν, ν ← 2ν and solves again (J is not rebuilt). The default: on
  ``poisson1d_multiscale`` it needs no tuning, where a fixed λ does (``benchmarks/README.md``
  §7);
- ``line-search``: fixed λ, α from the grid {1, 1/2, …, 2^−halvings}, the ENGD recipe
  (ENGD takes the grid's argmin of L(θ − α d)). The grid is walked from α = 1 down and the
  walk stops at the first α whose loss is not below the best one found so far, once a
  loss below L(θ) has been found: the first local minimum along the grid, the argmin
  whenever L(θ − α d) is unimodal in log α. A full walk costs ``halvings`` + 1 loss
  evaluations per iteration, as much as the Gram matrix on a 3D problem's points
  (``benchmarks/README.md`` §26); the walk takes 2–6.

``keep_best``: on new points every iteration the loss and the error move with the sample;
the trainer then draws one fixed validation set (:data:`GaussNewton.VALIDATION_SEED`),
:meth:`GaussNewton.validate` evaluates the weighted loss there after each accepted
iteration, and :meth:`GaussNewton.restore_best` ends the phase on the iterate where it was
lowest (held-out model selection, as in early stopping; it uses no solution).

λ is relative: the absolute damping is λ · tr(JᵀJ)/M, the mean squared row norm of J, so
the same setting suits problems whose residuals differ in scale by many orders.

J is built from the forward-Laplacian streams (:class:`~mscalepde.calculus.jet.LinearTape`): every
linear map z_s = W a_s (+ b) of the network's jet is recorded, one backward pass of Σ_n q_n
gives ∂q_n/∂z_s[n] row by row (each residual depends on its own point only), and
∂q_n/∂W = Σ_s (∂q_n/∂z_s[n]) a_s[n]ᵀ. The rows are built chunk by chunk of points, so the
graph in memory stays bounded; J itself (dual form) or JᵀJ (primal form) must fit in
``max_memory_gb``, which is checked before anything is built. On the first iteration JᵀR
is checked against the autograd gradient of ½‖R‖². Every step solves a Cholesky system
(``torch.linalg.cholesky_ex``; on CUDA too, never ``lstsq``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mscalepde.calculus.jet import LinearTape
from mscalepde.equations import ResidualBlock
from mscalepde.errors import MscaleError, TrainingError
from mscalepde.parallel.comm import Communicator, Single
from mscalepde.training.options import GaussNewtonSettings, settings_from_mapping

GIB = float(1 << 30)

# direction(λ) -> (d, predicted decrease of ‖R‖², (CG iterations, CG residual)) or None
Direction = Callable[[float], "tuple[Tensor, float, tuple[int, float]] | None"]


@dataclass
class Iteration:
    """What one accepted iteration did (a history row's extra columns)."""

    loss: float
    damping: float  # relative λ used for the accepted step
    step_size: float  # α
    form: str
    tries: int  # linear solves (lm) or loss evaluations (line-search) spent
    terms: dict[str, Tensor] = field(default_factory=dict)  # the loss terms after the step
    cg_iterations: int = 0  # matrix-free: inner CG iterations of the accepted solve
    cg_residual: float = 0.0  # matrix-free: its relative residual


def weighted_loss(terms: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """L = Σ_k w_k L_k (a term without a weight has weight 1)."""
    total = sum(weights.get(k, 1.0) * v for k, v in terms.items())
    assert isinstance(total, Tensor)
    return total


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation: the GPU's free memory, or the system's
    ``MemAvailable`` (Linux); None where it cannot be known."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Parameters:
    """The trainable parameters as one flat vector θ (column offsets into J)."""

    def __init__(self, model: nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.offset: dict[int, int] = {}
        start = 0
        for p in self.params:
            self.offset[id(p)] = start
            start += p.numel()
        self.count = start

    def vector(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def assign(self, theta: Tensor) -> None:
        with torch.no_grad():
            for p in self.params:
                o = self.offset[id(p)]
                p.copy_(theta[o : o + p.numel()].view_as(p))


def point_jacobian(tape: LinearTape, q: Tensor, params: Parameters) -> Tensor:
    """(n, P): row n is ∂q_n/∂θ, from one backward pass through the recorded jet.

    Valid when q_n depends on point n only (no coupling between points in the pass). The
    graph is kept (the caller drops it with the tape): a block's second quantity and a
    weight computed from parameters (2π B) are differentiated through it again."""
    n = q.shape[0]
    records = tape.gradients(q)
    with torch.no_grad():  # the assembly itself builds no graph
        jac = q.new_zeros(n, params.count)
        _assemble(records, params, jac)
    return jac


def _assemble(records: list, params: Parameters, jac: Tensor) -> None:
    """Add Σ_s (∂q/∂z_s) a_sᵀ of every recorded map into the columns of its parameters."""
    n = jac.shape[0]
    for weight, bias, ins, g in records:
        used = [(gs, a) for gs, a in zip(g, ins, strict=True) if gs is not None]
        if not used:
            continue
        if bias is not None and bias.requires_grad and g[0] is not None:
            o = params.offset[id(bias)]
            jac[:, o : o + bias.numel()] += g[0]
        if not weight.requires_grad:
            continue  # a frozen map (a buffer such as fixed Fourier frequencies)
        gw = torch.einsum(
            "sno,sni->noi",
            torch.stack([gs for gs, _ in used]),
            torch.stack([a.detach() for _, a in used]),
        )
        if id(weight) in params.offset:
            o = params.offset[id(weight)]
            jac[:, o : o + weight.numel()] += gw.reshape(n, -1)
            continue
        # a weight computed from parameters (e.g. 2π B): chain rule, batched over points
        per = torch.autograd.grad(
            weight,
            params.params,
            grad_outputs=gw,
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
        )
        for p, gp in zip(params.params, per, strict=True):
            if gp is not None:
                o = params.offset[id(p)]
                jac[:, o : o + p.numel()] += gp.reshape(n, -1)


def block_rows(
    model: nn.Module, block: ResidualBlock, rows: slice, params: Parameters
) -> tuple[list[Tensor], list[Tensor]]:
    """Residual vectors r_k on ``rows`` of ``block`` and their Jacobians (rows × P)."""
    tape = LinearTape()
    with torch.enable_grad():
        qs = block.quantities(model, rows, tape=tape)
        res, jacs = [], []
        for q, g in zip(qs, block.data, strict=True):
            jq = point_jacobian(tape, q, params)
            jacs.append(block.combine(jq))
            res.append(block.combine(q.detach()) - g[rows])
    return res, jacs


def reduced_rows(
    model: nn.Module, block: ResidualBlock, chunk: int, params: Parameters
) -> tuple[list[Tensor], list[Tensor]]:
    """The one row per quantity of a block with ``reduce`` weights w (the gauge,
    Σ_i w_i u_θ(x_i) − ū) and its Jacobian row Σ_i w_i ∂q(x_i)/∂θ, summed over chunks of
    ``chunk`` points (so the per-point Jacobian never exceeds a chunk)."""
    assert block.reduce is not None
    sums: list[Tensor] = []
    rows: list[Tensor] = []
    for start in range(0, block.size, chunk):
        part = slice(start, min(start + chunk, block.size))
        tape = LinearTape()
        with torch.enable_grad():
            qs = block.quantities(model, part, tape=tape)
            res = [block.combine(q.detach(), part) for q in qs]
            jacs = [block.combine(point_jacobian(tape, q, params), part) for q in qs]
        sums = res if not sums else [a + b for a, b in zip(sums, res, strict=True)]
        rows = jacs if not rows else [a + b for a, b in zip(rows, jacs, strict=True)]
    return [r - g for r, g in zip(sums, block.data, strict=True)], rows


class GaussNewton:
    """One Gauss–Newton phase on ``model`` and an objective with ``blocks()`` and
    ``terms(model)`` (:class:`~mscalepde.equations.Objective`); see the module docstring.

    ``iterate()`` makes one accepted step and returns an :class:`Iteration`, or None when no
    step reduced the loss (the phase should end)."""

    VALIDATION_SEED = 1 << 30  # keep_best: the validation points' seed offset

    def __init__(
        self,
        model: nn.Module,
        objective: object,
        weights: Mapping[str, float],
        settings: GaussNewtonSettings,
        *,
        key: str = "train.optimizer",
        comm: Communicator | None = None,
    ) -> None:
        self.model = model
        self.comm = comm if comm is not None else Single()
        self.objective = objective
        self.weights = weights
        self.settings = settings
        self.key = key
        self.params = Parameters(model)
        self.damping = settings.damping
        self.nu = 2.0
        self.checked = False
        self.recent: list[float] = []  # accepted losses of this phase (the stall test)
        # keep_best: the validation objective (the trainer draws it with seed +
        # VALIDATION_SEED, apart from every training draw, seed + step) and the best
        # iterate so far, (validation loss, iteration, parameters)
        self.validation: Any = None
        self.best: tuple[float, int, Tensor] | None = None
        self.first_rhs: float | None = None  # matrix-free: ‖b‖ of the phase's first step
        self.last_cg: tuple[int, float] = (0, 0.0)  # matrix-free: the last inner solve
        self.terms: dict[str, Tensor] = {}
        # the Ritz energy: no residual vector; Gram rows from ``curvature_blocks`` and the
        # gradient from autograd (primal form only, module docstring)
        self.energy = bool(getattr(objective, "ritz", False))
        if self.energy and settings.form == "dual":
            raise MscaleError(
                f"{key}: with loss: ritz the Gauss-Newton step has no dual form "
                f"(the energy's gradient is not J^T R); use form: primal or auto"
            )
        if settings.preconditioner == "kfac" and settings.form == "dual":
            raise MscaleError(f"{key}.preconditioner: kfac approximates J^T J, the primal "
                              f"form's matrix; use form: primal or auto")
        if self.comm.world > 1 and self.energy:
            raise MscaleError(
                f"{key}: on several processes the Gauss-Newton step has no Ritz energy "
                f"(its boundary terms are per-face sums over each rank's own points)"
            )
        if not all(callable(getattr(m, "jet", None)) for m in [model]):
            raise MscaleError(
                f"{key}: gauss-newton needs a network with a forward-Laplacian jet "
                f"({type(model).__name__} has none)"
            )

    # ------------------------------------------------------------------ pieces
    def loss(self) -> float:
        """The weighted loss at the current parameters (no graph); its terms are kept in
        ``self.terms``, so that an accepted step's history row needs no new evaluation."""
        with torch.no_grad():
            self.terms = self.objective.terms(self.model)  # type: ignore[attr-defined]
            return float(weighted_loss(self.terms, self.weights))

    def _loss_gradient(self) -> tuple[float, Tensor]:
        """The weighted loss and its gradient by autograd, as one vector (zeros for
        parameters the loss does not use)."""
        with torch.enable_grad():
            terms = self.objective.terms(self.model)  # type: ignore[attr-defined]
            total = weighted_loss(terms, self.weights)
            grads = torch.autograd.grad(total, self.params.params, allow_unused=True)
        flat = torch.cat(
            [
                (torch.zeros_like(p) if g is None else g).reshape(-1)
                for p, g in zip(self.params.params, grads, strict=True)
            ]
        )
        # the terms' values are the whole loss, their gradient this process's share
        return float(total.detach()), self.comm.sum(flat.detach())

    def _energy_gradient(self) -> tuple[float, Tensor]:
        """The weighted energy and half its gradient (autograd), as one vector."""
        value, grad = self._loss_gradient()
        if not (math.isfinite(value) and torch.isfinite(grad).all()):
            raise TrainingError("gauss-newton: the Ritz energy or its gradient is not finite")
        return value, 0.5 * grad

    def total_rows(self, rows: int) -> int:
        """M over every rank, from this rank's ``rows`` (one all-reduce with several)."""
        return rows if self.comm.world == 1 else int(self.comm.sum_float(float(rows)))

    def form(self, rows: int) -> str:
        """``primal`` or ``dual`` for ``rows`` residuals over every rank."""
        if self.energy:
            return "primal"
        f = self.settings.form
        if f == "auto":
            return "dual" if rows < self.params.count else "primal"
        return f

    def _free_form(self, form: str) -> str:
        """The matrix-free step's form: the primal one with KFAC (it approximates JᵀJ) and
        on several processes (its CG vectors live in P, the same on every rank)."""
        if self.settings.preconditioner == "kfac" or self.comm.world > 1:
            return "primal"
        return form

    def _dense_need(self, rows: int, itemsize: int) -> tuple[int, str]:
        """Bytes of the dense step for ``rows`` residuals over every rank (the dual form
        gathers every rank's rows of J), and what they hold."""
        form = self.form(rows)
        p = self.params.count
        chunk = min(self.settings.chunk, rows)
        if form == "dual":
            need = (2 * rows * p + 3 * rows * rows + chunk * p) * itemsize
            return need, f"J ({rows} residuals x {p} parameters) and J J^T"
        return (3 * p * p + 2 * chunk * p) * itemsize, f"J^T J ({p} x {p} parameters)"

    def _cg_need(self, rows: int, itemsize: int) -> tuple[int, str]:
        """Bytes of the matrix-free step: the recorded maps (measured per row on a few
        points, :func:`~.matrix_free.tape_bytes_per_row`), the CG vectors and the sketch."""
        from mscalepde.training.matrix_free import tape_bytes_per_row

        blocks = [b for group in self._scaled_groups() for b in group]
        per_row = max(tape_bytes_per_row(self.model, b) for b, _ in blocks)
        first = next(iter(self.params.params), None)  # measured in the model's precision
        if first is not None:
            per_row *= itemsize / first.element_size()
        p = self.params.count
        size = rows if self._free_form(self.form(self.total_rows(rows))) == "dual" else p
        rank = min(self.settings.rank, size) if self.settings.preconditioner == "nystrom" else 0
        need = int(per_row * rows) + (8 * (rows + p) + 3 * rank * size) * itemsize
        return need, (
            f"the recorded network maps of {rows} residuals ({per_row / 1024:.1f} KiB each) "
            f"and the CG vectors"
        )

    def solver(self, rows: int, itemsize: int) -> str:
        """``dense`` or ``cg``: ``auto`` takes the dense step while it fits in
        ``max_memory_gb`` and in the memory available, else the matrix-free one."""
        if self.settings.solver != "auto":
            return self.settings.solver
        need, _ = self._dense_need(self.total_rows(rows), itemsize)
        device = self.params.params[0].device if self.params.params else torch.device("cpu")
        free = available_memory(device)
        fits = need <= self.settings.max_memory_gb * GIB and (free is None or need <= free)
        if self.comm.world > 1:  # every rank must take the same step: dense where all fit
            fits = self.comm.max([0.0 if fits else 1.0])[0] == 0.0
        return "dense" if fits else "cg"

    def check_memory(self, rows: int, itemsize: int) -> None:
        """Refuse, naming the sizes, a step that cannot fit in ``max_memory_gb``, or in
        the memory the machine (or the GPU) has available: J (dual) or JᵀJ (primal) for the
        dense step, the recorded maps and vectors (O(M + P) beyond the network's own
        quantities) for the matrix-free one."""
        total = self.total_rows(rows)
        form = self.form(total)
        if self.solver(rows, itemsize) == "cg":
            form = self._free_form(form)
            need, what = self._cg_need(rows, itemsize)
            if self.settings.solver == "auto":  # neither fits: say what the dense one needs
                dense, held = self._dense_need(total, itemsize)
                what += f" (the dense step: {dense / GIB:.2f} GiB for {held})"
            form = f"matrix-free {form}"
        else:
            need, what = self._dense_need(total, itemsize)
        device = self.params.params[0].device if self.params.params else torch.device("cpu")
        free = available_memory(device)
        if free is not None and need > free:
            raise MscaleError(
                f"{self.key}.max_memory_gb: the {form} Gauss-Newton step needs "
                f"{need / GIB:.2f} GiB for {what}, but this machine has {free / GIB:.2f} GiB "
                f"available ({device.type}); use fewer points or a smaller network"
            )
        limit = self.settings.max_memory_gb * GIB
        if need > limit:
            raise MscaleError(
                f"{self.key}.max_memory_gb: the {form} Gauss-Newton step needs "
                f"{need / GIB:.2f} GiB for {what}, over the limit of "
                f"{self.settings.max_memory_gb:g} GiB; use fewer points, a smaller network, "
                f"or raise max_memory_gb"
            )

    def _scaled_groups(self) -> list[list[tuple[ResidualBlock, float]]]:
        """The residual blocks with their scales √(w_k/N_k), in groups: one group per
        shard of points this process holds (``block_groups`` of a
        :class:`~mscalepde.parallel.shards.ShardedObjective`), else one. The step adds the
        groups' sums in order and then over the ranks, so that one process holding two
        shards and two processes holding one each add the same numbers the same way.
        N_k counts the rows of every rank."""
        if self.energy:  # the curvature rows carry their quadrature weights: √w_k only
            curv: list[ResidualBlock] = self.objective.curvature_blocks()  # type: ignore[attr-defined]
            return [[(b, math.sqrt(self.weights.get(b.term, 1.0))) for b in curv]]
        grouped = getattr(self.objective, "block_groups", None)
        groups: list[list[ResidualBlock]] = (
            grouped() if grouped is not None else [self.objective.blocks()]  # type: ignore[attr-defined]
        )
        counts: dict[str, int] = {}
        for b in (b for group in groups for b in group):
            counts[b.term] = counts.get(b.term, 0) + b.rows
        if self.comm.world > 1:
            names = list(counts)
            mine = torch.tensor([float(counts[k]) for k in names], dtype=torch.float64)
            counts = {k: int(v) for k, v in zip(names, self.comm.sum(mine).tolist(), strict=True)}
        return [[(b, math.sqrt(self.weights.get(b.term, 1.0) / counts[b.term])) for b in group]
                for group in groups]

    def _pieces(self, blocks: list[tuple[ResidualBlock, float]]):
        """Yield (term, scaled residual rows, scaled Jacobian rows), chunk by chunk."""
        chunk = max(1, self.settings.chunk)
        for block, scale in blocks:
            for start in range(0, block.size if block.reduce is None else 1, chunk):
                rows = slice(start, min(start + chunk, block.size))
                if block.reduce is not None:  # one row over every point
                    res, jacs = reduced_rows(self.model, block, chunk, self.params)
                else:
                    res, jacs = block_rows(self.model, block, rows, self.params)
                for r, j in zip(res, jacs, strict=True):
                    if not (torch.isfinite(r).all() and torch.isfinite(j).all()):
                        raise TrainingError(
                            f"gauss-newton: the residual or Jacobian of the '{block.term}' "
                            f"term is not finite"
                        )
                    yield block.term, r * scale, j * scale

    def _verify(self, jtr: Tensor) -> None:
        """JᵀR must equal ½ ∇‖R‖² computed by autograd (module docstring)."""
        for p in self.params.params:
            p.grad = None
        _, ref = self._loss_gradient()
        err = float((jtr - 0.5 * ref).norm() / max(float(ref.norm()) * 0.5, 1e-300))
        # float64 only: near a minimum ‖∇L‖ is far below Σ|J_i||r_i|, and float32 summation
        # noise alone could exceed any fixed relative tolerance
        if jtr.dtype == torch.float64 and err > 1e-6:
            raise TrainingError(
                f"gauss-newton: the Jacobian of {type(self.model).__name__} disagrees with "
                f"autograd (relative difference {err:.1e} in J^T R); this network has a "
                f"parameter outside its linear layers' jet"
            )
        self.checked = True

    # ------------------------------------------------------------------ the step
    def _dense_system(
        self, groups: list[list[tuple[ResidualBlock, float]]], rows: int, form: str,
        theta: Tensor,
    ) -> tuple[float, Direction]:
        """The dense step: J (dual) or JᵀJ (primal) formed chunk by chunk, each damping a
        Cholesky solve. Returns the loss and ``direction(λ) -> (d, predicted decrease,
        (0, 0.0))`` (None when the system cannot be solved). ``rows``: M over every rank.
        The primal sums are added group by group, then over the ranks."""
        p = self.params.count
        if form == "dual":  # several ranks: every rank's rows of J, in rank order, on each
            parts = list(self._pieces([b for group in groups for b in group]))
            r = self.comm.gather_rows(torch.cat([x for _, x, _ in parts]))
            jac = self.comm.gather_rows(torch.cat([j for _, _, j in parts]))
            del parts
            gram = jac @ jac.T
            jtr = jac.T @ r
            loss0 = float(r @ r)
        else:
            gram, jtr, loss0 = theta.new_zeros(p, p), theta.new_zeros(p), 0.0
            for i, group in enumerate(groups):
                # the first group sums into gram and jtr; a later one apart, then added
                g_gram = gram if i == 0 else torch.zeros_like(gram)
                g_jtr = jtr if i == 0 else torch.zeros_like(jtr)
                rs = []
                for _, x, j in self._pieces(group):
                    g_gram.addmm_(j.T, j)
                    g_jtr.addmv_(j.T, x)
                    rs.append(x)
                if i > 0:
                    gram += g_gram
                    jtr += g_jtr
                r = torch.cat(rs)
                loss0 += float(r @ r)
            gram, jtr = self.comm.sum(gram), self.comm.sum(jtr)
            loss0 = self.comm.sum_float(loss0)
            jac = None
        if self.energy:  # ½∇E in place of JᵀR: d = (½H + λμI)⁻¹ ½∇E, the same predictions
            loss0, jtr = self._energy_gradient()
        elif not self.checked:
            self._verify(jtr)
        mu = float(torch.diagonal(gram).sum()) / rows  # relative → absolute damping

        def direction(lam: float) -> tuple[Tensor, float, tuple[int, float]] | None:
            """d and the predicted decrease ‖R‖² − ‖R − J d‖² (None if not solvable)."""
            damped = gram.clone()
            damped.diagonal().add_(lam * mu)  # gram + λμI without an identity matrix
            chol, info = torch.linalg.cholesky_ex(damped)
            del damped
            if int(info) != 0:
                return None
            if form == "dual":
                assert jac is not None
                y = torch.cholesky_solve(r[:, None], chol)[:, 0]
                d = jac.T @ y
                jd = gram @ y
                pred = loss0 - float((r - jd) @ (r - jd))
            else:
                d = torch.cholesky_solve(jtr[:, None], chol)[:, 0]
                pred = float(2.0 * (d @ jtr) - d @ (gram @ d))
            if not torch.isfinite(d).all():
                return None
            return d, pred, (0, 0.0)

        return loss0, direction

    def _norm2(self, prod: Any, v: Tensor) -> float:
        """‖v‖² of a vector of residual rows, added group by group, then over the ranks."""
        return self.comm.sum_float(sum(float(x @ x) for x in prod.split(v)))

    def _matrix_free_system(
        self, groups: list[list[tuple[ResidualBlock, float]]], form: str
    ) -> tuple[float, Direction]:
        """The matrix-free step (:mod:`.matrix_free`): products with J and Jᵀ from the
        recorded maps, PCG with the Nyström preconditioner, an inexact solve. Several
        groups or ranks: the products of each, summed (:class:`.matrix_free.Summed`)."""
        from mscalepde.training.kfac import Kfac
        from mscalepde.training.krylov import Nystrom, pcg
        from mscalepde.training.matrix_free import Summed, build_products

        s = self.settings
        parts = [build_products(self.model, group, self.params, s.chunk) for group in groups]
        prod: Any = parts[0]
        if len(parts) > 1 or self.comm.world > 1:
            prod = Summed(parts, self.comm)
        r = prod.residual
        loss0 = self._norm2(prod, r)
        if self.energy:  # ½∇E in place of JᵀR (no product spent on JᵀR)
            loss0, b = self._energy_gradient()
        else:
            b = prod.jtw(r)
            if not self.checked:
                self._verify(b)
        mu = prod.trace() / prod.rows
        dual = form == "dual"
        size = prod.rows if dual else self.params.count
        rhs = r if dual else b
        norm_b = float(b.norm())
        if self.first_rhs is None or self.first_rhs == 0.0:
            self.first_rhs = norm_b
        forcing = min(s.forcing, math.sqrt(norm_b / self.first_rhs)) if self.first_rhs else 0.0
        tol = max(s.cg_tol, forcing)
        nys: Any = None
        if s.preconditioner == "nystrom":
            nys = Nystrom(lambda x: prod.gram(x, dual), size, s.rank, r)
        elif s.preconditioner == "kfac":  # (primal only: _iterate)
            nys = Kfac(parts, self.comm)

        def direction(lam: float) -> tuple[Tensor, float, tuple[int, float]] | None:
            rho = lam * mu
            solved = pcg(
                lambda x: prod.gram(x, dual) + rho * x, rhs, tol=tol,
                max_iter=s.cg_max_iter, precond=None if nys is None else nys.inverse(rho),
            )
            d = prod.jtw(solved.x) if dual else solved.x
            if not torch.isfinite(d).all():
                return None
            self.last_cg = (solved.iterations, solved.residual)
            jd = prod.jv(d)
            if dual or not self.energy:
                pred = loss0 - self._norm2(prod, r - jd)
            else:
                pred = float(2.0 * (d @ b) - jd @ jd)
            return d, pred, (solved.iterations, solved.residual)

        return loss0, direction

    # ------------------------------------------------------------------ the step
    def reset(self, damping: float) -> None:
        """The start of a phase: λ, ν = 2, no accepted losses, no kept iterate."""
        self.damping, self.nu, self.recent, self.best = damping, 2.0, [], None

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the phase (numbers and one tensor: ``weights_only``
        loads it)."""
        out = {"damping": self.damping, "nu": self.nu, "checked": self.checked,
               "recent": list(self.recent)}
        if self.best is not None:
            out["best"] = [self.best[0], self.best[1], self.best[2].detach().cpu().clone()]
        return out

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.damping, self.nu, self.checked = state["damping"], state["nu"], state["checked"]
        self.recent = [float(v) for v in state.get("recent", [])]
        best = state.get("best")
        self.best = None
        if best is not None:
            theta = self.params.vector()
            self.best = (float(best[0]), int(best[1]), best[2].to(theta.device, theta.dtype))

    def validate(self, k: int) -> dict[str, float]:
        """``keep_best``: the weighted loss on the validation points after iteration ``k``
        (a history column; nothing without ``keep_best``); the iterate is kept when it is
        the lowest so far.

        With new points every iteration the training loss and the error move with the
        sample (PINNacle's Heat 2d-VC: between 0.19 and 0.33 over the last 30 iterations);
        the loss on one fixed set of points drawn apart from the training points is an
        estimate of the residual's norm that does not move with the sample, so its
        minimiser is a choice among the iterates that uses no solution (model selection on
        held-out points, as early stopping does)."""
        if not self.settings.keep_best:
            return {}
        with torch.no_grad():
            value = float(weighted_loss(self.validation.terms(self.model), self.weights))
        if math.isfinite(value) and (self.best is None or value < self.best[0]):
            self.best = (value, k, self.params.vector().detach().clone())
        return {"validation_loss": value}

    def restore_best(self, k: int) -> str | None:
        """``keep_best``: set the parameters to the kept iterate; a note when it is not the
        last one (``k``)."""
        if not self.settings.keep_best or self.best is None or self.best[1] == k:
            return None
        value, kept, theta = self.best
        self.params.assign(theta)
        return (f"Gauss-Newton ended on iteration {kept} of {k}: the lowest loss on the "
                f"validation points ({value:.3e}; keep_best)")

    def stalled(self) -> str | None:
        """Why the phase should end, when the loss has stalled (``patience`` > 0): the best
        loss of the last ``patience`` iterations is not below ``stall`` times the best
        before them. With new points every iteration the loss is noisy and its floor is
        the sampling noise; iterations on that floor do not lower the error."""
        n, factor = self.settings.patience, self.settings.stall
        if n <= 0 or len(self.recent) <= n:
            return None
        before, last = min(self.recent[:-n]), min(self.recent[-n:])
        if last < factor * before:
            return None
        return (f"the loss stalled (best of the last {n} iterations {last:.3e}, "
                f"best before them {before:.3e}; patience {n}, stall {factor:g})")

    def iterate(self) -> Iteration | None:
        it = self._iterate()
        if it is not None:
            self.recent.append(float(it.loss))
        return it

    def _iterate(self) -> Iteration | None:
        s = self.settings
        groups = self._scaled_groups()
        rows = sum(b.rows for group in groups for b, _ in group)  # this process's
        total = self.total_rows(rows)
        form = self.form(total)
        theta = self.params.vector()
        self.check_memory(rows, theta.element_size())
        if self.solver(rows, theta.element_size()) == "cg":
            form = self._free_form(form)
            loss0, direction = self._matrix_free_system(groups, form)
            form = f"cg-{form}"
        else:
            loss0, direction = self._dense_system(groups, total, form, theta)

        if s.method == "line-search":
            found = direction(self.damping)
            if found is None:
                return None
            d, _, info = found
            best, best_alpha, best_terms = loss0, 0.0, {}
            evaluations = 0
            for k in range(s.halvings + 1):
                alpha = 0.5**k
                self.params.assign(theta - alpha * d)
                value = self.loss()
                evaluations += 1
                if math.isfinite(value) and value < best:
                    best, best_alpha, best_terms = value, alpha, self.terms
                elif best_alpha > 0.0:
                    break  # the loss rose again along the grid: its first local minimum
            if best_alpha == 0.0:
                self.params.assign(theta)
                return None
            self.params.assign(theta - best_alpha * d)
            return Iteration(
                best, self.damping, best_alpha, form, evaluations, terms=best_terms,
                cg_iterations=info[0], cg_residual=info[1],
            )

        for tries in range(1, s.max_tries + 1):
            found = direction(self.damping)
            value = math.nan
            if found is not None:
                d, pred, info = found
                self.params.assign(theta - d)
                value = self.loss()
                rho = (loss0 - value) / pred if pred > 0 else -1.0
                if math.isfinite(value) and value < loss0 and rho > 0:
                    used = self.damping
                    factor = max(s.decrease, 1.0 - (2.0 * rho - 1.0) ** 3)
                    self.damping = max(s.min_damping, self.damping * factor)
                    self.nu = 2.0
                    return Iteration(
                        value, used, 1.0, form, tries, terms=self.terms,
                        cg_iterations=info[0], cg_residual=info[1],
                    )
            self.params.assign(theta)
            self.damping *= self.nu
            self.nu *= 2.0
            if self.damping > s.max_damping:
                break
        self.params.assign(theta)
        return None


__all__ = [
    "GaussNewton",
    "GaussNewtonSettings",
    "Iteration",
    "Parameters",
    "block_rows",
    "point_jacobian",
    "settings_from_mapping",
    "weighted_loss",
]

