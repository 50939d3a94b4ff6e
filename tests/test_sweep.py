from __future__ import annotations

import json

from ratt.cli import main

TINY = ["epochs=1", "train_limit=64", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1"]


def test_sweep_trains_each_cell_once_and_tabulates(tmp_path, capsys):
    args = [
        "sweep",
        "--quiet",
        "--out",
        str(tmp_path),
        "--methods",
        "natural,trades",
        "--seeds",
        "0,1",
        *TINY,
    ]
    assert main(args) == 0
    cells = sorted(p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("summary.json"))
    assert cells == [f"digits/{m}/seed-{s}" for m in ("natural", "trades") for s in (0, 1)]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("summary.json")}
    rows = json.loads((tmp_path / "results.json").read_text())
    assert {(r["method"], r["seeds"]) for r in rows} == {("natural", 2), ("trades", 2)}
    assert main(args) == 0  # a second call finds everything done
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("summary.json")} == stamps
    assert "| digits | trades | 2 |" in (tmp_path / "results.md").read_text()
