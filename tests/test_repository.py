"""The repository's own consistency: every path and module that README.md and docs/ name
exists, nothing cites a file outside the repository, and the package layout keeps its
limits (top-level modules, module length)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import mscalepde

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mscalepde"
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "README.md",
]
PATH = re.compile(
    r"(?<![\w/.-])((?:mscalepde|tests|benchmarks|problems|docs|\.ci)/[\w./*-]*[\w*/])"
)
DOTTED = re.compile(r"(?<![\w.])mscalepde(?:\.[A-Za-z_]\w*)+")


def _modules() -> set[str]:
    out = set()
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.add(".".join(parts))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_named_in_the_docs_exists(doc):
    text = doc.read_text()
    missing = []
    for m in PATH.finditer(text):
        path = m.group(1).rstrip(".")
        if re.search(r"(^|/)[A-Z_]{3,}(\.|/|$)", path):  # a placeholder: problems/FILE.yaml
            continue
        if "results/" in path:  # dated result folders are cited as they were written
            if not list(ROOT.glob(path.split("*")[0].rstrip("/") + "*")):
                missing.append(path)
            continue
        if "*" in path:
            if not list(ROOT.glob(path)):
                missing.append(path)
        elif not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{doc.name} names paths that do not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_named_in_the_docs_exists(doc):
    modules = _modules()
    exports = set(mscalepde.__all__) | {"__version__"}
    bad = []
    for m in DOTTED.finditer(doc.read_text()):
        parts = m.group(0).split(".")
        if len(parts) == 2 and parts[1] in exports:
            continue
        # the longest prefix that is a module; what follows may be one attribute, then
        # that attribute's own attributes
        for k in range(len(parts), 1, -1):
            if ".".join(parts[:k]) in modules:
                break
        else:
            bad.append(m.group(0))
            continue
        if k < len(parts) and parts[k][:1].islower() and ".".join(parts[: k + 1]) not in modules:
            # a lower-case name after a package must be a module of it or a function
            mod = PACKAGE.joinpath(*parts[1:k])
            if mod.is_dir() and not (mod / f"{parts[k]}.py").exists():
                init = (mod / "__init__.py").read_text()
                if not re.search(rf"\b{parts[k]}\b", init):
                    bad.append(m.group(0))
    assert not bad, f"{doc.name} names modules that do not exist: {sorted(set(bad))}"


def test_nothing_cites_a_file_outside_the_repository():
    pattern = re.compile(r"DESIGN\.md|\.\./shared")
    hits = []
    for p in [*PACKAGE.rglob("*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("problems/**/*.yaml"),
              *DOCS, *ROOT.glob("benchmarks/*.py")]:
        if p.resolve() == Path(__file__).resolve():
            continue
        if pattern.search(p.read_text()):
            hits.append(str(p.relative_to(ROOT)))
    assert not hits, hits


def test_the_top_level_is_small_and_modules_are_short():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 800
    }
    assert not long, long


def test_long_functions_say_why_in_their_docstring():
    """A function over 150 lines must give the reason in its docstring ("Long because")."""
    bad = []
    for p in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if n > 150 and "Long because" not in doc:
                    bad.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not bad, bad


def test_public_class_names_are_unique_and_shadow_no_builtin():
    import builtins

    seen: dict[str, str] = {}
    clashes = []
    for p in PACKAGE.rglob("*.py"):
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where = str(p.relative_to(ROOT))
                if node.name in seen:
                    clashes.append(f"{node.name}: {seen[node.name]} and {where}")
                if hasattr(builtins, node.name):
                    clashes.append(f"{node.name} in {where} shadows a builtin")
                seen[node.name] = where
    assert not clashes, clashes


def test_every_exception_class_lives_in_the_errors_module():
    """Public exception classes are defined in mscalepde/errors.py only (private ones that
    steer control flow inside one module may stay there)."""
    bad = []
    for p in PACKAGE.rglob("*.py"):
        if p.name == "errors.py" and p.parent == PACKAGE:
            continue
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {ast.unparse(b) for b in node.bases}
                if node.name.endswith("Error") or bases & {
                    "Exception", "ValueError", "KeyboardInterrupt", "MscaleError", "RuntimeError"
                }:
                    bad.append(f"{p.relative_to(ROOT)}: {node.name}")
    assert not bad, bad
