"""Per-step learning-rate schedules: one value per training step, at fractional epoch e = epoch + i/steps."""

from __future__ import annotations

import numpy as np

from birealnet_exp.errors import UsageError


def fractional_epochs(epochs: int, steps_per_epoch: int) -> np.ndarray:
    """e = epoch + i / steps_per_epoch for every step of the run."""
    if epochs < 1 or steps_per_epoch < 1:
        raise UsageError(f"need epochs >= 1 and steps_per_epoch >= 1, got {epochs} and {steps_per_epoch}")
    return np.arange(epochs * steps_per_epoch, dtype=np.float64) / steps_per_epoch


def linear(*, base_lr: float, epochs: int, steps_per_epoch: int, min_lr: float = 1e-6) -> np.ndarray:
    """The seed's `linear_lr` (the authors' LambdaLR): base_lr * (1 - e / epochs), floored at min_lr."""
    e = fractional_epochs(epochs, steps_per_epoch)
    return np.maximum(base_lr * (1.0 - e / epochs), min_lr).astype(np.float32)
