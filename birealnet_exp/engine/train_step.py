"""One optimisation step as a Cell (compiles whole in graph mode): AMP casts, loss scale, overflow skip,
gradient clipping by global norm, update. Its parameters (network, optimizer state, loss scale) are what
checkpoints/last.ckpt holds."""

from __future__ import annotations

from typing import Any

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from birealnet_exp.errors import UsageError

AMP_LEVELS = ("O0", "O1", "O2", "O3")
LOSS_SCALES = ("none", "fixed", "dynamic")
DYNAMIC_INIT = 2.0**24  # MindSpore's and the seed's DynamicLossScaleManager defaults
FIXED_INIT = 1024.0


def apply_amp(network: nn.Cell, level: str) -> nn.Cell:
    """Cast the network for `level` in place: O0 fp32; O1 conv/dense fp16, BN fp32; O2 all but BN fp16;
    O3 all fp16. The loss is always computed on fp32 logits (TrainStep, EvalStep)."""
    from birealnet_exp.models.binary import BinaryConv2d

    level = str(level).upper()
    if level not in AMP_LEVELS:
        raise UsageError(f"train.amp_level must be one of {', '.join(AMP_LEVELS)}, got {level!r}")
    fp16, fp32 = ms.float16, ms.float32
    if level in ("O2", "O3"):
        network.to_float(fp16)
    for _, cell in network.cells_and_names():
        if level == "O1" and isinstance(cell, nn.Conv2d | nn.Dense | BinaryConv2d):
            cell.to_float(fp16)
        if level in ("O1", "O2") and isinstance(cell, nn.BatchNorm2d):
            cell.to_float(fp32)
    return network


def _finite(grad: Tensor) -> Tensor:
    return ops.isfinite(grad).all()


def _square_sum(grad: Tensor) -> Tensor:
    return ops.square(ops.cast(grad, ms.float32)).sum()


def _scale_by(factor: Tensor, grad: Tensor) -> Tensor:
    return grad * factor.astype(grad.dtype)


def _unscale(scale: Tensor, grad: Tensor) -> Tensor:
    # fp32 always: under AMP the straight-through weight gradient arrives in fp16
    return ops.cast(grad, ms.float32) / scale


class TrainStep(nn.Cell):
    """loss = loss_fn(network(x), y) * scale; grads unscaled, averaged over ranks, checked for inf/nan
    (an overflowed step is skipped and counted in `overflow_steps`; the LR position still advances),
    clipped by global norm, applied. Returns the (unscaled) loss."""

    def __init__(
        self,
        network: nn.Cell,
        loss_fn: nn.Cell,
        optimizer: nn.Optimizer,
        clip_grad_norm: float | None = None,
        reduce_grads: bool = False,
        loss_scale: str = "none",
        loss_scale_value: float | None = None,
        loss_scale_factor: float = 2.0,
        loss_scale_window: int = 2000,
    ) -> None:
        super().__init__(auto_prefix=False)  # keep the network's own parameter names in checkpoints
        if loss_scale not in LOSS_SCALES:
            raise UsageError(f"train.loss_scale must be one of {', '.join(LOSS_SCALES)}, got {loss_scale!r}")
        if clip_grad_norm is not None and clip_grad_norm < 0:
            raise UsageError(f"train.clip_grad_norm must be > 0 or null, got {clip_grad_norm}")
        if loss_scale_factor <= 1 or loss_scale_window < 1:
            raise UsageError(
                f"need train.loss_scale_factor > 1 and train.loss_scale_window >= 1, got "
                f"{loss_scale_factor} and {loss_scale_window}"
            )
        self.network = network
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.clip = clip_grad_norm is not None and clip_grad_norm > 0
        self.clip_grad_norm = float(clip_grad_norm or 0.0)
        self.check_overflow = loss_scale != "none"
        self.dynamic = loss_scale == "dynamic"
        default = {"none": 1.0, "fixed": FIXED_INIT, "dynamic": DYNAMIC_INIT}[loss_scale]
        value = float(default if loss_scale_value is None or loss_scale == "none" else loss_scale_value)
        if value <= 0:
            raise UsageError(f"train.loss_scale_value must be > 0, got {loss_scale_value}")
        self.scale_sense = Parameter(Tensor(value, ms.float32), name="scale_sense", requires_grad=False)
        self.good_steps = Parameter(Tensor(0, ms.int32), name="loss_scale_good_steps", requires_grad=False)
        self.overflow_steps = Parameter(Tensor(0, ms.int32), name="overflow_steps", requires_grad=False)
        self.scale_factor = float(loss_scale_factor)
        self.scale_window = int(loss_scale_window)
        self.grad_fn = ops.value_and_grad(self.scaled_loss, None, self.weights, has_aux=True)
        self.reduce_grads = reduce_grads
        if reduce_grads:
            self.grad_reducer = nn.DistributedGradReducer(self.weights, mean=True)

    def scaled_loss(self, images: Any, labels: Any, scale: Any) -> Any:
        logits = self.network(images).astype(ms.float32)
        loss = self.loss_fn(logits, labels)
        return loss * scale, loss  # differentiate the scaled loss, report the plain one

    def _update_scale(self, finite: Any) -> Any:
        """Dynamic loss scale: x factor after `window` finite steps in a row, / factor (>= 1) on overflow."""
        good = ops.select(finite, self.good_steps + 1, ops.zeros_like(self.good_steps))
        grow = good >= self.scale_window
        scale = self.scale_sense
        grown = ops.select(grow, scale * self.scale_factor, scale)
        shrunk = ops.maximum(scale / self.scale_factor, ops.ones_like(scale))
        new_scale = ops.select(finite, grown, shrunk)
        good = ops.select(grow, ops.zeros_like(good), good)
        return ops.depend(ops.assign(self.scale_sense, new_scale), ops.assign(self.good_steps, good))

    def _clip(self, grads: Any) -> Any:
        """Scale every gradient by clip / max(global norm, clip): the global norm is at most `clip`."""
        norm = ops.sqrt(ops.stack([_square_sum(grad) for grad in grads]).sum())
        factor = self.clip_grad_norm / ops.maximum(norm, self.clip_grad_norm)
        return tuple(_scale_by(factor, grad) for grad in grads)

    def construct(self, images: Any, labels: Any) -> Any:
        scale = self.scale_sense * 1.0  # a copy: the dynamic update below must not change this step's scale
        (_, loss), grads = self.grad_fn(images, labels, scale)
        grads = tuple(_unscale(scale, grad) for grad in grads)
        if self.reduce_grads:
            grads = self.grad_reducer(grads)
        if not self.check_overflow:
            if self.clip:
                grads = self._clip(grads)
            return ops.depend(loss, self.optimizer(grads))
        finite = ops.stack([_finite(grad) for grad in grads]).all()
        if self.dynamic:
            loss = ops.depend(loss, self._update_scale(finite))
        if self.clip:
            grads = self._clip(grads)  # before the branch: MindSpore 2.10 mistypes it inside under AMP
        if finite:
            loss = ops.depend(loss, self.optimizer(grads))
        else:
            loss = ops.depend(loss, ops.assign_add(self.optimizer.global_step, ops.ones((1,), ms.int32)))
            loss = ops.depend(loss, ops.assign_add(self.overflow_steps, ops.ones((), ms.int32)))
        return loss


class EvalStep(nn.Cell):
    """Logits and the summed loss of a batch, for top-k and mean loss over the whole val set."""

    def __init__(self, network: nn.Cell, loss_fn: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.network = network
        self.loss_fn = loss_fn

    def _clip(self, grads: Any) -> Any:
        """Scale every gradient by clip / max(global norm, clip): the global norm is at most `clip`."""
        norm = ops.sqrt(ops.stack([_square_sum(grad) for grad in grads]).sum())
        factor = self.clip_grad_norm / ops.maximum(norm, self.clip_grad_norm)
        return tuple(_scale_by(factor, grad) for grad in grads)

    def construct(self, images: Any, labels: Any) -> Any:
        logits = self.network(images).astype(ms.float32)
        return logits, self.loss_fn(logits, labels)
