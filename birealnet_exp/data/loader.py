"""What every dataset factory returns: a batched `mindspore.dataset` pipeline and its sizes."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from birealnet_exp.errors import UsageError

SPLITS = ("train", "val")


@dataclass
class DataSplit:
    """One split, batched: yields (image float32 NCHW, label) tuples.

    Labels are int32 (N,), or float32 soft targets (N, num_classes) for a train split with mixup/cutmix.
    """

    dataset: Any  # mindspore.dataset.Dataset
    split: str
    num_samples: int  # samples this process reads per epoch (its shard for train)
    batch_size: int
    steps_per_epoch: int
    num_classes: int


def batch_split(
    dataset: Any,
    *,
    split: str,
    transforms: Sequence[Any],
    num_samples: int,
    batch_size: int,
    num_classes: int,
    num_parallel_workers: int,
    augment: Any = None,
    seed: int = 0,
) -> DataSplit:
    """Map `transforms` over the image column and batch (train drops the last partial batch).

    For the train split, `augment`'s batch-level steps run per batch: random erasing, then mixup/cutmix.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if batch_size < 1:
        raise UsageError(f"train.batch_size must be >= 1, got {batch_size}")
    train = split == "train"
    if train and num_samples < batch_size:
        raise UsageError(
            f"the train split has {num_samples} samples per device, fewer than train.batch_size={batch_size}:"
            " lower train.batch_size"
        )
    dataset = dataset.map(
        operations=list(transforms),
        input_columns="image",
        num_parallel_workers=clamp_workers(num_parallel_workers),
    )
    batch_map = (
        BatchAugment.create(augment, num_classes, batch_size, seed) if train and augment is not None else None
    )
    if batch_map is None:
        dataset = dataset.batch(batch_size, drop_remainder=train)
    else:
        dataset = dataset.batch(
            batch_size, drop_remainder=True, per_batch_map=batch_map, input_columns=["image", "label"]
        )
    steps = num_samples // batch_size if train else math.ceil(num_samples / batch_size)
    return DataSplit(dataset, split, num_samples, batch_size, steps, num_classes)


def clamp_workers(num_parallel_workers: int) -> int:
    """`dataset.num_parallel_workers` within what mindspore.dataset accepts here (1 .. CPU count)."""
    return max(1, min(int(num_parallel_workers), os.cpu_count() or 1))


class BatchAugment:
    """The per-batch steps of the train pipeline (random erasing, then mixup/cutmix) as a per_batch_map."""

    def __init__(self, erasing: Any, mixup: Any) -> None:
        self.erasing, self.mixup = erasing, mixup

    @classmethod
    def create(cls, augment: Any, num_classes: int, batch_size: int, seed: int = 0) -> BatchAugment | None:
        """None when `augment` has neither random erasing nor mixing on."""
        from birealnet_exp.data.erasing import create_erasing
        from birealnet_exp.data.mixing import create_mixup

        erasing, mixup = create_erasing(augment, seed), create_mixup(augment, num_classes, seed)
        if mixup is not None and batch_size % 2:
            raise UsageError(
                f"mixup/cutmix pairs sample i with N-1-i: make train.batch_size even, not {batch_size}"
            )
        return None if erasing is None and mixup is None else cls(erasing, mixup)

    def __call__(self, images: list, labels: list, _batch_info: Any) -> tuple[Any, Any]:
        batch = np.stack(images).astype(np.float32, copy=False)
        targets = np.stack(labels).astype(np.int32)
        if self.erasing is not None:
            batch = self.erasing(batch)
        if self.mixup is not None:
            batch, targets = self.mixup(batch, targets)
        return batch, targets
