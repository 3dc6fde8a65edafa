"""The training loop: epochs of TrainStep calls, evaluation after each epoch, callbacks for the run folder."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from birealnet_exp.data.loader import DataSplit
from birealnet_exp.engine.callbacks import Callback
from birealnet_exp.engine.distributed import Dist

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


class Trainer:
    """Fits a network with a compiled train step and evaluates top-1/top-5 after every epoch."""

    def __init__(
        self,
        network: Any,
        loss_fn: Any,
        optimizer: Any,
        lr_schedule: np.ndarray,
        *,
        epochs: int,
        dist: Dist = Dist(),
        clip_grad_norm: float | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        from birealnet_exp.engine.train_step import EvalStep, TrainStep

        self.network = network
        self.optimizer = optimizer
        self.lr_schedule = np.asarray(lr_schedule)
        self.epochs = int(epochs)
        self.dist = dist
        self.callbacks = list(callbacks)
        self.train_step = TrainStep(
            network, loss_fn, optimizer, clip_grad_norm, reduce_grads=dist.distributed
        )
        self.eval_step = EvalStep(network, loss_fn)
        self.steps_per_epoch = 0
        self.start_epoch = 0
        self.best_val_top1 = -1.0
        self.best_epoch = -1

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def evaluate(self, val: DataSplit) -> dict:
        """Mean loss, top-1 and top-5 over every sample of `val`."""
        return evaluate(self.eval_step, val)

    def fit(self, train: DataSplit, val: DataSplit) -> dict:
        """Train for the remaining epochs; return the summary (best/final top-1, wall time, ...)."""
        self.steps_per_epoch = train.steps_per_epoch
        expected = self.epochs * self.steps_per_epoch
        if len(self.lr_schedule) != expected:
            raise ValueError(f"the LR schedule has {len(self.lr_schedule)} steps, the run needs {expected}")
        wall_start = time.perf_counter()
        self._call("on_fit_start")
        iterator = train.dataset.create_tuple_iterator(num_epochs=self.epochs - self.start_epoch)
        record: dict = {}
        for epoch in range(self.start_epoch, self.epochs):
            self._call("on_epoch_start", epoch)
            self.network.set_train(True)
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
                raise FloatingPointError(
                    f"the train loss became {losses[-1]} in epoch {epoch + 1}: lower optimizer.lr"
                )
            metrics = self.evaluate(val)
            record = {
                "epoch": epoch + 1,
                "step": (epoch + 1) * self.steps_per_epoch,
                "lr": float(self.lr_schedule[(epoch + 1) * self.steps_per_epoch - 1]),
                "train_loss": float(np.mean(losses)),
                **metrics,
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
            "steps": self.epochs * self.steps_per_epoch,
            "wall_s": time.perf_counter() - wall_start,
            "num_params": int(sum(int(np.prod(p.shape)) for p in self.network.get_parameters())),
            "world_size": self.dist.group_size,
        }
        self._call("on_fit_end", summary)
        return summary
