"""Type-independent checks of a configuration: ranges and closed sets of values."""

from __future__ import annotations

from ratt.config.sections import CHOICES, TrainConfig
from ratt.core.units import parse_magnitude
from ratt.errors import UserError


def one_of(choices: tuple[str, ...]) -> str:
    """``a, b or c``: a closed set of values as an error message names it."""
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


Check = tuple[bool, str]  # (holds, the message when it does not)


def _data_and_method_checks(config: TrainConfig) -> list[Check]:
    return [
        (config.data.batch_size >= 1, "data.batch_size must be >= 1"),
        (config.data.image_size is None or config.data.image_size >= 1, "data.image_size must be >= 1"),
        (config.data.channels in (None, 1, 3), "data.channels must be 1 or 3"),
        (0 < config.data.extra_fraction < 1, "data.extra_fraction must be in (0, 1)"),
        (config.data.val_size is None or config.data.val_size >= 0, "data.val_size must be >= 0"),
        (config.data.train_limit is None or config.data.train_limit >= 1, "data.train_limit must be >= 1"),
        (config.data.in_memory_max >= 0, "data.in_memory_max must be >= 0 (GiB)"),
        (config.data.workers is None or config.data.workers >= 0, "data.workers must be >= 0"),
        (config.data.prefetch >= 1, "data.prefetch must be >= 1 (batches per worker)"),
        (config.data.resize is None or config.data.resize >= 1, "data.resize must be >= 1"),
        (config.attack.steps is None or config.attack.steps >= 1, "attack.steps must be >= 1"),
        (config.method.beta >= 0, "method.beta must be >= 0"),
        (0 <= config.method.alpha <= 1, "method.alpha must be in [0, 1]"),
        (config.method.soft_c is None or 0 <= config.method.soft_c <= 1, "method.soft_c must be in [0, 1]"),
        (config.method.sigma_w >= 0, "method.sigma_w must be >= 0"),
        (config.method.alpha_warmup >= 0, "method.alpha_warmup must be >= 0 (epochs)"),
        (
            config.method.sigma_target is None or config.method.sigma_target > 0,
            "method.sigma_target must be > 0 (a relative loss rise, e.g. 0.05)",
        ),
        (
            config.method.sigma_target is None or config.method.sigma_w > 0,
            "method.sigma_target needs a start value method.sigma_w > 0",
        ),
        (
            config.method.sigma_target is None or not config.method.name.startswith("awp+"),
            "method.sigma_target has no effect under awp+ (x_adv is crafted without weight noise)",
        ),
        (config.method.sigma_every >= 1, "method.sigma_every must be >= 1 (steps)"),
        (0 <= config.method.label_smoothing < 1, "method.label_smoothing must be in [0, 1)"),
        (config.method.approx_every >= 0, "method.approx_every must be >= 0 (steps; 0: off)"),
        (config.method.approx_samples >= 1, "method.approx_samples must be >= 1"),
        (config.method.awp_gamma is None or config.method.awp_gamma >= 0, "method.awp_gamma must be >= 0"),
        (config.method.awp_warmup >= 0, "method.awp_warmup must be >= 0"),
        (config.method.mc_samples >= 1, "method.mc_samples must be >= 1"),
        (config.method.mc_sigma >= 0, "method.mc_sigma must be >= 0"),
        (
            config.method.fgsm_step is None or config.method.fgsm_step > 0,
            "method.fgsm_step must be > 0 (a multiple of eps)",
        ),
        (config.method.nfgsm_k >= 0, "method.nfgsm_k must be >= 0 (N-FGSM's noise is U(-k eps, k eps))"),
        (config.method.gradalign_lambda >= 0, "method.gradalign_lambda must be >= 0"),
    ]


def _model_optim_and_run_checks(config: TrainConfig) -> list[Check]:
    return [
        (0 <= config.model.dropout < 1, "model.dropout must be in [0, 1)"),
        (config.optim.epochs >= 1, "optim.epochs must be >= 1"),
        (config.optim.lr > 0, "optim.lr must be > 0"),
        (0 <= config.optim.momentum < 1, "optim.momentum must be in [0, 1)"),
        (config.optim.weight_decay >= 0, "optim.weight_decay must be >= 0"),
        (config.optim.warmup_epochs >= 0, "optim.warmup_epochs must be >= 0 (0: no warmup)"),
        (
            config.optim.warmup_epochs < config.optim.epochs,
            "optim.warmup_epochs must be fewer than optim.epochs",
        ),
        (
            config.optim.optimizer == "sgd" or not config.optim.nesterov,
            "optim.nesterov applies to optim.optimizer=sgd only",
        ),
        (
            all(0 < m <= 1 for m in config.optim.milestones),
            "optim.milestones are fractions of the epochs, in (0, 1]",
        ),
        (0 <= config.run.seed < 2**32, "run.seed must be in [0, 2**32) (it seeds Python, NumPy and torch)"),
        (config.run.val_every >= 1, "run.val_every must be >= 1"),
        (0 <= config.optim.ema_decay < 1, "optim.ema_decay must be in [0, 1) (0: no weight averaging)"),
        (config.run.val_attack_steps >= 1, "run.val_attack_steps must be >= 1"),
        (config.run.flatness_every >= 1, "run.flatness_every must be >= 1"),
        (config.run.flatness_points >= 1, "run.flatness_points must be >= 1"),
        (config.run.eval_batch_size >= 1, "run.eval_batch_size must be >= 1"),
        (len(config.run.test_attacks) >= 1, "run.test_attacks needs at least one attack (e.g. clean,pgd20)"),
        (config.run.threads is None or config.run.threads >= 1, "run.threads must be >= 1"),
        (config.run.checkpoint_every >= 0, "run.checkpoint_every must be >= 0"),
        (config.run.max_steps is None or config.run.max_steps >= 1, "run.max_steps must be >= 1 (or unset)"),
        (config.run.keep_every >= 0, "run.keep_every must be >= 0"),
        (config.run.dist_timeout >= 1, "run.dist_timeout must be >= 1 (minutes)"),
        (0 < config.run.co_drop <= 100, "run.co_drop must be in (0, 100] (accuracy points)"),
    ]


def validate(config: TrainConfig) -> None:
    """Type, range and closed-set checks that need no registry; ``UserError`` on the first problem."""
    for ok, message in [*_data_and_method_checks(config), *_model_optim_and_run_checks(config)]:
        if not ok:
            raise UserError(message)
    _check_choices(config)
    _check_magnitudes(config)


def _check_choices(config: TrainConfig) -> None:
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        unset_allowed = getattr(type(getattr(config, section))(), name) is None
        if value not in choices and not (value is None and unset_allowed):
            raise UserError(f"{key} must be {one_of(choices)}")


def _check_magnitudes(config: TrainConfig) -> None:
    for name in ("eps", "step"):
        value = getattr(config.attack, name)
        if value is not None:
            parse_magnitude(value, f"attack.{name}")
    if config.attack.step is not None and parse_magnitude(config.attack.step, "attack.step") == 0:
        raise UserError("attack.step must be > 0 (a zero step never moves the attack)")
