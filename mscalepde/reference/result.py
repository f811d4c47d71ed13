"""A classical reference solution (:class:`Reference`, :class:`FemReference`): its values on
the grid or mesh, its interpolation to any points, its estimated error, and its npz file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.errors import ReferenceSolveError
from mscalepde.geometry import grid_points
from mscalepde.reference.collocation import (
    as_tensor_grid,
    barycentric_matrix,
    contract_points,
    pad_periodic,
    trig_matrix,
)
from mscalepde.reference.fd import mode_product
from mscalepde.reference.lowrank import has, pack, storage_tolerance, unpack
from mscalepde.reference.options import FEM_METHOD

REFERENCE_VERSION = 2  # 2: general operators (flux form), source: auto = L u*


@dataclass
class Reference:
    """A reference solution on a tensor grid; call it on points (N, D) to interpolate."""

    variables: tuple[str, ...]
    axes: list[np.ndarray]
    kinds: list[str]  # per variable: uniform | periodic | chebyshev | fourier
    u: np.ndarray
    method: str
    n: list[int]
    nt: int = 0
    order: int = 2
    time_method: str = ""
    estimated_error: float = float("nan")
    seconds: float = 0.0
    fingerprint: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    exact_error: float | None = None
    _spline: Any = field(default=None, repr=False, compare=False)

    @property
    def grid(self) -> dict[str, np.ndarray]:
        return dict(zip(self.variables, self.axes))

    # ---------------------------------------------------------------- npz
    def to_npz_dict(self) -> dict[str, np.ndarray]:
        out = {v: np.asarray(a, dtype=np.float64) for v, a in zip(self.variables, self.axes)}
        u = np.asarray(self.u, dtype=np.float64)
        if "t" in self.variables and u.ndim == len(self.variables):  # time levels first
            tol = storage_tolerance(u, self.estimated_error)
            out.update(pack("u_time_first", np.moveaxis(u, -1, 0), tol))
        else:
            out["u"] = u
        out["method"] = np.array(self.method)
        out["n"] = np.asarray(self.n, dtype=np.int64)
        out["nt"] = np.array(self.nt, dtype=np.int64)
        out["order"] = np.array(self.order, dtype=np.int64)
        out["time_method"] = np.array(self.time_method)
        out["estimated_error"] = np.array(self.estimated_error, dtype=np.float64)
        out["exact_error"] = np.array(
            np.nan if self.exact_error is None else self.exact_error, dtype=np.float64
        )
        out["seconds"] = np.array(self.seconds, dtype=np.float64)
        out["kinds"] = np.array(",".join(self.kinds))
        out["variables"] = np.array(",".join(self.variables))
        out["fingerprint"] = np.array(self.fingerprint)
        out["settings_json"] = np.array(json.dumps(self.settings, sort_keys=True))
        out["version"] = np.array(REFERENCE_VERSION, dtype=np.int64)
        return out

    def save(self, path: str | Path) -> Path:
        """Write ``reference.npz`` atomically (no pickled objects; compressed, and a heat
        reference's time levels as a low-rank factorisation, :mod:`.lowrank`)."""
        from mscalepde.io import atomic_write_with

        path = Path(path)
        data = self.to_npz_dict()
        atomic_write_with(path, lambda buf: np.savez_compressed(buf, **data))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["method"]) == FEM_METHOD:
                    return FemReference.from_npz(z)
                meta = _npz_meta(z)
                return cls(
                    **meta,
                    axes=[np.array(z[v]) for v in meta["variables"]],
                    kinds=str(z["kinds"]).split(","),
                    u=_grid_values(z),
                )
        except FileNotFoundError:
            raise ReferenceSolveError(f"{path}: no such file") from None
        except (KeyError, ValueError, OSError) as exc:
            raise ReferenceSolveError(f"{path}: not a reference file ({exc})") from None

    # ---------------------------------------------------------------- interpolation
    def __call__(self, points: np.ndarray) -> np.ndarray:
        """u at ``points`` (N, D), columns = variables; points are clipped to the box."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if pts.shape[1] != len(self.variables):
            raise ReferenceSolveError(
                f"expected points with {len(self.variables)} columns "
                f"({', '.join(self.variables)}), got {pts.shape[1]}"
            )
        lo = np.array([a[0] for a in self.axes])
        hi = np.array([a[-1] for a in self.axes])
        pts = np.clip(pts, lo, hi)
        if all(k in ("uniform", "periodic") for k in self.kinds):
            return self._bspline()(pts)
        grid = as_tensor_grid(pts)
        if grid is not None:
            return self.on_grid(grid).reshape(-1)
        mats = [self._matrix(i, pts[:, i]) for i in range(len(self.axes))]
        return contract_points(self.u, mats)

    def on_grid(self, axes: list[np.ndarray]) -> np.ndarray:
        """u on the tensor grid of 1D coordinate arrays ``axes`` (shape len(a_i)...)."""
        out = self.u
        for i, a in enumerate(axes):
            a = np.clip(np.asarray(a, dtype=float), self.axes[i][0], self.axes[i][-1])
            out = mode_product(self._matrix(i, a), out, i)
        return out

    def _matrix(self, i: int, xq: np.ndarray) -> np.ndarray:
        kind, nodes = self.kinds[i], self.axes[i]
        if kind == "chebyshev":
            return barycentric_matrix(nodes, xq)
        if kind == "fourier":
            return trig_matrix(nodes, xq)
        from scipy.interpolate import make_interp_spline

        eye = np.eye(len(nodes))
        if kind == "periodic":  # the last node repeats the first: one cardinal function
            eye[-1] = eye[0]
        x, y = pad_periodic(nodes, eye, 0, kind == "periodic")
        return make_interp_spline(x, y, k=min(3, len(x) - 1))(xq)

    def _bspline(self) -> Any:
        if self._spline is None:
            from scipy.interpolate import NdBSpline, make_interp_spline

            c = self.u
            knots = []
            for i, (kind, nodes) in enumerate(zip(self.kinds, self.axes)):
                x, c = pad_periodic(nodes, c, i, kind == "periodic")
                s = make_interp_spline(x, c, k=3, axis=i)
                c = np.moveaxis(s.c, 0, i)
                knots.append(s.t)
            self._spline = NdBSpline(tuple(knots), c, 3)
        return self._spline


def _grid_values(z: Any) -> np.ndarray:
    """The grid values of a stored reference: ``u``, or the time-first factorisation of a
    heat reference moved back to time last."""
    if has("u_time_first", z):
        return np.moveaxis(unpack("u_time_first", z), 0, -1)
    return np.array(z["u"])


def _npz_meta(z: Any) -> dict[str, Any]:
    """The fields every stored reference has (all but its grid or mesh)."""
    exact_error = float(z["exact_error"])
    return {
        "variables": tuple(str(z["variables"]).split(",")),
        "method": str(z["method"]),
        "n": [int(v) for v in np.atleast_1d(z["n"])],
        "nt": int(z["nt"]),
        "order": int(z["order"]),
        "time_method": str(z["time_method"]),
        "estimated_error": float(z["estimated_error"]),
        "seconds": float(z["seconds"]),
        "fingerprint": str(z["fingerprint"]),
        "settings": json.loads(str(z["settings_json"])),
        "exact_error": None if math.isnan(exact_error) else exact_error,
    }


@dataclass
class FemReference(Reference):
    """A finite-element reference on a domain that is not a box (:mod:`.fem`): ``n`` is
    [number of DOFs], ``order`` the element order, ``solution`` the
    :class:`~.fem.FemSolution` that :meth:`__call__` evaluates."""

    solution: Any = None
    h: float = float("nan")

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        out = super().to_npz_dict()
        out.update(self.solution.to_arrays(self.estimated_error))
        return out

    @classmethod
    def from_npz(cls, z: Any) -> FemReference:
        from mscalepde.reference.fem import FemSolution

        sol = FemSolution.from_arrays({k: z[k] for k in z.files if k.startswith("fem_")})
        return cls(**_npz_meta(z), axes=[], kinds=[], u=np.zeros(0), solution=sol, h=sol.h)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        return self.solution(points)

    def on_grid(self, axes: list[np.ndarray]) -> np.ndarray:
        return self.solution(grid_points(axes)).reshape(tuple(len(a) for a in axes))
