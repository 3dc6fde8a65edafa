"""Small generated ImageFolder trees of real JPEG files, photograph-like, one colour per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog", "fox")


def photo(rng: np.random.Generator, label: int, height: int, width: int) -> np.ndarray:
    """A smooth image whose colour says its class, with noise: learnable, compressible, photo-like."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.zeros((height, width, 3))
    base[..., label % 3] = 160 + 60 * np.sin(6 * xx + 3 * yy + label)
    base += rng.normal(0, 12, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def make_folder(
    root: Path,
    per_class: dict[str, int] | None = None,
    classes: tuple[str, ...] = CLASSES,
    size: tuple[int, int] = (40, 56),
    seed: int = 0,
) -> Path:
    """root/{train,val}/<class>/<i>.jpg with per_class[split] images per class (H, W = size)."""
    rng = np.random.default_rng(seed)
    per_class = per_class or {"train": 8, "val": 4}
    for split, count in per_class.items():
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(photo(rng, label, *size)).save(folder / f"{i}.jpg", quality=90)
    return root
