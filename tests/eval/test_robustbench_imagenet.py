"""``ratt eval --protocol robustbench-imagenet``: the listed validation images, in the list's
order, at RobustBench's Res256Crop224 (written out here with torchvision), standard AutoAttack
at 4/255; bad lists and misuse are one-line errors. The ImageNet folder is generated (a few
JPEGs of odd sizes in ILSVRC's layout): ImageNet cannot be downloaded here."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ratt import data
from ratt.cli import main
from ratt.config import DataConfig
from ratt.errors import UserError
from ratt.eval import EvalOptions, evaluate_run
from ratt.eval import protocol as protocols

WNIDS = [f"n0{1440764 + 17 * c:07d}" for c in range(10)]  # AutoAttack needs >= 10 classes
MODEL = textwrap.dedent(
    """
    import torch.nn as nn

    def build(num_classes):
        return nn.Sequential(nn.Conv2d(3, 4, 16, stride=16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(4, num_classes))
    """
)


def _imagenet(root: Path, *, train: bool = True) -> list[str]:
    """A tiny ILSVRC-style folder (val/WNID/ILSVRC2012_val_N.JPEG of odd sizes); its entries."""
    rng = np.random.default_rng(0)
    entries = []
    for split in ("train", "val") if train else ("val",):
        for c, wnid in enumerate(WNIDS):
            (root / split / wnid).mkdir(parents=True)
            for k in range(1 if c % 2 else 2):
                n = 10 * c + k
                pixels = rng.integers(0, 256, (240 + 17 * k + c, 300 - 9 * c, 3), dtype=np.uint8)
                name = f"ILSVRC2012_val_{n:08d}.JPEG"
                Image.fromarray(pixels).save(root / split / wnid / name, quality=90)
                entries.append(f"{wnid}/{name}") if split == "val" else None
    return entries


def _listing(path: Path, entries: list[str]) -> Path:
    path.write_text("\n".join(entries))  # no final newline, as RobustBench's own file
    return path


def _res256crop224(path: Path) -> torch.Tensor:
    from torchvision import transforms as T

    with Image.open(path) as image:
        pipeline = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
        return pipeline(image.convert("RGB"))


def test_listed_images_are_read_in_the_lists_order_at_res256crop224(tmp_path):
    entries = _imagenet(tmp_path / "in")
    chosen = [entries[5], entries[0], entries[3]]  # not the folder's order
    config = DataConfig(name="imagenet", root=str(tmp_path / "in"), image_size=224, resize=256)
    points = data.listed_test_images(config, _listing(tmp_path / "list.txt", chosen))
    expected = torch.stack([_res256crop224(tmp_path / "in" / "val" / e) for e in chosen])
    torch.testing.assert_close(data.to_float(points.images), expected, rtol=0, atol=0)
    assert points.labels.tolist() == [WNIDS.index(e.split("/")[0]) for e in chosen]


@pytest.fixture
def foreign(tmp_path):
    """(weights file, model spec, data root, list) for a tiny model on a generated ImageNet."""
    entries = _imagenet(tmp_path / "in", train=False)  # a validation folder alone is enough
    (tmp_path / "nets.py").write_text(MODEL)
    spec = f"{tmp_path / 'nets.py'}:build"
    torch.manual_seed(0)
    namespace: dict = {}
    exec(MODEL, namespace)
    save_file(namespace["build"](10).state_dict(), tmp_path / "w.safetensors")
    return tmp_path / "w.safetensors", spec, tmp_path / "in", _listing(tmp_path / "list.txt", entries[::-1])


def test_the_protocol_runs_standard_autoattack_at_4_255_on_the_listed_points(foreign, capsys):
    weights, spec, root, listing = foreign
    options = EvalOptions(model=spec, data="imagenet", config=[f"data.root={root}"], progress=False,
                          protocol="robustbench-imagenet", subset=str(listing))  # fmt: skip
    report = evaluate_run(weights, options)
    assert set(report.result.accuracy) == {"clean", "aa"} and report.result.n == 15
    assert report.threat.norm == "linf" and report.threat.eps == 4 / 255
    assert "robustbench-imagenet protocol" in report.protocol and "Resize 256" in report.protocol
    namespace: dict = {}
    exec(MODEL, namespace)
    model = namespace["build"](10)
    model.load_state_dict(load_file(weights))
    entries = listing.read_text().split("\n")
    x = torch.stack([_res256crop224(root / "val" / e) for e in entries])
    y = torch.tensor([WNIDS.index(e.split("/")[0]) for e in entries])
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    assert report.result.accuracy["clean"] == pytest.approx(clean)  # an independent forward
    assert report.result.accuracy["aa"] <= clean and report.result.robust == report.result.accuracy["aa"]
    assert report.to_dict()["request"]["subset"] is not None


def test_the_cli_prints_the_protocol_and_writes_json(foreign, capsys):
    weights, spec, root, listing = foreign
    argv = ["eval", str(weights), "--model", spec, "--data", "imagenet", f"data.root={root}",
            "--protocol", "robustbench-imagenet", "--subset", str(listing), "--n", "2",
            "--json", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["n"] == 2 and set(out["accuracy"]) == {"clean", "aa"}
    assert out["threat"]["eps"] == 4 / 255


def _bad_line(tmp_path: Path, entries: list[str], line: str) -> Path:
    return _listing(tmp_path / "bad.txt", [entries[0], line])


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (f"{WNIDS[0]}/ILSVRC2012_val_99999999.JPEG", r"bad.txt:2: .* is not a file"),
        ("n99999999/ILSVRC2012_val_00000000.JPEG", r"bad.txt:2: .* CLASS one of the 10 class folders"),
        ("../val/n01440764", r"bad.txt:2: .* not CLASS/FILE"),
        ("n01440764/../../secret", r"bad.txt:2: .* not CLASS/FILE"),
        (f"{WNIDS[0]}/ILSVRC2012_val_00000000.JPEG", r"bad.txt:2: .* listed twice"),
    ],
)
def test_a_bad_line_in_the_list_is_one_line_with_its_number(tmp_path, line, says):
    entries = _imagenet(tmp_path / "in")
    config = DataConfig(name="imagenet", root=str(tmp_path / "in"))
    with pytest.raises(UserError, match=says) as caught:
        data.listed_test_images(config, _bad_line(tmp_path, entries, line))
    assert "\n" not in str(caught.value)


def test_misuse_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    with pytest.raises(UserError, match="--subset applies to --protocol robustbench-imagenet"):
        EvalOptions(subset="list.txt").check()
    with pytest.raises(UserError, match="drop --eps"):
        EvalOptions(protocol="robustbench-imagenet", eps="8/255").check()
    with pytest.raises(UserError, match="defined for imagenet"):
        protocols.get("robustbench-imagenet").threats("cifar10")
    with pytest.raises(UserError, match="--subset nowhere.txt: no such file"):
        protocols.subset_listing("nowhere.txt")
    monkeypatch.setattr(protocols.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="needs --subset FILE"):
        protocols.subset_listing(None)
    with pytest.raises(SystemExit) as exited:  # argparse's choices, read from PROTOCOLS
        main(["eval", str(tmp_path), "--protocol", "robustbench"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_list_shipped_with_robustbench_is_found_without_importing_it():
    pytest.importorskip("robustbench")
    lines = protocols.subset_listing(None).read_text().split()
    assert len(lines) == protocols.ROBUSTBENCH_POINTS == len(set(lines))
    assert all(line.count("/") == 1 and line.startswith("n") for line in lines)
