"""The package's layers only point down, and no module imports itself back (issue 15).

Every import counts: module level, inside functions, ``TYPE_CHECKING`` blocks, and
``importlib.import_module("radvlm_verl....")`` with a literal name. The order is the one in the
README's layout section; a layer may import anything below it and its own modules, nothing above or
beside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "radvlm_verl"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Bottom first. Packages on one line sit side by side and may not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core", "configs"),
    ("boxes",),
    ("templates",),
    ("metrics",),
    ("scorers",),
    ("service",),
    ("rewards",),
    ("converters", "evaluation", "integration"),
    ("checks",),
    ("testing",),
    ("demo",),
    ("cli",),
)


def module_files(root: Path, package: str) -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of ``package`` under ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (package, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, tuple[str, ...]]]:
    """``(module, names)`` for every import in ``tree``: ``import a.b`` gives ``("a.b", ())`` and
    ``from a import b, c`` gives ``("a", ("b", "c"))``, relative imports resolved."""
    found: list[tuple[str, tuple[str, ...]]] = []
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, tuple(alias.name for alias in node.names)))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, ()))
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``{module: modules of package it imports}``.

    ``from a import b`` is an edge to ``a.b`` when ``b`` is a module and to ``a`` otherwise; the
    parent packages Python initialises on the way are not edges (every package would then be a
    cycle with its own ``__init__``).
    """
    modules = module_files(root, package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for target, names in _imports(tree, module, path.name == "__init__.py"):
            if not (target == package or target.startswith(package + ".")):
                continue
            submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in modules]
            targets.update(submodules)
            if len(submodules) < len(names) or not names:
                while target not in modules and "." in target:  # "pkg.mod.attr" -> "pkg.mod"
                    target = target.rpartition(".")[0]
                targets.add(target)
        targets.discard(module)
        graph[module] = targets
    return graph


def layer_of(module: str, package: str) -> int | None:
    top = module.split(".")[1] if "." in module else ""
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    return None


def upward_imports(graph: dict[str, set[str]], package: str) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = layer_of(module, package), layer_of(target, package)
            if a is None or b is None:
                continue
            same_package = module.split(".")[:2] == target.split(".")[:2]
            if not same_package and b >= a:
                found.append(f"{module} -> {target}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_top_level_package_has_a_layer():
    tops = {m.split(".")[1] for m in module_files(ROOT, PACKAGE) if "." in m}
    assert tops - {name for layer in LAYERS for name in layer} == set()


def test_no_upward_or_sideways_import():
    assert upward_imports(import_graph(ROOT, PACKAGE), PACKAGE) == []


def test_no_import_cycle():
    assert cycles(import_graph(ROOT, PACKAGE)) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_catch_an_upward_import_a_cycle_and_a_hidden_import(tmp_path):
    pkg = tmp_path / PACKAGE
    _write(pkg, {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/tasks.py": "def f():\n    from radvlm_verl.rewards import x\n",  # upward, inside a function
        "rewards/__init__.py": "from .a import x\n",
        "rewards/a.py": "from radvlm_verl.rewards.b import y\nx = 1\n",
        "rewards/b.py": "import importlib\ndef g():\n    importlib.import_module('radvlm_verl.rewards.a')\ny = 2\n",
        "converters/__init__.py": "",
        "converters/c.py": "from ..evaluation import d\n",  # sideways
        "evaluation/__init__.py": "",
        "evaluation/d.py": "",
    })
    graph = import_graph(pkg, PACKAGE)
    assert upward_imports(graph, PACKAGE) == [
        "radvlm_verl.converters.c -> radvlm_verl.evaluation.d",
        "radvlm_verl.core.tasks -> radvlm_verl.rewards",
    ]
    assert cycles(graph) == [["radvlm_verl.rewards.a", "radvlm_verl.rewards.b"]]
