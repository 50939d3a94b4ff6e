"""experiments/check_row.py: which reproducibility case applies."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "check_row.py"


def _module():
    spec = importlib.util.spec_from_file_location("check_row", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bit_identity_is_expected_only_on_the_same_machine_kind():
    check = _module()
    same = {k: "x" for k in check.DECIDING}
    assert check.same_machine_kind(same, dict(same)) == (True, "")
    other_isa = {**same, "cpu_capability": "AVX2"}
    exact, why = check.same_machine_kind(same, other_isa)
    assert not exact and "cpu_capability: x vs AVX2" in why
    exact, why = check.same_machine_kind({"torch": "x"}, same)  # an older study: not recorded
    assert not exact and "did not record" in why
