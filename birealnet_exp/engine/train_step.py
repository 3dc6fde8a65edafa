"""One optimisation step as a Cell (compiles whole in graph mode): loss, gradients, clipping, update."""

from __future__ import annotations

from typing import Any

from mindspore import nn, ops


class TrainStep(nn.Cell):
    """loss = loss_fn(network(x), y); grads averaged over ranks, clipped by global norm, applied."""

    def __init__(
        self,
        network: nn.Cell,
        loss_fn: nn.Cell,
        optimizer: nn.Optimizer,
        clip_grad_norm: float | None,
        reduce_grads: bool = False,
    ) -> None:
        super().__init__(auto_prefix=False)  # keep the network's own parameter names in checkpoints
        self.network = network
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.clip = clip_grad_norm is not None and clip_grad_norm > 0
        self.clip_grad_norm = float(clip_grad_norm or 0.0)
        self.grad_fn = ops.value_and_grad(self.forward, None, self.weights)
        self.reduce_grads = reduce_grads
        if reduce_grads:
            self.grad_reducer = nn.DistributedGradReducer(self.weights, mean=True)

    def forward(self, images: Any, labels: Any) -> Any:
        return self.loss_fn(self.network(images), labels)

    def construct(self, images: Any, labels: Any) -> Any:
        loss, grads = self.grad_fn(images, labels)
        if self.reduce_grads:
            grads = self.grad_reducer(grads)
        if self.clip:
            grads = ops.clip_by_global_norm(grads, self.clip_grad_norm)
        return ops.depend(loss, self.optimizer(grads))


class EvalStep(nn.Cell):
    """Logits and the summed loss of a batch, for top-k and mean loss over the whole val set."""

    def __init__(self, network: nn.Cell, loss_fn: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.network = network
        self.loss_fn = loss_fn

    def construct(self, images: Any, labels: Any) -> Any:
        logits = self.network(images)
        return logits, self.loss_fn(logits, labels)
