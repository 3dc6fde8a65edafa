"""Random erasing of normalized CHW images, timm's semantics (Zhong et al. 2017), on a batch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from birealnet_exp.errors import UsageError

RE_MODES = ("const", "rand", "pixel")


class RandomErasing:
    """With probability `prob` per image, erase 1..`max_count` boxes (together 2%-33% of the area).

    mode: const (zeros, the normalized mean), rand (one normal-random colour per box),
    pixel (normal-random values per pixel). Box aspect ratios are log-uniform in (0.3, 1/0.3).
    """

    def __init__(
        self, prob: float, mode: str = "pixel", max_count: int = 1, seed: int = 0, attempts: int = 10
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise UsageError(f"augment.re_prob must be in [0, 1], got {prob}")
        if mode not in RE_MODES:
            raise UsageError(f"augment.re_mode must be one of {'|'.join(RE_MODES)}, got {mode!r}")
        if int(max_count) < 1:
            raise UsageError(f"augment.re_count must be >= 1, got {max_count}")
        self.prob, self.mode, self.max_count, self.attempts = float(prob), mode, int(max_count), attempts
        self.min_area, self.max_area = 0.02, 1.0 / 3.0
        self.log_ratio = (math.log(0.3), math.log(1.0 / 0.3))
        self.rng = np.random.default_rng(seed)

    def _fill(self, shape: tuple[int, int, int]) -> np.ndarray:
        if self.mode == "pixel":
            return self.rng.standard_normal(shape, dtype=np.float32)
        if self.mode == "rand":
            return self.rng.standard_normal((shape[0], 1, 1), dtype=np.float32)
        return np.zeros((shape[0], 1, 1), dtype=np.float32)

    def erase(self, image: np.ndarray) -> None:
        """Erase boxes of one CHW image in place (or leave it, with probability 1 - prob)."""
        rng = self.rng
        if rng.random() >= self.prob:
            return
        chans, height, width = image.shape
        count = int(rng.integers(1, self.max_count + 1))
        for _ in range(count):
            for _ in range(self.attempts):
                area = rng.uniform(self.min_area, self.max_area) * height * width / count
                aspect = math.exp(rng.uniform(*self.log_ratio))
                h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
                if 0 < h < height and 0 < w < width:
                    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
                    image[:, top : top + h, left : left + w] = self._fill((chans, h, w))
                    break

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """A batch (N, C, H, W) float32 with boxes erased per image."""
        images = np.array(images, dtype=np.float32)
        for image in images:
            self.erase(image)
        return images


def create_erasing(augment: Any, seed: int = 0) -> RandomErasing | None:
    """The `RandomErasing` of an `augment` node, or None when `augment.re_prob` is 0."""
    erasing = RandomErasing(
        float(augment.get("re_prob", 0.0) or 0.0),
        str(augment.get("re_mode", "pixel")),
        int(augment.get("re_count", 1)),
        seed=seed,
    )
    return erasing if erasing.prob > 0 else None
