"""Classification losses: cross-entropy on class indices or on soft targets, with optional label smoothing."""

from __future__ import annotations

from typing import Any

from birealnet_exp.errors import UsageError


def create_loss(label_smoothing: float = 0.0) -> Any:
    """Cross-entropy; smoothing as PyTorch/timm (on = 1 - eps + eps/C, off = eps/C).

    Labels are int class indices (N,) or float soft targets (N, C) (mixup/cutmix, rows summing to 1);
    on soft targets t the loss is -sum((t (1 - eps) + eps/C) log softmax), which on mixed one-hots equals
    timm's mix of smoothed one-hots.
    """
    from mindspore import nn

    if not 0.0 <= float(label_smoothing) < 1.0:
        raise UsageError(f"augment.label_smoothing must be in [0, 1), got {label_smoothing}")
    return nn.CrossEntropyLoss(label_smoothing=float(label_smoothing))
