"""Image transforms built from the `augment` config node, as `mindspore.dataset.vision` C++ ops."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from birealnet_exp.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")
EVAL_RESIZE = ("shorter", "square")
AUTO_AUGMENT_POLICIES = ("imagenet", "cifar10", "svhn")
RAND_AUGMENT = re.compile(r"^rand(-[mnb]\d+)*$")  # timm-style spec: rand-m9-n2 (magnitude 9, 2 ops)


def interpolation_mode(name: str) -> Any:
    """`dataset.interpolation` as a `mindspore.dataset.vision.Inter` value."""
    import mindspore.dataset.vision as vision

    if name not in INTERPOLATIONS:
        raise UsageError(f"dataset.interpolation must be one of {'|'.join(INTERPOLATIONS)}, got {name!r}")
    return getattr(vision.Inter, name.upper())


def eval_resize_size(image_size: int, crop_pct: float) -> int:
    """The eval resize before the center crop: int(image_size / crop_pct) (224, 0.875 -> 256)."""
    if not 0.0 < float(crop_pct) <= 1.0:
        raise UsageError(f"dataset.crop_pct must be in (0, 1], got {crop_pct}")
    return int(math.floor(image_size / float(crop_pct)))


def auto_augment_op(spec: str | None, interpolation: Any) -> Any:
    """`augment.auto_augment`: null, an AutoAugment policy name, or a RandAugment spec `rand-m9-n2`."""
    import mindspore.dataset.vision as vision

    if spec in (None, "", "none", "None"):
        return None
    spec = str(spec).lower()
    if spec in AUTO_AUGMENT_POLICIES:
        policy = getattr(vision.AutoAugmentPolicy, spec.upper())
        return vision.AutoAugment(policy=policy, interpolation=interpolation)
    if RAND_AUGMENT.match(spec):
        parts = {part[0]: int(part[1:]) for part in spec.split("-")[1:]}
        bins = parts.get("b", 31)
        magnitude, num_ops = parts.get("m", 9), parts.get("n", 2)
        if not 0 <= magnitude < bins:
            raise UsageError(f"augment.auto_augment={spec}: the magnitude m must be in [0, {bins})")
        return vision.RandAugment(
            num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=bins, interpolation=interpolation
        )
    raise UsageError(
        f"augment.auto_augment={spec!r} is unknown: use null, {'|'.join(AUTO_AUGMENT_POLICIES)}"
        " (AutoAugment policies) or a RandAugment spec such as rand-m9-n2"
    )


def _pair(augment: Any, key: str, default: Sequence[float]) -> tuple[float, float] | None:
    value = augment.get(key, default)
    if value is None:
        return None
    low, high = (float(v) for v in value)
    if not 0 < low <= high:
        raise UsageError(f"augment.{key} must be [low, high] with 0 < low <= high, got {list(value)}")
    return low, high


def pixel_augment_ops(augment: Any, image_size: int, interpolation: Any) -> list:
    """The train ops on an HWC uint8 image at its final size: padded crop, flip, colour, auto-augment."""
    import mindspore.dataset.vision as vision

    ops: list = []
    padding = int(augment.get("crop_padding", 0) or 0)
    if padding > 0:
        ops.append(vision.RandomCrop(image_size, padding=padding))
    hflip = float(augment.get("hflip", 0.0) or 0.0)
    if not 0.0 <= hflip <= 1.0:
        raise UsageError(f"augment.hflip is a probability in [0, 1], got {hflip}")
    if hflip > 0:
        ops.append(vision.RandomHorizontalFlip(prob=hflip))
    jitter = augment.get("color_jitter")
    if jitter:
        strength = float(jitter)
        ops.append(vision.RandomColorAdjust(brightness=strength, contrast=strength, saturation=strength))
    auto = auto_augment_op(augment.get("auto_augment"), interpolation)
    if auto is not None:
        ops.append(auto)
    return ops


def small_image_transforms(
    *, split: str, image_size: int, augment: Any, mean: Sequence[float], std: Sequence[float]
) -> list:
    """Transforms for small HWC uint8 images already at `image_size`: padded random crop, flip, normalize."""
    import mindspore.dataset.vision as vision

    ops: list = []
    if split == "train":
        ops += pixel_augment_ops(augment, image_size, vision.Inter.BILINEAR)
    ops += [vision.Normalize(mean=list(mean), std=list(std)), vision.HWC2CHW()]
    return ops


def folder_transforms(
    *,
    split: str,
    image_size: int,
    augment: Any,
    crop_pct: float = 0.875,
    eval_resize: str = "shorter",
    interpolation: str = "bilinear",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> list:
    """Transforms from encoded image bytes (JPEG, PNG, BMP; grey/CMYK/RGBA become RGB) to CHW float32.

    train: RandomCropDecodeResize(image_size, augment.scale, augment.ratio) (decode fused with the crop),
    then the pixel augments, normalize. `augment.scale: null` trains on the eval transform.
    val: decode, resize to int(image_size / crop_pct) (the shorter side, or a `square` as the seed does),
    center crop image_size, normalize. mean/std are in [0, 1] units.
    """
    import mindspore.dataset.vision as vision

    if eval_resize not in EVAL_RESIZE:
        raise UsageError(f"dataset.eval_resize must be one of {'|'.join(EVAL_RESIZE)}, got {eval_resize!r}")
    inter = interpolation_mode(interpolation)
    resize = eval_resize_size(image_size, crop_pct)
    eval_ops = [
        vision.Decode(),
        vision.Resize(resize if eval_resize == "shorter" else (resize, resize), interpolation=inter),
        vision.CenterCrop(image_size),
    ]
    ops: list = eval_ops
    if split == "train":
        scale, ratio = _pair(augment, "scale", (0.08, 1.0)), _pair(augment, "ratio", (3 / 4, 4 / 3))
        if scale is not None:
            if scale[1] > 1.0:
                raise UsageError(f"augment.scale is a fraction of the image area, at most 1, got {scale}")
            crop = vision.RandomCropDecodeResize(
                image_size, scale=scale, ratio=ratio or (3 / 4, 4 / 3), interpolation=inter
            )
            ops = [crop]
        ops = ops + pixel_augment_ops(augment, image_size, inter)
    return ops + [
        vision.Normalize(mean=[m * 255.0 for m in mean], std=[s * 255.0 for s in std]),
        vision.HWC2CHW(),
    ]
