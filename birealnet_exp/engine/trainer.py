"""The training loop: epochs of TrainStep calls, evaluation after each epoch, callbacks for the run folder."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from birealnet_exp.data.loader import DataSplit
from birealnet_exp.engine.callbacks import Callback
from birealnet_exp.engine.distributed import Dist
from birealnet_exp.errors import UsageError

log = logging.getLogger(__name__)


def topk_correct(logits: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> list[int]:
    """How many rows have their label among the k largest logits, for each k."""
    order = np.argsort(-logits, axis=1)
    hits = order == labels.reshape(-1, 1)
    return [int(hits[:, : min(k, logits.shape[1])].any(axis=1).sum()) for k in ks]


def evaluate(eval_step: Any, val: DataSplit) -> dict:
    """val_loss, val_top1, val_top5 of `eval_step` (an EvalStep) over every sample of `val`."""
    eval_step.set_train(False)
    correct1 = correct5 = seen = 0
    loss_sum = 0.0
    for images, labels in val.dataset.create_tuple_iterator(num_epochs=1):
        logits, loss = eval_step(images, labels)
        labels_np = labels.asnumpy()
        c1, c5 = topk_correct(logits.asnumpy(), labels_np)
        correct1, correct5, seen = correct1 + c1, correct5 + c5, seen + len(labels_np)
        loss_sum += float(loss.asnumpy()) * len(labels_np)
    if seen == 0:
        raise RuntimeError("the val split yielded no samples: check dataset.root and its val folder")
    return {"val_loss": loss_sum / seen, "val_top1": correct1 / seen, "val_top5": correct5 / seen}


def epoch_seed(seed: int, epoch: int) -> int:
    """The dataset engine's seed for one epoch: shuffle and augmentation depend on (seed, epoch) only,
    so a resumed run reads its remaining epochs exactly as an uninterrupted one does."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0] % (2**31 - 1))


class Trainer:
    """Fits the network of a TrainStep over the epochs its per-step LR schedule spans; evaluates top-1/top-5
    after every epoch; callbacks write the run folder. `restore` continues from a last.ckpt."""

    def __init__(
        self,
        train_step: Any,
        lr_schedule: np.ndarray,
        *,
        epochs: int,
        dist: Dist = Dist(),
        callbacks: Sequence[Callback] = (),
        data_seed: int = 0,
    ) -> None:
        from birealnet_exp.engine.train_step import EvalStep

        self.train_step = train_step
        self.network = train_step.network
        self.optimizer = train_step.optimizer
        self.lr_schedule = np.asarray(lr_schedule)
        self.epochs = int(epochs)
        self.dist = dist
        self.callbacks = list(callbacks)
        self.data_seed = int(data_seed)
        self.eval_step = EvalStep(self.network, train_step.loss_fn)
        self.steps_per_epoch = 0
        self.start_epoch = 0
        self.best_val_top1 = -1.0
        self.best_epoch = -1

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def position(self, epoch: int) -> dict:
        """What a checkpoint carries besides parameters: epochs done, global step, best so far."""
        return {
            "epoch": int(epoch),
            "step": int(epoch) * self.steps_per_epoch,
            "best_val_top1": repr(float(self.best_val_top1)),  # a string: exact, not float32
            "best_epoch": int(self.best_epoch),
        }

    def restore(self, path: str | Path, steps_per_epoch: int) -> int:
        """Load network, optimizer state, loss scale and position from a last.ckpt; return its epoch."""
        import mindspore as ms

        from birealnet_exp.models.checkpoints import read_checkpoint

        path = str(path)
        state = read_checkpoint(path)
        missing_position = {"epoch", "step", "best_val_top1", "best_epoch", "global_step"} - set(state)
        if missing_position:
            raise UsageError(
                f"{path} is not a resumable checkpoint (no {', '.join(sorted(missing_position))}): resume "
                f"from a run's checkpoints/last.ckpt, or load weights only with model.pretrained={path}"
            )
        epoch, step = int(state.pop("epoch").asnumpy()), int(state.pop("step").asnumpy())
        best_val_top1, best_epoch = float(state.pop("best_val_top1")), int(state.pop("best_epoch").asnumpy())
        state.pop("learning_rate", None)  # the schedule comes from this run's config
        if step != epoch * steps_per_epoch or epoch > self.epochs:
            raise UsageError(
                f"{path} stopped at epoch {epoch}, step {step}; this run has {steps_per_epoch} steps per "
                f"epoch and {self.epochs} epochs: resume with the run's own dataset, batch size and epochs"
            )
        expected = {p.name: tuple(p.shape) for p in self.train_step.get_parameters()}
        expected.pop("learning_rate", None)
        absent = sorted(set(expected) - set(state))
        mismatched = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
        if absent or mismatched:
            first = (absent or mismatched)[0]
            raise UsageError(
                f"{path} does not fit this run's model and optimizer ({len(absent)} entries missing, "
                f"{len(mismatched)} of another shape, first: {first}): resume with the run's own config"
            )
        ms.load_param_into_net(self.train_step, state, strict_load=True)
        self.start_epoch, self.best_val_top1, self.best_epoch = epoch, best_val_top1, best_epoch
        log.info(
            "resumed from %s at epoch %d (step %d), best val_top1 %.4f", path, epoch, step, best_val_top1
        )
        return epoch

    def evaluate(self, val: DataSplit) -> dict:
        """Mean loss, top-1 and top-5 over every sample of `val`."""
        return evaluate(self.eval_step, val)

    def fit(self, train: DataSplit, val: DataSplit) -> dict:
        """Train for the remaining epochs; return the summary (best/final top-1, wall time, ...)."""
        import mindspore.dataset as ds

        self.steps_per_epoch = train.steps_per_epoch
        expected = self.epochs * self.steps_per_epoch
        if len(self.lr_schedule) != expected:
            raise ValueError(f"the LR schedule has {len(self.lr_schedule)} steps, the run needs {expected}")
        wall_start = time.perf_counter()
        self._call("on_fit_start")
        record: dict = {}
        for epoch in range(self.start_epoch, self.epochs):
            self._call("on_epoch_start", epoch)
            self.network.set_train(True)
            seed = epoch_seed(self.data_seed, epoch)
            ds.config.set_seed(seed)  # read when the iterator is made: shuffle and map ops of this epoch
            np.random.seed(seed)  # and Python-side batch maps that draw from the global generators
            random.seed(seed)
            iterator = train.dataset.create_tuple_iterator(num_epochs=1)
            overflow_before = int(self.train_step.overflow_steps.asnumpy())
            epoch_start = time.perf_counter()
            losses = []
            for i, (images, labels) in enumerate(iterator):
                step_start = time.perf_counter()
                loss = float(self.train_step(images, labels).asnumpy())
                losses.append(loss)
                global_step = epoch * self.steps_per_epoch + i
                step_s = time.perf_counter() - step_start
                self._call(
                    "on_step_end",
                    global_step,
                    loss,
                    float(self.lr_schedule[global_step]),
                    train.batch_size / max(step_s, 1e-9),
                )
            train_s = time.perf_counter() - epoch_start
            if not np.all(np.isfinite(losses)):
                raise UsageError(  # one line, and last.ckpt still holds the previous epoch
                    f"the train loss became {losses[-1]} in epoch {epoch + 1}: lower optimizer.lr"
                )
            metrics = self.evaluate(val)
            record = {
                "epoch": epoch + 1,
                "step": (epoch + 1) * self.steps_per_epoch,
                "lr": float(self.lr_schedule[(epoch + 1) * self.steps_per_epoch - 1]),
                "train_loss": float(np.mean(losses)),
                **metrics,
                "overflow_steps": int(self.train_step.overflow_steps.asnumpy()) - overflow_before,
                "loss_scale": float(self.train_step.scale_sense.asnumpy()),
                "epoch_time_s": time.perf_counter() - epoch_start,
                "train_img_per_s": len(losses) * train.batch_size * self.dist.group_size / train_s,
            }
            if record["val_top1"] > self.best_val_top1:
                self.best_val_top1, self.best_epoch = record["val_top1"], record["epoch"]
            shown = (
                "train_loss",
                "val_loss",
                "val_top1",
                "val_top5",
                "lr",
                "overflow_steps",
                "epoch_time_s",
                "train_img_per_s",
            )
            log.info(
                "epoch %d/%d  %s",
                record["epoch"],
                self.epochs,
                "  ".join(f"{k} {record[k]:.4g}" for k in shown),
            )
            self._call("on_epoch_end", record)
        summary = {
            "best_val_top1": self.best_val_top1,
            "best_epoch": self.best_epoch,
            "final_val_top1": record.get("val_top1"),
            "final_val_top5": record.get("val_top5"),
            "epochs": self.epochs,
            "resumed_from_epoch": self.start_epoch,
            "steps": self.epochs * self.steps_per_epoch,
            "wall_s": time.perf_counter() - wall_start,
            "num_params": int(sum(int(np.prod(p.shape)) for p in self.network.get_parameters())),
            "world_size": self.dist.group_size,
        }
        self._call("on_fit_end", summary)
        return summary
