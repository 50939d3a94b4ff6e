"""Single-step adversarial training and RAT on it: FGSM, FGSM-RS (Wong et al. 2020), N-FGSM
(de Jorge et al. 2022), GradAlign (Andriushchenko & Flammarion 2020), and ``rat_NAME`` for
the last three (docs/methods.md, "Single-step methods").

Every one trains on ``CE(f(x_adv), y)`` (GradAlign adds its alignment term) with x_adv from
one signed-gradient step (:func:`ratt.attacks.single_step.single_step`); ``method.fgsm_step``
sets the step as a multiple of eps, ``method.nfgsm_k`` N-FGSM's noise, ``method.gradalign_lambda``
GradAlign's weight. ``attack.steps`` and ``attack.step`` do not apply and are refused
(:func:`check_single_step`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ratt.attacks.base import frozen_parameters
from ratt.attacks.single_step import single_step, uniform_noise
from ratt.errors import UserError
from ratt.methods.base import METHODS
from ratt.methods.noise import WeightNoise, perturbed
from ratt.methods.rat_plugin import RATPlugin
from ratt.methods.standard import PGDAT

SINGLE_STEP = ("fgsm", "fgsm_rs", "n_fgsm", "gradalign", "rat_fgsm_rs", "rat_n_fgsm", "rat_gradalign")


def check_single_step(config) -> None:
    """``UserError`` when a single-step method (``awp+`` too) is given settings it cannot use:
    ``attack.steps`` > 1, an ``attack.step`` (its step is ``method.fgsm_step`` x eps), the L2 norm,
    the noise controller and approximation probe of ``rat_trades``."""
    name = config.method.name.removeprefix("awp+")
    if name not in SINGLE_STEP:
        return
    if config.attack.steps is not None and config.attack.steps > 1:
        raise UserError(f"method {name} takes one attack step: drop attack.steps={config.attack.steps}")
    if config.attack.step is not None:
        raise UserError(
            f"method {name} sets its step as a multiple of eps: use method.fgsm_step=M, not attack.step"
        )
    if config.attack.norm != "linf":
        raise UserError(f"method {name} is defined for attack.norm=linf only")
    if config.method.sigma_target is not None or config.method.approx_every:
        raise UserError(f"method {name}: method.sigma_target and method.approx_every are rat_trades' only")


def input_gradient(model: nn.Module, x: Tensor, y: Tensor, *, graph: bool) -> Tensor:
    """``grad_x sum_i CE(f(x_i), y_i)``, shape of ``x``, in the model's current mode; with ``graph``
    the gradient keeps its graph (double backpropagation), else it is a constant."""
    x = x.detach().clone().requires_grad_(True)
    if graph:
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x, create_graph=True)
        return grad
    with frozen_parameters(model):
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return grad


def alignment_loss(grad_clean: Tensor, grad_noisy: Tensor) -> Tensor:
    """GradAlign's ``1 - mean_i cos(g_i, g'_i)`` over the batch, each (B, ...) gradient flattened
    per point (a zero gradient has cosine 0)."""
    cos = F.cosine_similarity(grad_clean.flatten(1), grad_noisy.flatten(1), dim=1, eps=1e-12)
    return 1.0 - cos.mean()


@METHODS.register("fgsm")
class FGSMAT(PGDAT):
    """FGSM training: ``CE(f(x_adv), y)``, x_adv = x + eps sign(grad) from x (zero start);
    the baseline that collapses (catastrophic overfitting)."""

    default_step = 1.0  # the step as a multiple of eps
    start_scale = 0.0  # the start noise's half-width as a multiple of eps
    projected = True

    @property
    def step_size(self) -> float:
        multiple = self.config.fgsm_step if self.config.fgsm_step is not None else self.default_step
        return float(multiple) * self.threat.eps

    @property
    def start_radius(self) -> float:
        return self.start_scale * self.threat.eps

    def craft(self, x: Tensor, y: Tensor) -> Tensor:
        eps, step, radius = self.threat.eps, self.step_size, self.start_radius
        return single_step(
            self.attack_model, x, y, eps=eps, step=step, start_radius=radius, project=self.projected,
            shard=self.shard,
        )  # fmt: skip


@METHODS.register("fgsm_rs")
class FGSMRS(FGSMAT):
    """FGSM-RS (Wong et al. 2020): uniform start in the eps-ball, step 1.25 eps, projected back."""

    default_step = 1.25
    start_scale = 1.0


@METHODS.register("n_fgsm")
class NFGSM(FGSMAT):
    """N-FGSM (de Jorge et al. 2022): start noise U(-k eps, k eps) (``method.nfgsm_k``, 2), step
    eps, no projection back to the eps-ball (x_adv stays in [0, 1])."""

    projected = False

    @property
    def start_radius(self) -> float:
        return float(self.config.nfgsm_k) * self.threat.eps


@METHODS.register("gradalign")
class GradAlign(FGSMRS):
    """GradAlign (Andriushchenko & Flammarion 2020): FGSM-RS's loss plus
    ``lambda (1 - cos(grad_x CE(x), grad_x CE(x + eta)))``, eta uniform in the eps-ball, the
    clean gradient a constant and the noisy one differentiated through (as the authors)."""

    def alignment(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The alignment term (scalar, with gradient) of ``model`` in its current mode."""
        grad_clean = input_gradient(model, x, y, graph=False)
        noisy = (x + uniform_noise(x, self.threat.eps, shard=self.shard)).clamp(0.0, 1.0)
        return alignment_loss(grad_clean, input_gradient(model, noisy, y, graph=True))

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        loss, logs = super().objective(model, x, x_adv, y)
        align = self.alignment(model, x, y)
        return loss + self.config.gradalign_lambda * align, {**logs, "align": align.detach()}

    def proxy_objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        """AWP's ascent uses the adversarial loss alone (the alignment term is a regularizer)."""
        return super().objective(model, x, x_adv, y)


class RATSingleStep(RATPlugin):
    """RAT on a single-step base: x_adv crafted on weights carrying RAT's noise (``sigma_w``,
    ``noise``, ``noise_on``, ``sigma_relative``, as ``rat_trades``), then
    ``(1 - alpha) CE(f(x_adv), y) + alpha first + alpha/2 second``. Under ``awp+`` the noise
    is off (``sigma_w = 0``), as for ``rat_trades``."""

    def __init__(self, model, threat, config, num_classes) -> None:
        super().__init__(model, threat, config, num_classes)
        self._backup: dict[str, Tensor] = {}

    @property
    def noise(self) -> WeightNoise:
        c = self.config
        return WeightNoise(float(c.sigma_w), c.noise, c.noise_on, c.sigma_relative)

    def craft(self, x: Tensor, y: Tensor) -> Tensor:
        with perturbed(self.model, self.noise, self._backup):
            return self.inner.craft(x, y)

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        """The RAT loss; with ``method.taylor=none`` the base's objective and forwards exactly (no
        clean forward: RAT's crafting noise alone, at the base's cost)."""
        if self.taylor == "none":
            return self.inner.objective(model, x, x_adv, y)
        return super().objective(model, x, x_adv, y)


@METHODS.register("rat_fgsm_rs")
class RATFGSMRS(RATSingleStep):
    """RAT on FGSM-RS."""

    base = FGSMRS


@METHODS.register("rat_n_fgsm")
class RATNFGSM(RATSingleStep):
    """RAT on N-FGSM."""

    base = NFGSM


@METHODS.register("rat_gradalign")
class RATGradAlign(RATSingleStep):
    """RAT on GradAlign: the RAT loss of FGSM-RS plus GradAlign's alignment term (unscaled by
    ``1 - alpha``: it is not a cross-entropy term)."""

    base = GradAlign

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        if self.taylor == "none":  # GradAlign's own objective, alignment term included
            return self.inner.objective(model, x, x_adv, y)
        loss, logs = super().objective(model, x, x_adv, y)
        align = self.inner.alignment(model, x, y)
        return loss + self.config.gradalign_lambda * align, {**logs, "align": align.detach()}

    def proxy_objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        return self.inner.proxy_objective(model, x, x_adv, y)
