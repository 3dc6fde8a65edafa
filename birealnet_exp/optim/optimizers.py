"""Optimizers over the seed's parameter groups: weight decay on conv/dense weights, none on BN and biases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from birealnet_exp.errors import UsageError


def param_groups(network: Any, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights (conv, binary conv, dense) and undecayed BN parameters and biases."""
    if float(weight_decay) < 0:
        raise UsageError(f"optimizer.weight_decay must be >= 0, got {weight_decay}")
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
    if float(lr) <= 0:
        raise UsageError(f"optimizer.lr must be > 0, got {lr}")
    if schedule is None:
        return float(lr)
    import mindspore as ms

    return ms.Tensor(np.asarray(schedule, dtype=np.float32))


def _betas(betas: Sequence[float]) -> tuple[float, float]:
    if len(betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
        raise UsageError(f"optimizer.betas must be two values in [0, 1), got {list(betas)}")
    return float(betas[0]), float(betas[1])


def adam(
    network: Any,
    *,
    lr: float,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    schedule: np.ndarray | None = None,
) -> Any:
    """Adam (the seed's optimizer; weight decay is L2 added to the gradient); `schedule` sets lr per step."""
    from mindspore import nn

    beta1, beta2 = _betas(betas)
    return nn.Adam(
        param_groups(network, weight_decay),
        learning_rate=learning_rate(lr, schedule),
        beta1=beta1,
        beta2=beta2,
        eps=float(eps),
    )


def adamw(
    network: Any,
    *,
    lr: float,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    schedule: np.ndarray | None = None,
) -> Any:
    """AdamW as MindSpore's AdamWeightDecay: decoupled decay, w -= lr (m / (sqrt(v) + eps) + wd w).

    Unlike PyTorch's AdamW it has no bias correction of m and v (the BERT optimizer).
    """
    from mindspore import nn

    beta1, beta2 = _betas(betas)
    return nn.AdamWeightDecay(
        param_groups(network, weight_decay),
        learning_rate=learning_rate(lr, schedule),
        beta1=beta1,
        beta2=beta2,
        eps=float(eps),
    )


def _check_momentum(momentum: float, nesterov: bool) -> None:
    if not 0.0 <= float(momentum) < 1.0:
        raise UsageError(f"optimizer.momentum must be in [0, 1), got {momentum}")
    if nesterov and float(momentum) == 0.0:
        raise UsageError("optimizer.nesterov=true needs optimizer.momentum > 0")


def momentum(
    network: Any,
    *,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    schedule: np.ndarray | None = None,
) -> Any:
    """SGD with momentum (MindSpore's Momentum: v = m v + g; w -= lr v); Nesterov: w -= lr (g + m v)."""
    from mindspore import nn

    _check_momentum(momentum, nesterov)
    if nesterov:
        # MindSpore 2.10's CPU Momentum kernel ignores use_nesterov (tests/optim measures it); SGD's is right
        return sgd(
            network, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay, schedule=schedule
        )
    return nn.Momentum(
        param_groups(network, weight_decay),
        learning_rate=learning_rate(lr, schedule),
        momentum=float(momentum),
    )


def sgd(
    network: Any,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    schedule: np.ndarray | None = None,
) -> Any:
    """Plain SGD (PyTorch semantics, optional momentum with dampening and Nesterov)."""
    from mindspore import nn

    _check_momentum(momentum, nesterov)
    return nn.SGD(
        param_groups(network, weight_decay),
        learning_rate=learning_rate(lr, schedule),
        momentum=float(momentum),
        dampening=float(dampening),
        nesterov=bool(nesterov),
    )
