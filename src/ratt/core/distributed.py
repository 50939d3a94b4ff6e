"""Data-parallel glue: process group, global-batch sharding, synchronized BatchNorm, reductions.

Launch with ``torchrun --nproc_per_node N -m ratt train ...``; torchrun sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` and :func:`init_distributed` joins the group.

Semantics (what makes an N-process run equal a one-process run with the same global batch):

- ``data.batch_size`` is the *global* batch. Every rank computes the same seeded permutation
  of the epoch, pads it to a multiple of the world size by repeating its first indices, and
  takes ``global_batch[rank::world]``: exactly ``torch.utils.data.DistributedSampler``'s
  semantics (shuffle, ``seed + epoch``, ``drop_last=False``) with per-rank batch
  ``batch_size / world``. Up to ``world - 1`` samples per epoch repeat when the training
  split is not a multiple of the world size; otherwise nothing changes.
- All ranks keep identical global RNG streams: augmentation and the attacks' random starts
  are drawn for the whole global batch on every rank and sliced (``shard=(rank, world)``),
  and RAT's weight noise is drawn identically everywhere.
- Per rank: the attacks (each sample's x_adv depends only on that sample), the forwards,
  and the per-sample loss terms. Reduced: gradients (DDP's mean, matching the global mean of
  per-sample terms), RAT's last-layer statistics (per-rank sums all-reduced, divided by the
  global batch), AWP's proxy gradients (averaged before the proxy step), BatchNorm batch
  statistics when ``run.sync_bn`` is set, and the epoch's logged loss sums. Without
  ``run.sync_bn``, each rank's BatchNorm running statistics are replaced by rank 0's after
  every step (:func:`broadcast_buffers`), so the attacks see the same statistics everywhere.
"""

from __future__ import annotations

import datetime
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ratt.errors import UserError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world`` processes (``world == 1``: no group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world


def launched_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 when launched as a plain process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def elastic_restart_count() -> int:
    """How many times torchrun restarted this process group (``TORCHELASTIC_RESTART_COUNT``;
    0 for a first attempt or a plain process)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    except ValueError:
        return 0


def process_label() -> str:
    """``rank R of W`` under torchrun (from its environment), else the empty string."""
    world = launched_world_size()
    return f"rank {os.environ.get('RANK', '0')} of {world}" if world > 1 else ""


def init_distributed(backend: str, device_name: str, timeout_minutes: int = 60) -> DistContext:
    """Join the process group torchrun describes (or return the one-process context).

    ``backend``: ``auto`` (NCCL for CUDA, gloo for CPU), ``nccl`` or ``gloo``. On CUDA each
    process uses ``cuda:LOCAL_RANK``. An already initialized group is reused.
    """
    if not dist.is_initialized() and launched_world_size() <= 1:
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise UserError(f"run.device={device_name} but no CUDA device is available (use run.device=cpu)")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    if not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if cuda else "gloo"
        if backend == "nccl" and not cuda:
            raise UserError("run.dist_backend=nccl needs CUDA devices; use run.dist_backend=gloo on CPU")
        timeout = datetime.timedelta(minutes=timeout_minutes)
        dist.init_process_group(backend, timeout=timeout, **_attempt_store(timeout))
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)


def _attempt_store(timeout: datetime.timedelta) -> dict:
    """``init_process_group``'s store for a restarted elastic group, else nothing (``env://``).

    torchrun's agent serves one TCP store for all attempts (``TORCHELASTIC_USE_AGENT_STORE``),
    and ``env://`` puts every attempt's keys under the same names: a restarted group can read
    the dead attempt's peer addresses and fail to connect, or hang (pytorch/pytorch#135712).
    Each attempt's keys go under their own prefix instead (the attempt number is
    ``TORCHELASTIC_RESTART_COUNT``, the same on every node of a restarted group).
    """
    attempt = elastic_restart_count()
    if attempt == 0 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    client = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), launched_world_size(), is_master=False,
        timeout=timeout,
    )  # fmt: skip
    return {
        "store": dist.PrefixStore(f"ratt/attempt-{attempt}", client),
        "rank": int(os.environ["RANK"]),
        "world_size": launched_world_size(),
    }


def group_initialized() -> bool:
    """A process group exists in this process."""
    return dist.is_available() and dist.is_initialized()


def destroy_group() -> None:
    """Leave the process group, if there is one."""
    if group_initialized():
        dist.destroy_process_group()


def device_for(context: DistContext, device: torch.device) -> torch.device:
    """The process's device: ``cuda:LOCAL_RANK`` for CUDA runs with several processes."""
    if context.enabled and device.type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return device


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` without DDP's buffer broadcast before every forward.

    That broadcast copies rank 0's BatchNorm statistics into the buffers in place, and torch
    2.6 to 2.11 count the copy as a modification of tensors the previous forward saved for
    backward (pytorch/pytorch#175024): every method with two training forwards per step
    (TRADES, MART, RAT) fails at ``backward`` on NCCL. :func:`broadcast_buffers` after each
    step (:class:`ratt.train.step.TrainStep`'s ``sync_buffers``) keeps the ranks' buffers equal
    instead; with ``run.sync_bn`` the statistics are global and need no broadcast.
    """
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel).parameters
    key = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    device_ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, **{key: False})


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics, counters) to every rank: one
    broadcast per dtype. Call it outside any autograd graph (e.g. after the optimizer step)."""
    groups: dict[torch.dtype, list[Tensor]] = {}
    for buffer in module.buffers():
        groups.setdefault(buffer.dtype, []).append(buffer)
    with torch.no_grad():
        for buffers in groups.values():
            _coalesced(buffers, lambda flat: dist.broadcast(flat, src))


def padded_order(order: Tensor, world: int) -> Tensor:
    """Pad an epoch's permutation to a multiple of ``world`` with its first entries.

    DistributedSampler's ``drop_last=False`` padding; unchanged for ``world == 1``. (N,) -> (N',).
    """
    extra = (-len(order)) % world
    if extra == 0:
        return order
    reps = -(-extra // len(order))
    return torch.cat([order, order.repeat(reps)[:extra]])


def take_shard(batch: Tensor, shard: tuple[int, int]) -> Tensor:
    """This rank's share ``batch[rank::world]`` of a global batch (the batch for ``world == 1``)."""
    rank, world = shard
    return batch if world == 1 else batch[rank::world]


def all_reduce_sum(tensor: Tensor, context: DistContext) -> Tensor:
    """Sum over ranks in place (no-op with one process); returns ``tensor``."""
    if context.enabled:
        dist.all_reduce(tensor)
    return tensor


def average_gradients(params: list[nn.Parameter], world: int) -> None:
    """Replace every ``.grad`` of ``params`` by its mean over ranks (one coalesced all-reduce)."""
    if world <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return

    def mean(flat: Tensor) -> None:
        dist.all_reduce(flat)
        flat /= world

    _coalesced(grads, mean)


def _coalesced(tensors: list[Tensor], collective: Callable[[Tensor], None]) -> None:
    """Run ``collective`` (in place) once on ``tensors`` flattened into one (same dtype), then
    write its result back into each tensor."""
    flat = torch.cat([t.reshape(-1) for t in tensors])
    collective(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


SHARED_MARKER = ".ratt-shared-check"


def check_shared_directory(directory: str | Path, context: DistContext) -> None:
    """Every rank sees the run directory rank 0 writes (storage all nodes share).

    Rank 0 writes a marker file holding a random token into ``directory``, every rank reads
    it back, the failures are summed over ranks, and rank 0 removes the marker. Collective:
    call it on every rank (a no-op in one process).

    Raises:
        UserError: on every rank, when some rank cannot read rank 0's token (naming how many).
    """
    if not context.enabled:
        return
    from ratt.core.files import write_text

    marker = Path(directory) / SHARED_MARKER
    token = secrets.token_hex(16) if context.is_main else None
    if context.is_main:
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_text(marker, token)
    token = broadcast_object(token, context)
    try:
        seen = marker.read_text() == token
    except OSError:
        seen = False
    missing = all_reduce_sum(torch.tensor([0.0 if seen else 1.0]), context)
    if context.is_main:
        marker.unlink(missing_ok=True)
    if missing.item():
        raise UserError(
            f"{int(missing.item())} of {context.world} processes cannot see {Path(directory).resolve()} "
            "as rank 0 wrote it: the output path (--out) must be on storage all nodes share"
        )


def broadcast_object(obj, context: DistContext):
    """Rank 0's ``obj`` on every rank (pickled; for small things such as metrics)."""
    if not context.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over ranks: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training-mode statistics are those of the global batch (any backend).

    torch's ``nn.SyncBatchNorm`` only runs on CUDA; this one all-reduces the per-channel
    sum, sum of squares and count (accumulated in float64) with a differentiable all-reduce,
    so the gradient also sees the global statistics. Running statistics use the unbiased
    global variance, as BatchNorm does. Without a process group, or in eval mode, it is an
    ordinary BatchNorm. Same state-dict keys as ``nn.BatchNorm*d``.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        wide = x.double()
        local = torch.cat(
            [
                wide.sum(dims),
                wide.square().sum(dims),
                torch.full((1,), x.numel() / channels, dtype=torch.float64, device=x.device),
            ]
        )
        stats = _AllReduceSum.apply(local)
        count = stats[-1]
        mean = stats[:channels] / count
        var = (stats[channels : 2 * channels] / count - mean.square()).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (count / (count - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype), alpha=momentum)
        shape = [1, channels] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps).to(x.dtype)
        out = (x - mean.to(x.dtype).view(shape)) * scale.view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm by a synchronized one: ``nn.SyncBatchNorm`` on CUDA, else
    :class:`GlobalBatchNorm`. Parameters and buffers are kept (same state-dict keys)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert(model)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out
