"""The method interface: a training objective wired to a model.

A method owns ``loss(x, y) -> (loss, logs)``; the trainer owns the loop, mode switching,
logging and checkpoints. Methods split the loss into ``craft`` (adversarial inputs at the
current weights) and ``objective`` (the loss of a model on clean and adversarial inputs),
so that a wrapper such as AWP can evaluate the objective on other weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ratt.attacks.threat import ThreatModel
from ratt.registry import Registry


class Method:
    """Base class of training objectives.

    ``awp_default_gamma`` is the AWP perturbation size used when this method is wrapped
    in ``awp+`` and ``method.awp_gamma`` is unset. ``select_by`` is the validation accuracy
    that picks the best checkpoint: ``robust`` (PGD) for methods trained for robustness,
    ``clean`` for natural training (whose PGD accuracy is near 0 after the first epochs, so
    selecting on it kept the first epoch). ``code_forwards`` is the order of the train-mode
    forwards of the clean (``n``) and adversarial (``a``) batch in the method's released
    code, ``awp_code_forwards`` in its released AWP variant (None: the same), and
    ``paper_forwards`` one forward per input the loss needs (see
    :mod:`ratt.methods.passes`); ``method.numerics`` picks the code's or the paper's.

    Args:
        model: the network being trained (called in whatever mode the trainer set).
        threat: the training threat model.
        config: the ``MethodConfig`` (hyper-parameters by name).
        num_classes: C.
    """

    awp_default_gamma: float = 0.005
    select_by: str = "robust"
    code_forwards: str = "na"
    awp_code_forwards: str | None = None
    paper_forwards: str = "na"

    def __init__(self, model: nn.Module, threat: ThreatModel, config: Any, num_classes: int) -> None:
        self.model = model
        self.threat = threat
        self.config = config
        self.num_classes = num_classes
        self.train_model: nn.Module = model  # training forwards (the DDP wrapper when parallel)
        self.attack_model: nn.Module = model  # what the attacks call (maybe torch.compile'd)
        self.shard: tuple[int, int] = (0, 1)  # (rank, world) of this process
        self.under_awp = False  # set by the AWP wrapper: the released AWP variant's passes

    @property
    def code_numerics(self) -> bool:
        """True when ``method.numerics=code``: the released implementation's constants and passes."""
        return self.config.numerics == "code"

    @property
    def forward_order(self) -> str:
        """The loss's train-mode forwards, e.g. ``"nan"`` (:func:`ratt.methods.passes.ordered_forwards`)."""
        if not self.code_numerics:
            return self.paper_forwards
        if self.under_awp and self.awp_code_forwards is not None:
            return self.awp_code_forwards
        return self.code_forwards

    def configure_parallel(
        self, train_model: nn.Module, attack_model: nn.Module, shard: tuple[int, int]
    ) -> None:
        """Route training forwards through ``train_model`` (e.g. DistributedDataParallel) and
        attacks through ``attack_model`` (the unwrapped, maybe compiled model: attack forwards
        must not arm DDP's reducer); ``shard = (rank, world)`` says which slice of the global
        batch this process holds. Wrappers forward this to the methods they wrap."""
        self.train_model, self.attack_model, self.shard = train_model, attack_model, shard

    @property
    def distributed(self) -> bool:
        """True when the batch is a shard of a global batch on several processes."""
        return self.shard[1] > 1

    def craft(self, x: Tensor, y: Tensor) -> Tensor | None:
        """Adversarial inputs for ``x`` at the current weights (None for clean training)."""
        return None

    def objective(
        self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar loss of ``model`` on the batch, and named detached parts for logging."""
        raise NotImplementedError

    def proxy_objective(
        self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss AWP's proxy ascends (default: :meth:`objective`)."""
        return self.objective(model, x, x_adv, y)

    def loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Training loss of one batch: craft adversarial inputs, then the objective."""
        return self.objective(self.train_model, x, self.craft(x, y), y)

    def after_step(self) -> None:
        """Called by the trainer right after ``optimizer.step()`` (AWP restores weights here)."""

    def start_epoch(self, epoch: int) -> None:
        """Called by the trainer before each epoch (0-based), e.g. for warm-ups."""

    def epoch_logs(self) -> dict[str, Any]:
        """Values the method logged this epoch, for the epoch's ``metrics.jsonl`` row (JSON-ready;
        e.g. the approximation probe's pairs); the trainer calls it once per epoch, after which
        the method starts a new epoch's logs."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Extra state to checkpoint (e.g. AWP's proxy optimizer); empty by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class MethodWrapper(Method):
    """A method around another (AWP, the RAT plug-in): every hook goes to ``inner`` unless
    the wrapper overrides it, so a hook added to :class:`Method` reaches wrapped methods too.

    Args:
        inner: the wrapped method; its model, threat model, config and class count are shared.
    """

    def __init__(self, inner: Method) -> None:
        super().__init__(inner.model, inner.threat, inner.config, inner.num_classes)
        self.inner = inner
        self.awp_default_gamma = inner.awp_default_gamma
        self.select_by = inner.select_by

    def configure_parallel(
        self, train_model: nn.Module, attack_model: nn.Module, shard: tuple[int, int]
    ) -> None:
        super().configure_parallel(train_model, attack_model, shard)
        self.inner.configure_parallel(train_model, attack_model, shard)

    def craft(self, x: Tensor, y: Tensor) -> Tensor | None:
        return self.inner.craft(x, y)

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        return self.inner.objective(model, x, x_adv, y)

    def proxy_objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        return self.inner.proxy_objective(model, x, x_adv, y)

    def after_step(self) -> None:
        self.inner.after_step()

    def start_epoch(self, epoch: int) -> None:
        self.inner.start_epoch(epoch)

    def epoch_logs(self) -> dict[str, Any]:
        return self.inner.epoch_logs()

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state.get("inner", {}))


MethodFactory = Callable[[nn.Module, ThreatModel, Any, int], Method]
"""(model, threat, method config, number of classes) -> Method: a Method class itself, or the
builder ``awp+NAME`` returns around one."""
METHODS: Registry[MethodFactory] = Registry("method")
