"""The shape of django_jobs/: the layer contracts hold and no module imports itself back
through others (see docs/architecture.md)."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_jobs"


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module: the circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle():
    graph = grimp.build_graph("django_jobs", exclude_type_checking_imports=True)
    edges = {
        m: {d for d in graph.find_modules_directly_imported_by(m) if d.startswith("django_jobs")}
        for m in graph.modules
    }
    # The package itself re-exports its submodules' public API: not a circle of modules.
    for module in edges:
        edges[module].discard("django_jobs")
    assert strongly_connected(edges) == []


def test_the_circle_finder_finds_circles():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layer_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_import_inside_a_function_says_why():
    """Imports go at the top of a module; the few that Django's app loading forces into a
    function carry a comment saying why: on the line above the block of imports, or on
    the import's own line."""
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        source = path.read_text()
        lines = source.split("\n")
        for function in ast.walk(ast.parse(source)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for holder in ast.walk(function):
                body = getattr(holder, "body", None)
                if not isinstance(body, list):
                    continue
                block: list[ast.stmt] = []
                for statement in [*body, None]:
                    if isinstance(statement, (ast.Import, ast.ImportFrom)):
                        block.append(statement)
                        continue
                    if block:
                        first, last = block[0].lineno, block[-1].end_lineno or block[-1].lineno
                        said = lines[first - 2].strip().startswith("#") or all(
                            "#" in lines[node.lineno - 1] for node in block
                        )
                        if not said:
                            unexplained.append(f"{path}:{first}-{last}")
                    block = []
    assert not unexplained, "\n".join(unexplained)
