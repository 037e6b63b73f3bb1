"""One direction of data between the project's packages, and no import cycles between its modules.

    models/           imports no other package of the project (pure computation)
    controllers/      imports models/
    firmware_bridge/  imports models/, controllers/ (the wire, its clock and the network-namespace guard)
    hil/              imports firmware_bridge/, models/, controllers/; never runtime/
    runtime/          on top: may import everything

Imports are read with ``ast`` from the source (module level *and* inside functions), so a lazy
import that runs back up is caught too. Each violation names both files.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "controllers", "firmware_bridge", "hil", "runtime")
ALLOWED: dict[str, set[str]] = {
    "models": {"models"},
    "controllers": {"controllers", "models"},
    "firmware_bridge": {"firmware_bridge", "controllers", "models"},
    "hil": {"hil", "firmware_bridge", "controllers", "models"},
    "runtime": set(PACKAGES),
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported by ``name`` (``from pkg import mod`` resolves to ``pkg.mod`` when it is one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] not in PACKAGES:
                continue
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules)
    return out


def _graph(root: Path) -> tuple[dict[str, Path], dict[str, set[str]]]:
    modules = _modules(root)
    return modules, {m: {t for t in _imports(m, p, modules) if t != m} for m, p in modules.items()}


def layering_violations(root: Path) -> list[str]:
    """``a.py -> b.py`` for every import that runs against the direction of data."""
    modules, graph = _graph(root)
    bad = []
    for src, targets in sorted(graph.items()):
        allowed = ALLOWED[src.split(".")[0]]
        for t in sorted(targets):
            if t.split(".")[0] not in allowed:
                dst = modules.get(t) or modules.get(t.rpartition(".")[0]) or t
                bad.append(f"{modules[src].relative_to(root)} imports {t} ({dst if isinstance(dst, str) else dst.relative_to(root)})")
    return bad


def import_cycles(root: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as its files."""
    modules, graph = _graph(root)
    edges = {m: {t for t in ts if t in modules} for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(str(modules[c].relative_to(root)) for c in comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def test_imports_follow_the_direction_of_data():
    bad = layering_violations(REPO)
    assert not bad, "imports that run back up:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    cycles = import_cycles(REPO)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _mini_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    return tmp_path


@pytest.mark.parametrize("src,line,names", [
    ("models/filters.py", "from runtime.core import config\n", "runtime.core"),          # models -> runtime
    ("controllers/safety.py", "def f():\n    import hil.knee_plant\n", "hil.knee_plant"),  # a lazy import counts
    ("hil/scenario.py", "from runtime.pipeline.frame import PipelineFrame\n", "runtime.pipeline.frame"),
    ("firmware_bridge/ak_can.py", "from hil import ak_emulator\n", "hil.ak_emulator"),
])
def test_a_reversed_import_is_caught_and_names_both_files(tmp_path, src, line, names):
    root = _mini_tree(tmp_path, {src: line, "hil/ak_emulator.py": "", "hil/knee_plant.py": ""})
    for sub in ("runtime/core", "runtime/pipeline"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / "__init__.py").write_text("")
    (root / "runtime/pipeline/frame.py").write_text("")
    bad = layering_violations(root)
    assert bad and all(b.startswith(f"{src} imports ") for b in bad) and any(names in b for b in bad), bad


def test_a_cycle_is_caught_with_both_files(tmp_path):
    root = _mini_tree(tmp_path, {"runtime/a.py": "from runtime import b\n", "runtime/b.py": "import runtime.a\n"})
    assert import_cycles(root) == [["runtime/a.py", "runtime/b.py"]]
    assert layering_violations(root) == []
