"""The text tables of the spectral diagnostics: the resolved-frequency table printed after a
solve and by ``mscalepde diagnose``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mscalepde.diagnostics.fprinciple import format_wavevector
from mscalepde.diagnostics.grid import slice_name
from mscalepde.diagnostics.history import SpectralHistory, format_table

MAX_TABLE_ROWS = 40  # rows of the printed table per slice (lowest |k| first)


def _num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _rows(
    histories: Sequence[SpectralHistory],
    times: Sequence[float | None],
    threshold: float | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for hist, t in zip(histories, times, strict=True):
        for r in hist.resolved_table(threshold):
            rows.append(
                {
                    "slice": slice_name(t),
                    "time": t,
                    "index": [int(v) for v in r["index"]],
                    "wavenumber": [float(v) for v in r["wavenumber"]],
                    "k_norm": float(r["k_norm"]),
                    "amplitude": float(r["amplitude"]),
                    "final_delta_f": _num(r["final_delta_f"]),
                    "first_resolved": r["first_resolved"],
                    "resolved_since": r["resolved_since"],
                    "resolved": r["resolved_since"] is not None,
                    "threshold": float(r["threshold"]),
                }
            )
    return rows


def _table_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows as :func:`format_table` expects them (nan for a missing Δ_F)."""
    return [
        {**r, "final_delta_f": float("nan") if r["final_delta_f"] is None else r["final_delta_f"]}
        for r in rows
    ]


def _tables(
    histories: Sequence[SpectralHistory],
    times: Sequence[float | None],
    threshold: float | None = None,
) -> str:
    return _format_rows(_rows(histories, times, threshold), threshold)


def _format_rows(rows: Sequence[Mapping[str, Any]], threshold: float | None = None) -> str:
    parts = []
    seen: list[Any] = []
    for r in rows:
        if r["slice"] not in seen:
            seen.append(r["slice"])
    if not rows:
        return "(no solution frequency found above the floor)"
    for name in seen:
        sub = [r for r in rows if r["slice"] == name]
        text = format_table(_table_rows(sub[:MAX_TABLE_ROWS]), threshold)
        if len(sub) > MAX_TABLE_ROWS:  # a leaking transform (or χ_Ω): many peaks
            text += (
                f"\n... and {len(sub) - MAX_TABLE_ROWS} more peaks at higher |k| "
                "(all in diagnostics.npz; raise diagnostics.floor to list fewer)"
            )
        parts.append(f"at {name.replace('=', ' = ')}:\n{text}" if name else text)
    return "\n\n".join(parts)


def _aligned(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [header, ["-" * w for w in widths], *body]
    )


def _format_final_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no solution frequency found above the floor)"
    parts = []
    names: list[str] = []
    for r in rows:
        if r["slice"] not in names:
            names.append(r["slice"])
    for name in names:
        sub = [r for r in rows if r["slice"] == name]
        thr = sub[0]["threshold"]
        header = ["k (wave vector)", "|k|", "amplitude", "Delta_F", f"<{thr:g} at the end"]
        body = [
            [
                format_wavevector(r["wavenumber"]),
                f"{r['k_norm']:.4g}",
                f"{r['amplitude']:.3g}",
                "nan" if r["delta_f"] is None else f"{r['delta_f']:.3g}",
                "yes" if r["resolved"] else "no",
            ]
            for r in sub
        ]
        text = _aligned(header, body)
        parts.append(f"at {name.replace('=', ' = ')}:\n{text}" if name else text)
    return "\n\n".join(parts)


def format_report(result: Mapping[str, Any]) -> str:
    """Text of a :meth:`SpectralMonitor.finish` or :func:`diagnose_run` result."""
    lines: list[str] = []
    if result.get("enabled") is False and not result.get("rows"):
        lines.append(f"spectral diagnostics: {result.get('note') or 'off'}")
        return "\n".join(lines)
    s = result.get("settings") or {}
    if s:
        kind = "|h|-|u| (magnitude)" if s.get("magnitude") else "complex"
        times = s.get("times")
        at = "" if not times else f", times {', '.join(f'{t:g}' for t in times)}"
        tr = ("auto: " if s.get("auto") else "") + str(s["transform"])
        if s.get("window"):
            tr += f" of the windowed fields, {s['window']:g} cells"
        lines.append(
            f"spectral diagnostics: grid {s['grid']}/axis ({tr}{at}), "
            f"Delta_F {kind}, threshold {s['threshold']:g}, peak floor {s['floor']:g}, "
            f"filter delta {s['delta']:.3g} (split at |k| ~ {s.get('k_split', float('nan')):.4g})"
        )
    rec = result.get("recomputed")
    if rec:
        how = {
            "none": "reused as stored",
            "threshold": "reused (Delta_F unchanged), resolved steps re-thresholded",
            "fields": "recomputed from the stored network fields",
            "partial": "recomputed on the steps whose fields are stored",
            "unavailable": "stored, not recomputed (no network fields stored)",
            "missing": "not available (no diagnostics.npz): final state only",
        }.get(rec.get("history"), str(rec.get("history")))
        lines.append(f"history over training: {how}")
    if result.get("table") and not (rec and rec.get("history") == "missing"):
        lines.append("resolved frequencies (Delta_F below the threshold):")
        lines.append(result["table"])
    if result.get("final_table"):
        fs = result.get("final_settings") or {}
        lines.append(
            f"final state recomputed from model.pt (grid {fs.get('grid')}/axis, "
            f"{fs.get('transform')}):"
        )
        lines.append(result["final_table"])
    ov, tr = result.get("overhead_seconds"), result.get("train_seconds")
    if ov is not None:
        pct = f" ({100 * ov / tr:.1f}% of the training time)" if tr else ""
        lines.append(f"diagnostics cost   {ov:.2f} s during training{pct}")
    for n in result.get("notes") or ():
        lines.append(f"note: {n}")
    if result.get("note") and result.get("enabled") is False:
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)
