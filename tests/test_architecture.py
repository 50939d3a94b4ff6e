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


# ------------------------------------------------------------------ every write is atomic
WRITER = PACKAGE / "core" / "files.py"  # the one module that opens files for writing
WRITE_METHODS = {"write_text", "write_bytes", "savefig"}  # Path's, and matplotlib's
STREAM_OPENERS = ("gzip", "bz2", "lzma", "io", "os", "codecs")  # X.open(path, mode): mode second


def _mode(call: ast.Call, position: int) -> str | None:
    args = [a for a in call.args[position : position + 1]]
    args += [k.value for k in call.keywords if k.arg == "mode"]
    return next((a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)), None)


def direct_writes(source: str) -> list[str]:
    """``line: call`` for each write that bypasses ``ratt.core.files``: ``Path.write_text``/
    ``write_bytes``, ``figure.savefig`` and ``open``/``Path.open``/``gzip.open``/``os.fdopen``
    in a writing mode (``w``, ``a``, ``x``, ``+``); ``/proc`` files (kernel knobs) excepted."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if isinstance(func, ast.Attribute) and name in WRITE_METHODS:
            found.append(f"{node.lineno}: .{name}()")
        elif "open" in name and name not in ("safe_open", "Popen"):
            # open(path, mode) / gzip.open(path, mode) / os.fdopen(fd, mode) / opener(path, mode);
            # Path(p).open(mode)
            is_path_method = isinstance(func, ast.Attribute) and not (
                isinstance(func.value, ast.Name) and func.value.id in STREAM_OPENERS
            )
            mode = _mode(node, 0 if is_path_method else 1) or "r"
            first = node.args[0] if node.args else None
            proc = isinstance(first, ast.Constant) and str(first.value).startswith("/proc/")
            if set(mode) & set("wax+") and not proc:
                found.append(f"{node.lineno}: {name}(..., {mode!r})")
    return found


def test_the_write_check_catches_what_it_is_for():
    source = (
        "Path(p).write_text('x')\nopen(p, 'w')\nopen(p, mode='ab')\nPath(p).open('w')\n"
        "gzip.open(p, 'wb')\nfig.savefig(p)\nopen(p)\nopen(p, 'rb')\nwrite_text(p, 'x')\n"
        "open('/proc/self/clear_refs', 'w')\nopener(p, 'wb')\nImage.open(p)\n"
    )
    assert sorted(int(line.split(":")[0]) for line in direct_writes(source)) == [1, 2, 3, 4, 5, 6, 11]


@pytest.mark.parametrize(
    "path", sorted(p for p in PACKAGE.rglob("*.py") if p != WRITER), ids=lambda p: str(p.relative_to(SRC))
)
def test_every_write_goes_through_the_atomic_writer(path):
    found = direct_writes(path.read_text())
    assert not found, f"write through ratt.core.files (atomic, no symlinks) instead: {found}"


# ------------------------------------------------------- functions that do one job, options by name
MAX_FUNCTION_LINES = 60
MAX_POSITIONAL = 6  # parameters before ``*`` (self/cls not counted); options after it, by name
# Functions still over a limit: this list only shrinks. Split a function (into named stages, as
# train/step.py's TrainStep reads) or make its options keyword-only, then delete its line here.
OVER_THE_LIMITS: set[str] = set()


def oversized_functions(source: str, module: str) -> dict[str, str]:
    """``module::[Class.]function -> why`` for each function over 60 lines or with more than 6
    positional parameters."""
    found = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = [*child.args.posonlyargs, *child.args.args]
                positional = len(args) - (1 if args and args[0].arg in ("self", "cls") else 0)
                lines = child.end_lineno - child.lineno + 1
                if lines > MAX_FUNCTION_LINES or positional > MAX_POSITIONAL:
                    found[f"{module}::{prefix}{child.name}"] = f"{lines} lines, {positional} positional"
                visit(child, prefix)  # nested functions keep the enclosing prefix
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def test_the_function_check_catches_what_it_is_for():
    long_body = "\n".join(f"    x{i} = {i}" for i in range(61))
    source = (
        f"def long():\n{long_body}\n"
        "def many(a, b, c, d, e, f, g):\n    pass\n"
        "def named(a, b, c, d, e, f, *, g, h):\n    pass\n"
        "class K:\n    def method(self, a, b, c, d, e, f):\n        pass\n"
        "    def more(self, a, b, c, d, e, f, g):\n        pass\n"
    )
    assert sorted(oversized_functions(source, "m")) == ["m::K.more", "m::long", "m::many"]


def test_functions_do_one_job_and_take_options_by_name():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found.update(oversized_functions(path.read_text(), str(path.relative_to(SRC))))
    new = {name: why for name, why in found.items() if name not in OVER_THE_LIMITS}
    assert not new, f"split these or make their options keyword-only (*): {new}"
    fixed = sorted(OVER_THE_LIMITS - set(found))
    assert not fixed, f"now within the limits: delete from OVER_THE_LIMITS {fixed}"
