"""Draw a 2D VTU export (``mscalepde export RUN_DIR --format vtu``) from the file alone, as
a check that the file carries what ParaView shows: the network's solution, its error
against the truth and the PDE residual, on the exported triangle or quad mesh.

    python docs/figures/draw_export.py runs/poisson2d_holes/export/poisson2d_holes.vtu \\
        docs/figures/poisson2d_holes_export.png

Only meshio, NumPy and matplotlib are used: nothing of mscalepde.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.tri as mtri  # noqa: E402
import meshio  # noqa: E402
import numpy as np  # noqa: E402


def triangles(mesh: meshio.Mesh) -> np.ndarray:
    """The mesh's cells as triangles (quads split in two)."""
    out = []
    for block in mesh.cells:
        if block.type == "triangle":
            out.append(block.data)
        elif block.type == "quad":
            q = block.data
            out += [q[:, [0, 1, 2]], q[:, [0, 2, 3]]]
    return np.vstack(out)


def main(source: str, target: str) -> None:
    mesh = meshio.read(source)
    tri = mtri.Triangulation(mesh.points[:, 0], mesh.points[:, 1], triangles(mesh))
    data = mesh.point_data
    panels = [
        ("u", r"network $u_\theta$", data["u"], "RdBu_r", None),
        ("error", r"$|u_\theta - u^*|$", np.abs(data["error"]), "magma", None),
        ("residual", r"$\log_{10}|L u_\theta - f|$",
         np.log10(np.abs(data["residual"]) + 1e-16), "viridis", None),
    ]
    fig, axs = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
    for ax, (_, label, values, cmap, _) in zip(axs, panels):
        im = ax.tripcolor(tri, values, shading="gouraud", cmap=cmap)
        fig.colorbar(im, ax=ax, label=label)
        ax.set_aspect("equal")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    cells = sum(len(b.data) for b in mesh.cells)
    fig.suptitle(f"{source.split('/')[-1]}: {len(mesh.points)} points, {cells} cells, "
                 f"fields {', '.join(data)} (drawn from the exported file)")
    fig.savefig(target, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
