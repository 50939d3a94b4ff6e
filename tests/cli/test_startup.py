"""`ratt list` starts fast (issue 28: within 1.5x of `import torch`; benchmarks/startup.py
measures the ratio). The test guards the cause, not the time: the command must not import the
heavy packages only some commands need (plots, vision models, clusters, logging)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("matplotlib", "torchvision", "timm", "robustbench", "submitit", "tensorboard", "scipy", "PIL")

PROBE = """
import contextlib, io, json, sys
from ratt.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["list"])
print(json.dumps([code, sorted({m.split(".")[0] for m in sys.modules})]))
"""


def test_ratt_list_imports_no_heavy_optional_package():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    code, modules = json.loads(out.stdout.strip().splitlines()[-1])
    assert code == 0
    assert not set(HEAVY) & set(modules), sorted(set(HEAVY) & set(modules))
    assert "ratt" in modules and "torch" in modules  # the probe did load the command
