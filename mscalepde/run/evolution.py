"""A heat run in time: snapshots, an animation, and time series at probe points.

- :func:`snapshots_figure` (``figures/snapshots.png``, every heat run): u_θ and
  |u_θ − u*| at ``SNAPSHOTS`` times from t0 to t1, on one colour scale per row so that
  the decay (or growth) reads across the row;
- :func:`animation` (``figures/animation.gif``, with ``--animate``): u_θ, u* and
  |u_θ − u*| over ``FRAMES`` equally spaced times, written with matplotlib's Pillow writer;
- :func:`write_probes` (``probes.csv`` and ``figures/probes.png``, with
  ``diagnostics.probes``): u_θ and u* at named points, as time series for heat (``TIMES``
  equally spaced times) or single values for a steady problem.

Spatial slices: 1D space is drawn as curves; 2D space as heat maps on a grid of the
bounding box (points outside a shape blank); 3D space on the plane through the middle of
z. Every colour bar names its quantity.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.geometry import grid_points, tensor_grid
from mscalepde.geometry.sampling import inside_mask
from mscalepde.io import atomic_write_text
from mscalepde.run.figures import plt, save_figure
from mscalepde.run.result import Run

SNAPSHOTS = 4
FRAMES = 30
TIMES = 201
SLICE_POINTS = {1: 401, 2: 121, 3: 81}


def _slice(run: Run, n: int | None = None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The spatial plot grid: its axes (1 or 2), the points (N, space_dim) and the mask of
    points in Ω."""
    domain = run.problem.domain
    d = domain.space_dim
    n = n or SLICE_POINTS[min(d, 3)]
    box = list(domain.box)
    axes = tensor_grid(box[:2], [n] * min(d, 2))
    pts = grid_points(axes)
    if d >= 3:  # the plane of the first two axes through the middle of the others
        mid = [0.5 * (lo + hi) for lo, hi in box[2:]]
        pts = np.hstack([pts, np.tile(mid, (len(pts), 1))])
    return axes, pts, inside_mask(domain, pts)


def _fields(run: Run, pts: np.ndarray, mask: np.ndarray, t: float) -> tuple[np.ndarray, ...]:
    """u_θ and u* at the slice's points at time t (NaN outside Ω)."""
    x = np.hstack([pts[mask], np.full((int(mask.sum()), 1), t)])
    u = np.full(len(pts), np.nan)
    truth = np.full(len(pts), np.nan)
    u[mask] = run.predict(x)[:, 0]
    truth[mask] = run.truth(x)[:, 0]
    return u, truth


def _space_label(run: Run) -> str:
    domain = run.problem.domain
    if domain.space_dim >= 3:
        at = ", ".join(
            f"{name} = {0.5 * (lo + hi):.3g}"
            for name, (lo, hi) in zip(domain.axes[2:], domain.box[2:], strict=True)
        )
        return f" (slice {at})"
    return ""


def snapshots_figure(path: str | Path, run: Run, count: int = SNAPSHOTS) -> None:
    """u_θ and |u_θ − u*| at ``count`` times across the time window (module docstring)."""
    t0, t1 = run.problem.domain.time  # type: ignore[misc]
    times = np.linspace(t0, t1, count)
    axes, pts, mask = _slice(run)
    data = [_fields(run, pts, mask, float(t)) for t in times]
    title = f"{run.problem.name}: snapshots in time{_space_label(run)}"
    if len(axes) == 1:
        fig, (a0, a1) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                     gridspec_kw={"height_ratios": [2, 1]})
        for k, (t, (u, truth)) in enumerate(zip(times, data)):
            a0.plot(axes[0], truth, color=f"C{k}", lw=2.5, alpha=0.35)
            a0.plot(axes[0], u, color=f"C{k}", lw=1.0, label=f"t = {t:.3g}")
            a1.semilogy(axes[0], np.abs(u - truth) + 1e-300, color=f"C{k}", lw=0.8)
        a0.set_ylabel(r"$u_\theta$ (thin), $u^*$ (wide)")
        a0.legend(fontsize=8)
        a1.set_ylabel(r"$|u_\theta - u^*|$")
        a1.set_xlabel(run.problem.variables[0])
        a0.set_title(title)
        save_figure(fig, path)
        return
    fig, axs = plt.subplots(2, count, figsize=(3.4 * count, 6.2), squeeze=False,
                            layout="constrained")
    us = np.array([u for u, _ in data])
    errs = np.array([np.abs(u - truth) for u, truth in data])
    lims = (float(np.nanmin(us)), float(np.nanmax(us)))
    emax = float(np.nanmax(errs)) or 1.0
    X, Y = np.meshgrid(axes[0], axes[1], indexing="ij")
    shape = (len(axes[0]), len(axes[1]))
    names = run.problem.variables
    for k, t in enumerate(times):
        im_u = axs[0][k].pcolormesh(X, Y, np.ma.masked_invalid(us[k].reshape(shape)),
                                    shading="auto", cmap="RdBu_r", vmin=lims[0], vmax=lims[1])
        im_e = axs[1][k].pcolormesh(X, Y, np.ma.masked_invalid(errs[k].reshape(shape)),
                                    shading="auto", cmap="magma", vmin=0.0, vmax=emax)
        axs[0][k].set_title(f"t = {t:.3g}")
        for row in (0, 1):
            axs[row][k].set_aspect("equal")
            axs[row][k].set_xlabel(names[0])
        axs[0][k].set_ylabel(names[1] if k == 0 else "")
        axs[1][k].set_ylabel(names[1] if k == 0 else "")
    fig.colorbar(im_u, ax=axs[0, :], label=r"network $u_\theta$")
    fig.colorbar(im_e, ax=axs[1, :], label=r"$|u_\theta - u^*|$")
    fig.suptitle(title)
    save_figure(fig, path)


def animation(path: str | Path, run: Run, frames: int = FRAMES, fps: int = 6) -> None:
    """A GIF of u_θ, u* and |u_θ − u*| over ``frames`` times (module docstring), written
    atomically."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    t0, t1 = run.problem.domain.time  # type: ignore[misc]
    times = np.linspace(t0, t1, frames)
    axes, pts, mask = _slice(run, 201 if run.problem.domain.space_dim == 1 else 61)
    data = [_fields(run, pts, mask, float(t)) for t in times]
    allv = np.array([[u, truth] for u, truth in data])
    lims = (float(np.nanmin(allv)), float(np.nanmax(allv)))
    emax = float(np.nanmax([np.abs(u - truth) for u, truth in data])) or 1.0
    name = run.problem.name + _space_label(run)
    if len(axes) == 1:
        fig, (a0, a1) = plt.subplots(2, 1, figsize=(6, 4.5), sharex=True)
        line_t, = a0.plot(axes[0], data[0][1], "k-", lw=2.5, alpha=0.35, label=r"$u^*$")
        line_u, = a0.plot(axes[0], data[0][0], "C3-", lw=1.0, label=r"$u_\theta$")
        line_e, = a1.plot(axes[0], np.abs(data[0][0] - data[0][1]), "C0-", lw=0.8)
        a0.set_ylim(lims[0] - 0.05 * (lims[1] - lims[0]), lims[1] + 0.05 * (lims[1] - lims[0]))
        a1.set_ylim(0, 1.05 * emax)
        a0.legend(fontsize=8)
        a0.set_ylabel("u")
        a1.set_ylabel(r"$|u_\theta - u^*|$")
        a1.set_xlabel(run.problem.variables[0])

        def draw(k: int) -> list[Any]:
            u, truth = data[k]
            line_u.set_ydata(u)
            line_t.set_ydata(truth)
            line_e.set_ydata(np.abs(u - truth))
            a0.set_title(f"{name}: t = {times[k]:.3g}")
            return [line_u, line_t, line_e]
    else:
        shape = (len(axes[0]), len(axes[1]))
        X, Y = np.meshgrid(axes[0], axes[1], indexing="ij")
        fig, axs = plt.subplots(1, 3, figsize=(11, 3.6))  # laid out once, not per frame
        meshes = []
        labels = (r"network $u_\theta$", r"truth $u^*$", r"$|u_\theta - u^*|$")
        for ax, label, cmap, (lo, hi) in zip(
            axs, labels, ("RdBu_r", "RdBu_r", "magma"), (lims, lims, (0.0, emax))
        ):
            m = ax.pcolormesh(X, Y, np.ma.masked_invalid(np.full(shape, np.nan)),
                              shading="auto", cmap=cmap, vmin=lo, vmax=hi)
            fig.colorbar(m, ax=ax, label=label)
            ax.set_aspect("equal")
            ax.set_xlabel(run.problem.variables[0])
            ax.set_ylabel(run.problem.variables[1])
            meshes.append(m)

        fig.tight_layout(rect=(0, 0, 1, 0.92))

        def draw(k: int) -> list[Any]:
            u, truth = data[k]
            for m, f in zip(meshes, (u, truth, np.abs(u - truth))):
                m.set_array(np.ma.masked_invalid(f.reshape(shape)).ravel())
            fig.suptitle(f"{name}: t = {times[k]:.3g}")
            return meshes

    anim = FuncAnimation(fig, draw, frames=frames, blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".gif", dir=path.parent)
    os.close(fd)
    try:
        anim.save(tmp, writer=PillowWriter(fps=fps), dpi=80)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def probe_values(run: Run, times: int = TIMES) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The probes' values: ``(times, {name: (u_θ, u*)})``, each an array over the times
    (heat) or a single value (steady; ``times`` is then None)."""
    probes = run.problem.diagnostics.get("probes") or {}
    domain = run.problem.domain
    t = None if domain.time is None else np.linspace(*domain.time, times)
    out = {}
    for name, point in probes.items():
        if t is None:
            x = np.array([point], dtype=np.float64)
        else:
            x = np.hstack([np.tile(point, (len(t), 1)), t[:, None]])
        out[name] = (run.predict(x)[:, 0], run.truth(x)[:, 0])
    return t, out


def write_probes(run_dir: Path, run: Run) -> dict[str, Any]:
    """``probes.csv`` (and ``figures/probes.png`` for heat); returns the summary entry:
    per probe its point, the final u_θ and u* and the largest |u_θ − u*| over time."""
    t, values = probe_values(run)
    probes = run.problem.diagnostics["probes"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if t is None:
        w.writerow(["probe", *run.problem.domain.axes, "u", "truth", "error"])
        for name, (u, truth) in values.items():
            w.writerow([name, *probes[name], repr(float(u[0])), repr(float(truth[0])),
                        repr(float(u[0] - truth[0]))])
    else:
        w.writerow(["t", *[f"{n}_{q}" for n in values for q in ("u", "truth")]])
        cols = [t] + [c for u, truth in values.values() for c in (u, truth)]
        for row in np.column_stack(cols):
            w.writerow([repr(float(v)) for v in row])
    atomic_write_text(run_dir / "probes.csv", buf.getvalue())
    if t is not None:
        fig, (a0, a1) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True,
                                     gridspec_kw={"height_ratios": [2, 1]})
        for k, (name, (u, truth)) in enumerate(values.items()):
            color = f"C{k % 10}"
            a0.plot(t, truth, color=color, lw=2.5, alpha=0.35)
            a0.plot(t, u, color=color, lw=1.0, label=name)
            a1.semilogy(t, np.abs(u - truth) + 1e-300, color=color, lw=0.8)
        a0.set_ylabel(r"$u_\theta$ (thin), $u^*$ (wide)")
        a0.legend(fontsize=8, ncol=2)
        a1.set_ylabel(r"$|u_\theta - u^*|$")
        a1.set_xlabel("t")
        a0.set_title(f"{run.problem.name}: probes")
        save_figure(fig, run_dir / "figures" / "probes.png")
    return {
        name: {"point": probes[name], "u": float(u[-1]), "truth": float(truth[-1]),
               "max_error": float(np.max(np.abs(u - truth)))}
        for name, (u, truth) in values.items()
    }
