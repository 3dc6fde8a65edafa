"""Optimizers over the seed's parameter groups: weight decay on conv/dense weights, none on BN and biases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def param_groups(network: Any, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights (conv, binary conv, dense) and undecayed BN parameters and biases."""
    decay, no_decay = [], []
    for param in network.trainable_params():
        is_weight = param.name.endswith(".weight") and len(param.shape) > 1
        (decay if is_weight else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def learning_rate(lr: float, schedule: np.ndarray | None) -> Any:
    """A constant float, or the per-step schedule as a 1-D Tensor the optimizer indexes by global step."""
    if schedule is None:
        return float(lr)
    import mindspore as ms

    return ms.Tensor(np.asarray(schedule, dtype=np.float32))


def adam(
    network: Any,
    *,
    lr: float,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    schedule: np.ndarray | None = None,
) -> Any:
    """Adam (the seed's optimizer); `schedule`, when given, replaces the constant `lr` per step."""
    from mindspore import nn

    beta1, beta2 = (float(b) for b in betas)
    return nn.Adam(
        param_groups(network, weight_decay),
        learning_rate=learning_rate(lr, schedule),
        beta1=beta1,
        beta2=beta2,
        eps=float(eps),
    )
