"""``mscalepde export``: a run's fields at chosen sites, written for other tools.

Fields (point data, float64), at each site X of :mod:`.sites`:

- ``u``: the network's solution u_θ(X);
- ``truth``: u*(X), from the truth file, ``exact`` or the classical reference
  (:meth:`mscalepde.run.result.Run.truth`);
- ``error``: u_θ(X) − u*(X);
- ``residual``: the PDE residual L u_θ(X) − f(X) (:func:`mscalepde.equations.residual_at`),
  the quantity the training loss squares; its size shows where the equation is not met.

Formats (:data:`FORMATS`):

- ``vtu``: VTK unstructured grid; a heat run writes one ``NAME_NNNN.vtu`` per time and a
  ``NAME.pvd`` collection that ParaView opens as one time-dependent dataset;
- ``xdmf``: XDMF 3 with the arrays in an HDF5 file beside it; a heat run is one temporal
  collection (meshio's ``TimeSeriesWriter``);
- ``npz``: NumPy arrays ``points`` (N, d), ``cells_<type>``, ``times`` and one array per
  field, shaped (N,) or (times, N);
- ``csv``: one row per site (and time), the variables then the fields.

Every file is written into a staging folder beside the target and moved into place when
complete, so a failed export never leaves a half-written or mismatched file set.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.errors import ProblemError, RunFolderError
from mscalepde.formats.sites import Sites, sites_for
from mscalepde.run.result import Run, load_run

FORMATS = ("vtu", "xdmf", "npz", "csv")
MESH_FORMATS = ("vtu", "xdmf")  # ParaView's: points with 1 to 3 coordinates
FIELDS = ("u", "truth", "error", "residual")


def export(
    run: Run | str | Path,
    out: str | Path | None = None,
    *,
    format: str = "vtu",
    grid: int | None = None,
    points: str | Path | None = None,
    times: list[float] | None = None,
) -> list[Path]:
    """Write a run's fields (module docstring) and return the files written.

    ``run``: a :class:`Run` or a run folder. ``out``: the target file (default
    ``RUN_DIR/export/<name>.<ext>``; ``.pvd`` for a heat run in VTU). ``grid``: points per
    axis of a box, or diam/h of a shape's mesh. ``points``: a file of points instead
    (columns named like the problem's variables). ``times``: a heat run's times."""
    if format not in FORMATS:
        raise ProblemError("--format", "", f"expected one of {', '.join(FORMATS)}, got {format!r}")
    if not isinstance(run, Run):
        run = load_run(run)
    d = run.problem.domain.space_dim
    if d > 3 and format in MESH_FORMATS:
        raise ProblemError(
            "--format", "", f"{format} holds 1 to 3 coordinates, this run has {d}; "
            "use --format csv or npz with --points FILE"
        )
    if d > 3 and points is None:
        raise ProblemError(
            "--points", "", f"is required in {d}D (a grid of n^{d} sites is not exported)"
        )
    ref = run.reference()  # a shape's FEM reference: export on its mesh
    fem_mesh = getattr(getattr(ref, "solution", None), "mesh", None)
    sites = sites_for(run.problem, n=grid, points=points, times=times, fem_mesh=fem_mesh)
    target = _target(run, out, format, sites)
    fields = evaluate(run, sites)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        written = WRITERS[format](staging / target.name, run, sites, fields)
        final = []
        for path in written:
            os.replace(path, target.parent / path.name)
            final.append(target.parent / path.name)
    except OSError as exc:
        raise RunFolderError(f"{target}: cannot write the export: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _target(run: Run, out: str | Path | None, format: str, sites: Sites) -> Path:
    ext = "pvd" if format == "vtu" and sites.times is not None else format
    if out is None:
        if run.run_dir is None:
            raise ProblemError("--out", "", "the run has no folder: give the file to write")
        return Path(run.run_dir) / "export" / f"{run.problem.name}.{ext}"
    path = Path(out)
    if path.is_dir():
        return path / f"{run.problem.name}.{ext}"
    if path.suffix.lstrip(".") != ext:
        raise ProblemError("--out", "", f"{path}: a {format} export of this run is a .{ext} file")
    return path


def evaluate(run: Run, sites: Sites) -> dict[str, np.ndarray]:
    """The fields at the sites: arrays (N,) for a steady run or points carrying t, else
    (times, N)."""
    slices = [None] if sites.times is None else list(sites.times)
    out: dict[str, list[np.ndarray]] = {name: [] for name in FIELDS}
    for t in slices:
        x = sites.inputs(t)
        u = run.predict(x)[:, 0]
        truth = run.truth(x)[:, 0]
        out["u"].append(u)
        out["truth"].append(truth)
        out["error"].append(u - truth)
        out["residual"].append(run.residual(x)[:, 0])
    if sites.times is None:
        return {k: v[0] for k, v in out.items()}
    return {k: np.stack(v) for k, v in out.items()}


def _mesh(sites: Sites, data: dict[str, np.ndarray]) -> Any:
    import meshio

    point_data = dict(data)
    if sites.points.shape[1] > sites.space_dim:  # the user's points carry t
        point_data["t"] = sites.points[:, -1]
    return meshio.Mesh(sites.xyz, sites.cells, point_data=point_data)


def _at(fields: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    return {name: values[k] for name, values in fields.items()}


def _write_vtu(path: Path, run: Run, sites: Sites, fields: dict[str, np.ndarray]) -> list[Path]:
    import meshio

    if sites.times is None:
        meshio.write(path, _mesh(sites, fields), file_format="vtu")
        return [path]
    written = []
    entries = []
    for k, t in enumerate(sites.times):
        piece = path.with_name(f"{path.stem}_{k:04d}.vtu")
        meshio.write(piece, _mesh(sites, _at(fields, k)), file_format="vtu")
        written.append(piece)
        entries.append(f'    <DataSet timestep="{float(t)!r}" part="0" file="{piece.name}"/>')
    path.write_text(
        '<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1">\n  <Collection>\n'
        + "\n".join(entries)
        + "\n  </Collection>\n</VTKFile>\n"
    )
    return [*written, path]


def _write_xdmf(path: Path, run: Run, sites: Sites, fields: dict[str, np.ndarray]) -> list[Path]:
    import meshio

    if sites.times is None:
        meshio.write(path, _mesh(sites, fields), file_format="xdmf")
    else:
        # meshio 5.3's TimeSeriesWriter opens its .h5 file relative to the working
        # directory (Path(filename).stem + ".h5"), so it runs inside the staging folder
        here = os.getcwd()
        os.chdir(path.parent)
        try:
            with meshio.xdmf.TimeSeriesWriter(path.name) as writer:
                writer.write_points_cells(sites.xyz, sites.cells)
                for k, t in enumerate(sites.times):
                    writer.write_data(float(t), point_data=_at(fields, k))
        finally:
            os.chdir(here)
    return sorted(path.parent.iterdir())  # the .xdmf and its .h5


def _write_npz(path: Path, run: Run, sites: Sites, fields: dict[str, np.ndarray]) -> list[Path]:
    arrays: dict[str, Any] = {
        "variables": np.array(list(run.problem.variables)),
        "points": sites.points,
        "times": np.zeros(0) if sites.times is None else sites.times,
        **{f"cells_{kind}": cells for kind, cells in sites.cells},
        **fields,
    }
    with path.open("wb") as fh:
        np.savez_compressed(fh, **arrays)
    return [path]


def _write_csv(path: Path, run: Run, sites: Sites, fields: dict[str, np.ndarray]) -> list[Path]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*run.problem.variables, *FIELDS])
    slices = [None] if sites.times is None else list(sites.times)
    for k, t in enumerate(slices):
        x = sites.inputs(t)
        cols = [fields[name] if t is None else fields[name][k] for name in FIELDS]
        for row in np.column_stack([x, *cols]):
            w.writerow([repr(float(v)) for v in row])
    path.write_text(buf.getvalue())
    return [path]


WRITERS = {"vtu": _write_vtu, "xdmf": _write_xdmf, "npz": _write_npz, "csv": _write_csv}
