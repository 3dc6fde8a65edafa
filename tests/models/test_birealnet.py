"""BiRealNet: upstream parameter names and counts, output shapes of both variants and stems, registry."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from birealnet_exp.models import create_model, list_models
from birealnet_exp.models.binary import BinaryActivation, BinaryConv2d
from birealnet_exp.models.birealnet import BiRealNet, HardTanh, birealnet18, birealnet34


def _expected_upstream_names(depths: list[int]) -> list[str]:
    bn = ["gamma", "beta", "moving_mean", "moving_variance"]
    names = ["conv1.weight"] + [f"bn1.{p}" for p in bn]
    for stage, blocks in enumerate(depths, start=1):
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            names += [f"{prefix}.binary_conv.weight"] + [f"{prefix}.bn1.{p}" for p in bn]
            if stage > 1 and block == 0:
                names += [f"{prefix}.downsample.1.weight"] + [f"{prefix}.downsample.2.{p}" for p in bn]
    return names + [f"bn2.{p}" for p in bn] + ["fc.weight", "fc.bias"]


@pytest.mark.parametrize(
    "factory, depths, tensors, values",
    [
        (birealnet18, [4, 4, 4, 4], 106, 11_701_160),
        (birealnet34, [6, 8, 12, 6], 186, 21_816_744),
    ],
)
def test_upstream_parameter_names_and_counts(factory, depths: list[int], tensors: int, values: int) -> None:
    params = factory().parameters_dict()
    assert sorted(params) == sorted(_expected_upstream_names(depths))
    assert len(params) == tensors
    assert sum(int(np.prod(p.shape)) for p in params.values()) == values


def test_upstream_parameter_shapes() -> None:
    params = birealnet18().parameters_dict()
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        "layer1.0.binary_conv.weight": (64, 64, 3, 3),
        "layer2.0.binary_conv.weight": (128, 64, 3, 3),
        "layer2.0.downsample.1.weight": (128, 64, 1, 1),
        "layer4.3.bn1.moving_variance": (512,),
        "bn2.gamma": (512,),
        "fc.weight": (1000, 512),
        "fc.bias": (1000,),
    }
    for name, shape in expected.items():
        assert tuple(params[name].shape) == shape, name
    assert not params["bn1.moving_mean"].requires_grad


def test_upstream_birealnet18_on_224_gives_1000_logits(pynative: int) -> None:
    network = birealnet18()
    network.set_train(False)
    assert network(Tensor(np.zeros((1, 3, 224, 224), np.float32))).shape == (1, 1000)


@pytest.mark.parametrize("variant", ["upstream", "paper"])
@pytest.mark.parametrize("stem, size", [("imagenet", 64), ("small", 32)])
def test_output_shapes(variant: str, stem: str, size: int, pynative: int) -> None:
    network = birealnet18(num_classes=10, variant=variant, width=8, stem=stem)
    x = Tensor(np.random.RandomState(0).randn(2, 3, size, size).astype(np.float32))
    for training in (True, False):
        network.set_train(training)
        assert network(x).shape == (2, 10)


def test_stems() -> None:
    imagenet, small = birealnet18(width=8, stem="imagenet"), birealnet18(width=8, stem="small")
    assert tuple(imagenet.conv1.weight.shape) == (8, 3, 7, 7) and imagenet.maxpool is not None
    assert tuple(small.conv1.weight.shape) == (8, 3, 3, 3) and small.maxpool is None
    assert small.conv1.stride == (1, 1) and small.conv1.padding == 1


def test_width_scales_the_stages() -> None:
    params = birealnet34(num_classes=10, width=16, stem="small").parameters_dict()
    assert tuple(params["layer4.5.binary_conv.weight"].shape) == (128, 128, 3, 3)
    assert tuple(params["fc.weight"].shape) == (10, 128)


def test_paper_variant_has_no_bn2_no_hardtanh_and_symmetric_padding() -> None:
    network = birealnet18(variant="paper", width=8)
    cells = [cell for _, cell in network.cells_and_names()]
    assert network.bn2 is None
    assert not any(name.startswith("bn2") for name in network.parameters_dict())
    assert not any(isinstance(cell, HardTanh) for cell in cells)
    convs = [cell for cell in cells if isinstance(cell, BinaryConv2d)]
    assert len(convs) == 16 and all(c.pad_mode == "pad" and c.padding == 1 for c in convs)
    assert not any(c.input_quantizer.std_normalize for c in convs)
    assert network.maxpool.pad_mode == "PAD"


def test_upstream_variant_has_hardtanh_after_stem_and_every_block() -> None:
    network = birealnet18(width=8)
    hardtanhs = [name for name, cell in network.cells_and_names() if isinstance(cell, HardTanh)]
    assert hardtanhs == ["act"] + [f"layer{s}.{b}.act" for s in range(1, 5) for b in range(4)]
    convs = [cell for _, cell in network.cells_and_names() if isinstance(cell, BinaryConv2d)]
    assert all(c.pad_mode == "same" and c.input_quantizer.std_normalize for c in convs)


@pytest.mark.parametrize(
    "binary, weight_bits, input_bits", [("both", 1, 1), ("activations", 32, 1), ("none", 32, 32)]
)
def test_binary_modes(binary: str, weight_bits: int, input_bits: int) -> None:
    network = birealnet18(width=8, binary=binary)
    convs = [cell for _, cell in network.cells_and_names() if isinstance(cell, BinaryConv2d)]
    assert {(c.weight_precision, c.input_precision) for c in convs} == {(weight_bits, input_bits)}
    activations = [cell for _, cell in network.cells_and_names() if isinstance(cell, BinaryActivation)]
    assert len(activations) == (0 if binary == "none" else 16)
    assert len(network.parameters_dict()) == 106


def test_graph_and_pynative_forward_agree() -> None:
    previous = ms.get_context("mode")
    ms.set_seed(0)
    network = birealnet18(num_classes=10, width=8, stem="small")
    network.set_train(False)
    x = Tensor(np.random.RandomState(1).randn(2, 3, 16, 16).astype(np.float32))
    try:
        ms.set_context(mode=ms.PYNATIVE_MODE)
        eager = network(x).asnumpy()
        ms.set_context(mode=ms.GRAPH_MODE)
        compiled = network(x).asnumpy()
    finally:
        ms.set_context(mode=previous)
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)


def _training_gradients(run_mode: int) -> dict[str, np.ndarray]:
    previous = ms.get_context("mode")
    ms.set_context(mode=run_mode)
    try:
        ms.set_seed(0)
        network = birealnet18(num_classes=5, width=4, stem="small")
        network.set_train(True)
        params = network.trainable_params()
        loss_fn = ms.nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")

        def loss(inputs: Tensor, labels: Tensor) -> Tensor:
            return loss_fn(network(inputs), labels)

        x = Tensor(np.random.RandomState(2).randn(4, 3, 8, 8).astype(np.float32))
        labels = Tensor(np.array([0, 1, 2, 3], np.int32))
        grads = ms.grad(loss, grad_position=None, weights=params)(x, labels)
        return {param.name: grad.asnumpy() for param, grad in zip(params, grads, strict=True)}
    finally:
        ms.set_context(mode=previous)


def test_training_gradients_reach_every_parameter_and_agree_across_modes() -> None:
    graph, eager = _training_gradients(ms.GRAPH_MODE), _training_gradients(ms.PYNATIVE_MODE)
    assert graph.keys() == eager.keys()
    for name, grad in eager.items():
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, name
        np.testing.assert_allclose(graph[name], grad, rtol=1e-3, atol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variant": "torch"}, "variant must be one of upstream, paper"),
        ({"stem": "cifar"}, "stem must be one of imagenet, small"),
        ({"binary": "weights"}, "binary must be one of both, activations, none"),
        ({"width": 0}, "width, num_classes and in_channels must be positive"),
    ],
)
def test_bad_arguments_are_one_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        birealnet18(**kwargs)


def test_registry() -> None:
    assert list_models() == ["birealnet18", "birealnet34"]
    network = create_model("birealnet18", num_classes=10, width=8, stem="small", variant="paper")
    assert isinstance(network, BiRealNet) and network.variant == "paper"
    with pytest.raises(ValueError, match="unknown model 'resnet18'; known models: birealnet18, birealnet34"):
        create_model("resnet18")
