"""Mixup and CutMix on batches, timm's semantics: lambda ~ Beta(alpha, alpha), corrected CutMix lambda.

One class, `Mixup`, applied per batch in the pipeline (`batch(per_batch_map=...)`); it turns int labels
into float32 soft targets (N, C) that sum to 1. Label smoothing is left to the loss: smoothing is affine
and the mixing weights sum to 1, so smoothing the mixed one-hots is timm's mix of smoothed one-hots.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from birealnet_exp.errors import UsageError

MIXUP_MODES = ("batch", "pair", "elem")


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) int labels -> (N, C) float32 one-hot rows."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def cutmix_box(
    shape: tuple[int, int], lam: float, rng: np.random.Generator
) -> tuple[tuple[int, int, int, int], float]:
    """A box (y0, y1, x0, x1) of area about (1 - lam) at a random centre, and lambda corrected to 1 - area.

    The box is clipped at the image border, so the corrected lambda is the fraction of the image kept.
    """
    height, width = shape
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    corrected = 1.0 - float((y1 - y0) * (x1 - x0)) / float(height * width)
    return (int(y0), int(y1), int(x0), int(x1)), corrected


class Mixup:
    """Mixup / CutMix of a batch (N, C, H, W) with its labels, as timm's `Mixup`.

    prob: chance that a batch (mode batch) or a sample/pair (modes elem/pair) is mixed at all.
    switch_prob: when both alphas are > 0, the chance CutMix is chosen over Mixup.
    mode: batch (one lambda for the batch), pair (one per pair i, N-1-i), elem (one per sample).
    Sample i is always mixed with sample N-1-i (the batch reversed).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        mode: str = "batch",
        seed: int = 0,
    ) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise UsageError(
                f"augment.mixup and augment.cutmix must be >= 0, got {mixup_alpha}, {cutmix_alpha}"
            )
        if not 0.0 <= prob <= 1.0 or not 0.0 <= switch_prob <= 1.0:
            raise UsageError(
                f"augment.mixup_prob and augment.switch_prob must be in [0, 1], got {prob}, {switch_prob}"
            )
        if mode not in MIXUP_MODES:
            raise UsageError(f"augment.mixup_mode must be one of {'|'.join(MIXUP_MODES)}, got {mode!r}")
        self.num_classes = int(num_classes)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob, self.mode = float(prob), float(switch_prob), mode
        self.rng = np.random.default_rng(seed)
        self.last_lam: np.ndarray = np.ones(0, dtype=np.float32)  # per-sample lambdas of the last call

    @property
    def enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def _draw(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Lambdas and use-cutmix flags for `count` independent mixes (1 where a mix is not applied)."""
        rng = self.rng
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = rng.random(count) < self.switch_prob
            lam = np.where(
                use_cutmix,
                rng.beta(self.cutmix_alpha, self.cutmix_alpha, count),
                rng.beta(self.mixup_alpha, self.mixup_alpha, count),
            )
        elif self.mixup_alpha > 0:
            use_cutmix = np.zeros(count, dtype=bool)
            lam = rng.beta(self.mixup_alpha, self.mixup_alpha, count)
        else:
            use_cutmix = np.ones(count, dtype=bool)
            lam = rng.beta(self.cutmix_alpha, self.cutmix_alpha, count)
        applied = rng.random(count) < self.prob
        return np.where(applied, lam, 1.0), use_cutmix & applied

    def _mix_one(
        self, images: np.ndarray, source: np.ndarray, i: int, j: int, lam: float, cut: bool
    ) -> float:
        """Mix source[j] into images[i] in place; returns the lambda actually used."""
        if lam >= 1.0:
            return 1.0
        if cut:
            (y0, y1, x0, x1), lam = cutmix_box(images.shape[-2:], lam, self.rng)
            images[i, :, y0:y1, x0:x1] = source[j, :, y0:y1, x0:x1]
        else:
            images[i] = images[i] * lam + source[j] * (1.0 - lam)
        return float(lam)

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mixed float32 images (N, C, H, W) and soft targets (N, num_classes) that sum to 1."""
        images = np.array(images, dtype=np.float32)  # a copy: the original is the mixing source
        size = len(images)
        if size % 2:
            raise UsageError(f"mixup/cutmix needs an even train.batch_size, got {size}")
        source = images.copy()
        if self.mode == "batch":
            lam_one, cut_one = self._draw(1)
            lam, cut = float(lam_one[0]), bool(cut_one[0])
            if lam < 1.0:
                if cut:
                    (y0, y1, x0, x1), lam = cutmix_box(images.shape[-2:], lam, self.rng)
                    images[:, :, y0:y1, x0:x1] = source[::-1, :, y0:y1, x0:x1]
                else:
                    images = images * lam + source[::-1] * (1.0 - lam)
            lams = np.full(size, lam, dtype=np.float32)
        elif self.mode == "elem":
            lam_draw, cut_draw = self._draw(size)
            lams = np.array(
                [
                    self._mix_one(images, source, i, size - 1 - i, lam_draw[i], cut_draw[i])
                    for i in range(size)
                ],
                dtype=np.float32,
            )
        else:  # pair: sample i and N-1-i swap the same region / share one lambda
            lam_draw, cut_draw = self._draw(size // 2)
            half = []
            for i in range(size // 2):
                j = size - 1 - i
                lam = float(lam_draw[i])
                if lam < 1.0 and cut_draw[i]:
                    (y0, y1, x0, x1), lam = cutmix_box(images.shape[-2:], lam, self.rng)
                    images[i, :, y0:y1, x0:x1] = source[j, :, y0:y1, x0:x1]
                    images[j, :, y0:y1, x0:x1] = source[i, :, y0:y1, x0:x1]
                elif lam < 1.0:
                    images[i] = source[i] * lam + source[j] * (1.0 - lam)
                    images[j] = source[j] * lam + source[i] * (1.0 - lam)
                half.append(lam)
            lams = np.array(half + half[::-1], dtype=np.float32)
        self.last_lam = lams
        targets = one_hot(labels, self.num_classes)
        mixed = lams[:, None] * targets + (1.0 - lams[:, None]) * targets[::-1]
        return images.astype(np.float32, copy=False), mixed.astype(np.float32)


def create_mixup(augment: Any, num_classes: int, seed: int = 0) -> Mixup | None:
    """The `Mixup` of an `augment` config node, or None when neither mixup nor cutmix is on."""
    mixup = Mixup(
        num_classes=num_classes,
        mixup_alpha=float(augment.get("mixup", 0.0) or 0.0),
        cutmix_alpha=float(augment.get("cutmix", 0.0) or 0.0),
        prob=float(augment.get("mixup_prob", 1.0)),
        switch_prob=float(augment.get("switch_prob", 0.5)),
        mode=str(augment.get("mixup_mode", "batch")),
        seed=seed,
    )
    return mixup if mixup.enabled else None
