"""Constructive geometry (mscalepde/geometry/shapes.py, sampling.py): measures against
exact values, uniform samplers, outward normals, exact counts, determinism, and the
one-line errors of bad shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mscalepde.cli import main
from mscalepde.errors import SchemaError
from mscalepde.geometry import Domain
from mscalepde.geometry.sampling import sample_boundary, sample_interior
from mscalepde.geometry.shapes_yaml import geometry_from_yaml, parse_shape, shape_to_yaml


def disk(cx: float, cy: float, r: float, name: str | None = None) -> dict:
    out: dict = {"ball": {"center": [cx, cy], "radius": r}}
    if name:
        out["name"] = name
    return out


def lens(r1: float, r2: float, d: float) -> float:
    """Area of the intersection of two disks with radii r1, r2 at distance d."""
    a = r1**2 * math.acos((d**2 + r1**2 - r2**2) / (2 * d * r1))
    b = r2**2 * math.acos((d**2 + r2**2 - r1**2) / (2 * d * r2))
    c = 0.5 * math.sqrt((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2))
    return a + b - c


L_SHAPE = {"polygon": [[0, 0], [1, 0], [1, 1], [-1, 1], [-1, -1], [0, -1]], "name": "wall"}
HOLES = {
    "difference": [
        {"box": [[-1, 1], [-1, 1]], "name": "outer"},
        disk(0.3, 0.3, 0.2, "holes"),
        disk(-0.4, -0.2, 0.25, "holes"),
    ]
}
ANNULUS = {"difference": [disk(0, 0, 1, "outer"), disk(0, 0, 0.5, "inner")]}
TWO_DISKS = {"union": [disk(0, 0, 1), disk(1, 0, 0.8)]}
LENS = {"intersection": [disk(0, 0, 1), disk(1, 0, 0.8)]}
BOX_MINUS_BALLS = {
    "difference": [
        {"box": [[0, 1], [0, 1], [0, 1]], "name": "box"},
        {"ball": {"center": [0.3, 0.3, 0.3], "radius": 0.15}, "name": "balls"},
        {"ball": {"center": [0.7, 0.6, 0.6], "radius": 0.2}, "name": "balls"},
    ]
}
ELLIPSOID = {"ellipsoid": {"center": [0, 0, 0], "radii": [1, 0.5, 0.25]}, "name": "skin"}

#: shape -> exact |Ω|
VOLUMES = {
    "holes": (HOLES, 4 - math.pi * (0.2**2 + 0.25**2)),
    "annulus": (ANNULUS, math.pi * (1 - 0.25)),
    "l_shape": (L_SHAPE, 3.0),
    "ellipse": ({"ellipse": {"center": [1, 2], "radii": [0.5, 2]}}, math.pi),
    "union": (TWO_DISKS, math.pi * (1 + 0.64) - lens(1, 0.8, 1)),
    "intersection": (LENS, lens(1, 0.8, 1)),
    "box_minus_balls": (BOX_MINUS_BALLS, 1 - 4 / 3 * math.pi * (0.15**3 + 0.2**3)),
    "ellipsoid": (ELLIPSOID, 4 / 3 * math.pi * 0.125),
}


@pytest.mark.parametrize("name", sorted(VOLUMES))
def test_measure_matches_exact_and_monte_carlo(name):
    raw, exact = VOLUMES[name]
    geo = geometry_from_yaml(raw)
    vol, err = geo.volume_estimate
    assert abs(vol - exact) <= 5 * err + 1e-12 * exact, (vol, err, exact)
    # an independent plain Monte Carlo estimate with its error bar
    lo, hi = (np.array(b) for b in zip(*geo.bounds))
    rng = np.random.default_rng(7)
    x = lo + rng.random((200_000, geo.dim)) * (hi - lo)
    p = geo.shape.contains(x).mean()
    box = float(np.prod(hi - lo))
    assert abs(box * p - exact) <= 5 * box * math.sqrt(p * (1 - p) / len(x))


def test_part_measures_are_arc_lengths():
    geo = geometry_from_yaml(HOLES)
    assert geo.parts == ("outer", "holes")
    assert geo.part_measure("outer") == pytest.approx(8.0)
    assert geo.part_measure("holes") == pytest.approx(2 * math.pi * 0.45)
    ann = geometry_from_yaml(ANNULUS)
    assert ann.part_measure("inner") == pytest.approx(math.pi)
    # two overlapping disks: each keeps the arc outside the other (estimated by sampling)
    geo = geometry_from_yaml(TWO_DISKS)
    d, r1, r2 = 1.0, 1.0, 0.8
    a1 = math.acos((d**2 + r1**2 - r2**2) / (2 * d * r1))  # half-angle of the cut arc
    a2 = math.acos((d**2 + r2**2 - r1**2) / (2 * d * r2))
    exact = r1 * (2 * math.pi - 2 * a1) + r2 * (2 * math.pi - 2 * a2)
    assert geo.part_measure("unnamed") == pytest.approx(exact, rel=0.02)
    ell = geometry_from_yaml({"ellipse": {"center": [0, 0], "radii": [2, 1]}})
    assert ell.part_measure("unnamed") == pytest.approx(9.688448220547675, rel=1e-10)


def test_parts_name_the_nearest_named_ancestor():
    geo = geometry_from_yaml(
        {
            "difference": [
                {"box": [[0, 3], [0, 1]], "name": "walls"},
                {"union": [disk(1, 0.5, 0.2), disk(2, 0.5, 0.2, "special")], "name": "holes"},
            ]
        }
    )
    assert geo.parts == ("walls", "holes", "special")
    assert geo.part_measure("special") == pytest.approx(2 * math.pi * 0.2)


def test_yaml_round_trip():
    for raw, _ in VOLUMES.values():
        shape = parse_shape(raw)
        assert parse_shape(shape_to_yaml(shape)) == shape


@pytest.mark.parametrize("n", [1, 17, 1000, 4097])
@pytest.mark.parametrize("sampler", ["uniform", "sobol"])
def test_exact_counts_and_determinism(n, sampler):
    geo = geometry_from_yaml(HOLES)
    dom = Domain(box=geo.bounds, time=(0.0, 1.0), geometry=geo)
    a = sample_interior(dom, n, sampler, 3)
    b = sample_interior(dom, n, sampler, 3)
    assert a.shape == (n, 3) and np.array_equal(a, b)
    assert geo.shape.contains(a[:, :2]).all() and (a[:, 2] >= 0).all() and (a[:, 2] <= 1).all()
    if n > 1:
        assert not np.array_equal(a, sample_interior(dom, n, sampler, 4))
    for part in geo.parts:
        x, nrm = sample_boundary(dom, part, n, sampler, 5)
        y, nrm2 = sample_boundary(dom, part, n, sampler, 5)
        assert x.shape == (n, 3) and nrm.shape == (n, 2)
        assert np.array_equal(x, y) and np.array_equal(nrm, nrm2)


def test_interior_uniform_per_region():
    """Counts in the four quadrants of the square with holes follow their areas (5σ)."""
    geo = geometry_from_yaml(HOLES)
    dom = Domain(box=geo.bounds, geometry=geo)
    n = 40_000
    x = sample_interior(dom, n, "uniform", 11)
    rng = np.random.default_rng(0)
    ref = rng.random((2_000_000, 2)) * 2 - 1
    ref = ref[geo.shape.contains(ref)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            p = np.mean((np.sign(ref[:, 0]) == sx) & (np.sign(ref[:, 1]) == sy))
            k = np.sum((np.sign(x[:, 0]) == sx) & (np.sign(x[:, 1]) == sy))
            assert abs(k - n * p) <= 5 * math.sqrt(n * p * (1 - p)), (sx, sy, k, n * p)


def test_boundary_uniform_by_arc_length():
    from scipy.stats import kstest

    ann = geometry_from_yaml(ANNULUS)
    dom = Domain(box=ann.bounds, geometry=ann)
    x, _ = sample_boundary(dom, "inner", 5000, "uniform", 2)
    theta = (np.arctan2(x[:, 1], x[:, 0]) + math.pi) / (2 * math.pi)
    assert kstest(theta, "uniform").pvalue > 1e-3
    # an ellipse: the arc-length coordinate is uniform (not the angle)
    ell = geometry_from_yaml({"ellipse": {"center": [0, 0], "radii": [3, 1]}, "name": "e"})
    dom = Domain(box=ell.bounds, geometry=ell)
    x, _ = sample_boundary(dom, "e", 5000, "uniform", 3)
    th = np.linspace(0, 2 * math.pi, 20001)
    arc = np.concatenate([[0], np.cumsum(np.hypot(np.diff(3 * np.cos(th)), np.diff(np.sin(th))))])
    phi = np.mod(np.arctan2(x[:, 1], x[:, 0] / 3), 2 * math.pi)
    s = np.interp(phi, th, arc) / arc[-1]
    assert kstest(s, "uniform").pvalue > 1e-3
    assert kstest(phi / (2 * math.pi), "uniform").pvalue < 1e-6  # the angle is not uniform
    # a square minus holes: points on the outer part spread over the four sides by length
    geo = geometry_from_yaml(HOLES)
    dom = Domain(box=geo.bounds, geometry=geo)
    x, _ = sample_boundary(dom, "outer", 8000, "uniform", 4)
    side = np.argmax(np.abs(x), axis=1) * 2 + (x[np.arange(len(x)), np.argmax(np.abs(x), 1)] > 0)
    counts = np.bincount(side, minlength=4)
    assert np.all(np.abs(counts - 2000) <= 5 * math.sqrt(2000 * 0.75))


@pytest.mark.parametrize(
    "raw", [HOLES, ANNULUS, L_SHAPE, TWO_DISKS, LENS, BOX_MINUS_BALLS, ELLIPSOID]
)
def test_normals_point_outward(raw):
    geo = geometry_from_yaml(raw)
    dom = Domain(box=geo.bounds, geometry=geo)
    scale = float(np.linalg.norm(np.subtract(*zip(*geo.bounds))))
    for part in geo.parts:
        x, n = sample_boundary(dom, part, 2000, "uniform", 9)
        assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
        eps = 1e-4 * scale
        inside = geo.shape.contains(x - eps * n)
        outside = ~geo.shape.contains(x + eps * n)
        # all but the few points within eps of a corner
        assert inside.mean() > 0.995 and outside.mean() > 0.995, part


def test_normals_point_into_the_holes():
    ann = geometry_from_yaml(ANNULUS)
    dom = Domain(box=ann.bounds, geometry=ann)
    x, n = sample_boundary(dom, "inner", 500, "uniform", 1)
    assert np.allclose(np.linalg.norm(x, axis=1), 0.5)
    assert np.allclose(n, -x / 0.5)  # towards the centre: out of Ω, into the hole
    x, n = sample_boundary(dom, "outer", 500, "uniform", 1)
    assert np.allclose(n, x)


def test_coincident_surfaces_are_counted_once():
    # a box minus a notch that shares part of its right face
    geo = geometry_from_yaml(
        {"difference": [{"box": [[0, 2], [0, 1]], "name": "a"}, {"box": [[1, 2], [0.25, 0.75]]}]}
    )
    total = sum(geo.part_measure(p) for p in geo.parts)
    assert total == pytest.approx(2 + 2 + 1 + 0.5 + 0.5 + 2 * 1.0, rel=1e-2)
    # a box inside another, sharing its bottom and left faces: those count once (6, not 8)
    geo = geometry_from_yaml({"union": [{"box": [[0, 2], [0, 1]]}, {"box": [[0, 1], [0, 1]]}]})
    assert geo.part_measure("unnamed") == pytest.approx(6.0, rel=1e-2)


def test_sampling_is_fast():
    """Resampling must cost well under a training step (a few ms for 4096 points)."""
    import time

    geo = geometry_from_yaml(HOLES)
    dom = Domain(box=geo.bounds, geometry=geo)
    sample_interior(dom, 4096, "uniform", 0)
    start = time.perf_counter()
    for s in range(10):
        sample_interior(dom, 4096, "uniform", s)
        for part in geo.parts:
            sample_boundary(dom, part, 512, "uniform", s)
    assert (time.perf_counter() - start) / 10 < 0.05


# --------------------------------------------------------------------------- bad input

GOOD = """pde: poisson
domain:
  shape:
    difference:
      - {box: [[-1, 1], [-1, 1]], name: outer}
      - {ball: {center: [0.3, 0.3], radius: 0.2}, name: holes}
exact: sin(pi*x)*y
boundary:
  - {faces: outer, type: dirichlet, value: exact}
  - {faces: holes, type: neumann, value: exact}
train: {steps: 5}
"""

BAD = {
    "infinite_vertex": (
        GOOD.replace(
            "{box: [[-1, 1], [-1, 1]], name: outer}",
            "{polygon: [[0, 0], [1, 0], [.inf, 1]], name: outer}",
        ),
        "domain.shape.difference[0].polygon[2]: expected a vertex [x, y] of finite numbers",
    ),
    "infinite_box": (
        GOOD.replace("[[-1, 1], [-1, 1]]", "[[-1, .inf], [-1, 1]]"),
        "domain.shape.difference[0].box[0]: expected [lo, hi] with lo < hi",
    ),
    "repeated_vertex": (
        GOOD.replace(
            "{box: [[-1, 1], [-1, 1]], name: outer}",
            "{polygon: [[0, 0], [1, 0], [1, 0], [0, 1]], name: outer}",
        ),
        "polygon[2]: repeats vertex 1",
    ),
    "one_d_shape_without_truth": (
        """pde: poisson
domain: {shape: {difference: [{box: [[0, 3]]}, {ball: {center: [1], radius: 0.2}}]}}
source: 1
boundary: [{faces: all, type: dirichlet, value: 0}]
""",
        "domain.shape: a 1D shape needs 'exact' or 'truth: {file: ...}'",
    ),
    "empty_domain": (
        GOOD.replace("difference:", "intersection:").replace(
            "[0.3, 0.3], radius: 0.2", "[3, 3], radius: 0.2"
        ),
        "domain.shape: the domain is empty",
    ),
    "self_intersecting_polygon": (
        GOOD.replace(
            "{box: [[-1, 1], [-1, 1]], name: outer}",
            "{polygon: [[0, 0], [1, 1], [1, 0], [0, 1]], name: outer}",
        ),
        "domain.shape.difference[0].polygon: the polygon is self-intersecting",
    ),
    "unknown_part": (
        GOOD.replace("faces: holes", "faces: hole"),
        "boundary[1].faces: expected all or one of outer, holes, got 'hole'",
    ),
    "part_without_condition": (
        GOOD.replace("  - {faces: holes, type: neumann, value: exact}\n", ""),
        "boundary: no condition on boundary part(s) holes",
    ),
    "negative_radius": (
        GOOD.replace("radius: 0.2", "radius: -0.2"),
        "domain.shape.difference[1].ball.radius: expected a number > 0, got -0.2",
    ),
    "polygon_in_3d": (
        GOOD.replace("[[-1, 1], [-1, 1]]", "[[-1, 1], [-1, 1], [-1, 1]]").replace(
            "{ball: {center: [0.3, 0.3], radius: 0.2}, name: holes}",
            "{polygon: [[0, 0], [0.5, 0], [0, 0.5]], name: holes}",
        ),
        "domain.shape.difference[1]: a polygon is 2D, but the domain is 3D",
    ),
    "box_and_shape": (
        GOOD.replace("domain:\n", "domain:\n  box: [[0, 1], [0, 1]]\n"),
        "domain.shape: give either box or shape, not both",
    ),
    "periodic_on_shape": (
        GOOD.replace("faces: outer, type: dirichlet, value: exact", "faces: outer, type: periodic"),
        "boundary[0].type: periodic conditions need a box domain",
    ),
    "two_kinds_in_one_node": (
        GOOD.replace(
            "{box: [[-1, 1], [-1, 1]], name: outer}", "{box: [[-1, 1], [-1, 1]], ball: 1}"
        ),
        "expected exactly one of box, ball",
    ),
    "reserved_name": (
        GOOD.replace("name: holes", "name: x-").replace("faces: holes", "faces: x-"),
        "'x-' is reserved",
    ),
    "ellipse_radii": (
        GOOD.replace(
            "{ball: {center: [0.3, 0.3], radius: 0.2}",
            "{ellipse: {center: [0.3, 0.3], radii: [0.2, 0]}",
        ),
        "radii: expected numbers > 0",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_shapes_one_line_exit_2(name, tmp_path, capsys):
    content, expected = BAD[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(content)
    code = main(["solve", str(path), "--quiet", "--runs-dir", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0] and expected in lines[0], lines[0]


def test_good_shape_file_loads(tmp_path):
    from mscalepde.problem.validate import load_problem

    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    p = load_problem(path)
    assert p.domain.faces == ["outer", "holes"]
    assert p.domain.volume == pytest.approx(4 - math.pi * 0.04, rel=1e-3)
    with pytest.raises(SchemaError):
        parse_shape({"polygon": [[0, 0], [1, 0]]})


def test_a_part_of_an_ellipse_and_a_box_is_uniform():
    """Rejection on the ellipse must not starve it when a part has other primitives."""
    geo = geometry_from_yaml(
        {
            "difference": [
                {"box": [[-2, 2], [-2, 2]], "name": "out"},
                {
                    "union": [
                        {"ellipse": {"center": [-1, 0], "radii": [0.6, 0.1]}},
                        {"box": [[0.5, 1.1], [-0.3, 0.3]]},
                    ],
                    "name": "h",
                },
            ]
        }
    )
    ell = geo.leaves[1][0]
    share = ell.surface_measure() / geo.part_measure("h")
    x, _ = sample_boundary(Domain(box=geo.bounds, geometry=geo), "h", 20000, "uniform", 0)
    on_ellipse = np.mean(x[:, 0] < 0)
    assert abs(on_ellipse - share) < 5 * math.sqrt(share * (1 - share) / 20000)


def test_part_measures_of_cut_surfaces_are_accurate():
    # a box with a disk bulging out of its right side: 4 − chord + half circle
    geo = geometry_from_yaml({"union": [{"box": [[0, 1], [0, 1]]}, disk(1, 0.5, 0.3)]})
    assert geo.part_measure("unnamed") == pytest.approx(4 - 0.6 + math.pi * 0.3, rel=1e-4)
    # a cube minus a corner cube (axis-aligned cuts through the faces): 6
    geo = geometry_from_yaml({"difference": [{"box": [[0, 1]] * 3}, {"box": [[0.5, 1.5]] * 3}]})
    assert geo.part_measure("unnamed") == pytest.approx(6.0, rel=1e-4)
    # a cube minus a ball at a corner
    geo = geometry_from_yaml(
        {"difference": [{"box": [[0, 1]] * 3}, {"ball": {"center": [1, 1, 1], "radius": 0.5}}]}
    )
    exact = 6 - 3 * math.pi * 0.25 / 4 + 4 * math.pi * 0.25 / 8
    assert geo.part_measure("unnamed") == pytest.approx(exact, rel=1e-4)


def test_polygon_is_closed_like_a_box():
    square = parse_shape({"polygon": [[0, 0], [2, 0], [2, 1], [0, 1]]})
    edges = np.array([[2, 0.5], [1, 1], [0, 0.5], [1, 0], [2, 1]])
    assert square.contains(edges).all()
    assert not square.contains(np.array([[2.001, 0.5], [1, 1.001]])).any()


def test_1d_heat_boundary_uses_every_point():
    geo = geometry_from_yaml(
        {
            "difference": [
                {"box": [[0, 3]]},
                {"ball": {"center": [1], "radius": 0.25}},
                {"ball": {"center": [2], "radius": 0.25}},
            ]
        }
    )
    dom = Domain(box=geo.bounds, time=(0.0, 1.0), geometry=geo)
    x, n = sample_boundary(dom, "unnamed", 12, "uniform", 0)
    assert sorted(set(x[:, 0].round(12))) == [0.0, 0.75, 1.25, 1.75, 2.25, 3.0]
    assert x.shape == (12, 2)


NESTED = [
    HOLES,
    TWO_DISKS,
    LENS,
    BOX_MINUS_BALLS,
    {  # an island in a hole, an intersection pruned away, a far union member
        "union": [
            {
                "difference": [
                    {"box": [[0, 4], [0, 2]]},
                    disk(1, 1, 0.6),
                    {"intersection": [disk(3, 1, 0.5), {"box": [[2.5, 3.2], [0.5, 1.5]]}]},
                ]
            },
            disk(1, 1, 0.3),
            {"polygon": [[6, 0], [7, 0], [6.5, 1]]},
        ]
    },
]


@pytest.mark.parametrize("raw", NESTED)
def test_pruned_trees_agree_with_the_whole_tree(raw):
    """The boundary rule runs on a tree pruned per primitive: near that primitive (in its
    box) it must classify every point as the whole tree does."""
    geo = geometry_from_yaml(raw)
    rng = np.random.default_rng(0)
    for i, (leaf, _) in enumerate(geo.leaves):
        tree, _ = geo._local[i]
        x, n, _ = leaf.surface_quadrature(2000)
        lo, hi = leaf.bbox()
        pts = np.concatenate(
            [x - geo.eps * n, x + geo.eps * n, lo + rng.random((2000, geo.dim)) * (hi - lo)]
        )
        assert np.array_equal(tree.contains(pts), geo.shape.contains(pts))


def test_polygon_membership_is_fast():
    import time

    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    poly = parse_shape({"polygon": np.stack([np.cos(angles), np.sin(angles)], 1).tolist()})
    x = np.random.default_rng(0).uniform(-1.2, 1.2, (100_000, 2))
    start = time.perf_counter()
    inside = poly.contains(x)
    assert time.perf_counter() - start < 1.0
    r = np.linalg.norm(x, axis=1)
    assert inside[r < 0.99].all() and not inside[r > 1.0].any()
