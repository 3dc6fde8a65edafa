"""Binary building blocks that carry their precision: sign activations, binary weights, BinaryConv2d.

A quantizer Cell has a `precision` attribute (1 binary, 32 real); layers expose `input_precision` and
`weight_precision`, which `summary.py` reads instead of special-casing layer names.
"""

from __future__ import annotations

import math

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import HeUniform, initializer

from birealnet_exp.errors import UsageError

# Guards the per-sample std of a constant input (all zeros, e.g. a padding-only sample) against 0/0.
STD_EPS = 1e-12


class ApproxSign(nn.Cell):
    """sign(x) forward (sign(0) = 0); ApproxSign backward: dout * (2 - 2|x|) for |x| < 1, else 0."""

    precision = 1

    def construct(self, x: Tensor) -> Tensor:
        return ops.sign(x)

    def bprop(self, x: Tensor, out: Tensor, dout: Tensor) -> tuple[Tensor]:
        magnitude = ops.abs(x)
        slope = ops.where(magnitude < 1, 2 - 2 * magnitude, ops.zeros_like(x))
        return (dout * slope.astype(dout.dtype),)


class BinaryActivation(nn.Cell):
    """Binary activation: ApproxSign of x, of x / std(x) over (C, H, W) in training if `std_normalize`.

    The normalisation leaves the forward unchanged (sign is scale-invariant) and only reshapes the
    gradient; it is what the upstream MindSpore network does in training mode.
    """

    precision = 1

    def __init__(self, std_normalize: bool = False) -> None:
        super().__init__()
        self.std_normalize = std_normalize
        self.approx_sign = ApproxSign()

    def construct(self, x: Tensor) -> Tensor:
        if self.std_normalize and self.training:
            x = x / ops.sqrt(ops.var(x, axis=(1, 2, 3), ddof=0, keepdims=True) + STD_EPS)
        return self.approx_sign(x)

    def extend_repr(self) -> str:
        return f"std_normalize={self.std_normalize}"


class StraightThroughSign(nn.Cell):
    """Binary weight quantizer: sign(w) forward, identity (straight-through) backward."""

    precision = 1

    def construct(self, w: Tensor) -> Tensor:
        return ops.sign(w)

    def bprop(self, w: Tensor, out: Tensor, dout: Tensor) -> tuple[Tensor]:
        return (dout,)


def weight_scale(weight: Tensor) -> Tensor:
    """Per-output-channel scale alpha = mean|W| over (in, kh, kw), shaped (1, out, 1, 1), no gradient."""
    alpha = ops.mean(ops.abs(weight), axis=(1, 2, 3), keep_dims=False)
    return ops.stop_gradient(alpha).reshape(1, -1, 1, 1)


def kaiming_uniform(shape: tuple[int, ...]) -> Tensor:
    """Kaiming-uniform init with a = sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return initializer(HeUniform(negative_slope=math.sqrt(5)), shape, ms.float32)


class BinaryConv2d(nn.Cell):
    """Conv2d without bias whose weights and/or input activations are binarized.

    With binary weights the output is conv(x, sign(W)) * alpha (alpha = mean|W| per output channel);
    with real weights it is conv(x, W). `binary_activations` binarizes the input with BinaryActivation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        pad_mode: str = "same",
        padding: int = 0,
        binary_weights: bool = True,
        binary_activations: bool = True,
        std_normalize: bool = False,
    ) -> None:
        super().__init__()
        if pad_mode not in ("same", "valid", "pad"):
            raise UsageError(f"pad_mode must be 'same', 'valid' or 'pad', got {pad_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.pad_mode = pad_mode
        self.padding = padding
        self.weight = Parameter(
            kaiming_uniform((out_channels, in_channels, kernel_size, kernel_size)), name="weight"
        )
        self.input_quantizer = BinaryActivation(std_normalize) if binary_activations else None
        self.weight_quantizer = StraightThroughSign() if binary_weights else None
        self.input_precision = 1 if binary_activations else 32
        self.weight_precision = 1 if binary_weights else 32
        self.conv2d = ops.Conv2D(
            out_channel=out_channels,
            kernel_size=kernel_size,
            pad_mode=pad_mode,
            pad=padding if pad_mode == "pad" else 0,
            stride=stride,
        )

    def construct(self, x: Tensor) -> Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        if self.weight_quantizer is None:
            return self.conv2d(x, self.weight)
        out = self.conv2d(x, self.weight_quantizer(self.weight))
        return out * weight_scale(self.weight).astype(out.dtype)

    def extend_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, pad_mode={self.pad_mode}, padding={self.padding}, "
            f"input_precision={self.input_precision}, weight_precision={self.weight_precision}"
        )
