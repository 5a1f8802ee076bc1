"""The package's static import graph and fingerprints of the code a stage runs (part of its cache key).

A unit's code is its stage module, the task module and, for a transfer, its method's module, with every
pipeline module they import (at module level or inside functions), except that registries (the
`methods`, `stages` and `tasks` packages, which import every entry) are not followed: an edited method
reruns that method's transfers only. Reads source files; imports nothing.
"""

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REGISTRIES = {"pipeline.methods", "pipeline.stages", "pipeline.tasks"}


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> source file of every module under `root` (a package folder)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its file.

    `from a.b import c` is an import of a.b.c when that is a module, else of a.b; a module importing its
    own parent package is no edge (Python has already started importing it)."""
    mods = modules(root)
    pkg = root.name

    def resolve(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                targets = [t if resolve(t) == t else base for t in (f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for t in targets:
                r = resolve(t) if t.split(".")[0] == pkg else None
                if r and r != mod and not mod.startswith(r + "."):
                    edges.add(r)
        graph[mod] = edges
    return graph


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    return import_graph()


@functools.lru_cache(maxsize=1)
def _files() -> dict[str, Path]:
    return modules()


def source(module: str) -> str:
    return _files()[module].read_text()


def closure(roots: list[str]) -> list[str]:
    """`roots` and every pipeline module they import, transitively, not entering registries."""
    graph, seen, todo = _graph(), set(), list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [e for e in graph.get(m, ()) if e not in REGISTRIES]
    return sorted(seen)


def code_fingerprint(roots: list[str]) -> str:
    """16 hex digits of the sources of `roots`' closure: changes when any of that code does."""
    h = hashlib.sha256()
    for m in closure(roots):
        h.update(m.encode() + b"\0" + source(m).encode() + b"\0")
    return h.hexdigest()[:16]
