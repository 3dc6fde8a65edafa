"""What every dataset factory returns: a batched `mindspore.dataset` pipeline and its sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from birealnet_exp.errors import UsageError

SPLITS = ("train", "val")


@dataclass
class DataSplit:
    """One split, batched: yields (image float32 NCHW, label int32) tuples."""

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
) -> DataSplit:
    """Map `transforms` over the image column and batch (train drops the last partial batch)."""
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
        operations=list(transforms), input_columns="image", num_parallel_workers=num_parallel_workers
    )
    dataset = dataset.batch(batch_size, drop_remainder=train)
    steps = num_samples // batch_size if train else math.ceil(num_samples / batch_size)
    return DataSplit(dataset, split, num_samples, batch_size, steps, num_classes)
