"""The pass-count cost model of docs/scaling.md: forward units F per training step of each
method (below the training loop, so every run can record its cost; :mod:`ratt.bench.flops`
turns units into FLOPs).

A step is counted in forward units F (one forward of the batch): a forward is 1F, an attack
step's input-only backward 1F (no weight gradients), a training backward 2F per forward it
goes through (input and weight gradients). So a method's step costs
``forwards + attack_backwards + 3 * trained_forwards`` F (:class:`StepPasses`), with:

- ``natural``: 1 trained forward.
- ``pgd_at``: K attack steps (forward + input backward) + 1 trained forward (x_adv).
- ``trades``, ``rat_trades``: 1 clean eval forward (p(x), once) + K attack steps + 2 trained
  forwards (x, x_adv); RAT's weight noise and closed-form statistics are not counted.
- ``mart``, ``rat_pgd_at``, ``rat_mart``: K attack steps + 2 trained forwards.
- ``rat_mc``: the TRADES attack + ``mc_samples`` x 2 trained forwards.
- ``fgsm``, ``fgsm_rs``, ``n_fgsm``: one attack step (whatever K) + 1 trained forward: 5F;
  ``rat_fgsm_rs``, ``rat_n_fgsm``: one attack step + 2 trained forwards (x_adv, and the clean
  forward RAT's terms need): 8F.
  With ``method.taylor=none`` the RAT ones make their base's passes (5F).
- ``gradalign``, ``rat_gradalign``: their base + the alignment term, 8F: the clean input
  gradient (forward + input backward, 2F) and the noisy one kept for double backpropagation
  (forward, input backward, and the training backward through both, counted 6F; torch's
  formulas give 6.2F on wrn-10-1 at 8x8, the first convolution's double backward).
- ``awp+NAME``: NAME + the proxy's ascent on the base objective: its trained forwards again
  (1 for natural, pgd_at and rat_pgd_at, 2 for the others).
- ``numerics="code"`` (``method.numerics=code``; the default is ``paper``) adds the released
  codes' repeated forwards, run without gradient (:mod:`ratt.methods.passes`): 1 for ``trades`` and
  ``awp+trades``, 6 for ``rat_trades``, none for ``awp+rat_trades``; AWP's proxy, ascending on
  the TRADES objective, repeats 1 for the TRADES-based methods.

Not counted: one-time work on a method's first step, and RAT's noise-size controller
(``method.sigma_target``: 3 forwards every ``sigma_every`` steps). The first layer's input
gradient of a training backward is counted although autograd skips it (the input needs no
gradient), which over-counts by < 0.1 % on the CIFAR models.
``tests/bench/test_flops.py`` checks the counts against ``torch.utils.flop_counter`` on a
real :class:`ratt.train.step.TrainStep` of every method.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratt.methods.single_step import SINGLE_STEP

# Trained forwards of each method's objective; AWP's proxy ascent repeats its base objective's
# (_PROXY_FORWARDS); the TRADES KL attack starts with one clean eval forward (_CLEAN_TARGET).
_OBJECTIVE_FORWARDS = {
    "natural": 1,
    "pgd_at": 1,
    "trades": 2,
    "mart": 2,
    "rat_trades": 2,
    "rat_pgd_at": 2,
    "rat_mart": 2,
    "rat_mc": 2,  # per noise sample
    "fgsm": 1,
    "fgsm_rs": 1,
    "n_fgsm": 1,
    "gradalign": 1,
    "rat_fgsm_rs": 2,
    "rat_n_fgsm": 2,
    "rat_gradalign": 2,
}
_SINGLE_STEP = set(SINGLE_STEP)
_ALIGNMENT_UNITS = {"gradalign": 8, "rat_gradalign": 8}  # GradAlign's term (module docstring)
# others: 2 (their base's objective); the single-step methods' proxy ascends on CE(f(x_adv)) alone
_PROXY_FORWARDS = {"natural": 1, "pgd_at": 1, "rat_pgd_at": 1, **dict.fromkeys(_SINGLE_STEP, 1)}
_CLEAN_TARGET = {"trades", "rat_trades", "rat_mc"}
# numerics=code: forwards without gradient that repeat one of the objective's (methods.passes)
_CODE_REPEATS = {"trades": 1, "rat_trades": 6}
_AWP_CODE_REPEATS = {"trades": 1, "rat_trades": 0}
_PROXY_CODE_REPEATS = {"trades": 1, "rat_trades": 1, "rat_mc": 1}  # the proxy ascends on TRADES' objective


@dataclass(frozen=True)
class StepPasses:
    """Passes of one training step over the batch.

    Attributes:
        forwards: forwards without weight gradients (attack steps, the clean target).
        attack_backwards: input-only backwards (one per attack step).
        trained_forwards: forwards a training backward goes through (each 1F + 2F).
        extra_units: other work in F (GradAlign's alignment term: 8).
    """

    forwards: int
    attack_backwards: int
    trained_forwards: int
    extra_units: int = 0

    @property
    def units(self) -> int:
        """Cost in forward units F."""
        return self.forwards + self.attack_backwards + 3 * self.trained_forwards + self.extra_units


def has_flop_model(method: str) -> bool:
    """True for every method :func:`step_passes` knows (registry names and ``awp+NAME``)."""
    base = method.removeprefix("awp+")
    return base in _OBJECTIVE_FORWARDS


def step_passes(
    method: str,
    attack_steps: int,
    mc_samples: int = 2,
    *,
    numerics: str = "paper",
    taylor: str = "first+second",
) -> StepPasses:
    """Passes of one training step of ``method`` with ``attack_steps`` (K) attack steps
    under ``method.numerics`` = ``numerics`` and ``method.taylor`` = ``taylor`` (``none``: the
    RAT single-step methods make their base's passes, without the clean forward).

    Raises:
        ValueError: a method without a cost model (see :func:`has_flop_model`).
    """
    awp = method.startswith("awp+")
    base = method.removeprefix("awp+")
    if base not in _OBJECTIVE_FORWARDS:
        raise ValueError(f"no FLOP model for method {method!r}")
    k = 0 if base == "natural" else 1 if base in _SINGLE_STEP else int(attack_steps)
    trained = _OBJECTIVE_FORWARDS[base] * (int(mc_samples) if base == "rat_mc" else 1)
    if taylor == "none" and base in _SINGLE_STEP and base.startswith("rat_"):
        trained -= 1  # RAT's crafting noise alone: the base's objective (methods.single_step)
    if awp:
        trained += _PROXY_FORWARDS.get(base, 2)
    repeats = 0
    if numerics == "code":
        repeats = (_AWP_CODE_REPEATS if awp else _CODE_REPEATS).get(base, 0)
        repeats += _PROXY_CODE_REPEATS.get(base, 0) if awp else 0
    return StepPasses(
        forwards=k + (1 if base in _CLEAN_TARGET else 0) + repeats,
        attack_backwards=k,
        trained_forwards=trained,
        extra_units=_ALIGNMENT_UNITS.get(base, 0),
    )
