"""Training loop: optimiser phases in order (Adam, L-BFGS, Gauss–Newton).

The trainer knows nothing about problem files: it takes a model, an objective with
``terms(model) -> {name: tensor}`` and ``resample(seed)`` (and, for Gauss–Newton,
``blocks()`` and ``set_dtype``), and :class:`TrainSettings`. It minimises
L(θ) = Σ_k w_k L_k(θ) and records a :class:`History`. ``train.optimizer`` lists the phases
(:meth:`TrainSettings.phases`); the step counter runs on across them:

- ``adam`` (Kingma, Ba 2015): ``steps`` steps at learning rate ``lr``, multiplied by
  ``decay.factor`` every ``decay.every`` steps when a decay is given, resampling the points
  every ``resample_every`` steps;
- ``lbfgs`` (Liu, Nocedal 1989): a strong-Wolfe line search, one logged iteration per
  ``optimizer.step(closure)`` (the optimizer keeps its curvature pairs between calls). It
  uses the current points (no resampling) and stops early after 50 iterations without a
  relative decrease of the loss of 1e-7;
- ``gauss-newton``: :mod:`mscalepde.training.gauss_newton` (energy natural gradient), in float64 by
  default: the model and the points switch precision at the phase boundary, and switch back
  to the run's ``dtype`` for a later Adam or L-BFGS phase. Every accepted iteration is a
  history row, with its damping and step size.

Without ``optimizer`` the phases are Adam (``steps``) then L-BFGS (``lbfgs_steps``), as
before the Gauss–Newton optimiser.

``budget_seconds`` (training time, evaluation excluded) and ``budget_steps`` (steps of all
phases) end training at the step boundary where the budget is spent, whatever phase is
running: the basis of equal-time comparisons (``mscalepde bench``). The last step is a
history row and the notes say where the budget ran out.

``compile`` (``auto | on | off``): :mod:`mscalepde.training.compile`.

Every step the loss is checked (and, in Adam, the gradient): a NaN or infinite value
raises :class:`~mscalepde.errors.TrainingError` naming the loss term that went bad, after
restoring the last good parameters (those of the last finite loss seen at a history row),
so the caller can still save them. With ``on_nan: rollback`` the trainer instead reloads
its last checkpoint (kept in memory), halves the learning rate (Adam, L-BFGS) or doubles
the damping (Gauss–Newton) and goes on, at most ``rollbacks`` times.

**Checkpoints and resume.** :meth:`Trainer.state_dict` is the complete state at a step
boundary: parameters, the optimiser's state (Adam moments, L-BFGS curvature pairs and its
stall counter, Gauss–Newton damping λ and ν), the phase and the step within it, the seed of
the current points (the sampler is a pure function of its seed: points of step k come from
``seed + k``), the RNG states, the history, the notes and the per-phase log.
:meth:`Trainer.load_state_dict` before :meth:`run` continues from there; on CPU with
``compile: off`` a resumed run is bit-identical to an uninterrupted one (tested in float64
for each phase). Callbacks get ``on_checkpoint`` every ``checkpoint_every`` steps, after
``checkpoint_seconds`` of training time since the last one, and when a stop is requested.
A :class:`~mscalepde.training.signals.StopRequest` (set by the CLI's SIGINT and SIGTERM handlers)
stops training at the next step boundary: the trainer checkpoints and raises
:class:`~mscalepde.errors.Stopped`.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mscalepde.architectures.growable import Growable, growth_of
from mscalepde.errors import Stopped, TrainingError
from mscalepde.parallel.comm import Communicator, Single
from mscalepde.training.callbacks import Callback, ObjectiveLike
from mscalepde.training.compile import compile_terms, worth_compiling
from mscalepde.training.history import History
from mscalepde.training.settings import PHASE_CODES, Phase, TrainSettings, plain_value
from mscalepde.training.signals import StopRequest
from mscalepde.training.state import check_position

STALL_ITERATIONS = 50  # L-BFGS stops after this many iterations without a decrease


CHECKPOINT_FORMAT = 1  # version of :meth:`Trainer.state_dict`'s layout


class _Rollback(Exception):
    """Raised inside a phase when ``on_nan: rollback`` takes over a non-finite loss."""


class _BudgetSpent(Exception):
    """Raised after the step that spent ``budget_seconds`` or ``budget_steps``."""


def make_adam(params: list[Tensor], lr: float) -> torch.optim.Adam:
    """Adam (Kingma, Ba 2015) with the single-kernel ``fused`` implementation where torch
    supports it (3x faster than the default on CPU for a 30 k-parameter network, measured),
    else the default one. Both compute the same update."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


class Trainer:
    """Minimise the weighted loss of ``objective`` over ``model``'s parameters.

    ``evaluate(model) -> {'rel_l2': ..., 'max_error': ...}`` (optional) adds error columns
    to the history rows; it must not build a graph. ``stop``: a
    :class:`~mscalepde.training.signals.StopRequest` read after every step (module docstring).
    ``enter_phase(trainer, i, resuming)`` (optional) is called before phase i starts or
    resumes: time marching swaps the objective there (:mod:`mscalepde.run.windows`).
    """

    def __init__(
        self,
        model: nn.Module,
        objective: ObjectiveLike,
        settings: TrainSettings,
        *,
        evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
        callbacks: Iterable[Callback] = (),
        stop: StopRequest | None = None,
        comm: Communicator | None = None,
    ) -> None:
        self.model = model
        self.comm = comm if comm is not None else Single()  # the ranks of a parallel run
        self.objective = objective
        self.settings = settings
        self.evaluate = evaluate
        self.callbacks = list(callbacks)
        self.stop = stop
        self.history = History()
        self.step = 0
        self.phase = "adam"
        self.train_seconds = 0.0
        self._clock_start = 0.0
        self.last_loss: Tensor | None = None  # the loss of the last step
        self._good_state: dict[str, Tensor] | None = None
        self._good_step = 0
        self.compiled = False
        self._cuda_graphs = False
        self.cuda_graph_evaluations = 0  # loss evaluations replayed as CUDA graphs
        self.notes: list[str] = []
        self._terms: Callable[[], dict[str, Tensor]] = self._eager_terms
        self.phases = settings.phases()
        self.phase_log: list[dict[str, Any]] = []  # per phase run: name, steps, seconds
        self._phase_end = 0
        self._train_dtype = next(model.parameters()).dtype
        # the checkpoint's position: phase in progress, steps done, ended early, its start
        self._phase_index = 0
        self._phase_k = 0
        self._phase_ended = False
        self._phase_t0 = 0.0
        self._optimizer: Any = None  # the phase's torch optimizer or GaussNewton
        self._gauss_newton: dict[int, tuple[Any, torch.dtype]] | None = None
        self._grown = False  # grow_model() was called: the Adam phase takes new params
        self._lbfgs_counter = (math.inf, 0)  # L-BFGS: best loss, iterations without decrease
        self._lr_scale = 1.0  # halved by each rollback
        self.rollbacks = 0
        self._resume: dict[str, Any] | None = None  # set by load_state_dict
        self._snapshot: dict[str, Any] | None = None  # the in-memory checkpoint (rollback)
        self._checkpoint_step = -1
        self._checkpoint_time = 0.0  # training time of the last checkpoint
        self.enter_phase: Callable[[Trainer, int, bool], None] | None = None

    def _eager_terms(self) -> dict[str, Tensor]:
        return self.objective.terms(self.model)

    def _compile(self, cuda_graphs: bool = True) -> None:
        """Switch the loss to a ``torch.compile``d version (eager again on any failure;
        :func:`~mscalepde.training.compile.compile_terms`)."""
        cuda = cuda_graphs and next(self.model.parameters()).is_cuda
        fn, failure = compile_terms(self._eager_terms, cuda)
        if fn is None:
            self.notes.append(f"torch.compile failed, training eagerly: {failure}")
            warnings.warn(self.notes[-1], RuntimeWarning, stacklevel=2)
            return
        self._terms, self.compiled, self._cuda_graphs = fn, True, cuda

    def _auto_compile(self, step_seconds: float, adam_left: int, lbfgs_left: int) -> bool:
        cuda = next(self.model.parameters()).is_cuda
        return worth_compiling(cuda, step_seconds, adam_left, lbfgs_left)

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The complete training state at the current step boundary (module docstring).

        Plain containers of tensors, numbers and strings only, so that
        ``torch.load(..., weights_only=True)`` reads it back."""
        opt = self._optimizer
        if opt is None:
            optimizer: dict[str, Any] | None = None
        elif isinstance(opt, torch.optim.Optimizer):
            optimizer = copy.deepcopy(opt.state_dict())
        else:  # GaussNewton
            optimizer = opt.state()
        best, since = self._lbfgs_counter
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": CHECKPOINT_FORMAT,
            "world": self.comm.world,
            "step": self.step,
            "phase_index": self._phase_index,
            "phase_name": self.phase,
            "phase_k": self._phase_k,
            "phase_ended": self._phase_ended,
            "phase_t0": self._phase_t0,
            "train_seconds": self.train_seconds,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "growth": [[plain_value(v), seed] for v, seed in growth_of(self.model)],
            "optimizer": optimizer,
            "lbfgs_counter": [best, since],
            "points_seed": int(getattr(self.objective, "seed", 0)),
            "history": {"columns": list(self.history.columns),
                        "rows": [dict(r) for r in self.history.rows]},
            "notes": list(self.notes),
            "phase_log": [dict(p) for p in self.phase_log],
            "compiled": self.compiled,
            "lr_scale": self._lr_scale,
            "rollbacks": self.rollbacks,
            "rng": rng,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (a :meth:`state_dict`) when :meth:`run` is called.

        Raises ``ValueError`` when it does not fit this trainer's phases (the caller checks
        settings first and reports the differing key)."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')} (expected "
                             f"{CHECKPOINT_FORMAT})")
        world = int(state.get("world", 1))
        if world != self.comm.world:  # each rank's points come from its own seed stream
            raise ValueError(f"it was written by a run on {world} process(es); resume it on "
                             f"{world} (this run has {self.comm.world})")
        i = int(state["phase_index"])
        if i >= len(self.phases) or self.phases[i].name != state["phase_name"]:
            raise ValueError(f"the checkpoint is in phase {i} ({state['phase_name']}), "
                             f"which the settings do not have")
        dtype = getattr(torch, str(state["dtype"]))
        self.model.to(dtype)
        replay = list(state.get("growth", []))[len(growth_of(self.model)) :]
        if replay and not isinstance(self.model, Growable):
            raise ValueError("the checkpoint grew frequency bands this network cannot have")
        for value, seed in replay:  # model.adapt's additions
            self.model.grow(value, int(seed))
        self.model.load_state_dict(state["model"])
        self.step = int(state["step"])
        self.train_seconds = float(state["train_seconds"])
        self.history = History()
        for row in state["history"]["rows"]:
            self.history.append(dict(row))
        self.history.columns = list(state["history"]["columns"])
        self.notes = list(state["notes"])
        self.phase_log = [dict(p) for p in state["phase_log"]]
        self._lr_scale = float(state["lr_scale"])
        self.rollbacks = int(state["rollbacks"])
        self._checkpoint_time = self.train_seconds
        self._good_state = copy.deepcopy(self.model.state_dict())
        self._good_step = self.step
        check_position(state)  # what the resume applies later: checked now, in the guard
        self._resume = dict(state)

    def _restore_position(self) -> tuple[int, int, bool, Any]:
        """Apply the pending resume state's position: points, dtype, RNG; returns
        ``(phase index, steps done in it, ended early, optimizer state)``."""
        state = self._resume
        assert state is not None
        self._resume = None
        dtype = getattr(torch, str(state["dtype"]))
        set_dtype = getattr(self.objective, "set_dtype", None)
        if set_dtype is not None:
            set_dtype(dtype)
        if int(getattr(self.objective, "seed", state["points_seed"])) != state["points_seed"]:
            self.objective.resample(int(state["points_seed"]))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available() and (
            len(rng["cuda"]) == torch.cuda.device_count()
        ):
            torch.cuda.set_rng_state_all(rng["cuda"])
        self._phase_t0 = float(state["phase_t0"])
        best, since = state["lbfgs_counter"]
        self._lbfgs_counter = (float(best), int(since))
        mode = self.settings.compile  # may differ from the checkpoint's run
        if not self.compiled and (mode == "on" or (mode == "auto" and state["compiled"])):
            if state["phase_name"] != "gauss-newton":
                self._compile(cuda_graphs=state["phase_name"] == "adam")
        # a copy: the optimiser updates its state in place; a rollback snapshot must not
        return (int(state["phase_index"]), int(state["phase_k"]), bool(state["phase_ended"]),
                copy.deepcopy(state["optimizer"]))

    def _checkpoint(self) -> None:
        """Tell the callbacks to write a checkpoint of this step (once per step); keep it
        in memory too when ``on_nan: rollback`` may need it."""
        if self._checkpoint_step == self.step:
            return
        self._checkpoint_step = self.step
        self._checkpoint_time = self.train_seconds
        if self.settings.on_nan == "rollback":
            self._snapshot = self.state_dict()
        for cb in self.callbacks:
            cb.on_checkpoint(self, self.step)

    # ------------------------------------------------------------------ internals
    def _loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        if self._cuda_graphs:
            # CUDA graphs (``reduce-overhead``, Adam only) reuse their output memory on
            # every replay: each evaluation starts a new step, so a history row's recomputed
            # loss never reads outputs that a later replay overwrote.
            torch.compiler.cudagraph_mark_step_begin()
            self.cuda_graph_evaluations += 1
        terms = self._terms()
        return self._total(terms), terms

    def _total(self, terms: dict[str, Tensor]) -> Tensor:
        """L = Σ_k w_k L_k."""
        total = sum(self.settings.weights.get(k, 1.0) * v for k, v in terms.items())
        assert isinstance(total, Tensor)
        return total

    def _check(self, loss: Tensor, terms: dict[str, Tensor]) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            bad = [k for k, v in terms.items() if not math.isfinite(float(v.detach()))]
            detail = ""
            if bad:
                detail = f" (first non-finite term: {bad[0]}" + (
                    f"; also {', '.join(bad[1:])})" if bad[1:] else ")")
            self._diverged(f"the loss became {value}", detail)

    def _check_gradient(self, params: list[Tensor]) -> None:
        """A non-finite gradient with a finite loss: name the term whose gradient is bad
        (one extra backward pass per term, only then)."""
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6
        if total_norm is not None:
            norm = total_norm(grads)
        else:
            norm = torch.stack([torch.linalg.vector_norm(g) for g in grads]).sum()
        if math.isfinite(float(norm)):
            return
        bad = "total"
        _, terms = self._loss()
        for name, term in terms.items():
            gs = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
            if not all(bool(torch.isfinite(g).all()) for g in gs if g is not None):
                bad = name
                break
        self._diverged("the gradient became non-finite", f" (term: {bad})")

    def _diverged(self, what: str, detail: str = "") -> None:
        """Roll back (``on_nan: rollback``, budget left) or raise :class:`TrainingError`."""
        s = self.settings
        where = f"{self.phase} step {self.step}{detail}"
        if s.on_nan == "rollback" and self._snapshot is not None and self.rollbacks < s.rollbacks:
            raise _Rollback(f"{what} at {where}")
        if self._good_state is not None:
            self.model.load_state_dict(self._good_state)
        tried = f" after {self.rollbacks} rollback(s)" if self.rollbacks else ""
        raise TrainingError(
            f"{what} at {where}{tried}; parameters restored to step {self._good_step}. "
            f"Try a smaller train.lr, float64, other weights or train.on_nan: rollback."
        )

    def _rollback(self, why: str) -> None:
        """Reload the in-memory checkpoint; halve the learning rate (double λ in GN)."""
        assert self._snapshot is not None
        snapshot = self._snapshot
        rollbacks = self.rollbacks + 1
        notes = [*self.notes, f"{why}: rolled back to step {snapshot['step']}, learning "
                 f"rate x{self._lr_scale * 0.5:g} (rollback {rollbacks} of "
                 f"{self.settings.rollbacks})"]
        scale = self._lr_scale * 0.5  # halved again on each rollback, whatever the snapshot
        self.load_state_dict(snapshot)
        self.notes = notes
        self.rollbacks = rollbacks
        self._lr_scale = scale
        self._snapshot = snapshot
        assert self._resume is not None
        gn_state = self._resume["optimizer"]
        if self._resume["phase_name"] == "gauss-newton" and gn_state is not None:
            damping = gn_state["damping"] / self._lr_scale
            self._resume["optimizer"] = {**gn_state, "damping": damping}
        for cb in self.callbacks:
            cb.on_restore(self)

    def _log(
        self,
        loss: Tensor,
        terms: dict[str, Tensor],
        lr: float,
        extra: Mapping[str, float] | None = None,
    ) -> None:
        row: dict[str, float] = {
            "step": float(self.step),
            "time": self.train_seconds,
            "lr": lr,
            "loss": float(loss.detach()),
        }
        for k, v in terms.items():
            row[f"loss_{k}"] = float(v.detach())
        if self.evaluate is not None:
            row.update(self.evaluate(self.model))
        row["phase"] = PHASE_CODES.get(self.phase, 0.0)
        if extra:
            row.update(extra)
        self.history.append(row)
        self._good_state = copy.deepcopy(self.model.state_dict())
        self._good_step = self.step
        for cb in self.callbacks:
            cb.on_log(self, row)

    def _after_step(
        self,
        k: int,
        loss: Tensor,
        terms: dict[str, Tensor],
        lr: float,
        force_log: bool = False,
        extra: Mapping[str, float] | None = None,
        ended: bool = False,
    ) -> None:
        """Step ``k`` of the phase is done: log, callbacks, checkpoint, stop request."""
        s = self.settings
        self.train_seconds += time.perf_counter() - self._clock_start
        if self.comm.world > 1:  # every rank ends and checkpoints at the same step
            self.train_seconds = self.comm.max([self.train_seconds])[0]
        self.last_loss = loss  # a tensor: read (and synchronised) only by who needs it
        self._phase_k, self._phase_ended = k, ended
        self.phase_log[-1].update(
            steps=self.phase_log[-1]["steps"] + 1, seconds=self.train_seconds - self._phase_t0
        )
        last = self.step == self.total_steps
        budget = self._budget_spent() and not last  # (a complete run just ends)
        if budget:
            last = force_log = True  # the budget's last step ends the run: a history row
        if self.step % s.log_every == 0 or last or self.step == self._phase_end or force_log:
            self._log(loss, terms, lr, extra)
        for cb in self.callbacks:
            cb.on_step(self, self.step)
        due = bool(s.checkpoint_every) and self.step % s.checkpoint_every == 0
        if s.checkpoint_seconds and self.train_seconds - self._checkpoint_time >= (
            s.checkpoint_seconds
        ):
            due = True  # a long Gauss-Newton phase takes few, expensive steps
        if due and not last:
            self._checkpoint()
        stop = bool(self.stop)  # (set by a signal, or by a callback's on_step)
        if self.comm.world > 1:  # a stop on any rank stops every rank at this step
            stop = self.comm.max([float(stop)])[0] > 0
        if stop and not last:  # (on the last step the run is complete: it just ends)
            if self.history.last.get("step") != self.step:
                self._log(loss, terms, lr, extra)  # the stopping step is a history row
            self._checkpoint()
            raise Stopped(str(self.stop.reason) if self.stop else "another rank", self.step)
        self._clock_start = time.perf_counter()
        if budget:
            raise _BudgetSpent

    def _budget_spent(self) -> bool:
        s = self.settings
        return (s.budget_seconds > 0 and self.train_seconds >= s.budget_seconds) or (
            s.budget_steps > 0 and self.step >= s.budget_steps
        )

    def _set_dtype(self, dtype: torch.dtype) -> None:
        """Switch the model and the objective's points and data to ``dtype`` (a phase
        boundary: the Gauss–Newton phase runs in float64 by default)."""
        current = next(self.model.parameters()).dtype
        if current == dtype:
            return
        self.model.to(dtype)
        set_dtype = getattr(self.objective, "set_dtype", None)
        if set_dtype is not None:
            set_dtype(dtype)
        self.notes.append(f"{self.phase} phase in {str(dtype).replace('torch.', '')}")

    def _after_resample(self) -> None:
        """Seed of the k-th step's points: ``seed + k`` (every optimiser alike)."""
        self.objective.resample(self.settings.seed + self.step + 1)

    def grow_model(self, value: Any) -> None:
        """Add a frequency band to the model (``model.adapt``; from a callback's
        ``on_step`` in an Adam phase): ``Growable.grow``
        (``mscalepde/architectures/growable.py``) with a seed from the run's seed, the
        step and the number of earlier growths. The new parameters join Adam at once as a
        parameter group of their own (so a checkpoint, a stop or a budget at this step
        sees a consistent state), later Gauss–Newton phases are rebuilt for the larger
        model, and the last good state and the rollback snapshot are taken again."""
        if self.phase != "adam" or not isinstance(self._optimizer, torch.optim.Adam):
            raise ValueError("the model grows only between Adam steps")
        if not isinstance(self.model, Growable):
            raise ValueError(f"a {type(self.model).__name__} has no frequency bands to grow")
        growth = growth_of(self.model)
        seed = self.settings.seed * 1_000_003 + self.step * 64 + len(growth)
        added = self.model.grow(value, seed)
        names = dict(self.model.named_parameters())
        lr = self._optimizer.param_groups[0]["lr"]
        self._optimizer.add_param_group({"params": [names[n] for n in added], "lr": lr})
        if self.compiled:  # the compiled loss was traced for the smaller model
            self._terms, self._cuda_graphs = self._eager_terms, False
            self.compiled = False
            self.notes.append(f"compiled loss dropped at step {self.step}: the model grew")
        gauss_newton = self.prepare()
        for i, ph in enumerate(self.phases):
            if ph.name == "gauss-newton" and i > self._phase_index:
                gauss_newton[i] = self._make_gauss_newton(ph, i)
        self._good_state = copy.deepcopy(self.model.state_dict())
        self._good_step = self.step
        if self.settings.on_nan == "rollback":
            self._snapshot = self.state_dict()
        self._grown = True

    # ------------------------------------------------------------------ public
    def prepare(self) -> dict[int, tuple[Any, torch.dtype]]:
        """Build the Gauss–Newton phases, checking their memory (a one-line refusal names
        the sizes); :meth:`run` does it too, so that a caller can check before it writes."""
        if self._gauss_newton is None:
            self._gauss_newton = {
                i: self._make_gauss_newton(ph, i)
                for i, ph in enumerate(self.phases)
                if ph.name == "gauss-newton"
            }
        return self._gauss_newton

    def run(self) -> History:
        """Train (or continue after :meth:`load_state_dict`); returns the history (also
        available as ``self.history``)."""
        s = self.settings
        phases = self.phases
        for cb in self.callbacks:
            cb.on_start(self)
        gauss_newton = self.prepare()  # built (and their memory checked) before training
        self._clock_start = time.perf_counter()
        if self.stop is not None:
            self.stop.deferred = True  # from now on a signal stops at a step boundary
        if self._resume is not None and s.on_nan == "rollback" and self._snapshot is None:
            self._snapshot = copy.deepcopy(self._resume)  # the checkpoint resumed from
        if self._resume is None:
            # row at step 0: the initial state
            if phases:
                self.phase = phases[0].name
            if phases and phases[0].name == "gauss-newton":
                self._set_dtype(gauss_newton[0][1])
            loss0, terms0 = self._loss()
            self._check(loss0, terms0)
            self.train_seconds += time.perf_counter() - self._clock_start
            first_lr = float(phases[0].options.get("lr", 1.0)) if phases else s.lr
            self._log(loss0, terms0, first_lr)
            self._clock_start = time.perf_counter()
            gradient_steps = [ph.steps for ph in phases if ph.name != "gauss-newton"]
            if s.compile == "on" and gradient_steps:
                first = next(ph for ph in phases if ph.name != "gauss-newton")
                self._compile(cuda_graphs=first.name == "adam")  # L-BFGS: never CUDA graphs
            if s.on_nan == "rollback":
                self._snapshot = self.state_dict()
        while True:
            try:
                self._run_phases(gauss_newton)
                break
            except _Rollback as exc:
                self._rollback(str(exc))
            except _BudgetSpent:
                what = (f"{s.budget_seconds:g} s of training" if s.budget_seconds > 0
                        and self.train_seconds >= s.budget_seconds
                        else f"{s.budget_steps} steps")
                note = f"budget of {what} spent at {self.phase} step {self.step}"
                if note not in self.notes:  # a resumed run has it already
                    self.notes.append(note)
                break
        self.train_seconds += time.perf_counter() - self._clock_start
        self._clock_start = time.perf_counter()
        for cb in self.callbacks:
            cb.on_end(self)
        return self.history

    def _run_phases(self, gauss_newton: Mapping[int, tuple[Any, torch.dtype]]) -> None:
        """Run the phases from the current position (the start, or a loaded state)."""
        start, k0, ended, opt_state = 0, 0, False, None
        if self._resume is not None:
            if self.enter_phase is not None:  # before the points are restored into it
                self.enter_phase(self, int(self._resume["phase_index"]), True)
            start, k0, ended, opt_state = self._restore_position()
        if self._budget_spent():  # e.g. resumed from the final checkpoint of a budgeted run
            raise _BudgetSpent
        for i, ph in enumerate(self.phases):
            if i < start or (i == start and ended):
                continue
            resumed = i == start and k0 > 0
            self.phase = ph.name
            self._phase_index = i
            if not resumed:
                if self.enter_phase is not None:
                    self.enter_phase(self, i, False)
                k0, opt_state = 0, None
                self._phase_t0 = self.train_seconds + time.perf_counter() - self._clock_start
                self._lbfgs_counter = (math.inf, 0)
                self.phase_log.append({"name": ph.name, "steps": 0, "seconds": 0.0})
            self._phase_k, self._phase_ended = k0, False
            self._phase_end = self.step + ph.steps - k0
            if ph.name == "gauss-newton":
                gn, dtype = gauss_newton[i]
                self._set_dtype(dtype)
                self._run_gauss_newton(ph, gn, k0, opt_state)
            else:
                self._set_dtype(self._train_dtype)
                later = sum(
                    p.steps for p in self.phases[i + 1 :] if p.name != "gauss-newton"
                )
                if ph.name == "adam":
                    self._run_adam(ph, later, k0, opt_state)
                else:
                    self._run_lbfgs(ph, k0, opt_state)

    def _run_adam(self, ph: Phase, later: int, k0: int = 0, state: Any = None) -> None:
        """Adam for ``ph.steps`` steps from step ``k0`` of the phase (with the optimizer's
        ``state`` when resuming); ``compile: auto`` is decided on steps 2–21."""
        s = self.settings
        params = [p for p in self.model.parameters() if p.requires_grad]
        lr0 = float(ph.options.get("lr", s.lr)) * self._lr_scale
        decay = ph.options.get("decay")
        resample_every = int(ph.options.get("resample_every", s.resample_every) or 0)
        opt = make_adam(params, lr0)
        if state is not None:
            groups = state["param_groups"]
            if len(groups) > 1:  # the model grew in this phase: one group per growth
                opt = self._grown_adam(params, len(groups) - 1, lr0)
            opt.load_state_dict(state)
        self._optimizer = opt
        probe = 20  # eager steps timed (2..21) before deciding on compile "auto"
        probe_start = 0.0
        for k in range(k0 + 1, ph.steps + 1):
            if s.compile == "auto" and not self.compiled:
                if k == 2:
                    probe_start = self.train_seconds
                elif k == probe + 2 and k0 < 2:
                    per_step = (self.train_seconds - probe_start) / probe
                    left, more = ph.steps - k + 1, later
                    if s.budget_seconds > 0:  # a budget caps the steps that can still run
                        room = max(0.0, s.budget_seconds - self.train_seconds) / per_step
                        left, more = min(left, int(room)), 0
                    if s.budget_steps > 0:
                        left, more = min(left, s.budget_steps - self.step), 0
                    if self._auto_compile(per_step, left, more):
                        self._compile()
            if resample_every and k > 1 and (k - 1) % resample_every == 0:
                self._after_resample()
            lr = lr0
            if decay:
                lr = lr0 * decay["factor"] ** ((k - 1) // decay["every"])
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss, terms = self._loss()
            self.step += 1
            self._check(loss, terms)
            loss.backward()
            self.comm.sum_gradients(params)  # several ranks: the whole loss's gradient
            self._check_gradient(params)
            opt.step()
            self._after_step(k, loss, terms, lr)
            if self._grown:  # model.adapt added a band at this step (grow_model)
                self._grown = False
                params = [p for p in self.model.parameters() if p.requires_grad]

    def _grown_adam(self, params: list[Tensor], last: int, lr: float) -> torch.optim.Adam:
        """Adam with the parameter groups of a phase in which the model grew ``last``
        times: the parameters from before, then each growth's new ones (by name)."""
        names = dict(self.model.named_parameters())
        added = self.model.growth_params[-last:]
        later = {id(names[n]) for group in added for n in group}
        opt = make_adam([p for p in params if id(p) not in later], lr)
        for group in added:
            opt.add_param_group({"params": [names[n] for n in group], "lr": lr})
        return opt

    def _run_lbfgs(self, ph: Phase, k0: int = 0, state: Any = None) -> None:
        """L-BFGS with a strong-Wolfe line search on fixed points (module docstring)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        lr = float(ph.options.get("lr", self.settings.lbfgs_lr)) * self._lr_scale
        if self._cuda_graphs:  # see the module docstring: no CUDA graphs in L-BFGS
            # on failure L-BFGS runs eagerly; ``compiled`` stays True (Adam was)
            self._terms, self._cuda_graphs = self._eager_terms, False
            self._compile(cuda_graphs=False)
        opt_l = torch.optim.LBFGS(
            params,
            lr=lr,
            max_iter=1,
            max_eval=25,  # per iteration: the default (max_iter * 5 // 4 = 1) stalls
            history_size=50,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )
        if state is not None:
            opt_l.load_state_dict(state)
            for g in opt_l.param_groups:
                g["lr"] = lr
        self._optimizer = opt_l
        latest: dict[str, Any] = {}

        def closure() -> Tensor:
            opt_l.zero_grad(set_to_none=True)
            loss, terms = self._loss()
            if torch.isfinite(loss):
                loss.backward()
                self.comm.sum_gradients(params)
            latest["loss"], latest["terms"] = loss, terms
            return loss

        for k in range(k0 + 1, ph.steps + 1):
            opt_l.step(closure)
            self.step += 1
            loss, terms = latest["loss"], latest["terms"]
            value = float(loss.detach())
            best, since = self._lbfgs_counter
            if value < best * (1.0 - 1e-7):
                best, since = value, 0
            else:
                since += 1
            self._lbfgs_counter = (best, since)
            stalled = since >= STALL_ITERATIONS
            if stalled:
                self.notes.append(
                    f"L-BFGS stopped at iteration {k}: no decrease of the loss in "
                    f"{STALL_ITERATIONS} iterations"
                )
            logged = self.step % self.settings.log_every == 0 or k == ph.steps
            if logged or stalled or self.stop:
                # the closure's last value may be at a rejected line-search point:
                # recompute the loss where L-BFGS left the parameters
                loss, terms = self._loss()
            self._check(loss, terms)
            self._after_step(k, loss, terms, lr, force_log=stalled, ended=stalled)
            if stalled:
                break

    def renew_gauss_newton(self, phases: Iterable[int]) -> None:
        """Rebuild these Gauss–Newton phases for the current objective and parameters."""
        for i in phases if self._gauss_newton is not None else ():
            if self.phases[i].name == "gauss-newton":
                self._gauss_newton[i] = self._make_gauss_newton(self.phases[i], i)  # type: ignore[index]

    def _make_gauss_newton(self, ph: Phase, index: int) -> tuple[Any, torch.dtype]:
        from mscalepde.training.gauss_newton import GaussNewton
        from mscalepde.training.options import settings_from_mapping

        gs = settings_from_mapping({**ph.options, "steps": ph.steps})
        if "resample_every" not in ph.options:
            gs.resample_every = self.settings.resample_every
        key = f"train.optimizer[{index}].gauss-newton"
        gn = GaussNewton(self.model, self.objective, self.settings.weights, gs, key=key,
                         comm=self.comm)
        counts = sum(b.rows for b in self.objective.blocks())  # type: ignore[attr-defined]
        dtype = getattr(torch, gs.dtype)
        gn.check_memory(counts, dtype.itemsize)
        return gn, dtype

    def _run_gauss_newton(self, ph: Phase, gn: Any, k0: int = 0, state: Any = None) -> None:
        """Gauss–Newton iterations (:mod:`mscalepde.training.gauss_newton`) from iteration ``k0``;
        every accepted iteration is a history row with its damping λ and step size α. A
        rollback doubles λ per rollback (the analogue of halving a learning rate)."""
        if state is not None:
            gn.load_state(state)
        else:
            gn.reset(gn.settings.damping / self._lr_scale)
        if gn.settings.keep_best:  # one fixed set of points apart from every training draw
            gn.validation = self.objective.drawn(self.settings.seed + gn.VALIDATION_SEED)
        self._optimizer = gn
        try:
            self._gauss_newton_steps(ph, gn, k0)
        finally:  # (a budget's end too: the run is evaluated on the kept iterate)
            self.notes += [n for n in [gn.restore_best(self._phase_k)] if n]

    def _gauss_newton_steps(self, ph: Phase, gn: Any, k0: int) -> None:
        """The iterations k0 + 1, … of the phase."""
        every = gn.settings.resample_every
        for k in range(k0 + 1, ph.steps + 1):
            why = gn.stalled()  # (before the step: a resume at a stalled step ends here too)
            if not why and every and k > 1 and (k - 1) % every == 0:
                self._after_resample()
            it = None if why else gn.iterate()
            if it is None:
                why = why or f"no step reduced the loss (damping {gn.damping:.1e})"
                self.notes.append(f"Gauss-Newton stopped at iteration {k}: {why}")
                self._phase_ended = True
                break
            self.step += 1
            terms = it.terms  # evaluated by the step's acceptance test: not again here
            loss = self._total(terms)
            self._check(loss, terms)
            extra = {"damping": it.damping, "step_size": it.step_size}
            if it.form.startswith("cg"):  # the matrix-free step's inner solve
                extra.update(cg_iterations=it.cg_iterations, cg_residual=it.cg_residual)
            extra.update(gn.validate(k))  # keep_best (before the row: checkpoints keep it)
            self._after_step(k, loss, terms, it.step_size, force_log=True, extra=extra)
