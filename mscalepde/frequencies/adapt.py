"""In-training adaptation of the network's frequencies (``model.adapt``, docs/design.md §9).

Every ``adapt.every`` steps of an Adam phase, :class:`FrequencyAdapter` re-estimates the
solution's spectrum from the network itself and adds an embedding (``mff``: one more σ;
``stmff``: one more σ_x) or a subnetwork (``mscale`` variant 2: one more scale) for each
band it does not yet cover. Anchor: Huang, You, Zhou, *Frequency-adaptive multi-scale
deep neural networks*, CMAME (2025), who re-estimate the frequencies from the DFT of the
trained network and rebuild the MscaleDNN scales; here the network grows instead of
being rebuilt, so training continues where it was.

The estimate of u on a uniform grid with both faces (n + 2 nodes per axis) is h + e:

- h, the network, with the Dirichlet data g put on its Dirichlet faces and its Coons lift
  removed (``bands.remove_lift``);
- e, an error estimate, with e = 0 on the faces, by the sine transform (DST-I): for
  Poisson it solves the discrete problem −ā Δ_h e = r; for heat, e_t − ā Δ_h e = r from
  e(t0) = u0 − h(·, t0), mode by mode exactly over each interval between the time nodes
  (ê' = −ā λ_m ê + r̂, r̂ linear in t: an exponential integrator). r = f − L_h h is the
  network's residual in second-order finite differences (h_t by second-order
  differences in t), ā the mean diffusivity (reaction terms left out: the estimate only
  has to locate the missing frequencies). Never the raw residual: its spectrum is the
  error's times ā|k|², which the k⁴ weighting of the loss already over-represents.
  For a linear Poisson problem with a constant coefficient and Dirichlet faces h + e is
  then the finite-difference solution whatever h (a test checks it; for heat, h_t from
  differences on 33 time nodes adds an error that grows with h's temporal frequency):
  the estimate is exact where the problem is simple, and the network's own spectrum
  matters where ā, the left-out reaction or Neumann/Robin faces (where h is kept, e = 0)
  make it approximate.

The bands of h + e are chosen as before training (``bands.select_wavevectors``,
``group_bands``). A band whose frequency ν lies within a factor ``gap`` of a band the
network already has is covered; the others are added (at most ``adapt.max_bands`` in all),
with σ from the same rule (``bands.band_sigmas``) or the MscaleDNN power of two above.
Each addition has zero output weights, so the network's function is unchanged at the
switch (a test checks it); Adam takes the new parameters as a new parameter group.
Adaptation stops for good at the first check that adds nothing.

**On a shape** there is no sine basis and no box solve, so the estimate is the one h + e
equals wherever the box estimate is exact: the classical solution itself, the
finite-element reference on Ω (cached; the run's errors use it anyway), read through the
window of Ω (:mod:`mscalepde.frequencies.shape_spectrum`). It does not depend on the
network, so it is computed once, and the first check adds every band the network lacks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mscalepde.diagnostics.transforms import transform_axes
from mscalepde.frequencies.options import AutoSettings
from mscalepde.frequencies.select import (
    FrequencyBand,
    band_scales,
    band_sigmas,
    bands_of,
    format_value,
    sigma_rule,
)
from mscalepde.frequencies.shape_spectrum import shape_spectrum
from mscalepde.frequencies.spectrum import (
    Spectrum,
    mean_diffusivity,
    problem_data,
    remove_lift,
    uniform_axis,
)
from mscalepde.training.callbacks import Callback

if TYPE_CHECKING:
    from mscalepde.problem.model import Problem
    from mscalepde.training.trainer import Trainer

#: grid points per axis (interior, without the faces), by spatial dimension
ADAPT_GRID = {1: 1023, 2: 127, 3: 31}
TIME_NODES = 33  # t0, …, t1 (both ends)
STOPPED = "adapt: band set unchanged"
FULL = "adapt: max_bands"


class FrequencyAdapter(Callback):
    """A trainer callback (see the module docstring); what it adds is written to the
    trainer's notes (``adapt: step N: added …``)."""

    def __init__(
        self, problem: Problem, settings: Mapping[str, Any], spectrum: Spectrum | None = None
    ) -> None:
        """``spectrum``: a shape problem's spectrum when the caller has it already (the one
        ``auto`` chose from); it does not change during training, so it is not recomputed."""
        self.problem = problem
        self.every = int(settings["every"])
        self.max_bands = int(settings["max_bands"])
        dim = problem.domain.space_dim
        n = int(settings.get("grid") or ADAPT_GRID[dim])
        self.auto = AutoSettings.from_mapping(problem.model.get("auto"))
        dom = problem.domain
        self.axes = [uniform_axis(lo, hi, n, False) for lo, hi in dom.box]
        if dom.has_time:
            self.axes.append(np.linspace(*dom.time, TIME_NODES))  # type: ignore[call-overload]
        self.lengths = [hi - lo for lo, hi in dom.box]
        self.a_bar = mean_diffusivity(problem, self.axes[:dim])  # ā, once
        self.arch = str(problem.model["arch"])
        self.done = False
        self._source: np.ndarray | None = None
        self._initial: np.ndarray | None = None
        self._faces: dict[str, tuple[int, int, np.ndarray]] | None = None
        self._shape: tuple[list[np.ndarray], np.ndarray] | None = None  # a shape's spectrum
        if spectrum is not None and problem.domain.geometry is not None:
            self._shape = (spectrum.k, spectrum.energy)

    # ---------------------------------------------------------------- callback
    def on_start(self, trainer: Trainer) -> None:
        self.done = any(n.startswith((STOPPED, FULL)) for n in trainer.notes)  # resumed

    def on_step(self, trainer: Trainer, step: int) -> None:
        if self.done or trainer.phase != "adam" or step % self.every:
            return
        started = time.perf_counter()
        try:
            self._adapt(trainer, step)
        finally:  # the trainer's clock stops during callbacks: this is training work
            trainer.train_seconds += time.perf_counter() - started

    def _adapt(self, trainer: Trainer, step: int) -> None:
        if len(trainer.model.band_values()) >= self.max_bands:
            self.done = True
            trainer.notes.append(f"{FULL} ({self.max_bands}) reached at step {step}; "
                                 "adaptation stopped")
            return
        added = self.check(trainer.model)
        if not added:
            self.done = True
            trainer.notes.append(f"{STOPPED} at step {step}; adaptation stopped")
            return
        for value, band in added:
            trainer.grow_model(value)
            trainer.notes.append(
                f"adapt: step {step}: added {'scale' if self.arch == 'mscale' else 'sigma'} "
                f"{format_value(value)} for the band at {_cycles(band)} cycles "
                f"({100 * band.fraction:.3g} % of the estimated energy)"
            )

    # ---------------------------------------------------------------- estimate
    def estimate(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """(lift-free h, e) on the interior grid (module docstring); h takes the
        Dirichlet data on its Dirichlet faces first, so that for a linear problem with
        constant coefficients h + e is the finite-difference solution, whatever h."""
        from mscalepde.diagnostics.evaluation import predict
        from mscalepde.geometry import grid_points

        p = next(model.parameters())
        shape = [len(a) for a in self.axes]
        h = predict(model, grid_points(self.axes), dtype=p.dtype, device=p.device)
        h = self._with_dirichlet_data(np.asarray(h, dtype=np.float64).reshape(shape))
        dim = self.problem.domain.space_dim
        r = self._residual(h)
        e = self._solve_error(r, h)
        hr = remove_lift(h, range(dim))
        inner = tuple([slice(1, -1)] * dim)
        return hr[inner], e

    def _with_dirichlet_data(self, h: np.ndarray) -> np.ndarray:
        """h with its values on the Dirichlet faces replaced by the data g (cached)."""
        if self._faces is None:
            data = problem_data(self.problem)
            self._faces = {}
            for face, bc in self.problem.boundary.items():
                if bc.type != "dirichlet":
                    continue
                axis = self.problem.domain.face_axis(face)
                index = 0 if face.endswith("-") else len(self.axes[axis]) - 1
                grids = list(self.axes)
                grids[axis] = self.axes[axis][index : index + 1]
                self._faces[face] = (axis, index, data.face(face, grids))
        out = h.copy()
        for axis, index, g in self._faces.values():
            where = [slice(None)] * h.ndim
            where[axis] = slice(index, index + 1)
            out[tuple(where)] = g
        return out

    def _residual(self, h: np.ndarray) -> np.ndarray:
        """r = f − L_h h on the interior nodes (second-order differences)."""
        prob = self.problem
        dim = prob.domain.space_dim
        if self._source is None:
            self._source = problem_data(prob).source(self.axes)
        a_bar = self.a_bar
        lap = np.zeros([n - 2 for n in h.shape[:dim]] + list(h.shape[dim:]))
        inner = [slice(1, -1)] * dim
        for ax in range(dim):
            dx = self.axes[ax][1] - self.axes[ax][0]
            up = list(inner)
            down = list(inner)
            up[ax], down[ax] = slice(2, None), slice(None, -2)
            lap += (h[tuple(up)] - 2 * h[tuple(inner)] + h[tuple(down)]) / (dx * dx)
        lu = -a_bar * lap
        if prob.domain.has_time:
            lu = lu + np.gradient(h[tuple(inner)], self.axes[-1], axis=-1, edge_order=2)
        return self._source[tuple(inner)] - lu

    def _solve_error(self, r: np.ndarray, h: np.ndarray) -> np.ndarray:
        """e on the interior nodes (module docstring), by DST-I in space."""
        import scipy.fft as sfft

        prob = self.problem
        dim = prob.domain.space_dim
        space = list(range(dim))
        a_bar = self.a_bar
        lam = np.zeros(r.shape[:dim])
        for ax in space:
            n = r.shape[ax]
            dx = self.axes[ax][1] - self.axes[ax][0]
            m = np.arange(1, n + 1)
            eig = (4.0 / dx**2) * np.sin(m * math.pi / (2 * (n + 1))) ** 2
            lam = lam + eig.reshape([n if i == ax else 1 for i in space])
        mu = a_bar * lam
        r_hat = sfft.dstn(r, type=1, axes=space)
        if not prob.domain.has_time:
            return sfft.idstn(r_hat / mu, type=1, axes=space)
        if self._initial is None:
            t0 = self.axes[-1][:1]
            self._initial = problem_data(prob).initial([*self.axes[:dim], t0])[..., 0]
        inner = tuple([slice(1, -1)] * dim)
        mismatch = remove_lift(self._initial - h[..., 0], space)[inner]
        e_hat = np.empty_like(r_hat)
        e_hat[..., 0] = sfft.dstn(mismatch, type=1, axes=space)
        ts = self.axes[-1]
        for j in range(len(ts) - 1):  # ê' = −μ ê + r̂, r̂ linear on [t_j, t_j+1]: exact
            dt = ts[j + 1] - ts[j]
            z = mu * dt
            decay = np.exp(-z)
            phi1 = -np.expm1(-z) / mu  # ∫_0^dt e^{−μ(dt−s)} ds
            small = z < 1e-4  # (dt − φ1)/z loses digits: its series dt(1/2 − z/6 + z²/24)
            phi2 = np.where(small, dt * (0.5 - z / 6 + z * z / 24),
                            (dt - phi1) / np.where(small, 1.0, z))  # ∫ e^{−μ(dt−s)} s/dt ds
            r0, r1 = r_hat[..., j], r_hat[..., j + 1]
            e_hat[..., j + 1] = decay * e_hat[..., j] + r0 * (phi1 - phi2) + r1 * phi2
        return sfft.idstn(e_hat, type=1, axes=space)

    def spectrum(self, model: Any) -> tuple[list[np.ndarray], np.ndarray]:
        """Spatial energy of h + e per wave vector (summed over the time slices); on a
        shape, of the windowed classical solution (module docstring)."""
        if self.problem.domain.geometry is not None:
            if self._shape is None:
                spec = shape_spectrum(self.problem)
                self._shape = (spec.k, spec.energy)
            return self._shape
        h, e = self.estimate(model)
        dim = self.problem.domain.space_dim
        kinds = ["dst"] * dim + [None] * (np.ndim(h) - dim)
        energy = np.abs(transform_axes(h + e, kinds)) ** 2
        if self.problem.domain.has_time:
            energy = energy.sum(axis=-1)
        k = [math.pi * np.arange(1, n + 1) / L for n, L in zip(energy.shape, self.lengths)]
        return k, energy

    def check(self, model: Any) -> list[tuple[Any, FrequencyBand]]:
        """The (value, band) pairs to add now (empty: nothing new)."""
        k, energy = self.spectrum(model)
        bands = bands_of(k, energy, self.lengths, self.auto)
        have = list(model.band_values())
        room = self.max_bands - len(have)
        if room <= 0:
            return []
        normalize = bool(self.problem.model.get("normalize", self.arch == "mscale"))
        if self.arch == "mscale":  # the highest missing scales first: the band needs them
            top = band_scales(bands, self.lengths, normalize)
            missing = sorted((a for a in top if a not in have), reverse=True)[:room]
            return [(a, bands[-1]) for a in missing]
        covered = [_nu_of_sigma(v, have, self.problem, self.lengths) for v in have]
        out: list[tuple[Any, FrequencyBand]] = []
        rule = sigma_rule(self.problem)
        for band in bands:
            if band.added:
                continue
            nu = [ka / (2 * math.pi) for ka in band.k_axes]
            if any(_close(nu, c, self.auto.gap) for c in covered):
                continue
            sig = band_sigmas([bands[0], band], self.lengths, rule, normalize,
                                self.auto.sigma_factor)
            value = self._with_time(sig[-1], have)
            if value in have or any(value == v for v, _ in out):
                continue
            out.append((value, band))
            covered.append(nu)
            if len(out) >= room:
                break
        return out


    def _with_time(self, value: Any, have: Sequence[Any]) -> Any:
        """mff on a heat problem embeds (x, t): a per-axis σ gets the t entry of the
        existing embeddings (their last entry, or their single σ)."""
        if not (self.problem.domain.has_time and self.arch == "mff"):
            return value
        first = have[0]
        if not isinstance(first, list) and not isinstance(value, list):
            return value
        st = first[-1] if isinstance(first, list) else float(first)
        d = len(self.lengths)
        return [*(value if isinstance(value, list) else [value] * d), st]


def _cycles(band: FrequencyBand) -> str:
    return "×".join(f"{v / (2 * math.pi):.3g}" for v in band.k_axes)


def _close(a: Sequence[float], b: Sequence[float], gap: float) -> bool:
    """Every axis within a factor ``gap`` (frequencies below one cycle count as one)."""
    return all(max(x, 1.0) / max(y, 1.0) < gap and max(y, 1.0) / max(x, 1.0) < gap
               for x, y in zip(a, b))


def _nu_of_sigma(
    value: Any, have: Sequence[Any], problem: Problem, lengths: Sequence[float]
) -> list[float]:
    """The band frequency a σ stands for, inverting :func:`bands.band_sigmas`: ν = σ for
    the lowest σ and the ``band`` rule, ν = σ²/σ_low for the ``geometric`` rule."""
    d = len(lengths)
    normalize = bool(problem.model.get("normalize"))

    def axes(v: Any) -> list[float]:
        vals = list(v) if isinstance(v, (list, tuple)) else [v] * d
        vals = vals[:d]
        return [x / (L / 2) if normalize else x for x, L in zip(vals, lengths)]

    low = min(have, key=lambda v: float(np.mean(axes(v))))
    sig, lo = axes(value), axes(low)
    if value is low or sigma_rule(problem) == "band":
        return sig
    return [s * s / max(l_, 1e-12) for s, l_ in zip(sig, lo)]
