"""The import graph of the package: no cycles, and every arrow points down the layers of
docs/architecture.md.

The graph is built from the source (``ast``), with every ``import`` and ``from … import``
anywhere in a module, function-level ones included: a function-level import is a real
arrow, it is only paid for later. Imports under ``if TYPE_CHECKING:`` are left out: they
never run, and annotations may name a type from any layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mscalepde"

#: Layers, lowest first. A module may import modules of lower layers, and modules of its
#: own subpackage; nothing else. Patterns match a module and everything below it; the
#: longest matching pattern wins.
LAYERS: list[tuple[str, list[str]]] = [
    ("errors", ["errors", "="]),  # "=": the package file mscalepde/__init__ (lazy exports)
    ("schema", ["schema", "io"]),
    ("expressions", ["expressions"]),
    ("geometry", ["geometry"]),
    (
        "options",
        [
            "training.options",
            "diagnostics.options",
            "reference.options",
            "frequencies.options",
            "architectures.options",
            "architectures=",  # the registry (the package file itself), torch-free
        ],
    ),
    ("calculus", ["calculus"]),
    ("parallel", ["parallel"]),
    ("problem", ["problem"]),
    ("models", ["architectures", "equations"]),
    ("solvers", ["reference", "training"]),
    ("inverse", ["inverse"]),
    ("diagnostics", ["diagnostics"]),
    ("frequencies", ["frequencies"]),
    ("run", ["run"]),
    ("formats", ["formats"]),
    ("bench", ["bench"]),
    ("cli", ["cli"]),
    ("main", ["__main__"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str], me: str | None = None) -> set[str]:
    """The package modules that ``path`` imports (a name imported from a package that is
    itself a module counts as that module)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING",):
            skip.update(id(n) for n in ast.walk(node))
    out: set[str] = set()
    is_pkg = path.name == "__init__.py"
    me = me or module_name(path)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = me.split(".") if is_pkg else me.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "mscalepde":
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                out.add(sub if sub in known else mod)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "mscalepde")
    return out


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the matched group) of a package module."""
    rel = module[len("mscalepde.") :] if module != "mscalepde" else ""
    best: tuple[int, int, str] | None = None
    for i, (_, patterns) in enumerate(LAYERS):
        for pat in patterns:
            if pat.endswith("="):
                hit = rel == pat[:-1]
                length = 1000
            else:
                hit = rel == pat or rel.startswith(pat + ".")
                length = len(pat)
            if hit and (best is None or length > best[1]):
                best = (i, length, pat.rstrip("=") or "mscalepde")
    assert best is not None, f"{module} is in no layer of tests/test_layering.py"
    return best[0], best[2]


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(p, known) & known for m, p in mods.items()}


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_the_import_graph_has_no_cycle():
    g = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(v: str, stack: list[str]) -> None:
        state[v] = 1
        for w in sorted(g[v]):
            if state.get(w) == 1:
                cycles.append([*stack[stack.index(w):], w])
            elif w not in state:
                visit(w, [*stack, w])
        state[v] = 2

    for v in sorted(g):
        if v not in state:
            visit(v, [v])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_arrow_points_down_the_layers():
    bad = []
    for a, targets in graph().items():
        la, ga = layer_of(a)
        for b in targets:
            lb, gb = layer_of(b)
            same_group = ga.split(".")[0] == gb.split(".")[0] and la == lb
            if not (lb < la or same_group):
                bad.append(f"{a} ({LAYERS[la][0]}) -> {b} ({LAYERS[lb][0]})")
    assert not bad, "forbidden arrows:\n" + "\n".join(sorted(bad))


def test_subpackage_files_import_nothing_heavy():
    """Package files are docstrings (or torch-free registries), so that importing a
    torch-free ``options`` module never pulls in a solver or torch."""
    allowed = {"mscalepde", "mscalepde.architectures", "mscalepde.geometry", "mscalepde.bench"}
    for m, p in modules().items():
        if p.name == "__init__.py" and m not in allowed:
            tree = ast.parse(p.read_text())
            body = [n for n in tree.body if not isinstance(n, ast.Expr)]
            assert not body, f"{p} should hold its docstring only"


def test_the_graph_sees_function_level_imports(tmp_path):
    """The guard itself: an import inside a function is an arrow, one under
    ``if TYPE_CHECKING:`` is not."""
    pkg = tmp_path / "mscalepde"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mscalepde.errors import MscaleError\n"
        "def f():\n    from mscalepde.run.pipeline import solve\n"
    )
    known = {"mscalepde.run.pipeline", "mscalepde.errors"}
    assert imports(pkg / "m.py", known, "mscalepde.m") == {"mscalepde.run.pipeline"}
