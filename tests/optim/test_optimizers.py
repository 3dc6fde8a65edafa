"""Each optimizer builds the seed's two param groups and performs its documented update."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from birealnet_exp.errors import UsageError
from birealnet_exp.models.birealnet import birealnet18
from birealnet_exp.optim import optimizers
from birealnet_exp.optim.optimizers import param_groups


def test_param_groups_decay_conv_and_dense_weights_only():
    network = birealnet18(num_classes=10, width=8, stem="small")
    decay, no_decay = param_groups(network, 5e-5)
    assert decay["weight_decay"] == 5e-5 and no_decay["weight_decay"] == 0.0
    decayed = {p.name for p in decay["params"]}
    undecayed = {p.name for p in no_decay["params"]}
    assert "conv1.weight" in decayed and "fc.weight" in decayed
    assert "layer1.0.binary_conv.weight" in decayed and "layer2.0.downsample.1.weight" in decayed
    assert "fc.bias" in undecayed and "bn1.gamma" in undecayed and "bn2.beta" in undecayed
    assert all(".bn" in n or n.startswith("bn") or "downsample.2" in n or n == "fc.bias" for n in undecayed)
    assert len(decayed) + len(undecayed) == len(network.trainable_params())


class Linear(nn.Cell):
    """y = x W^T + b, two parameters: one decayed weight, one undecayed bias."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Dense(2, 1, weight_init="ones", bias_init="ones")

    def construct(self, x):
        return self.fc(x)


def one_step(optimizer_name: str, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) after one step on grad = 1 everywhere."""
    network = Linear()
    optimizer = getattr(optimizers, optimizer_name)(network, **kwargs)
    grads = tuple(ms.Tensor(np.ones(p.shape, np.float32)) for p in optimizer.parameters)
    optimizer(grads)
    return network.fc.weight.asnumpy().ravel(), network.fc.bias.asnumpy().ravel()


def test_sgd_update_and_weight_decay_only_on_weights():
    weight, bias = one_step("sgd", lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(weight, 1 - 0.1 * (1 + 0.5), rtol=1e-6)  # grad + wd * w
    np.testing.assert_allclose(bias, 1 - 0.1 * 1, rtol=1e-6)  # no decay on the bias


def test_momentum_and_nesterov_first_step():
    weight, _ = one_step("momentum", lr=0.1, momentum=0.9)
    np.testing.assert_allclose(weight, 1 - 0.1, rtol=1e-6)  # v = g
    nesterov, _ = one_step("momentum", lr=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(nesterov, 1 - 0.1 * (1 + 0.9), rtol=1e-6)  # w -= lr (g + m v)


def test_adam_first_step_is_lr_times_sign():
    weight, bias = one_step("adam", lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    np.testing.assert_allclose(weight, 1 - 0.01, rtol=1e-5)
    np.testing.assert_allclose(bias, 1 - 0.01, rtol=1e-5)


def test_adamw_decouples_weight_decay_and_spares_the_bias():
    # MindSpore's AdamWeightDecay (BERT-style): no bias correction; w -= lr (m / (sqrt(v) + eps) + wd w)
    weight, bias = one_step("adamw", lr=0.01, weight_decay=0.5)
    adam_step = 0.1 / (np.sqrt(0.001) + 1e-8)
    np.testing.assert_allclose(weight, 1 - 0.01 * (adam_step + 0.5), rtol=1e-5)
    np.testing.assert_allclose(bias, 1 - 0.01 * adam_step, rtol=1e-5)


def test_per_step_schedule_becomes_the_learning_rate():
    network = Linear()
    schedule = np.array([0.5, 0.25, 0.125], dtype=np.float32)
    optimizer = optimizers.sgd(network, lr=0.5, schedule=schedule)
    grads = tuple(ms.Tensor(np.ones(p.shape, np.float32)) for p in optimizer.parameters)
    for _ in range(3):
        optimizer(grads)
    np.testing.assert_allclose(network.fc.bias.asnumpy(), 1 - 0.875, rtol=1e-6)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("sgd", {"lr": 0.0}, "optimizer.lr"),
        ("adam", {"lr": 1e-3, "betas": (0.9,)}, "optimizer.betas"),
        ("momentum", {"lr": 1e-3, "momentum": 1.5}, "optimizer.momentum"),
        ("sgd", {"lr": 1e-3, "nesterov": True}, "nesterov"),
        ("adamw", {"lr": 1e-3, "weight_decay": -1}, "weight_decay"),
    ],
)
def test_bad_optimizer_settings_are_one_clear_error(name, kwargs, message):
    with pytest.raises(UsageError, match=message):
        getattr(optimizers, name)(Linear(), **kwargs)
