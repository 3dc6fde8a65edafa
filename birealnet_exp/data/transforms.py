"""Image transforms built from the `augment` config node, as `mindspore.dataset.vision` C++ ops."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def small_image_transforms(
    *, split: str, image_size: int, augment: Any, mean: Sequence[float], std: Sequence[float]
) -> list:
    """Transforms for small HWC uint8 images already at `image_size`: padded random crop, flip, normalize."""
    import mindspore.dataset.vision as vision

    ops: list = []
    if split == "train":
        padding = int(augment.get("crop_padding", 0) or 0)
        if padding > 0:
            ops.append(vision.RandomCrop(image_size, padding=padding))
        hflip = float(augment.get("hflip", 0.0) or 0.0)
        if hflip > 0:
            ops.append(vision.RandomHorizontalFlip(prob=hflip))
    ops += [vision.Normalize(mean=list(mean), std=list(std)), vision.HWC2CHW()]
    return ops
