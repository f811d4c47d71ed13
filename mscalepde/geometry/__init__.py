"""Domains and their points.

- :mod:`.box` — the box Ω = [a_1, b_1] × … (× [t0, t1]), its faces, the unit samplers and
  tensor grids;
- :mod:`.shapes` — constructive geometry: primitives, set operations, named boundary parts
  with outward normals (docs/design.md §6);
- :mod:`.shapes_yaml` — ``domain.shape`` read from and written to YAML;
- :mod:`.sampling` — exact-count interior and boundary samplers on any domain;
- :mod:`.mesh` — triangle meshes of 2D shapes and tetrahedral meshes of 3D ones for the
  finite-element reference.
"""

from mscalepde.geometry.box import (
    AXES,
    SAMPLERS,
    Domain,
    face_names,
    grid_points,
    sample_face,
    sample_initial,
    sample_interior,
    split_boundary_points,
    tensor_grid,
    unit_samples,
)

__all__ = [
    "AXES",
    "SAMPLERS",
    "Domain",
    "face_names",
    "grid_points",
    "sample_face",
    "sample_initial",
    "sample_interior",
    "split_boundary_points",
    "tensor_grid",
    "unit_samples",
]
