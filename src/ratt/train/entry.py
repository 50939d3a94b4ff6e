"""The entry points of training: :func:`train` (a config into a directory) and
:func:`resume_run` (a directory alone, from its saved config). Both hold the directory's lock
(:mod:`ratt.core.lock`) for the whole run: a second writer gets a one-line error naming this
process; a new run that fails on a user error before any work leaves no directory behind."""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any

import torch.distributed

from ratt import config as cfg
from ratt.core.distributed import elastic_restart_count
from ratt.core.files import check_name_lengths
from ratt.errors import UserError
from ratt.runs import RunFiles, build_config
from ratt.runs.build import check_shapes
from ratt.runs.checkpoint import read_header
from ratt.train.checkpointing import run_lock
from ratt.train.resume import apply_changes, saved_config
from ratt.train.trainer import Trainer

log = logging.getLogger(__name__)


def _is_rank0() -> bool:
    """Rank 0 of a process group (or of the one torchrun is starting), or a lone process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def _check_last_matches(config: cfg.TrainConfig, out_dir: str | Path) -> None:
    """The last checkpoint's tensors have the shapes of ``config``'s model (read from the header,
    before anything is built)."""
    last = RunFiles(out_dir).weights("last")
    if last.is_file():
        check_shapes(read_header(last)[0], config, last)


def _restarted_run(out_dir: str | Path) -> bool:
    """This process is a restart by torchrun (``--max-restarts``) of the group that started the
    run in ``out_dir``: it continues that run with the same command line, as a resume (whose
    checkpoint check refuses a config that differs beyond :data:`RESUMABLE_KEYS`)."""
    files = RunFiles(out_dir)
    if elastic_restart_count() == 0 or not (files.metrics.exists() or files.weights("last").exists()):
        return False
    (log.warning if _is_rank0() else log.debug)(
        "torchrun restart %d: continuing %s from its last checkpoint", elastic_restart_count(), out_dir
    )
    return True


def _run(config: cfg.TrainConfig, out_dir: str | Path, resume: bool) -> dict[str, Any]:
    """Train (or continue) with the directory's lock already held."""
    files = RunFiles(out_dir)
    resume = resume or _restarted_run(out_dir)
    if not resume and (files.metrics.exists() or files.weights("last").exists()):
        raise UserError(
            f"{out_dir} already holds a run; continue it with: ratt train --resume "
            f"{shlex.quote(str(out_dir))} (or choose another --out)"
        )
    if resume:
        _check_last_matches(config, out_dir)
    trainer = Trainer(config, out_dir)
    try:
        if resume and trainer.checkpointer.has_checkpoint():
            trainer.resume()
        elif resume:
            trainer.checkpointer.restart()
        return trainer.train_and_test()
    finally:
        trainer.close()


def train(config: cfg.TrainConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train ``config`` into ``out_dir``.

    Under ``torchrun --max-restarts R``, a restarted group (``TORCHELASTIC_RESTART_COUNT`` > 0)
    continues the run its first attempt started in ``out_dir``, as if ``resume`` were given.

    With ``resume``, continue from its last checkpoint (``config`` may differ from the saved
    one only in :data:`ratt.train.checkpointing.RESUMABLE_KEYS`), or start it again from epoch
    0 if it has none (e.g. killed while writing its first checkpoint).

    Returns the summary: test accuracy of the best checkpoint under ``run.test_attacks``.

    Raises:
        UserError: bad config, a directory that already holds a run (without ``resume``), or
            one another process is writing.
    """
    check_name_lengths(out_dir, "--out")
    created = not Path(out_dir).exists()
    lock = run_lock(out_dir, _is_rank0()).acquire()  # a loser raises here and removes nothing
    try:
        return _run(config, out_dir, resume)
    except UserError:
        if created:  # this call made the directory and holds its lock: nobody else wrote in it
            _remove_if_untouched(out_dir)
        raise
    finally:
        lock.release()


def _remove_if_untouched(out_dir: str | Path) -> None:
    """Remove a run directory this call created if it holds nothing but the lock file (a user
    error before any work leaves no trace)."""
    files = RunFiles(out_dir)
    try:
        if [p.name for p in files.root.iterdir()] == [files.lock.name]:
            files.lock.unlink()
            files.root.rmdir()
    except OSError:
        pass


def _holds_only_the_lock(out_dir: str | Path) -> bool:
    files = RunFiles(out_dir)
    return [p.name for p in files.root.iterdir()] == [files.lock.name]


def resume_run(
    out_dir: str | Path, overrides: list[str] | None = None, *, trust_code: bool = False
) -> dict[str, Any]:
    """Continue the run in ``out_dir`` from its own saved config (``config.yaml``).

    A saved config naming a model that runs code (``file.py:fn``, ``package.module:fn``) is
    followed only with ``trust_code`` (the directory may come from anyone).

    ``overrides`` (``key=value``) are changes to that config, each logged
    (``changing optim.epochs 3 -> 10``) and allowed only for
    :data:`ratt.train.checkpointing.RESUMABLE_KEYS`. A run with no complete checkpoint starts
    again from epoch 0 with its saved config (same seed).

    Example:
        >>> summary = resume_run("runs/demo", ["epochs=10"])
    """
    check_name_lengths(out_dir, "--resume")
    if not Path(out_dir).is_dir():
        what = "is not a directory" if Path(out_dir).exists() else "does not exist"
        raise UserError(f"{out_dir} {what}: there is no run to resume (start it without --resume)")
    with run_lock(out_dir, _is_rank0()):
        if _holds_only_the_lock(out_dir):  # killed after taking the lock, before config.yaml
            log.warning(
                "%s holds no saved run (only the lock of a process killed before it wrote config.yaml): "
                "starting it as a new run with the settings given", out_dir,
            )  # fmt: skip
            return _run(build_config(None, list(overrides or [])), out_dir, resume=False)
        saved = saved_config(out_dir, trust_code=trust_code)
        config = apply_changes(saved, list(overrides or []), out_dir)
        return _run(config, out_dir, resume=True)
