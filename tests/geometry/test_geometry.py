"""Samplers: points in the domain, on the named faces, with the right normals; seeds."""

from __future__ import annotations

import numpy as np
import pytest

from mscalepde.geometry import (
    SAMPLERS,
    Domain,
    sample_face,
    sample_initial,
    sample_interior,
    split_boundary_points,
    unit_samples,
)

DOMAINS = [
    Domain(box=((0.0, 1.0),)),
    Domain(box=((-1.0, 2.0), (0.5, 0.75))),
    Domain(box=((0.0, 1.0), (0.0, 2.0), (-3.0, -1.0))),
    Domain(box=((0.0, 1.0),), time=(0.0, 0.5)),
    Domain(box=((0.0, 1.0), (1.0, 3.0)), time=(1.0, 2.0)),
]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: f"{d.space_dim}d{'t' if d.time else ''}")
def test_interior_points_lie_in_the_domain(domain, sampler):
    pts = sample_interior(domain, 300, sampler, seed=3)
    assert pts.shape[1] == len(domain.bounds) and len(pts) >= 300
    for i, (lo, hi) in enumerate(domain.bounds):
        assert np.all(pts[:, i] >= lo) and np.all(pts[:, i] <= hi)
        # the points spread over the interval, not a corner
        assert pts[:, i].max() - pts[:, i].min() > 0.8 * (hi - lo)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: f"{d.space_dim}d{'t' if d.time else ''}")
def test_face_points_lie_on_the_named_face(domain, sampler):
    for face in domain.faces:
        pts = sample_face(domain, face, 64, sampler, seed=1)
        axis = domain.face_axis(face)
        lo, hi = domain.box[axis]
        expected = lo if face.endswith("-") else hi
        assert np.all(pts[:, axis] == expected)
        for i, (a, b) in enumerate(domain.bounds):
            assert np.all((pts[:, i] >= a) & (pts[:, i] <= b))
        n = domain.face_normal(face)
        assert n.shape == (domain.space_dim,) and np.linalg.norm(n) == 1.0
        # outward: moving along n from the face leaves the box
        inside_center = np.array([(a + b) / 2 for a, b in domain.box])
        assert np.dot(n, pts[0, : domain.space_dim] - inside_center) > 0


def test_point_face_of_a_1d_problem_is_one_point():
    d = Domain(box=((2.0, 5.0),))
    assert sample_face(d, "x-", 100, "sobol", 0).tolist() == [[2.0]]
    assert sample_face(d, "x+", 100, "uniform", 0).tolist() == [[5.0]]


def test_initial_points_are_at_t0():
    d = Domain(box=((0.0, 1.0), (0.0, 1.0)), time=(0.25, 1.0))
    pts = sample_initial(d, 50, "sobol", 0)
    assert np.all(pts[:, -1] == 0.25) and pts.shape == (50, 3)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_are_reproducible_and_seed_dependent(sampler):
    a = unit_samples(128, 2, sampler, 7)
    b = unit_samples(128, 2, sampler, 7)
    assert np.array_equal(a, b)
    if sampler != "grid":
        assert not np.array_equal(a, unit_samples(128, 2, sampler, 8))


def test_grid_sampler_is_a_tensor_grid_of_cell_centres():
    pts = unit_samples(16, 2, "grid", 0)
    assert sorted(set(pts[:, 0].tolist())) == [0.125, 0.375, 0.625, 0.875]
    assert len(pts) == 16


def test_sobol_is_more_uniform_than_uniform():
    from scipy.stats import qmc

    u = unit_samples(1024, 2, "uniform", 0)
    s = unit_samples(1024, 2, "sobol", 0)
    assert qmc.discrepancy(s) < qmc.discrepancy(u) / 3


def test_boundary_points_are_shared_by_face_measure():
    d = Domain(box=((0.0, 1.0), (0.0, 3.0)))
    split = split_boundary_points(d, d.faces, 800)
    assert split["x-"] == split["x+"] == 300 and split["y-"] == split["y+"] == 100
