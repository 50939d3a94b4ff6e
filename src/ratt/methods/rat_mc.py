"""The exact randomized objective RAT approximates: ``E_u[L_TRADES(w + u)]`` by Monte Carlo.

Beyond the paper: with ``k`` samples of Gaussian weight noise per step, a user can measure
how far the Taylor terms are from what they stand for, and what the exact version costs
(about ``k`` times the forward/backward work of TRADES' outer step, ``k`` graphs in memory).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.func import functional_call

from ratt.core.weights import perturbable_weights, weight_noise
from ratt.methods.base import METHODS
from ratt.methods.noise import draw_noise
from ratt.methods.standard import TRADES


@METHODS.register("rat_mc")
class RATMonteCarlo(TRADES):
    """TRADES averaged over ``mc_samples`` draws of weight noise on every weight with >= 2 dims.

    x_adv is crafted once at the unperturbed weights (the TRADES attack); for each draw u the
    TRADES loss is evaluated at ``w + u`` through ``torch.func.functional_call``, so the
    gradient w.r.t. ``w`` is the gradient of the noisy loss. Biases and BatchNorm are not
    perturbed. Noise scale: ``mc_sigma`` (relative to each tensor's RMS if ``mc_relative``).
    """

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        samples = int(self.config.mc_samples)
        weights = perturbable_weights(model)
        total, logs_sum = 0.0, {}
        for _ in range(samples):
            noisy = {n: p + self._noise(p) for n, p in weights.items()}
            z_nat = functional_call(model, noisy, (x,), strict=False)
            z_adv = functional_call(model, noisy, (x_adv,), strict=False)
            ce, rest, logs = self.loss_terms(z_nat, z_adv, y)
            total = total + (ce + rest) / samples
            for key, value in logs.items():
                logs_sum[key] = logs_sum.get(key, 0.0) + value / samples
        return total, logs_sum

    def _noise(self, weight: Tensor) -> Tensor:
        """One draw for ``weight``: ``method.noise``'s distribution with std ``mc_sigma``
        (times the tensor's RMS when ``mc_relative``)."""
        c = self.config
        if c.noise == "gaussian":
            return weight_noise(weight, c.mc_sigma, c.mc_relative)
        std = c.mc_sigma * weight.detach().square().mean().sqrt() if c.mc_relative else c.mc_sigma
        return draw_noise(weight.detach(), std, c.noise)

    def proxy_objective(self, model, x, x_adv, y):
        """AWP's ascent uses the plain TRADES objective."""
        return super().objective(model, x, x_adv, y)
