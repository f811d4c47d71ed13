"""``mscalepde export``: every format read back (meshio, NumPy, csv) and checked against
``Run.predict`` / ``Run.truth`` at the same points; grids, shape meshes, the user's points,
heat time series; bad input in one line."""

from __future__ import annotations

import copy
import csv
import xml.etree.ElementTree as ET

import meshio
import numpy as np
import pytest

from mscalepde import export, load_run, problem_from_dict, solve
from mscalepde.cli import main
from tests.helpers import POISSON1D

BOX2D = {
    "name": "b2",
    "pde": "poisson",
    "domain": {"box": [[0, 1], [0, 2]]},
    "exact": "sin(pi*x)*sin(pi*y)",
    "source": "auto",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
    "model": {"arch": "mlp", "width": 8, "depth": 2},
    "train": {"steps": 5, "points": {"interior": 64, "boundary": 16}},
    "diagnostics": {"enabled": False},
}

HEAT1D = {
    "name": "h1",
    "pde": "heat",
    "domain": {"box": [[0, 1]], "time": [0, 0.5]},
    "diffusivity": 0.1,
    "exact": "exp(-t)*sin(pi*x)",
    "source": "auto",
    "initial": "exact",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
    "model": {"arch": "mlp", "width": 8, "depth": 2},
    "train": {"steps": 5, "points": {"interior": 64, "boundary": 8, "initial": 8}},
    "diagnostics": {"enabled": False},
}

HOLE = {
    **BOX2D,
    "name": "hole",
    "domain": {"shape": {"difference": [{"box": [[0, 1], [0, 1]]},
                                        {"ball": {"center": [0.5, 0.5], "radius": 0.2}}]}},
    "exact": "x*y",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for spec in (BOX2D, HEAT1D, HOLE):
        out[spec["name"]] = solve(problem_from_dict(copy.deepcopy(spec)), out=base / spec["name"])
    return out


def _check(run, inputs, data):
    np.testing.assert_allclose(data["u"], run.predict(inputs)[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(data["truth"], run.truth(inputs)[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(data["error"], data["u"] - data["truth"], atol=1e-12)
    np.testing.assert_allclose(data["residual"], run.residual(inputs)[:, 0], rtol=1e-9,
                               atol=1e-9)


@pytest.mark.parametrize("fmt", ["vtu", "xdmf"])
def test_box_grid_reads_back_with_meshio(runs, tmp_path, fmt):
    run = runs["b2"]
    files = export(run, tmp_path / f"b2.{fmt}", format=fmt, grid=11)
    mesh = meshio.read(files[-1] if fmt == "vtu" else tmp_path / "b2.xdmf")
    assert mesh.points.shape == (121, 3) and np.all(mesh.points[:, 2] == 0)
    assert mesh.cells[0].type == "quad" and len(mesh.cells[0].data) == 100
    # every quad is a unit cell of the grid, counter-clockwise (positive area)
    p = mesh.points[mesh.cells[0].data]
    area = 0.5 * np.sum(p[:, :, 0] * np.roll(p[:, :, 1], -1, 1)
                        - np.roll(p[:, :, 0], -1, 1) * p[:, :, 1], axis=1)
    np.testing.assert_allclose(area, 0.1 * 0.2)
    _check(run, mesh.points[:, :2], mesh.point_data)


def test_npz_and_csv_hold_the_same_values(runs, tmp_path):
    run = runs["b2"]
    (npz,) = export(run, tmp_path / "b2.npz", format="npz", grid=6)
    z = np.load(npz)
    assert list(z["variables"]) == ["x", "y"] and z["points"].shape == (36, 2)
    assert z["cells_quad"].shape == (25, 4) and z["times"].size == 0
    _check(run, z["points"], z)
    (path,) = export(run, tmp_path / "b2.csv", format="csv", grid=6)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["x", "y", "u", "truth", "error", "residual"]
    table = np.array(rows[1:], dtype=float)
    np.testing.assert_array_equal(table[:, :2], z["points"])
    np.testing.assert_array_equal(table[:, 2], z["u"])  # repr: exact round trip


def test_heat_is_one_time_series_in_pvd_and_xdmf(runs, tmp_path):
    run = runs["h1"]
    files = export(run, tmp_path / "h1.pvd", grid=21, times=[0.0, 0.25, 0.5])
    pvd = ET.parse(files[-1]).getroot()
    sets = pvd.findall("./Collection/DataSet")
    assert [float(s.get("timestep")) for s in sets] == [0.0, 0.25, 0.5]
    for s in sets:
        mesh = meshio.read(tmp_path / s.get("file"))
        assert mesh.cells[0].type == "line" and len(mesh.cells[0].data) == 20
        x = mesh.points[:, :1]
        _check(run, np.hstack([x, np.full_like(x, float(s.get("timestep")))]), mesh.point_data)
    export(run, tmp_path / "h1.xdmf", format="xdmf", grid=21, times=[0.1, 0.4])
    with meshio.xdmf.TimeSeriesReader(tmp_path / "h1.xdmf") as reader:
        points, cells = reader.read_points_cells()
        assert reader.num_steps == 2
        for k in range(2):
            t, data, _ = reader.read_data(k)
            _check(run, np.hstack([points[:, :1], np.full((len(points), 1), t)]), data)


def test_a_shape_is_exported_on_its_mesh(runs, tmp_path):
    run = runs["hole"]
    (path,) = export(run, tmp_path / "hole.vtu", grid=20)
    mesh = meshio.read(path)
    assert mesh.cells[0].type == "triangle"
    r = np.hypot(mesh.points[:, 0] - 0.5, mesh.points[:, 1] - 0.5)
    assert r.min() >= 0.2 - 1e-9  # the hole stays a hole
    _check(run, mesh.points[:, :2], mesh.point_data)


def test_a_shape_with_a_fem_reference_is_exported_on_the_reference_mesh(tmp_path):
    doc = {**HOLE, "name": "noexact", "source": "1", "reference": {"h": 0.3, "fem_tol": 1e-2}}
    doc.pop("exact")
    doc["boundary"] = [{"faces": "all", "type": "dirichlet", "value": 0}]
    run = solve(problem_from_dict(doc), out=tmp_path / "run")
    mesh_ref = run.reference().solution.mesh
    (path,) = export(run.run_dir)
    mesh = meshio.read(path)
    assert len(mesh.cells[0].data) == mesh_ref.t.shape[1]  # its triangles, every one
    assert len(mesh.points) < mesh_ref.p.shape[1]  # the corners only, not the P2 edge nodes
    np.testing.assert_allclose(mesh.point_data["truth"],
                               run.reference()(mesh.points[:, :2]), atol=1e-12)
    (other,) = export(run.run_dir, tmp_path / "c.vtu", grid=10)  # --grid: a gmsh mesh
    assert len(meshio.read(other).cells[0].data) != len(mesh.cells[0].data)


def test_the_users_points_and_the_default_location(runs, tmp_path):
    run_dir = runs["b2"].run_dir
    pts = tmp_path / "pts.csv"
    pts.write_text("x,y\n0.1,0.2\n0.5,1.5\n0.9,0.3\n")
    assert main(["export", str(run_dir), "--points", str(pts), "--format", "csv"]) == 0
    table = np.loadtxt(run_dir / "export" / "b2.csv", delimiter=",", skiprows=1)
    run = load_run(run_dir)
    _check(run, table[:, :2], dict(zip(["u", "truth", "error", "residual"], table[:, 2:].T)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "vtk"], "invalid choice"),
        (["--grid", "1"], "--grid: expected an integer >= 2"),
        (["--times", "0.5"], "--times: the problem has no time"),
        (["--out", "x.vtk"], "a vtu export of this run is a .vtu file"),
        (["--points", "PTS"], "1 of 2 points lie outside the domain (first: x=2, y=0.5)"),
        (["--points", "MISSING"], "no such file"),
    ],
)
def test_bad_export_input_is_one_line(runs, tmp_path, capsys, args, message):
    pts = tmp_path / "p.csv"
    pts.write_text("x,y\n0.5,0.5\n2,0.5\n")
    args = [str(pts) if a == "PTS" else str(tmp_path / "nope.csv") if a == "MISSING" else a
            for a in args]
    try:
        code = main(["export", str(runs["b2"].run_dir), *args])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


def test_a_1d_run_without_a_folder_needs_out(tmp_path):
    run = solve(problem_from_dict(copy.deepcopy(POISSON1D)), write=False)
    with pytest.raises(Exception, match="the run has no folder"):
        export(run)
    (path,) = export(run, tmp_path / "p1.vtu", grid=11)
    mesh = meshio.read(path)
    assert mesh.cells[0].type == "line" and mesh.points.shape == (11, 3)
