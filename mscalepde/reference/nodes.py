"""Chebyshev–Gauss–Lobatto nodes and their differentiation matrix on [a, b]
(Trefethen, *Spectral Methods in MATLAB*, 2000, ``cheb``): the building block shared by
the spectral space axes (:mod:`.collocation`) and the spectral time collocation of the box
solvers (:mod:`.fd`). It imports neither, so the two import each other in one direction
only (collocation → fd → nodes).
"""

from __future__ import annotations

import numpy as np


def cheb_nodes(n: int, a: float, b: float) -> np.ndarray:
    """n Chebyshev–Gauss–Lobatto points on [a, b], ascending."""
    j = np.arange(n)
    s = -np.cos(np.pi * j / (n - 1))  # ascending on [-1, 1]
    x = a + (b - a) * (s + 1.0) / 2.0
    x[0], x[-1] = a, b
    return x


def cheb_d1(n: int, a: float, b: float) -> np.ndarray:
    """First-derivative collocation matrix on the ascending Lobatto nodes of [a, b]."""
    N = n - 1
    j = np.arange(n)

    # accurate differences: s_i - s_j = 2 sin((j+i)π/2N) sin((j-i)π/2N) (ascending order)
    ii, jj = np.meshgrid(j, j, indexing="ij")
    dx = 2.0 * np.sin((ii + jj) * np.pi / (2 * N)) * np.sin((ii - jj) * np.pi / (2 * N))
    c = np.ones(n)
    c[0] = c[-1] = 2.0
    c = c * (-1.0) ** j
    with np.errstate(divide="ignore", invalid="ignore"):
        D = np.outer(c, 1.0 / c) / dx
    np.fill_diagonal(D, 0.0)
    D[np.diag_indices(n)] = -D.sum(axis=1)  # negative-sum trick
    return D * (2.0 / (b - a))
