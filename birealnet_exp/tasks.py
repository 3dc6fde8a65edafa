"""The task functions behind run.py: the one place that wires config, data, model, optimizer and engine."""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from birealnet_exp.config import Task
from birealnet_exp.data.loader import DataSplit
from birealnet_exp.engine import distributed
from birealnet_exp.engine.distributed import Dist
from birealnet_exp.errors import UsageError

log = logging.getLogger(__name__)


def main(cfg: DictConfig) -> float:
    """run.py's task function: `run`, with bad input reported as one line (exit 2) in a single run."""
    from hydra.errors import InstantiationException
    from hydra.types import RunMode

    try:
        return run(cfg)
    except (UsageError, InstantiationException) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) else error
        if not isinstance(cause, UsageError):
            raise
        log.error("%s", cause)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise cause from None  # the launcher records the failed job and the sweep goes on
        sys.exit(2)


def run(cfg: DictConfig) -> float:
    """Dispatch on `cfg.task`; returns the val top-1 the task reached."""
    return {Task.train: train, Task.eval: evaluate}[Task(cfg.task)](cfg)


def run_dir() -> Path:
    """This job's output folder (Hydra's run or sweep job folder)."""
    return Path(HydraConfig.get().runtime.output_dir)


def seed_everything(seed: int) -> None:
    """One seed for Python, numpy, MindSpore's initialisers and its dataset engine."""
    import mindspore as ms
    import mindspore.dataset as ds

    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)
    ds.config.set_seed(seed)


def build_data(cfg: DictConfig, split: str, dist: Dist) -> DataSplit:
    """The `split` pipeline of `cfg.dataset` with `cfg.augment`, sharded for `dist` (train only)."""
    factory = instantiate(cfg.dataset, _partial_=True)
    return factory(
        split=split, batch_size=cfg.train.batch_size, augment=cfg.augment, dist=dist, seed=cfg.seed
    )


def build_model(cfg: DictConfig, dist: Dist = Dist()) -> Any:
    """The network of `cfg.model` (loads `model.pretrained` when set); SyncBatchNorm on multi-card Ascend."""
    network = instantiate(cfg.model)
    if distributed.wants_sync_batchnorm(dist):
        log.info(
            "SyncBatchNorm over %d ranks: %d BatchNorm2d replaced",
            dist.group_size,
            distributed.sync_batchnorm(network),
        )
    return network


def write_model_summary(network: Any, split: DataSplit, path: Path) -> None:
    """model_summary.txt: parameters and MACs by precision for one sample of `split`'s shape."""
    from birealnet_exp.engine.callbacks import atomic_write_text
    from birealnet_exp.models.summary import model_summary

    images, _ = next(split.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    atomic_write_text(path, model_summary(network, (1, *images.shape[1:])).text + "\n")


def build_loss(cfg: DictConfig) -> Any:
    from birealnet_exp.engine.losses import create_loss

    return create_loss(cfg.augment.label_smoothing)


def train(cfg: DictConfig) -> float:
    """Train `cfg.model` on `cfg.dataset`; the run folder gets metrics, curves, summary and checkpoints."""
    from birealnet_exp.engine.callbacks import Checkpointer, ProgressBar, RunFolder
    from birealnet_exp.engine.trainer import Trainer

    out = run_dir()
    dist = distributed.setup(cfg.hardware)
    seed_everything(cfg.seed)
    train_split, val_split = build_data(cfg, "train", dist), build_data(cfg, "val", dist)
    network = build_model(cfg, dist)
    schedule = instantiate(
        cfg.schedule,
        base_lr=cfg.optimizer.lr,
        epochs=cfg.train.epochs,
        steps_per_epoch=train_split.steps_per_epoch,
    )
    optimizer = instantiate(cfg.optimizer, _partial_=True)(network, schedule=schedule)
    callbacks = [ProgressBar(cfg.train.log_every)]
    if dist.is_main:
        callbacks += [RunFolder(out), Checkpointer(out)]
    trainer = Trainer(
        network,
        build_loss(cfg),
        optimizer,
        schedule,
        epochs=cfg.train.epochs,
        dist=dist,
        clip_grad_norm=cfg.train.clip_grad_norm,
        callbacks=callbacks,
    )
    log.info(
        "training %s on %s: %d train / %d val samples, %d steps per epoch, %d epochs; run folder %s",
        cfg.model._target_.rsplit(".", 1)[-1],
        cfg.dataset._target_.rsplit(".", 1)[-1],
        train_split.num_samples,
        val_split.num_samples,
        train_split.steps_per_epoch,
        cfg.train.epochs,
        out,
    )
    if dist.is_main:
        write_model_summary(network, train_split, out / "model_summary.txt")
    summary = trainer.fit(train_split, val_split)
    if dist.distributed:  # equal on every rank when the gradients were averaged
        log.info(
            "rank %d of %d: weights digest %s",
            dist.rank,
            dist.group_size,
            distributed.weights_digest(network),
        )
    log.info(
        "best val_top1 %.4f at epoch %d (final %.4f) in %.0fs",
        summary["best_val_top1"],
        summary["best_epoch"],
        summary["final_val_top1"],
        summary["wall_s"],
    )
    return float(summary["best_val_top1"])


def evaluate(cfg: DictConfig) -> float:
    """Top-1/top-5/loss of `model.pretrained` on the val split, written to eval.json in the run folder."""
    from birealnet_exp.engine.callbacks import atomic_write_text
    from birealnet_exp.engine.train_step import EvalStep
    from birealnet_exp.engine.trainer import evaluate as evaluate_split

    if not cfg.model.pretrained:
        raise UsageError("task=eval needs a checkpoint: pass model.pretrained=<path to a .ckpt>")
    dist = distributed.setup(cfg.hardware)
    seed_everything(cfg.seed)
    metrics = evaluate_split(EvalStep(build_model(cfg, dist), build_loss(cfg)), build_data(cfg, "val", dist))
    metrics["checkpoint"] = str(cfg.model.pretrained)
    log.info(
        "eval of %s: val_top1 %.4f  val_top5 %.4f  val_loss %.4f",
        metrics["checkpoint"],
        metrics["val_top1"],
        metrics["val_top5"],
        metrics["val_loss"],
    )
    if dist.is_main:
        atomic_write_text(run_dir() / "eval.json", json.dumps(metrics, indent=2) + "\n")
    return float(metrics["val_top1"])
