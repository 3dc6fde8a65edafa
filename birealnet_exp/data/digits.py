"""The embedded default dataset: scikit-learn's 1,797 real 8x8 handwritten digits as RGB images."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from birealnet_exp.data.loader import DataSplit, batch_split
from birealnet_exp.data.transforms import small_image_transforms
from birealnet_exp.engine.distributed import Dist
from birealnet_exp.errors import UsageError

SPLIT_SEED = 1797  # the split is fixed: it does not move with `seed`


@lru_cache(maxsize=4)
def digits_arrays(image_size: int, val_size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Images (N, S, S, 3) uint8 and labels (N,) int32 per split; a fixed stratified split."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    grey = np.clip(digits.images / 16.0 * 255.0, 0, 255).astype(np.uint8)  # values are 0..16
    resized = np.stack(
        [np.asarray(Image.fromarray(img).resize((image_size, image_size), Image.BILINEAR)) for img in grey]
    )
    images = np.repeat(resized[..., None], 3, axis=-1)
    labels = digits.target.astype(np.int32)
    idx_train, idx_val = train_test_split(
        np.arange(len(labels)), test_size=val_size, random_state=SPLIT_SEED, stratify=labels
    )
    return {"train": (images[idx_train], labels[idx_train]), "val": (images[idx_val], labels[idx_val])}


def create_digits(
    *,
    split: str,
    batch_size: int,
    augment: Any,
    dist: Dist = Dist(),
    seed: int = 0,
    num_classes: int = 10,
    image_size: int = 32,
    val_size: int = 297,
    num_parallel_workers: int = 2,
) -> DataSplit:
    """The digits split as a batched pipeline; train is shuffled and sharded by rank."""
    import mindspore.dataset as ds

    if num_classes != 10:
        raise UsageError(f"dataset=digits has 10 classes, got dataset.num_classes={num_classes}")
    arrays = digits_arrays(image_size, val_size)
    images, labels = arrays[split]
    train = split == "train"
    train_images = arrays["train"][0]  # normalise both splits by the train statistics
    mean, std = [float(train_images.mean())] * 3, [float(train_images.std())] * 3
    ds.config.set_seed(seed)
    shards = {"num_shards": dist.group_size, "shard_id": dist.rank} if train and dist.distributed else {}
    dataset = ds.NumpySlicesDataset(
        {"image": images, "label": labels}, shuffle=train, num_parallel_workers=1, **shards
    )
    num_samples = dataset.get_dataset_size()
    transforms = small_image_transforms(
        split=split, image_size=image_size, augment=augment, mean=mean, std=std
    )
    return batch_split(
        dataset,
        split=split,
        transforms=transforms,
        num_samples=num_samples,
        batch_size=batch_size,
        num_classes=num_classes,
        num_parallel_workers=num_parallel_workers,
        augment=augment,
        seed=seed + dist.rank,
    )
