"""One definition of each choice: every closed set of values a config key takes is written out
in exactly one module (``config/sections.py``), and validation, ``ratt config`` and ``--help``
read it from there."""

from __future__ import annotations

import ast
import dataclasses
import functools
from pathlib import Path

import pytest

from ratt import config as cfg
from ratt.config.sections import CHOICES, RESUMABLE_KEYS
from ratt.errors import UserError

SRC = Path(__file__).resolve().parents[2] / "src"


def literal_sets(tree: ast.AST) -> list[frozenset[str]]:
    """The string sets written out as a tuple, list or set literal, or as a dict's keys."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        strings = [n.value for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        if len(strings) >= 2:
            found.append(frozenset(strings))
    return found


@functools.cache
def _parsed(root: Path) -> dict[str, list[frozenset[str]]]:
    return {str(p.relative_to(root)): literal_sets(ast.parse(p.read_text())) for p in root.rglob("*.py")}


def modules_listing(choices: tuple[str, ...], root: Path = SRC) -> list[str]:
    """The modules under ``root`` whose source writes out exactly the set ``choices``
    (a superset or subset is another list, not this one)."""
    wanted = frozenset(choices)
    return sorted(module for module, sets in _parsed(root).items() if wanted in sets)


def test_the_scan_finds_tuples_lists_and_dict_keys():
    tree = ast.parse('A = ("a", "b")\nB = {"x": 1, "y": 2}\nC = ["a", "b", "c"]\nf(k in {"p", "q"})')
    assert set(literal_sets(tree)) == {frozenset("ab"), frozenset("xy"), frozenset("abc"), frozenset("pq")}


def test_the_scan_finds_a_second_list(tmp_path):
    (tmp_path / "a.py").write_text('KINDS = ("gaussian", "uniform", "laplace")\n')
    (tmp_path / "b.py").write_text('ok = kind in ["laplace", "gaussian", "uniform"]\n')
    (tmp_path / "c.py").write_text('fine = kind in ("gaussian", "uniform")\n')
    assert modules_listing(("gaussian", "uniform", "laplace"), tmp_path) == ["a.py", "b.py"]


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_each_choice_is_written_out_in_one_module(key):
    assert modules_listing(CHOICES[key]) == ["ratt/config/sections.py"], (
        f"{key}'s values {CHOICES[key]} are listed outside config/sections.py: import them from there"
    )


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_validation_and_help_read_the_choices(key):
    section, name = key.split(".")
    config = cfg.TrainConfig()
    setattr(getattr(config, section), name, "not-a-choice")
    with pytest.raises(UserError, match=f"^{key} must be "):
        cfg.validate(config)
    for value in CHOICES[key]:
        setattr(getattr(config, section), name, value)
        cfg.validate(config)
    line = next(line for line in cfg.describe_keys().splitlines() if line.strip().startswith(f"{key} "))
    assert f"[{'|'.join(CHOICES[key])}]" in line


def test_resumable_keys_come_from_the_sections():
    marked = {
        f"{section.name}.{f.name}"
        for section in dataclasses.fields(cfg.TrainConfig)
        for f in dataclasses.fields(section.default_factory)  # type: ignore[arg-type]
        if f.metadata.get("resumable")
    }
    assert RESUMABLE_KEYS == marked
    assert {"optim.epochs", "run.max_steps", "run.device"} <= RESUMABLE_KEYS
    assert not RESUMABLE_KEYS & {"method.name", "optim.lr", "run.seed", "data.name"}
