"""lift3d.generate's import graph: mesh.py is a leaf, the asset libraries never import their dispatcher, and no
module is in an import cycle. Read from the source (every ``import``, also those inside functions), not by
importing."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import lift3d.generate

PACKAGE = "lift3d.generate"
FOLDER = Path(lift3d.generate.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(FOLDER).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


MODULES: Dict[str, Path] = {_module_name(p): p for p in sorted(FOLDER.rglob("*.py"))}


def imported_modules(path: Path, name: str) -> Set[str]:
    """Every lift3d module that ``path`` (module ``name``) imports anywhere in its body, with ``from a import b``
    counted as an import of ``a.b`` when that is a module of the package, else of ``a``."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m == "lift3d" or m.startswith("lift3d.")}


GRAPH: Dict[str, Set[str]] = {name: imported_modules(path, name) for name, path in MODULES.items()}


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_reader_sees_function_level_and_relative_imports(tmp_path):
    src = tmp_path / "x.py"
    src.write_text(
        "import os\nfrom lift3d.generate import mesh\n\n\ndef f():\n"
        "    from lift3d.generate.gso import read_obj\n    from . import procedural\n"
    )
    found = imported_modules(src, f"{PACKAGE}.x")
    assert found == {f"{PACKAGE}.mesh", f"{PACKAGE}.gso", f"{PACKAGE}.procedural"}
    # a hand-made cycle a -> b -> c -> a (and a leaf d) is found, and only it
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]


def test_mesh_is_a_leaf_of_the_package():
    assert {f"{PACKAGE}.mesh", f"{PACKAGE}.procedural", f"{PACKAGE}.gso", f"{PACKAGE}.pipeline"} <= set(GRAPH)
    # mesh.py needs only TextureSpec (AssetSpec.from_dict rebuilds it) from textures.py, itself free of lift3d
    assert GRAPH[f"{PACKAGE}.mesh"] <= {f"{PACKAGE}.textures"}
    assert GRAPH[f"{PACKAGE}.textures"] == set()


def test_asset_libraries_never_import_the_dispatcher():
    for library in ("procedural", "gso"):
        assert GRAPH[f"{PACKAGE}.{library}"] <= {f"{PACKAGE}.mesh", f"{PACKAGE}.textures"}, library
    assert f"{PACKAGE}.assets" not in GRAPH[f"{PACKAGE}.gso"]


def test_no_module_of_the_package_is_in_an_import_cycle():
    generate_only = {name: {m for m in deps if m in MODULES} for name, deps in GRAPH.items()}
    assert _cycles(generate_only) == []
