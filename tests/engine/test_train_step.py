"""TrainStep: overflowed steps are skipped and counted, the dynamic loss scale moves, clipping bounds the
global norm, AMP levels cast what they promise; in graph mode, as runs use it."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from birealnet_exp.engine.train_step import EvalStep, TrainStep, apply_amp
from birealnet_exp.errors import UsageError
from birealnet_exp.models.binary import BinaryConv2d
from birealnet_exp.models.birealnet import birealnet18
from birealnet_exp.optim.optimizers import sgd


@pytest.fixture(autouse=True, params=[ms.GRAPH_MODE], ids=["graph"])
def mode(request):
    previous = ms.get_context("mode")
    ms.set_context(mode=request.param)
    yield request.param
    ms.set_context(mode=previous)


def batch(n: int = 8, features: int = 4, scale: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = ms.Tensor((rng.standard_normal((n, features)) * scale).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 3, n).astype(np.int32))
    return x, y


def weights(network: nn.Cell) -> list[np.ndarray]:
    return [p.asnumpy().copy() for p in network.trainable_params()]


def test_forced_overflow_is_skipped_and_counted_with_a_fixed_scale():
    network = nn.Dense(4, 3)
    optimizer = sgd(network, lr=0.1, schedule=np.full(4, 0.1, np.float32))
    step = TrainStep(
        network, nn.CrossEntropyLoss(), optimizer, 5.0, loss_scale="fixed", loss_scale_value=3e38
    )
    before = weights(network)
    x, y = batch(scale=1e3)  # gradients ~1e3, times 3e38: inf in float32
    for _ in range(2):
        loss = float(step(x, y).asnumpy())
    assert np.isfinite(loss)  # the reported loss is unscaled
    for a, b in zip(before, weights(network), strict=True):
        np.testing.assert_array_equal(a, b)  # skipped: nothing moved
    assert int(step.overflow_steps.asnumpy()) == 2
    assert int(optimizer.global_step.asnumpy()[0]) == 2  # the LR position still advances
    assert float(step.scale_sense.asnumpy()) == pytest.approx(3e38)  # fixed stays fixed


def test_dynamic_scale_halves_on_overflow_and_grows_after_a_clean_window():
    network = nn.Dense(4, 3)
    optimizer = sgd(network, lr=0.1)
    step = TrainStep(
        network,
        nn.CrossEntropyLoss(),
        optimizer,
        None,
        loss_scale="dynamic",
        loss_scale_value=2.0**127,
        loss_scale_window=3,
    )
    x, y = batch(scale=1e3)  # gradients ~1e3
    before = weights(network)
    step(x, y)  # 2^127 * loss overflows float32: skipped, scale halves
    assert int(step.overflow_steps.asnumpy()) == 1 and float(step.scale_sense.asnumpy()) == 2.0**126
    for a, b in zip(before, weights(network), strict=True):
        np.testing.assert_array_equal(a, b)
    small = TrainStep(
        network,
        nn.CrossEntropyLoss(),
        optimizer,
        None,
        loss_scale="dynamic",
        loss_scale_value=8.0,
        loss_scale_window=3,
    )
    x, y = batch()
    for _ in range(3):
        small(x, y)
    assert float(small.scale_sense.asnumpy()) == 16.0 and int(small.good_steps.asnumpy()) == 0
    assert int(small.overflow_steps.asnumpy()) == 0
    assert not np.array_equal(before[0], weights(network)[0])  # clean steps update


def test_dynamic_scale_defaults_to_the_seed_values():
    step = TrainStep(
        nn.Dense(4, 3), nn.CrossEntropyLoss(), sgd(nn.Dense(4, 3), lr=0.1), None, loss_scale="dynamic"
    )
    assert (
        float(step.scale_sense.asnumpy()) == 2.0**24
        and step.scale_factor == 2.0
        and step.scale_window == 2000
    )
    fixed = TrainStep(
        nn.Dense(4, 3), nn.CrossEntropyLoss(), sgd(nn.Dense(4, 3), lr=0.1), None, loss_scale="fixed"
    )
    assert float(fixed.scale_sense.asnumpy()) == 1024.0


@pytest.mark.parametrize("loss_scale", ["none", "dynamic"])
def test_clipping_bounds_the_global_norm_of_the_update(loss_scale):
    def update_norm(clip):
        network = nn.Dense(4, 3, weight_init="ones", bias_init="zeros")
        step = TrainStep(network, nn.CrossEntropyLoss(), sgd(network, lr=1.0), clip, loss_scale=loss_scale)
        before = weights(network)
        step(*batch(scale=100.0))
        return float(
            np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(before, weights(network), strict=True)))
        )

    raw = update_norm(None)  # lr 1, plain SGD: the update is the gradient
    assert raw > 1.0
    assert update_norm(0.5) == pytest.approx(0.5, rel=1e-4)
    assert update_norm(2 * raw) == pytest.approx(raw, rel=1e-4)  # under the bound: untouched


def test_amp_levels_cast_what_they_promise():
    def dtypes(level):
        network = apply_amp(birealnet18(num_classes=10, width=8, stem="small"), level)
        convs = [c for _, c in network.cells_and_names() if isinstance(c, nn.Conv2d | BinaryConv2d)]
        bns = [c for _, c in network.cells_and_names() if isinstance(c, nn.BatchNorm2d)]

        def flag(cell):
            flags = cell.get_flags()
            return "fp16" if flags.get("fp16") else "fp32" if flags.get("fp32") else "-"

        return {flag(c) for c in convs}, {flag(c) for c in bns}, flag(network.fc)

    assert dtypes("O0") == ({"-"}, {"-"}, "-")
    assert dtypes("O1") == ({"fp16"}, {"fp32"}, "fp16")
    assert dtypes("O2") == ({"fp16"}, {"fp32"}, "fp16")
    assert dtypes("O3") == ({"fp16"}, {"fp16"}, "fp16")
    with pytest.raises(UsageError, match="amp_level"):
        apply_amp(nn.Dense(2, 2), "O4")


@pytest.mark.parametrize("level", ["O1", "O3"])
def test_amp_network_trains_with_a_dynamic_scale_and_gives_fp32_logits(level):
    # PyNative: MindSpore 2.10's CPU graph mode mistypes the binary-conv weight gradient under AMP
    ms.set_context(mode=ms.PYNATIVE_MODE)
    network = apply_amp(birealnet18(num_classes=10, width=8, stem="small"), level)
    step = TrainStep(network, nn.CrossEntropyLoss(), sgd(network, lr=0.01), 5.0, loss_scale="dynamic")
    x = ms.Tensor(np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32))
    y = ms.Tensor(np.arange(4, dtype=np.int32))
    losses = [float(step(x, y).asnumpy()) for _ in range(3)]
    assert all(np.isfinite(losses))
    overflowed = int(step.overflow_steps.asnumpy())
    assert float(step.scale_sense.asnumpy()) == 2.0**24 / 2**overflowed  # fp16 overflow at 2^24 halves it
    logits, _ = EvalStep(network, nn.CrossEntropyLoss())(x, y)
    assert logits.dtype == ms.float32


def test_bad_loss_scale_is_one_clear_error():
    with pytest.raises(UsageError, match="train.loss_scale"):
        TrainStep(nn.Dense(2, 2), nn.CrossEntropyLoss(), sgd(nn.Dense(2, 2), lr=0.1), None, loss_scale="auto")
