"""The package's shape (docs/architecture.md): layers that only import downwards, no import
cycle between modules (imports inside functions and ``TYPE_CHECKING`` blocks count), small
files, a thin command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ratt"

# Bottom to top; a unit (top-level module or package of ratt) may import only units of a
# strictly lower layer. Keep in step with docs/architecture.md.
LAYERS = [
    ["_version", "errors"],
    ["registry"],
    ["core"],
    ["config"],
    ["data", "models"],
    ["attacks"],
    ["methods"],
    ["runs"],
    ["eval", "flatness"],
    ["train", "report"],
    ["bench", "sweep"],
    ["doctor"],
    ["cli"],
    ["__main__"],
]
LAYER = {unit: index for index, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Every ratt module ``name`` imports, wherever the import statement is."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t == "ratt" or t.startswith("ratt."))
    return found - {name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ratt"


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in MODULES} - {"ratt"}
    assert units <= set(LAYER), f"add to LAYERS and docs/architecture.md: {sorted(units - set(LAYER))}"


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``module -> target`` for every import of a unit at the same or a higher layer."""
    wrong = []
    for module, targets in graph.items():
        unit = _unit(module)
        if unit == "ratt":  # the package's __init__ is the public API, above everything
            continue
        for target in targets:
            other = _unit(target)
            if other != unit and (other == "ratt" or LAYER[other] >= LAYER[unit]):
                wrong.append(f"{module} -> {target}")
    return sorted(wrong)


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    """One ``a -> b -> ... -> a`` line per cycle found by a depth-first search."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target in graph and target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_layers_only_import_downwards():
    wrong = layer_violations(GRAPH)
    assert not wrong, "imports that go sideways or up:\n" + "\n".join(wrong)


def test_no_import_cycle_between_modules():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checks_catch_what_they_are_for():
    """An upward import, a sideways one and a cycle through a lazy import are all reported."""
    lazy = ast.parse("def f():\n    from ratt.train import train\n")
    assert any(isinstance(n, ast.ImportFrom) and n.module == "ratt.train" for n in ast.walk(lazy))
    graph = {
        "ratt.methods.awp": {"ratt.train.step"},  # up
        "ratt.eval.run": {"ratt.flatness.noise"},  # sideways
        "ratt.train.step": {"ratt.methods.awp"},
    }
    assert layer_violations(graph) == [
        "ratt.eval.run -> ratt.flatness.noise",
        "ratt.methods.awp -> ratt.train.step",
    ]
    assert find_cycles(graph) == ["ratt.methods.awp -> ratt.train.step -> ratt.methods.awp"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_source_file_over_400_lines(path):
    limit = 250 if path.parent.name == "cli" and path.name == "__init__.py" else 400
    assert len(path.read_text().splitlines()) <= limit
