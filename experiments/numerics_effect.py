"""What ``method.numerics=code`` changes against ``paper``, measured (docs/methods.md).

    python experiments/numerics_effect.py RUN_DIR   # a MART run on digits (ratt train method=mart)

On the run's best checkpoint and the first 256 digits test images, over 8 seeds:

- MART's training attack: cross-entropy at x_adv from the released start (x + 0.001 N(0, 1))
  and from the uniform start in the ball;
- TRADES' training attack: KL(p(x) || p(x_adv)) from the unclamped and the clamped start;
- MART's loss at the same x_adv with the released constants and with log(1 - p);

and, on a freshly built WRN-16-1 with BatchNorm whose running statistics have settled on one
digits batch (50 clean + adversarial forwards), one TRADES and one RAT-TRADES objective on
that batch under both numerics: the loss, and how far BatchNorm's running statistics
end apart (the largest ||code - paper|| / ||paper|| over the layers' running means and variances).
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
import torch.nn.functional as F

import ratt
from ratt import data
from ratt.attacks import ThreatModel
from ratt.config import MethodConfig
from ratt.methods import build_method
from ratt.runs import build_model

SEEDS = range(8)


def _mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.4g} +- {statistics.stdev(values):.2g}"


def _digits(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor, data.DatasetInfo]:
    dataset = data.load("digits", split)
    return data.to_float(dataset.images[:n]), dataset.labels[:n], dataset.info


def attack_strength(run_dir: str) -> None:
    model, _ = ratt.load_checkpoint(run_dir)
    model.eval()
    x, y, info = _digits("test", 256)
    threat = ThreatModel.for_dataset(info)
    rows: dict[str, list[float]] = {}
    for numerics in ("code", "paper"):
        mart = build_method("mart", model, threat, MethodConfig(name="mart", numerics=numerics), 10)
        trades = build_method("trades", model, threat, MethodConfig(name="trades", numerics=numerics), 10)
        for seed in SEEDS:
            torch.manual_seed(seed)
            x_mart = mart.craft(x, y)
            torch.manual_seed(seed)
            x_trades = trades.craft(x, y)
            with torch.no_grad():
                z, z_mart, z_trades = model(x), model(x_mart), model(x_trades)
                rows.setdefault(f"MART attack CE, {numerics} start", []).append(
                    float(F.cross_entropy(z_mart, y))
                )
                kl = F.kl_div(F.log_softmax(z_trades, 1), F.softmax(z, 1), reduction="batchmean")
                rows.setdefault(f"TRADES attack KL, {numerics} start", []).append(float(kl))
                if numerics == "code":
                    code = sum(mart.loss_terms(z, z_mart, y)[:2])
                    paper_method = build_method("mart", model, threat, MethodConfig(numerics="paper"), 10)
                    paper = sum(paper_method.loss_terms(z, z_mart, y)[:2])
                    rows.setdefault("MART loss, code/paper - 1", []).append(float(code / paper - 1))
    for name, values in rows.items():
        print(f"{name:<36} {_mean_std(values)}  (8 seeds)")


def batchnorm_drift() -> None:
    x, y, info = _digits("train", 64)
    threat = ThreatModel.for_dataset(info)
    torch.manual_seed(0)
    base = build_model(ratt.build_config(None, ["model=wrn-16-1"]), info)
    for name in ("trades", "rat_trades"):
        torch.manual_seed(1)
        x_adv = build_method("trades", base, threat, MethodConfig(), 10).craft(x, y)
        with torch.no_grad():  # running statistics settled on this batch, as after many steps
            base.train()
            for _ in range(50):
                base(x), base(x_adv)
        models, losses = {}, {}
        for numerics in ("code", "paper"):
            model = copy.deepcopy(base).train()
            method = build_method(name, model, threat, MethodConfig(name=name, numerics=numerics), 10)
            losses[numerics] = float(method.objective(model, x, x_adv, y)[0].detach())
            models[numerics] = model
        worst = 0.0
        paper_state = models["paper"].state_dict()
        for key, a in models["code"].state_dict().items():
            b = paper_state[key]
            if key.endswith(("running_mean", "running_var")):
                worst = max(worst, float((a - b).norm() / b.norm()))
        print(
            f"{name}: loss code {losses['code']:.6f} paper {losses['paper']:.6f}; "
            f"BatchNorm running statistics {100 * worst:.1f} % apart after one step (worst layer)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a MART run on digits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    attack_strength(args.run_dir)
    batchnorm_drift()


if __name__ == "__main__":
    main()
