"""Per-step learning-rate schedules: one value per training step, at fractional epoch e = epoch + i/steps.

Every schedule shares the seed's frame: linear warmup from `warmup_lr` for `warmup_epochs`, its own shape
for the `epochs` after, values clipped to [min_lr, max], then `cooldown_epochs` at `min_lr`. The run lasts
epochs + cooldown_epochs (the seed's and timm's convention); `len(schedule) // steps_per_epoch` says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from birealnet_exp.errors import UsageError


def fractional_epochs(epochs: int, steps_per_epoch: int) -> np.ndarray:
    """e = epoch + i / steps_per_epoch for every step of the run."""
    if epochs < 1 or steps_per_epoch < 1:
        raise UsageError(f"need epochs >= 1 and steps_per_epoch >= 1, got {epochs} and {steps_per_epoch}")
    return np.arange(epochs * steps_per_epoch, dtype=np.float64) / steps_per_epoch


def _frame(
    shape: Callable[[np.ndarray], np.ndarray],
    *,
    base_lr: float,
    epochs: int,
    steps_per_epoch: int,
    min_lr: float,
    warmup_epochs: float,
    warmup_lr: float,
    cooldown_epochs: int,
) -> np.ndarray:
    """Warmup, then `shape(e)`, clipped to [min_lr, max]; then the cooldown at min_lr. float32."""
    if base_lr <= 0 or min_lr < 0 or warmup_lr < 0:
        raise UsageError(
            f"need optimizer.lr > 0 and schedule.min_lr, schedule.warmup_lr >= 0; got {base_lr}, {min_lr}, "
            f"{warmup_lr}"
        )
    if not 0 <= warmup_epochs < epochs:
        raise UsageError(
            f"schedule.warmup_epochs={warmup_epochs} must be in [0, train.epochs={epochs}): lower it"
        )
    if cooldown_epochs < 0:
        raise UsageError(f"schedule.cooldown_epochs must be >= 0, got {cooldown_epochs}")
    e = fractional_epochs(epochs, steps_per_epoch)
    lrs = shape(e)
    if warmup_epochs > 0:
        warm = e < warmup_epochs
        lrs = np.where(warm, warmup_lr + e / warmup_epochs * (base_lr - warmup_lr), lrs)
    lrs = np.clip(lrs, min_lr, max(float(lrs.max()), min_lr))
    cooldown = np.full(int(cooldown_epochs) * steps_per_epoch, min_lr)
    return np.concatenate([lrs, cooldown]).astype(np.float32)


def linear(
    *,
    base_lr: float,
    epochs: int,
    steps_per_epoch: int,
    min_lr: float = 1e-6,
    warmup_epochs: float = 0,
    warmup_lr: float = 1e-5,
    cooldown_epochs: int = 0,
) -> np.ndarray:
    """The seed's `linear_lr` (the authors' LambdaLR): base_lr * (1 - e / epochs), floored at min_lr."""
    return _frame(
        lambda e: base_lr * (1.0 - e / epochs),
        base_lr=base_lr,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        min_lr=min_lr,
        warmup_epochs=warmup_epochs,
        warmup_lr=warmup_lr,
        cooldown_epochs=cooldown_epochs,
    )


def cosine(
    *,
    base_lr: float,
    epochs: int,
    steps_per_epoch: int,
    min_lr: float = 1e-6,
    warmup_epochs: float = 0,
    warmup_lr: float = 1e-5,
    cooldown_epochs: int = 0,
) -> np.ndarray:
    """The seed's cosine: 0.5 (1 + cos(pi (e - w) / (epochs - w))) * base_lr + min_lr after warmup w."""
    w = warmup_epochs
    return _frame(
        lambda e: 0.5 * (1.0 + np.cos(np.pi * (e - w) / (epochs - w))) * base_lr + min_lr,
        base_lr=base_lr,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        min_lr=min_lr,
        warmup_epochs=warmup_epochs,
        warmup_lr=warmup_lr,
        cooldown_epochs=cooldown_epochs,
    )


def constant(
    *,
    base_lr: float,
    epochs: int,
    steps_per_epoch: int,
    min_lr: float = 0.0,
    warmup_epochs: float = 0,
    warmup_lr: float = 1e-5,
    cooldown_epochs: int = 0,
) -> np.ndarray:
    """base_lr throughout (after the warmup, if any)."""
    return _frame(
        lambda e: np.full_like(e, base_lr),
        base_lr=base_lr,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        min_lr=min_lr,
        warmup_epochs=warmup_epochs,
        warmup_lr=warmup_lr,
        cooldown_epochs=cooldown_epochs,
    )


def exp(
    *,
    base_lr: float,
    epochs: int,
    steps_per_epoch: int,
    gamma: float = 0.97,
    min_lr: float = 1e-6,
    warmup_epochs: float = 0,
    warmup_lr: float = 1e-5,
    cooldown_epochs: int = 0,
) -> np.ndarray:
    """The seed's exponential decay: base_lr * gamma^e + min_lr (gamma is the seed's lr_gamma)."""
    if not 0 < gamma <= 1:
        raise UsageError(f"schedule.gamma must be in (0, 1], got {gamma}")
    return _frame(
        lambda e: base_lr * gamma**e + min_lr,
        base_lr=base_lr,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        min_lr=min_lr,
        warmup_epochs=warmup_epochs,
        warmup_lr=warmup_lr,
        cooldown_epochs=cooldown_epochs,
    )


def multistep(
    *,
    base_lr: float,
    epochs: int,
    steps_per_epoch: int,
    gamma: float = 0.1,
    step_epochs: int = 30,
    min_lr: float = 0.0,
    warmup_epochs: float = 0,
    warmup_lr: float = 1e-5,
    cooldown_epochs: int = 0,
) -> np.ndarray:
    """Step decay: base_lr * gamma^floor(e / step_epochs) (the seed's lr_gamma and lr_adjust)."""
    if not 0 < gamma <= 1 or step_epochs < 1:
        raise UsageError(
            f"need schedule.gamma in (0, 1] and schedule.step_epochs >= 1, got {gamma}, {step_epochs}"
        )
    return _frame(
        lambda e: base_lr * gamma ** np.floor(e / step_epochs),
        base_lr=base_lr,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        min_lr=min_lr,
        warmup_epochs=warmup_epochs,
        warmup_lr=warmup_lr,
        cooldown_epochs=cooldown_epochs,
    )


def plot_schedule(lrs: np.ndarray, steps_per_epoch: int, path: Path) -> None:
    """The LR of every step against fractional epoch, written atomically as a PNG."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(np.arange(len(lrs)) / steps_per_epoch, lrs)
    ax.set(xlabel="epoch", ylabel="lr", title=f"learning rate per step ({len(lrs)} steps)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
