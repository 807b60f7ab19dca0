"""The promised layout: arrows go one way between the packages, and no module imports itself
back through others (imports inside functions count: a lazy import hides a cycle from the
interpreter, not from a reader)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search_spaces", "latency_predictors", "nas")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = f
    return mods


def _graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> modules it imports (a package's ``__init__`` is not an edge: it re-exports)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        base = m if f.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                root = node.module or ""
                if node.level:
                    parts = base.split(".")
                    root = ".".join(parts[: len(parts) - node.level + 1] + ([root] if root else []))
                targets = [f"{root}.{a.name}" for a in node.names] + [root]
            for t in targets:
                r = resolve(t)
                if r and r != m and mods[r].name != "__init__.py":
                    graph[m].add(r)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_no_import_cycles():
    cycles = _cycles(_graph(_modules()))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_arrows_go_one_way():
    """nas uses search_spaces and latency_predictors; latency_predictors uses search_spaces;
    search_spaces uses neither."""
    graph = _graph(_modules())
    for m, deps in graph.items():
        for d in deps:
            if m.startswith("search_spaces"):
                assert d.startswith("search_spaces"), f"{m} imports {d}"
            if m.startswith("latency_predictors"):
                assert not d.startswith("nas"), f"{m} imports {d}"


@pytest.mark.slow  # a subprocess
def test_search_spaces_import_with_torch_and_numpy_alone():
    """The lent GPU machine has torch but not our other dependencies."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in {'optuna', 'tvm', 'ray', 'sklearn', 'sqlalchemy', 'fvcore', 'yaml'}:\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import search_spaces\n"
            "from search_spaces import get_space, list_spaces\n"
            "for name in list_spaces():\n"
            "    assert name\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
