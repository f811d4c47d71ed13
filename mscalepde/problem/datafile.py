"""Truth read from a data file: ``truth: {file: ref.dat}`` (docs/design.md §6).

The errors of a run are then measured at the file's points, against its values, with no
interpolation (the evaluation grid is not used). Accepted formats:

- **text** (``.txt``, ``.dat``, ``.csv``, anything else): one point per line, columns
  x[, y[, z]][, t], u separated by whitespace or commas; lines starting with ``%`` or
  ``#`` are comments (COMSOL and other FEM packages export this way). A first
  non-comment line of names (``x,y,u``), or a comment line whose words are exactly the
  problem's variables and ``u`` (COMSOL's ``% x  y  u (1)`` header; units in parentheses
  are ignored), may reorder the columns. For heat, COMSOL's time-dependent export (a
  header ``% x  y  u (1) @ t=0  u (1) @ t=0.1 …``, one u column per time) is read as one
  row (x, y, t, u) per point and time;
- **npz**: one array per variable (``x``, ``y``, …, ``t``) and ``u``, all of one length,
  real numbers (a complex array is refused, not cut to its real part).

Limits (one line naming the key when exceeded, checked before the data are read in
full): a regular file (not a directory, FIFO or device) of at most :data:`MAX_BYTES` on
disk; an npz archive of at most :data:`MAX_VALUES` values, read from the archive's headers
before anything is decompressed; a text file whose first :data:`SNIFF_BYTES` hold no NUL
byte. Messages never quote the file's bytes: a header that names other columns is
reported by its line number.

The file's path is relative to the problem file. Its sha256 is recorded in the resolved
configuration (``truth.sha256``); a later load of that configuration refuses a file that
has changed. Spectral diagnostics need the truth on their grid: there the file's values are
interpolated linearly (Delaunay; nearest value outside the points' convex hull), which
the notes of the run say.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mscalepde.errors import SchemaError, first_line
from mscalepde.expressions.data import as_grid

MAX_BYTES = 256 << 20  # a truth file on disk: 256 MiB
MAX_VALUES = 20_000_000  # numbers in an npz truth file (160 MB of float64)
SNIFF_BYTES = 1 << 16  # a text file's first bytes, checked for NUL before it is read


@dataclass(frozen=True, eq=False)
class TruthData:
    """Points (N, D) in the problem's column order and values (N,)."""

    path: Path
    points: np.ndarray
    values: np.ndarray
    sha256: str
    _interp: list = field(default_factory=list, repr=False)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Values at other points: linear interpolation (multilinear on a tensor grid,
        else on a Delaunay triangulation), nearest outside the hull."""
        if not self._interp:
            axes, grid = as_grid(self.points, self.values)
            if self.points.shape[1] == 1:
                order = np.argsort(self.points[:, 0])
                xs, us = self.points[order, 0], self.values[order]
                self._interp.append(lambda p: np.interp(p[:, 0], xs, us))
            elif axes is not None and all(len(a) > 1 for a in axes):
                # a tensor grid (a COMSOL grid export, ``u @ t=`` columns): multilinear on
                # it, the nearest face's values beyond; a Delaunay triangulation of such
                # points (96 192 of them, t 100× longer than x) takes minutes to query
                from scipy.interpolate import RegularGridInterpolator

                rgi = RegularGridInterpolator(axes, grid)
                lo = np.array([a[0] for a in axes])
                hi = np.array([a[-1] for a in axes])
                self._interp.append(lambda p: rgi(np.clip(p, lo, hi)))
            else:
                from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

                lin = LinearNDInterpolator(self.points, self.values)
                near = NearestNDInterpolator(self.points, self.values)

                def fn(p: np.ndarray) -> np.ndarray:
                    out = lin(p)
                    bad = ~np.isfinite(out)
                    if bad.any():
                        out[bad] = near(p[bad])
                    return out

                self._interp.append(fn)
        return np.asarray(self._interp[0](np.asarray(points, dtype=float)), dtype=float)


def _names(words: Sequence[str]) -> list[str]:
    return [re.sub(r"\(.*?\)", "", w).strip().lower() for w in words if not w.startswith("(")]


def read_truth(path: Path, variables: Sequence[str], key: str = "truth.file") -> TruthData:
    """Read and check a truth file for a problem with input columns ``variables``.

    Raises :class:`SchemaError` (one line, naming ``key`` and the file) on a missing or
    unreadable file, a wrong number of columns, non-numeric or non-finite entries."""
    table, sha = _read_table(path, [*variables, "u"], key)
    return TruthData(path, table[:, :-1].copy(), table[:, -1].copy(), sha)


def read_coefficient(
    path: Path, variables: Sequence[str], name: str, key: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Points (N, D), values (N,) and SHA-256 of a coefficient's data file: a truth file
    whose last column is the coefficient (named ``name`` or ``value`` in a header)."""
    try:
        table, sha = _read_table(path, [*variables, name], key)
    except SchemaError:
        table, sha = _read_table(path, [*variables, "value"], key)
    return table[:, :-1].copy(), table[:, -1].copy(), sha


def read_points(path: Path, variables: Sequence[str], key: str = "--points") -> np.ndarray:
    """Points (N, D) with columns ``variables`` from a text or npz file written like a
    truth file without the ``u`` column (:func:`read_truth`; the same checks and limits)."""
    table, _ = _read_table(Path(path), list(variables), key)
    return table


def _read_table(path: Path, want: list[str], key: str) -> tuple[np.ndarray, str]:
    """The checked table (rows × ``want``) of a data file and the file's SHA-256."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SchemaError(key, f"{path}: no such file") from None
    except OSError as exc:
        raise SchemaError(key, f"{path}: cannot read it: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SchemaError(key, f"{path}: is a directory, not a data file")
    if not stat.S_ISREG(st.st_mode):
        raise SchemaError(key, f"{path}: not a regular file (a device, FIFO or socket)")
    if st.st_size > MAX_BYTES:
        raise SchemaError(key, f"{path}: {st.st_size} bytes; a truth file may have {MAX_BYTES}")
    if path.suffix.lower() == ".npz":
        raw = path.read_bytes()
        table = _read_npz(path, want, key)
    else:
        with path.open("rb") as fh:
            if b"\x00" in fh.read(SNIFF_BYTES):
                raise SchemaError(key, f"{path}: binary data (NUL bytes), not a text data file")
        raw = path.read_bytes()
        table = _read_text(raw, path, want, key)
    sha = hashlib.sha256(raw).hexdigest()
    if len(table) == 0:
        raise SchemaError(key, f"{path}: no data rows")
    if not np.all(np.isfinite(table)):
        row = int(np.argwhere(~np.isfinite(table))[0, 0])
        raise SchemaError(key, f"{path}: a non-finite value in data row {row + 1}")
    return table, sha


def _read_npz(path: Path, want: list[str], key: str) -> np.ndarray:
    """The columns ``want`` of an npz archive, after checking its headers: the arrays
    exist, are real numbers, and hold at most :data:`MAX_VALUES` values in all."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
            missing = [n for n in want if n not in members]
            if missing:
                names = ", ".join(sorted(n for n in members if _WORD.fullmatch(n))[:12]) or "none"
                raise SchemaError(
                    key,
                    f"{path}: has arrays {names}; expected {', '.join(want)} "
                    f"(missing {', '.join(missing)})",
                )
            count = 0
            for n in want:
                with zf.open(members[n]) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(fh)
                if dtype.kind not in "biuf":
                    what = "complex" if dtype.kind == "c" else f"of type {dtype.kind!r}"
                    expected = "expected real numbers"
                    raise SchemaError(key, f"{path}: the array {n} is {what}; {expected}")
                count += int(np.prod(shape, dtype=np.int64))
                if count > MAX_VALUES:
                    limit = f"a truth file may have {MAX_VALUES}"
                    raise SchemaError(key, f"{path}: more than {MAX_VALUES} values; {limit}")
        with np.load(path, allow_pickle=False) as npz:
            cols = [np.asarray(npz[n], dtype=float).reshape(-1) for n in want]
    except SchemaError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable archive is one line
        raise SchemaError(key, f"{path}: not a readable npz file ({first_line(exc, 80)})") from None
    if len({len(c) for c in cols}) != 1:
        raise SchemaError(key, f"{path}: the arrays {', '.join(want)} differ in length")
    return np.stack(cols, axis=1)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,30}")


def _read_text(raw: bytes, path: Path, want: list[str], key: str) -> np.ndarray:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    rows: list[list[float]] = []
    order: list[int] | None = None
    header = ""  # the last comment line before the first data row
    time_header = ""  # ... and the last one with COMSOL's '@ t=' columns
    wide: tuple[list[int], list[float]] | None = None  # COMSOL: one u column per time
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s[0] in "%#":
            if not rows:
                header = s[1:].strip()
                if _EXPRESSION.search(header):
                    time_header = header
            continue
        if not rows and wide is None and "t" in want and time_header:
            wide = _wide_header(time_header, want, path, key)
        if wide is not None:
            coords, times = wide
            values = _numbers(s, path, key, lineno)
            if len(values) != len(coords) + len(times):
                raise SchemaError(
                    key,
                    f"{path}: line {lineno} has {len(values)} columns; the header names "
                    f"{len(coords)} coordinates and {len(times)} times",
                )
            x = [values[i] for i in coords]
            rows.extend([*x, t, u] for t, u in zip(times, values[len(coords) :]))
            continue
        parts = [p for p in re.split(r"[\s,;]+", s) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            if rows or order is not None:
                raise SchemaError(key, f"{path}: line {lineno}: not a row of numbers") from None
            order = _column_order(_names(parts), want, path, key, lineno)
            continue
        if not rows and order is None and header:  # COMSOL's '% x y u (1)' header
            names = _names(re.split(r"[\s,;]+", header))
            if sorted(names) == sorted(want):
                order = [names.index(n) for n in want]
        if len(values) != len(want):
            raise SchemaError(
                key,
                f"{path}: line {lineno} has {len(values)} columns; this problem needs "
                f"{len(want)} ({', '.join(want)})",
            )
        rows.append(values)
    table = np.array(rows, dtype=float).reshape(-1, len(want))
    return table if order is None else table[:, order]


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_EXPRESSION = re.compile(r"([A-Za-z_][\w.]*)\s*(\([^)]*\))?\s*@\s*t\s*=\s*([^\s,;]*)")


def _wide_header(
    header: str, want: list[str], path: Path, key: str
) -> tuple[list[int], list[float]]:
    """COMSOL's time-dependent header ``x y u (1) @ t=0 u (1) @ t=0.5 …``: the order of the
    coordinate columns (as indices into the row) and the times of the u columns."""
    groups = list(_EXPRESSION.finditer(header))
    first = groups[0].start() if groups else len(header)
    names = _names([w for w in re.split(r"[\s,;]+", header[:first]) if w])
    space = want[:-2]
    if sorted(names) != sorted(space):
        raise SchemaError(
            key,
            f"{path}: the header's columns {', '.join(names) or 'none'} before the times do "
            f"not match this problem's coordinates {', '.join(space)}",
        )
    exprs = list(dict.fromkeys(g.group(1) for g in groups))
    if len(exprs) != 1:
        raise SchemaError(
            key,
            f"{path}: the header has several expressions ({', '.join(exprs)}) per time; "
            "export the solution only",
        )
    times = []
    for g in groups:
        if not _FLOAT.fullmatch(g.group(3)):
            raise SchemaError(key, f"{path}: the header's time 't={g.group(3)}' is not a number")
        times.append(float(g.group(3)))
    if len(set(times)) != len(times):
        raise SchemaError(key, f"{path}: the header repeats a time")
    return [names.index(v) for v in space], times


def _numbers(s: str, path: Path, key: str, lineno: int) -> list[float]:
    try:
        return [float(p) for p in re.split(r"[\s,;]+", s) if p]
    except ValueError:
        raise SchemaError(key, f"{path}: line {lineno}: not a row of numbers") from None


def _column_order(
    names: list[str], want: list[str], path: Path, key: str, lineno: int
) -> list[int]:
    if sorted(names) != sorted(want):
        if len(names) <= 12 and all(_WORD.fullmatch(n) for n in names):
            found = f"columns {', '.join(names)} do not match"  # names, not arbitrary bytes
        else:
            found = "not a row of numbers nor a header that matches"
        raise SchemaError(
            key, f"{path}: line {lineno}: {found} this problem's {', '.join(want)}"
        )
    return [names.index(n) for n in want]
