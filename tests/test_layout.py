"""The package's shape: imports go one way (no cycles, counting imports inside functions), one module
per stage, registries that list what exists."""

from pathlib import Path

import pytest

from pipeline.fingerprint import import_graph

ROOT = Path(__file__).resolve().parent.parent / "pipeline"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from demo import b\n")
    (pkg / "b.py").write_text("def f():\n    from demo.c import g\n")
    (pkg / "c.py").write_text("def g():\n    import demo.a\n")
    assert cycles(import_graph(pkg)) == [["demo.a", "demo.b", "demo.c"]]
    (pkg / "c.py").write_text("def g():\n    pass\n")
    assert cycles(import_graph(pkg)) == []


def test_pipeline_has_no_import_cycles():
    graph = import_graph(ROOT)
    assert len(graph) > 40 and graph["pipeline.runner"] >= {"pipeline.stages", "pipeline.rundir"}
    assert cycles(graph) == []


@pytest.mark.parametrize("low", ["pipeline.rundir", "pipeline.errors", "pipeline.losses", "pipeline.metrics",
                                 "pipeline.config.fields", "pipeline.config.losses", "pipeline.tasks.base",
                                 "pipeline.methods.base", "pipeline.fingerprint"])
def test_lower_layers_import_nothing_above_them(low):
    allowed = {"pipeline.errors", "pipeline.config.fields", "pipeline.config.losses", "pipeline.tasks.base"}
    assert import_graph(ROOT)[low] <= allowed, f"{low} imports {import_graph(ROOT)[low] - allowed}"


def test_orchestration_goes_one_way():
    g = import_graph(ROOT)
    assert "pipeline.sweep" in g["pipeline.cli"]
    assert "pipeline.runner" in g["pipeline.sweep"] and "pipeline.sweep" not in g["pipeline.runner"]
    for mod, edges in g.items():
        if mod.startswith("pipeline.stages"):
            assert not edges & {"pipeline.runner", "pipeline.sweep", "pipeline.cli"}, mod
        if mod.startswith("pipeline.methods"):
            assert not any(e.startswith("pipeline.stages") for e in edges), mod


def test_every_stage_is_one_module_in_the_plan():
    from pipeline.stages import PLAN

    names = [s.name for s in PLAN]
    assert names == ["data", "weak", "ceiling", "transfer", "evaluate", "theory", "report"]
    for stage in PLAN:
        assert (ROOT / "stages" / f"{stage.name}.py").exists()
        assert set(stage.inputs) <= set(names[:names.index(stage.name)])  # inputs run earlier


def test_nothing_shipped_points_outside_the_project():
    """Users have the clone only: docs, code and recipes cite files inside it (the theory spec is docs/THEORY.md)."""
    repo = ROOT.parent
    shipped = [repo / "README.md", *(repo / "docs").rglob("*.md"), *ROOT.rglob("*.py"),
               *(repo / "recipes").rglob("*.yaml"), *(repo / "scripts").glob("*")]
    for path in shipped:
        text = path.read_text(errors="ignore")
        for bad in ("../shared", "shared/THEORY", "shared/DESIGN", "shared/STYLE", "DESIGN.md"):
            assert bad not in text, f"{path.relative_to(repo)} mentions {bad}"
    assert (repo / "docs" / "THEORY.md").exists()
