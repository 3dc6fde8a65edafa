"""Binary activation (ApproxSign), straight-through binary weights and BinaryConv2d in both modes."""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, ops

from birealnet_exp.models.binary import (
    ApproxSign,
    BinaryActivation,
    BinaryConv2d,
    StraightThroughSign,
    weight_scale,
)

POINTS = np.array([-1.5, -0.5, 0.0, 0.25, 0.9, 1.2], np.float32)
APPROX_SIGN_GRADS = np.array([0.0, 1.0, 2.0, 1.5, 0.2, 0.0], np.float32)


def _points() -> Tensor:
    return Tensor(POINTS.reshape(1, -1, 1, 1))


def test_approx_sign_forward_and_gradient(mode: int) -> None:
    activation = ApproxSign()
    np.testing.assert_array_equal(activation(_points()).asnumpy().ravel(), [-1, -1, 0, 1, 1, 1])
    grad = ms.grad(activation)(_points()).asnumpy().ravel()
    np.testing.assert_allclose(grad, APPROX_SIGN_GRADS, atol=1e-6)


def test_binary_activation_eval_mode_has_plain_approx_sign_gradient(mode: int) -> None:
    activation = BinaryActivation(std_normalize=True)
    activation.set_train(False)
    np.testing.assert_allclose(ms.grad(activation)(_points()).asnumpy().ravel(), APPROX_SIGN_GRADS, atol=1e-6)


def test_std_normalization_changes_only_the_backward_in_training(mode: int) -> None:
    x = Tensor(np.random.RandomState(0).randn(2, 3, 4, 4).astype(np.float32) * 3)
    normalized, plain = BinaryActivation(std_normalize=True), BinaryActivation(std_normalize=False)
    normalized.set_train(True)
    plain.set_train(True)
    np.testing.assert_array_equal(normalized(x).asnumpy(), plain(x).asnumpy())
    grad_plain = ms.grad(plain)(x).asnumpy()
    assert not np.allclose(ms.grad(normalized)(x).asnumpy(), grad_plain)
    # with std 3, many inputs lie outside [-1, 1] and get no plain gradient
    assert (grad_plain == 0).mean() > 0.5


def test_straight_through_weight_gradient_is_identity(mode: int) -> None:
    w = Tensor(POINTS)
    np.testing.assert_array_equal(StraightThroughSign()(w).asnumpy(), [-1, -1, 0, 1, 1, 1])
    np.testing.assert_array_equal(ms.grad(StraightThroughSign())(w).asnumpy(), np.ones_like(POINTS))


def test_weight_scale_is_mean_abs_per_output_channel_without_gradient(mode: int) -> None:
    w = np.random.RandomState(1).randn(4, 3, 3, 3).astype(np.float32)
    alpha = weight_scale(Tensor(w)).asnumpy()
    assert alpha.shape == (1, 4, 1, 1)
    np.testing.assert_allclose(alpha.ravel(), np.abs(w).mean(axis=(1, 2, 3)), rtol=1e-6)

    def total_scale(weight: Tensor) -> Tensor:
        return weight_scale(weight).sum()

    grad = ms.grad(total_scale)(Tensor(w)).asnumpy()
    np.testing.assert_array_equal(grad, np.zeros_like(w))


def _conv_with_weight(**kwargs: object) -> tuple[BinaryConv2d, np.ndarray]:
    conv = BinaryConv2d(3, 4, **kwargs)
    weight = np.random.RandomState(2).randn(4, 3, 3, 3).astype(np.float32)
    conv.weight.set_data(Tensor(weight))
    return conv, weight


def test_binary_conv_forward_is_scaled_sign_conv(mode: int) -> None:
    conv, weight = _conv_with_weight()
    conv.set_train(False)
    x = np.random.RandomState(3).randn(2, 3, 8, 8).astype(np.float32)
    expected = ops.conv2d(Tensor(np.sign(x)), Tensor(np.sign(weight)), pad_mode="same").asnumpy()
    expected *= np.abs(weight).mean(axis=(1, 2, 3)).reshape(1, -1, 1, 1)
    np.testing.assert_allclose(conv(Tensor(x)).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_binary_conv_weight_gradient_is_straight_through(mode: int) -> None:
    """d(sum out)/dW equals alpha times the gradient of a real conv w.r.t. its (binary) weights."""
    conv, weight = _conv_with_weight()
    conv.set_train(False)
    x = Tensor(np.random.RandomState(4).randn(2, 3, 8, 8).astype(np.float32))

    def total_output(inp: Tensor) -> Tensor:
        return conv(inp).sum()

    grad_w = ms.grad(total_output, grad_position=None, weights=[conv.weight])(x)[0].asnumpy()

    alpha = Tensor(np.abs(weight).mean(axis=(1, 2, 3)).reshape(1, -1, 1, 1))

    def reference(w: Tensor) -> Tensor:
        return (ops.conv2d(ops.sign(x), w, pad_mode="same") * alpha).sum()

    expected = ms.grad(reference)(Tensor(np.sign(weight))).asnumpy()
    np.testing.assert_allclose(grad_w, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("binary_weights, binary_activations", [(True, True), (False, True), (False, False)])
def test_binary_conv_flags_and_precisions(
    binary_weights: bool, binary_activations: bool, pynative: int
) -> None:
    conv, weight = _conv_with_weight(binary_weights=binary_weights, binary_activations=binary_activations)
    conv.set_train(False)
    assert conv.weight_precision == (1 if binary_weights else 32)
    assert conv.input_precision == (1 if binary_activations else 32)
    assert list(conv.parameters_dict()) == ["weight"]
    x = np.random.RandomState(5).randn(1, 3, 8, 8).astype(np.float32)
    x_in = np.sign(x) if binary_activations else x
    w_in = weight
    if binary_weights:
        w_in = np.sign(weight) * np.abs(weight).mean(axis=(1, 2, 3)).reshape(-1, 1, 1, 1)
    expected = ops.conv2d(Tensor(x_in), Tensor(w_in.astype(np.float32)), pad_mode="same").asnumpy()
    np.testing.assert_allclose(conv(Tensor(x)).asnumpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "stride, pad_mode, padding, expected_hw",
    [
        (1, "same", 0, 8),
        (2, "same", 0, 4),
        (1, "pad", 1, 8),
        (2, "pad", 1, 4),
        (1, "valid", 0, 6),
    ],
)
def test_binary_conv_padding(
    stride: int, pad_mode: str, padding: int, expected_hw: int, pynative: int
) -> None:
    conv = BinaryConv2d(3, 4, stride=stride, pad_mode=pad_mode, padding=padding)
    assert conv(Tensor(np.ones((1, 3, 8, 8), np.float32))).shape == (1, 4, expected_hw, expected_hw)


def test_same_padding_at_stride_2_pads_bottom_right_only(pynative: int) -> None:
    """MindSpore 'same' at stride 2 on an even size pads only bottom/right, unlike symmetric padding 1."""
    same, _ = _conv_with_weight(stride=2)
    symmetric, _ = _conv_with_weight(stride=2, pad_mode="pad", padding=1)
    x = Tensor(np.random.RandomState(6).randn(1, 3, 8, 8).astype(np.float32))
    assert not np.allclose(same(x).asnumpy(), symmetric(x).asnumpy())


def test_binary_conv_kaiming_uniform_init() -> None:
    conv = BinaryConv2d(16, 32, kernel_size=3)
    weight = conv.weight.asnumpy()
    bound = 1 / math.sqrt(16 * 9)
    assert weight.shape == (32, 16, 3, 3)
    assert np.abs(weight).max() <= bound
    assert np.abs(weight).max() > 0.9 * bound
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.1 * bound


def test_graph_and_pynative_give_the_same_forward_and_gradients() -> None:
    previous = ms.get_context("mode")
    x = Tensor(np.random.RandomState(7).randn(2, 3, 8, 8).astype(np.float32))
    results = []
    try:
        for run_mode in (ms.GRAPH_MODE, ms.PYNATIVE_MODE):
            ms.set_context(mode=run_mode)
            conv, _ = _conv_with_weight(stride=2, std_normalize=True)
            conv.set_train(True)
            out = conv(x).asnumpy()
            grad_x, grad_w = ms.grad(conv, grad_position=0, weights=[conv.weight])(x)
            results.append((out, grad_x.asnumpy(), grad_w[0].asnumpy()))
    finally:
        ms.set_context(mode=previous)
    for graph_value, pynative_value in zip(*results, strict=True):
        np.testing.assert_allclose(graph_value, pynative_value, rtol=1e-5, atol=1e-6)


def test_bad_pad_mode_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="pad_mode must be"):
        BinaryConv2d(3, 4, pad_mode="symmetric")
