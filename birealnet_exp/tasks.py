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
    tasks = {Task.train: train, Task.eval: evaluate, Task.export: export, Task.two_step: two_step}
    return tasks[Task(cfg.task)](cfg)


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


def build_model(cfg: DictConfig, dist: Dist = Dist(), num_classes: int | None = None) -> Any:
    """The network of `cfg.model` for `num_classes` (what the data found; default the config's).

    Loads `model.pretrained` when set; SyncBatchNorm on multi-card Ascend.
    """
    network = instantiate(cfg.model, **({"num_classes": num_classes} if num_classes else {}))
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


def resume_checkpoint(resume: Any, out: Path) -> Path | None:
    """`train.resume`: false -> None; true -> this run folder's last.ckpt; a path -> that file, or a run
    folder's checkpoints/last.ckpt."""
    if resume is False or resume is None or str(resume).lower() == "false":
        return None
    if resume is True or str(resume).lower() == "true":
        path = out / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise UsageError(
                f"train.resume=true but {path} does not exist: pass hydra.run.dir=<the interrupted run's "
                f"folder>, or train.resume=<path to its last.ckpt>"
            )
        return path
    path = Path(str(resume))
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise UsageError(f"train.resume={resume}: {path} does not exist; pass a last.ckpt or a run folder")
    return path


def check_amp(cfg: DictConfig) -> None:
    """Refuse AMP in graph mode on the CPU before any work: MindSpore 2.10 fails there (measured)."""
    level = str(cfg.train.amp_level).upper()
    if level != "O0" and str(cfg.hardware.mode) == "graph" and str(cfg.hardware.device_target) == "CPU":
        raise UsageError(
            f"train.amp_level={level} in graph mode fails on MindSpore 2.10's CPU backend (it mistypes the "
            f"binary-conv weight gradient): add hardware.mode=pynative, or use train.amp_level=O0"
        )


def train(cfg: DictConfig, out: Path | None = None) -> float:
    """Train `cfg.model` on `cfg.dataset`; the run folder gets metrics, curves, summary and checkpoints."""
    from birealnet_exp.engine.callbacks import Checkpointer, ProgressBar, RunFolder
    from birealnet_exp.engine.train_step import TrainStep, apply_amp
    from birealnet_exp.engine.trainer import Trainer
    from birealnet_exp.optim.schedules import plot_schedule

    out = out or run_dir()
    check_amp(cfg)
    resume = resume_checkpoint(cfg.train.resume, out)
    dist = distributed.setup(cfg.hardware)
    seed_everything(cfg.seed)
    train_split, val_split = build_data(cfg, "train", dist), build_data(cfg, "val", dist)
    network = build_model(cfg, dist, train_split.num_classes)
    steps_per_epoch = train_split.steps_per_epoch
    schedule = instantiate(
        cfg.schedule, base_lr=cfg.optimizer.lr, epochs=cfg.train.epochs, steps_per_epoch=steps_per_epoch
    )
    epochs = len(schedule) // steps_per_epoch  # train.epochs + schedule.cooldown_epochs
    optimizer = instantiate(cfg.optimizer, _partial_=True)(network, schedule=schedule)
    train_step = TrainStep(
        apply_amp(network, cfg.train.amp_level),
        build_loss(cfg),
        optimizer,
        cfg.train.clip_grad_norm,
        reduce_grads=dist.distributed,
        loss_scale=str(cfg.train.loss_scale),
        loss_scale_value=cfg.train.loss_scale_value,
        loss_scale_factor=cfg.train.loss_scale_factor,
        loss_scale_window=cfg.train.loss_scale_window,
    )
    callbacks = [ProgressBar(cfg.train.log_every)]
    if dist.is_main:
        checkpointer = Checkpointer(out, every=cfg.train.save_every, keep=cfg.train.keep_checkpoints)
        callbacks += [RunFolder(out), checkpointer]
    trainer = Trainer(train_step, schedule, epochs=epochs, dist=dist, callbacks=callbacks, data_seed=cfg.seed)
    if resume is not None:
        trainer.restore(resume, steps_per_epoch)
        copy_metrics(resume.parent.parent / "metrics.jsonl", out / "metrics.jsonl", trainer.start_epoch)
    log.info(
        "training %s on %s: %d train / %d val samples, %d steps per epoch, %d epochs; run folder %s",
        cfg.model._target_.rsplit(".", 1)[-1],
        cfg.dataset._target_.rsplit(".", 1)[-1],
        train_split.num_samples,
        val_split.num_samples,
        steps_per_epoch,
        epochs,
        out,
    )
    if dist.is_main:
        write_model_summary(network, train_split, out / "model_summary.txt")
        plot_schedule(schedule, steps_per_epoch, out / "lr_schedule.png")
    summary = trainer.fit(train_split, val_split)
    if dist.distributed:  # equal on every rank when the gradients were averaged
        log.info(
            "rank %d of %d: weights digest %s",
            dist.rank,
            dist.group_size,
            distributed.weights_digest(network),
        )
    log.info(
        "best val_top1 %.4f at epoch %d (final %s) in %.0fs",
        summary["best_val_top1"],
        summary["best_epoch"],
        summary["final_val_top1"],
        summary["wall_s"],
    )
    return float(summary["best_val_top1"])


def copy_metrics(source: Path, target: Path, upto_epoch: int) -> None:
    """A run resumed into a new folder starts its metrics.jsonl with the source run's first epochs."""
    from birealnet_exp.engine.callbacks import atomic_write_text, read_metrics

    if source.resolve() == target.resolve() or not source.is_file():
        return
    kept = [r for r in read_metrics(source) if r["epoch"] <= upto_epoch]
    atomic_write_text(target, "".join(json.dumps(r) + "\n" for r in kept))


def two_step(cfg: DictConfig) -> float:
    """ReActNet's two-step training in one command: step 1 (`two_step.step1` merged onto the config, e.g.
    binary activations, real weights), then step 2 (`two_step.step2`, e.g. both binary) initialised from
    step 1's last checkpoint; each in its own folder step1/, step2/ of this run folder."""
    from omegaconf import OmegaConf

    if not cfg.get("two_step") or "step1" not in cfg.two_step or "step2" not in cfg.two_step:
        raise UsageError("task=two_step needs two_step.step1 and two_step.step2: use experiment=two_step")
    out = run_dir()
    best = 0.0
    for index, name in enumerate(("step1", "step2")):
        step_cfg = OmegaConf.merge(cfg, cfg.two_step[name])
        OmegaConf.set_struct(step_cfg, False)
        step_cfg.task, step_cfg.two_step = "train", None
        if index == 1:
            step_cfg.model.pretrained = str(out / "step1" / "checkpoints" / "last.ckpt")
        log.info("two-step training, %s: model.binary=%s", name, step_cfg.model.binary)
        best = train(step_cfg, out / name)
    return best


def evaluate(cfg: DictConfig) -> float:
    """Top-1/top-5/loss of `model.pretrained` on the val split, written to eval.json in the run folder."""
    from birealnet_exp.engine.callbacks import atomic_write_text
    from birealnet_exp.engine.train_step import EvalStep
    from birealnet_exp.engine.trainer import evaluate as evaluate_split

    if not cfg.model.pretrained:
        raise UsageError("task=eval needs a checkpoint: pass model.pretrained=<path to a .ckpt>")
    dist = distributed.setup(cfg.hardware)
    seed_everything(cfg.seed)
    val_split = build_data(cfg, "val", dist)
    network = build_model(cfg, dist, val_split.num_classes)
    metrics = evaluate_split(EvalStep(network, build_loss(cfg)), val_split)
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


def export(cfg: DictConfig) -> float:
    """Write `model.pretrained` as `export.format` into the run folder, check a MindIR loads back to the
    same logits on real val images, and write export.json; returns the max |logit difference|."""
    from birealnet_exp.engine.callbacks import atomic_write_text
    from birealnet_exp.export.mindir import check_mindir, export_network

    if not cfg.model.pretrained:
        raise UsageError("task=export needs a checkpoint: pass model.pretrained=<path to a .ckpt>")
    if cfg.export.batch_size < 1:
        raise UsageError(f"export.batch_size must be >= 1, got {cfg.export.batch_size}")
    dist = distributed.setup(cfg.hardware)
    seed_everything(cfg.seed)
    network = build_model(cfg)
    val = build_data(cfg, "val", dist)
    images, _ = next(val.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    sample = np.ascontiguousarray(images[: cfg.export.batch_size])
    path = export_network(network, sample, run_dir() / cfg.export.file_name, cfg.export.format)
    report = {
        "format": str(cfg.export.format).lower(),
        "file": str(path),
        "bytes": path.stat().st_size,
        "input_shape": list(sample.shape),
        "checkpoint": str(cfg.model.pretrained),
        "max_abs_logit_diff": None,
    }
    if report["format"] == "mindir":
        report["max_abs_logit_diff"] = check_mindir(path, network, sample)
        log.info("MindIR %s loads back: max |logit difference| %.3g", path, report["max_abs_logit_diff"])
    log.info("exported %s (%d bytes, input %s)", path, report["bytes"], report["input_shape"])
    atomic_write_text(run_dir() / "export.json", json.dumps(report, indent=2) + "\n")
    return float(report["max_abs_logit_diff"] or 0.0)
