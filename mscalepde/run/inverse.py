"""An inverse problem's run: the unknowns in the history, their uncertainty in the summary,
their trajectories and the recovered fields in figures (:mod:`mscalepde.inverse`).

History columns: ``unknown_<name>`` (a scalar's value θ), ``rel_l2_<name>`` (a field's
relative L2 error against its ``exact`` on the evaluation grid). ``summary.json`` gets
``inverse``: per scalar its value, standard deviation and 95 % interval
(:mod:`mscalepde.inverse.covariance`), per field its errors, and the L2RE of (u, a) stacked
as PINNacle measures its inverse tasks (Hao et al. 2024: one relative L2 norm over both
outputs at the reference points).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mscalepde.diagnostics.evaluation import Evaluator, relative_l2
from mscalepde.diagnostics.fprinciple import delta_f_at_peaks, find_peaks, format_wavevector
from mscalepde.diagnostics.transforms import diagnostic_grid, transform_field
from mscalepde.geometry import grid_points, tensor_grid
from mscalepde.inverse.covariance import field_band, uncertainty
from mscalepde.inverse.model import InverseModel
from mscalepde.problem.model import Problem
from mscalepde.run.figures import solution_figure


def field_values(model: InverseModel, name: str, points: np.ndarray) -> np.ndarray:
    """a(x) of field ``name`` at points (N, D) of the problem (float64 numpy)."""
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    with torch.inference_mode():
        x = torch.as_tensor(points, dtype=dtype, device=device)
        a = model.unknowns.field(name, x, False, None)[0]
    return a.to(torch.float64).cpu().numpy()


def field_truth(problem: Problem, name: str, points: np.ndarray) -> np.ndarray | None:
    spec = problem.inverse
    assert spec is not None
    f = spec.fields[name]
    if f.true is None:
        return None
    cols = problem.variables if f.time else problem.variables[: problem.domain.space_dim]
    env = {v: points[:, i] for i, v in enumerate(cols)}
    return np.broadcast_to(f.true.numpy(env), (len(points),)).astype(float)


class InverseEvaluator:
    """The forward :class:`Evaluator` (u against its truth) plus the unknowns' columns."""

    def __init__(self, base: Evaluator, problem: Problem) -> None:
        self.base = base
        self.problem = problem
        spec = problem.inverse
        assert spec is not None
        self._field_truth = {  # each field's exact values at the evaluation points, once
            name: field_truth(problem, name, base.points) for name in spec.fields
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def __call__(self, model: Any) -> dict[str, float]:
        out = self.base(model)
        if not isinstance(model, InverseModel):
            return out
        for name, value in model.unknowns.scalars().items():
            out[f"unknown_{name}"] = value
        for name in model.unknowns.fields:
            truth = self._field_truth.get(name)
            if truth is not None:
                pred = field_values(model, name, self.base.points)
                out[f"rel_l2_{name}"] = relative_l2(pred, truth)
        return out


def inverse_summary(
    problem: Problem, model: Any, objective: Any, weights: dict, run_dir: Path | None = None
) -> dict:
    """``summary["inverse"]`` (module docstring); with ``run_dir``, each field's figure
    (``figures/field_<name>.png``: recovered, exact, error and the 95 % band)."""
    spec = problem.inverse
    assert spec is not None
    out: dict[str, Any] = {"scalars": {}, "fields": {}}
    if isinstance(model, InverseModel):
        for name, value in model.unknowns.scalars().items():
            true = spec.scalars[name].true
            entry: dict[str, Any] = {"value": value}
            if true is not None:
                entry["exact"] = true
                entry["error"] = abs(value - true)
            out["scalars"][name] = entry
        unc = None
        if spec.observations is not None:
            try:
                unc = uncertainty(model, objective, dict(weights), spec.observations.sigma)
                out["uncertainty"] = unc.summary()
                for name, u in unc.scalars.items():
                    out["scalars"][name].update(
                        {k: v for k, v in u.items() if k not in ("value", "exact")}
                    )
            except ValueError as exc:  # reported, never at the cost of the result
                out["uncertainty"] = {"error": str(exc)}
        out["field_bands"] = {
            name: field_report(problem, model, unc, name, run_dir)
            for name in model.unknowns.fields
            if not spec.fields[name].time
        }
    return out


def field_report(
    problem: Problem, model: InverseModel, unc: Any, name: str, run_dir: Path | None
) -> dict[str, float]:
    """A spatial field on a grid (101 points per axis in 1D, 61 in 2D, 21 in 3D): its
    95 % band 1.96 sd(a) from the covariance, the share of grid points where the exact field
    lies inside it, and the figure."""
    dom = problem.domain
    n = {1: 101, 2: 61, 3: 21}[dom.space_dim]
    axes = tensor_grid(dom.bounds[: dom.space_dim], [n] * dom.space_dim)
    grid = grid_points(axes)
    pred = field_values(model, name, grid)
    truth = field_truth(problem, name, grid)
    band = None
    out: dict[str, float] = {}
    if unc is not None:
        band = 1.959963984540054 * field_band(unc, model, name, grid)
        out["band95_mean"] = float(band.mean())
        if truth is not None:
            out["coverage95"] = float(np.mean(np.abs(pred - truth) <= band))
    if run_dir is not None:
        shape = tuple(len(a) for a in axes)
        solution_figure(
            run_dir / "figures" / f"field_{name}.png", axes, problem.variables[: dom.space_dim],
            pred.reshape(shape), None if truth is None else truth.reshape(shape),
            title=f"{problem.name}: recovered field {name}", symbol=name,
            labels=("recovered", "exact"),
        )
        if band is not None:
            solution_figure(
                run_dir / "figures" / f"field_{name}_band.png", axes,
                problem.variables[: dom.space_dim], band.reshape(shape), None,
                title=f"{problem.name}: 95 % half-width of {name} (1.96 sd, linearised)",
                symbol=rf"\delta {name}", labels=("95 % half-width", ""),
            )
    return out


def field_spectrum(
    problem: Problem, model: InverseModel, name: str, n: int = 64
) -> list[dict[str, Any]]:
    """The Frequency-Principle table of a recovered spatial field on a box: the peaks of
    the exact field's spectrum (DCT-II on cell centres, the even extension: a coefficient
    field need not vanish on ∂Ω) and the relative error per frequency there,
    Δ_F(k) = |â_θ(k) − â*(k)| / |â*(k)| (Xu et al. 2019), a mode resolved when Δ_F is below
    ``diagnostics.threshold``. Empty without an exact field or on a shape."""
    dom = problem.domain
    assert problem.inverse is not None
    if not dom.is_box or problem.inverse.fields[name].true is None:
        return []
    box = dom.box
    axes = diagnostic_grid(box, [n] * dom.space_dim, "dct")
    grid = grid_points(axes)
    shape = tuple(len(a) for a in axes)
    pred = field_values(model, name, grid).reshape(shape)
    truth = field_truth(problem, name, grid)
    assert truth is not None
    h_hat = transform_field(pred, "dct")
    u_hat = transform_field(truth.reshape(shape), "dct")
    peaks = find_peaks(u_hat, box, "dct", problem.diagnostics["floor"])[:12]
    delta = delta_f_at_peaks(h_hat, u_hat, peaks, "dct")
    threshold = problem.diagnostics["threshold"]
    return [
        {"k": format_wavevector(p.wavenumber), "norm": p.norm, "amplitude": p.amplitude,
         "delta_f": float(d), "resolved": bool(d < threshold)}
        for p, d in zip(peaks, delta, strict=True)
    ]


def field_errors(problem: Problem, model: Any, evaluator: Any) -> dict[str, Any]:
    """Per field: rel L2 and max error on the evaluation points, and PINNacle's L2RE of
    (u, a) stacked (module docstring)."""
    out: dict[str, Any] = {}
    if not isinstance(model, InverseModel):
        return out
    points = evaluator.points
    u_pred = evaluator.predict(model)
    for name in model.unknowns.fields:
        truth = field_truth(problem, name, points)
        if truth is None:
            continue
        pred = field_values(model, name, points)
        both = np.concatenate([u_pred - evaluator.truth, pred - truth])
        ref = np.concatenate([evaluator.truth, truth])
        out[name] = {
            "rel_l2": relative_l2(pred, truth),
            "max_error": float(np.max(np.abs(pred - truth))),
            "pinnacle_l2re": float(np.linalg.norm(both) / np.linalg.norm(ref)),
        }
        if not problem.inverse.fields[name].time:  # type: ignore[union-attr]
            out[name]["spectrum"] = field_spectrum(problem, model, name)
    return out


def format_inverse(s: dict) -> str:
    """The CLI's lines: one per unknown (value ± std, 95 % interval, exact) and field."""
    inv = s.get("inverse")
    if not inv:
        return ""
    lines = ["unknowns:"]
    for name, u in inv.get("scalars", {}).items():
        text = f"  {name:<10} {u['value']:.6g}"
        if "std" in u:
            text += f" ± {u['std']:.2g}  (95 % interval [{u['lower95']:.6g}, {u['upper95']:.6g}])"
        if "exact" in u:
            text += f"  exact {u['exact']:.6g}"
        lines.append(text)
    for name, f in inv.get("fields", {}).items():
        lines.append(
            f"  {name:<10} field: rel L2 {f['rel_l2']:.3e}, max error {f['max_error']:.3e}, "
            f"L2RE of (u, {name}) {f['pinnacle_l2re']:.3e}"
        )
        rows = f.get("spectrum") or []
        if rows:
            lines.append(f"  {'':<10} {'k':<16} {'|k|':>7} {'amplitude':>10} {'Delta_F':>9}")
            for r in rows:
                mark = "" if r["resolved"] else "  (not resolved)"
                lines.append(f"  {'':<10} {r['k']:<16} {r['norm']:>7.3f} {r['amplitude']:>10.3g} "
                             f"{r['delta_f']:>9.3g}{mark}")
        band = inv.get("field_bands", {}).get(name, {})
        if "band95_mean" in band:
            cover = band.get("coverage95")
            lines.append(
                f"  {'':<10} 95 % band: mean half-width {band['band95_mean']:.3g}"
                + (f", covers the exact field at {100 * cover:.0f} % of the grid" if cover
                   is not None else "")
            )
    unc = inv.get("uncertainty", {})
    if "sigma" in unc:
        lines.append(
            f"  noise sigma {unc['sigma']:.3g} ({unc['sigma_source']}, "
            f"{unc['observations']} observations)"
        )
    elif "error" in unc:
        lines.append(f"  uncertainty not computed: {unc['error']}")
    return "\n".join(lines)


def unknowns_figure(path: Path, history: Any, summary: dict, title: str) -> None:
    """Each scalar unknown against the training step, with its exact value and the final
    95 % interval; each field's error against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inv = summary.get("inverse", {})
    names = list(inv.get("scalars", {})) + [f"rel_l2_{n}" for n in inv.get("fields", {})]
    if not names or not len(history):
        return
    steps = np.asarray(history.column("step"))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        if name.startswith("rel_l2_"):
            ax.semilogy(steps, history.column(name), color="C1")
            ax.set_ylabel(f"rel. L2 error of {name[7:]}")
        else:
            u = inv["scalars"][name]
            ax.plot(steps, history.column(f"unknown_{name}"), color="C0", label="estimate")
            if "lower95" in u:
                ax.axhspan(u["lower95"], u["upper95"], color="C0", alpha=0.2,
                           label="final 95 % interval")
            if "exact" in u:
                ax.axhline(u["exact"], color="k", ls="--", lw=1, label="exact")
            ax.set_ylabel(name)
            ax.legend(fontsize=8)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

